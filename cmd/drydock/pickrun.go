package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
)

// runChoice is which runs a command given no run id may take: resume, rollback and status each
// have their own, and none takes a run the person did not mean when there is a doubt.
type runChoice struct {
	verb string
	// want says whether the command may take the run unnamed.
	want func(*runbook.RunState) bool
	// byName says whether the command may take the run when it is named (nil: any run).
	byName func(*runbook.RunState) bool
	// aside says why a run the command would take if named is not taken unnamed ("" when no
	// reason worth saying): an interrupted standalone drain is not resumed by an unnamed resume.
	aside func(*runbook.RunState) string
}

// resumeChoice: paused, interrupted, failed or running (a dead process) runs of a runbook. A
// standalone drain is resumed only when named: a responder who cancelled one with Ctrl-C did not
// mean the next `drydock resume`, meant for a paused upgrade, to cordon and evict again.
var resumeChoice = runChoice{
	verb: "resume",
	want: func(r *runbook.RunState) bool { return r.Status.Resumable() && r.KindOf() != "drain" },
	// A succeeded run named is taken too: resume says there is nothing to resume and exits 0 (a
	// script that resumes until done must not see an error), releasing a lock it left behind.
	byName: func(r *runbook.RunState) bool { return r.Status.Resumable() || r.Status == runbook.RunSucceeded },
	aside: func(r *runbook.RunState) string {
		if r.Status.Resumable() && r.KindOf() == "drain" {
			return "a standalone drain, resumed only when named"
		}
		return ""
	},
}

// rollbackChoice: runs with something to undo; a finished standalone drain has uncordoned its nodes.
func rollbackChoice(restoreBackup bool) runChoice {
	return runChoice{
		verb: "rollback",
		want: func(r *runbook.RunState) bool {
			if restoreBackup {
				return r.RollbackPoint(runbook.RollbackPointVeleroBackup) != nil
			}
			return r.Status != runbook.RunRolledBack && !(r.KindOf() == "drain" && r.Status == runbook.RunSucceeded)
		},
		byName: func(r *runbook.RunState) bool { return r.Status != runbook.RunRolledBack || restoreBackup },
	}
}

// statusChoice: the run in flight (running, paused, interrupted, failed) when there is exactly one;
// with none in flight, the newest run. Several in flight are listed for a person to choose.
var statusChoice = runChoice{
	verb: "status",
	want: func(r *runbook.RunState) bool { return r.Status.Resumable() || r.Status == runbook.RunRollbackFailed },
}

// findRun reads the run named id, or picks one by c when id is empty. With a client it also reads
// the cluster's copy and takes it, saying so on note, when this machine has no journal of the run,
// when the local one is damaged, or when the copy is newer (a local write failed: a full disk).
func findRun(ctx context.Context, state StateFlags, client kubernetes.Interface, id string, c runChoice, note io.Writer) (*runbook.RunState, error) {
	if id == "" {
		return pickRun(state, c)
	}
	st, err := runbook.ReadRun(state.StateDir, id)
	if client != nil {
		st, err = preferCopy(ctx, state, client, id, st, err, note)
	}
	var damaged *runbook.DamagedJournalError
	if errors.As(err, &damaged) && client == nil {
		err = fmt.Errorf("%w; with a kubeconfig, `drydock status %s --from-cluster` shows that copy and `drydock resume %s` continues from it", err, id, id)
	}
	if errors.Is(err, runbook.ErrRunNotFound) {
		return nil, exitcode.UsageError(err)
	}
	if err == nil && c.byName != nil && !c.byName(st) {
		return nil, exitcode.UsageError(fmt.Errorf("%s run %s: the run is %s: nothing to %s (`drydock status %s` says where it stands)", c.verb, id, st.Status, c.verb, id))
	}
	return st, err
}

// preferCopy chooses between the local journal (st, err) and the cluster's copy of run id.
func preferCopy(ctx context.Context, state StateFlags, client kubernetes.Interface, id string, st *runbook.RunState, err error, note io.Writer) (*runbook.RunState, error) {
	var damaged *runbook.DamagedJournalError
	if err != nil && !errors.Is(err, runbook.ErrRunNotFound) && !errors.As(err, &damaged) {
		return st, err
	}
	mirror := &runbook.ConfigMapMirror{Client: client, Namespace: state.StateNamespace}
	cp, cerr := mirror.Load(ctx, id)
	where := fmt.Sprintf("the cluster's copy (ConfigMap %s/%s, updated %s)", state.StateNamespace, runbook.ConfigMapName(id), "%s")
	switch {
	case damaged != nil && cerr != nil:
		return nil, fmt.Errorf("%w; the cluster's copy cannot replace it: %w", err, cerr)
	case damaged != nil:
		fmt.Fprintf(note, "drydock: %v; using "+where+"\n", err, cp.Updated.Local().Format(time.DateTime))
		return cp, nil
	case err != nil: // not on this machine
		return cp, cerr
	case cerr == nil && cp.Updated.After(st.Updated):
		fmt.Fprintf(note, "drydock: run %s: "+where+" is newer than this machine's journal (updated %s, a write here failed): using the copy\n",
			id, cp.Updated.Local().Format(time.DateTime), st.Updated.Local().Format(time.DateTime))
		return cp, nil
	}
	return st, nil
}

// pickRun is the one run c wants among this machine's runs. Several are refused, listed, as gh
// does for an ambiguous choice: a command that moves nodes never guesses which run was meant.
func pickRun(state StateFlags, c runChoice) (*runbook.RunState, error) {
	runs, err := runbook.ListRuns(state.StateDir)
	if err != nil {
		return nil, err
	}
	var cands []*runbook.RunState
	var aside []string
	for _, r := range runs {
		switch {
		case r.Status == runbook.RunDamaged:
			aside = append(aside, fmt.Sprintf("run %s's journal is damaged: `drydock %s %s` reads its cluster copy", r.ID, c.verb, r.ID))
		case c.want(r):
			cands = append(cands, r)
		case c.aside != nil && c.aside(r) != "":
			aside = append(aside, fmt.Sprintf("run %s (%s) is %s: `drydock %s %s`", r.ID, r.Status, c.aside(r), c.verb, r.ID))
		}
	}
	switch {
	case len(cands) == 1:
		return cands[0], nil
	case len(cands) > 1 && c.verb == "status":
		return nil, exitcode.UsageError(fmt.Errorf("status: %d runs are in flight on this machine; name one:\n%s", len(cands), runTable(cands, c.verb)))
	case len(cands) > 1:
		return nil, exitcode.UsageError(fmt.Errorf("%s: %d runs could be meant; name one:\n%s", c.verb, len(cands), runTable(cands, c.verb)))
	case c.verb == "status" && len(runs) > 0:
		return runs[0], nil
	}
	msg := fmt.Sprintf("%s: no run to %s in %s: name one (`drydock runs` lists them)", c.verb, c.verb, state.StateDir)
	if len(aside) > 0 {
		msg += "; " + strings.Join(aside, "; ")
	}
	return nil, exitcode.Invalid(errors.New(msg))
}

// runTable lists runs for a person choosing one: id, kind, runbook, status, where it stopped, when.
func runTable(runs []*runbook.RunState, verb string) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  RUN\tKIND\tRUNBOOK\tSTATUS\tAT\tUPDATED\tCOMMAND")
	for _, r := range runs {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\tdrydock %s %s\n", r.ID, r.KindOf(), r.Runbook, r.Status, stoppedAt(r), r.Updated.Local().Format(time.DateTime), verb, r.ID)
	}
	_ = w.Flush()
	return strings.TrimRight(b.String(), "\n")
}

// stoppedAt is the step a run stands at: the paused, running, failed or interrupted one.
func stoppedAt(r *runbook.RunState) string {
	if r.Pause != nil {
		return r.Pause.Step + " (paused " + r.Pause.When + ")"
	}
	for _, s := range r.Steps {
		switch s.Status {
		case runbook.StatusRunning, runbook.StatusFailed, runbook.StatusInterrupted, runbook.StatusPaused, runbook.StatusRollbackFailed:
			return s.Name + " (" + string(s.Status) + ")"
		}
	}
	return "-"
}

// resumeSays is what `drydock resume` prints before anything moves: which run, and what it will do.
func resumeSays(st *runbook.RunState, rb *runbook.Runbook) string {
	head := fmt.Sprintf("resuming run %s (%s of %q, target %s, %s since %s, started by %s)",
		st.ID, st.KindOf(), st.Runbook, st.Target, st.Status, st.Updated.Local().Format(time.DateTime), st.Operator)
	var first string
	var rest []string
	for _, s := range st.Steps {
		switch {
		case s.Status == runbook.StatusDone && !(st.Pause != nil && st.Pause.Step == s.Name):
		case s.Status == runbook.StatusSkipped || s.Status == runbook.StatusRolledBack:
		case first == "":
			first = resumesWith(st, s)
		default:
			rest = append(rest, s.Name)
		}
	}
	if first == "" {
		return head + ": every step is done; it only finishes the run"
	}
	out := head + ": it continues with " + first
	if len(rest) > 0 {
		out += ", then " + strings.Join(rest, ", ")
	}
	if nodes := drainNodes(rb); st.KindOf() == "drain" && nodes != "" {
		out += "; it cordons " + nodes + " again and evicts their pods under their budgets"
	}
	return out
}

// resumesWith says how resume re-enters step s, the first not done.
func resumesWith(st *runbook.RunState, s runbook.StepState) string {
	switch {
	case st.Pause != nil && st.Pause.Step == s.Name:
		return fmt.Sprintf("the pause point %s step %s (asked again, unless --yes)", st.Pause.When, s.Name)
	case s.Status != runbook.StatusPending:
		return fmt.Sprintf("step %s again, which was %s (attempt %d)", s.Name, s.Status, s.Attempts+1)
	}
	return "step " + s.Name
}

// drainNodes names the nodes a standalone drain's runbook drains ("" when rb is not one).
func drainNodes(rb *runbook.Runbook) string {
	if rb == nil || len(rb.Spec.Steps) != 1 {
		return ""
	}
	d, ok := rb.Spec.Steps[0].Step.(*drain.Step)
	switch {
	case !ok:
		return ""
	case len(d.Nodes) > 0:
		return "node(s) " + strings.Join(d.Nodes, ", ")
	case d.Selector != "":
		return "the nodes labelled " + d.Selector
	}
	return ""
}
