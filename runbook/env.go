package runbook

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Env is what a step gets to work with: the cluster, its own spec, and ways to report progress and
// record what it changed. Steps never print: everything they say goes out as events.
type Env struct {
	RunID   string
	Spec    StepSpec // this step's entry in the runbook
	Runbook *Runbook
	Target  string // spec.targetVersion
	Kube    kubernetes.Interface
	REST    *rest.Config
	DryRun  bool

	emit    func(Event)
	journal *Journal
	index   int
}

func (e *Env) meta() Meta {
	return Meta{Time: time.Now(), RunID: e.RunID, Step: e.Spec.Name}
}

// Emit sends an event from this step; the engine fills in the time, run and step.
func (e *Env) Emit(ev Event) {
	m := ev.meta()
	*m = e.meta()
	e.emit(ev)
}

// Progress reports progress; total 0 means unknown.
func (e *Env) Progress(msg string, done, total int) {
	e.Emit(&StepProgress{Message: msg, Done: done, Total: total})
}

// Logf reports a line of output on a stream (stdout, stderr, info, warning).
func (e *Env) Logf(stream, format string, args ...any) {
	e.Emit(&LogLine{Stream: stream, Line: fmt.Sprintf(format, args...)})
}

// Find reports a finding.
func (e *Env) Find(f Finding) { e.Emit(&StepFinding{Finding: f}) }

func (e *Env) state() *StepState { return &e.journal.State().Steps[e.index] }

// Record durably journals a change the step is about to make (or made), before returning, so that
// Rollback undoes it even if the process dies right after.
func (e *Env) Record(ctx context.Context, c Change) error {
	if c.At.IsZero() {
		c.At = time.Now().UTC()
	}
	return e.journal.Update(ctx, func(*RunState) { e.state().Changes = append(e.state().Changes, c) })
}

// Changes returns the changes this step recorded, oldest first.
func (e *Env) Changes() []Change {
	return slices.Clone(e.state().Changes)
}

// Done says whether item was marked done in an earlier attempt of this step.
func (e *Env) Done(item string) bool {
	return slices.Contains(e.state().Checkpoints, item)
}

// MarkDone durably records that item is done, so that a re-entered step skips it.
func (e *Env) MarkDone(ctx context.Context, item string) error {
	if e.Done(item) {
		return nil
	}
	return e.journal.Update(ctx, func(*RunState) { e.state().Checkpoints = append(e.state().Checkpoints, item) })
}

// SetRollbackPoint names something a person can roll back to from here (e.g. a Velero backup).
func (e *Env) SetRollbackPoint(ctx context.Context, name string) error {
	return e.journal.Update(ctx, func(*RunState) { e.state().RollbackPoint = name })
}
