package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/drydock-dev/drydock/runbook"
)

// StatusOptions are the options of `drydock status [RUN-ID]`.
type StatusOptions struct {
	Print *ObjectPrintFlags
	StateFlags
	// RunID names the run; empty: the run in flight on this machine, or the newest when none is
	// (several in flight are refused, listed).
	RunID string
	// FromCluster reads the run's copy in the cluster when this machine has no journal of it.
	FromCluster bool

	f *Factory
}

// KindRun is `drydock status -o json|yaml`: one run's journal.
const KindRun = "Run"

// RunObject is one run as `drydock status` prints it.
type RunObject struct {
	metav1.TypeMeta `json:",inline"`
	Run             *runbook.RunState `json:"run"`
}

// DeepCopyObject copies the run (runtime.Object).
func (r *RunObject) DeepCopyObject() runtime.Object { return deepCopy(r) }

// NewStatusCommand returns `drydock status [RUN-ID]`. runF, when not nil, replaces Run (tests).
func NewStatusCommand(f *Factory, runF func(*StatusOptions) error) *cobra.Command {
	o := &StatusOptions{Print: newObjectPrintFlags()}
	cmd := &cobra.Command{
		Use:   "status [RUN-ID]",
		Short: "Summarise one run, in flight or finished: its steps, where it stands, what is left, what to do next",
		Example: `  drydock status                       # the run in flight here (or the newest, when none is)
  drydock status 20261201-1545-22a2 --from-cluster   # a run started elsewhere (its copy in the cluster)
  drydock status -o yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: runE(f, o, runF),
	}
	o.Print.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.FromCluster, "from-cluster", false, "read the run's copy in the cluster when this machine has no journal of it")
	o.StateFlags.AddFlags(cmd)
	cmd.ValidArgsFunction = completeRuns(&o.StateFlags, nil)
	return cmd
}

// Complete takes the run id, if given.
func (o *StatusOptions) Complete(f *Factory, _ *cobra.Command, args []string) error {
	o.f = f
	if len(args) > 0 {
		o.RunID = args[0]
	}
	return nil
}

// Validate checks the flags; no side effects.
func (o *StatusOptions) Validate() error {
	if err := o.Print.Validate(); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return nil
}

// Run reads the run and prints its summary.
func (o *StatusOptions) Run(ctx context.Context) error {
	var client kubernetes.Interface
	if o.FromCluster {
		var err error
		if client, err = o.f.KubeClient(); err != nil {
			return err
		}
	}
	st, err := findRun(ctx, o.StateFlags, client, o.RunID, statusChoice, o.f.errOut())
	if err != nil {
		return err
	}
	if !o.Print.Text() {
		return o.Print.Print(&RunObject{TypeMeta: typeMeta(KindRun), Run: st}, o.f.out())
	}
	describeRun(o.f.out(), st, time.Now(), o.readLive(ctx, st))
	return nil
}

// describeRun writes a run's summary: who, where, where it stands, each step, and what to do next.
func describeRun(out io.Writer, st *runbook.RunState, now time.Time, live liveState) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Run:\t%s (%s of %q, target %s)\n", st.ID, st.KindOf(), st.Runbook, st.Target)
	fmt.Fprintf(w, "Cluster:\t%s\n", clusterOf(st))
	fmt.Fprintf(w, "Operator:\t%s\n", st.Operator)
	fmt.Fprintf(w, "Started:\t%s (%s ago)\n", st.Created.Local().Format(time.DateTime), now.Sub(st.Created).Round(time.Second))
	fmt.Fprintf(w, "Status:\t%s, last change %s, after %s\n", st.Status, st.Updated.Local().Format(time.DateTime), st.Duration().Round(time.Second))
	if live.process != "" {
		fmt.Fprintf(w, "Process:\t%s\n", live.process)
	}
	if st.Message != "" {
		fmt.Fprintf(w, "Message:\t%s\n", st.Message)
	}
	_ = w.Flush()
	fmt.Fprintln(out, "Steps:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  STEP\tKIND\tSTATUS\tTOOK\tDETAIL")
	for _, s := range st.Steps {
		took := "-"
		if s.Started != nil && s.Finished != nil {
			took = s.Finished.Sub(*s.Started).Round(time.Second).String()
		}
		var detail []string
		if s.Attempts > 1 {
			detail = append(detail, fmt.Sprintf("%d attempts", s.Attempts))
		}
		if st.Pause != nil && st.Pause.Step == s.Name {
			detail = append(detail, "paused "+st.Pause.When)
		}
		if s.Error != "" {
			detail = append(detail, s.Error)
		}
		if s.RollbackPoint != nil {
			detail = append(detail, "rollback point: "+s.RollbackPoint.String())
		}
		for _, k := range s.Kept {
			detail = append(detail, "not undone: "+k.Object+": "+k.Reason)
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", s.Name, s.Kind, s.Status, took, strings.Join(detail, "; "))
	}
	_ = w.Flush()
	if len(live.cordoned) > 0 {
		fmt.Fprintln(out, "Cordoned by this run:")
		for _, n := range live.cordoned {
			fmt.Fprintf(out, "  %s: %s\n", n, cordonFix(st, n))
		}
	}
	if live.problem != "" {
		fmt.Fprintln(out, "Cordoned by this run:\n  "+live.problem)
	}
	if next := nextStep(st); next != "" {
		fmt.Fprintln(out, "Next:\n  "+next)
	}
}

// nextStep says what a person can do with the run now.
func nextStep(st *runbook.RunState) string {
	switch st.Status {
	case runbook.RunPaused:
		return fmt.Sprintf("drydock resume %s   (answers the pause point; --yes to continue without asking)", st.ID)
	case runbook.RunInterrupted, runbook.RunFailed:
		return fmt.Sprintf("drydock resume %s   (re-enters the step that stopped)   or   drydock rollback %s", st.ID, st.ID)
	case runbook.RunRollbackFailed:
		return fmt.Sprintf("drydock rollback %s   (continues the rollback once the cause is fixed)", st.ID)
	case runbook.RunRunning:
		if alive, known := st.Holder.Alive(); known && !alive {
			return fmt.Sprintf("drydock resume %s   (its process died: resume takes the run over at once)   or   drydock rollback %s", st.ID, st.ID)
		}
		return "the run is in progress; if its process died, drydock resume " + st.ID + " takes it over once its lock expires"
	case runbook.RunPartlyRolledBack:
		return "what was not undone is listed above; it needs a person"
	}
	return ""
}
