package runbook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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
	// PlannedBefore, in the whole-runbook plan, names the nodes earlier node steps will have
	// upgraded, each with that step's name: a later step leaves them to it.
	PlannedBefore map[string]string
	// Planning, in the whole-runbook plan, is what node steps share as they plan one after another
	// (the drain planner's snapshot of the cluster, played forward batch by batch); nil otherwise.
	Planning map[string]any

	emit      func(Event)
	watches   *Watches
	ownWatch  sync.Once
	planState *StepState // planning a resumed run: the step's journaled state (read only)
	pauseNext *atomic.Bool
	relaxOK   *sync.Map
	journal   *Journal
	index     int
	ask       func(ctx context.Context, key, message string) error
}

// ErrStepPaused is returned by Env.Pause when the answer was "stop": the step must return it (wrapped
// or not); the run stops as paused, and `drydock resume` re-enters the step, which asks again.
var ErrStepPaused = errors.New("paused inside the step")

// Pause is a pause point inside a step (e.g. after each node group). key names it; once answered
// with continue it is not asked again on re-entry. It returns nil to go on, ErrStepPaused to stop
// here, or an error wrapping ErrRolledBack after the engine rolled the run back on request.
func (e *Env) Pause(ctx context.Context, key, message string) error {
	if e.Done("pause/" + key) {
		return nil
	}
	if e.ask == nil {
		return nil // planning: no pause points
	}
	if err := e.ask(ctx, key, message); err != nil {
		return err
	}
	return e.MarkDone(ctx, "pause/"+key)
}

// Watches is the run's shared informer factory (see Watches). An Env the engine did not make (a
// test's) gets watches of its own, which live as long as the process.
func (e *Env) Watches() *Watches {
	e.ownWatch.Do(func() {
		if e.watches == nil {
			e.watches = NewWatches(e.Kube)
		}
	})
	return e.watches
}

func (e *Env) meta() Meta {
	return Meta{Time: time.Now(), RunID: e.RunID, Step: e.Spec.Name}
}

// Emit sends an event from this step; the engine fills in the time, run and step.
func (e *Env) Emit(ev Event) {
	if e.emit == nil {
		return // an Env made by hand (a test, a library user) has no sink
	}
	m := ev.meta()
	*m = e.meta()
	e.emit(ev)
}

// Progress reports progress; total 0 means unknown.
func (e *Env) Progress(msg string, done, total int) {
	e.Emit(&StepProgress{Message: msg, Done: done, Total: total})
}

// Countdown reports progress that ends at until (a soak) or gives up then (a wait).
func (e *Env) Countdown(msg string, until time.Time) {
	e.Emit(&StepProgress{Message: msg, Until: until})
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
	if err := e.journal.Update(ctx, func(*RunState) { e.state().Changes = append(e.state().Changes, c) }); err != nil {
		return err
	}
	if d, ok := e.Spec.Step.(UndoDescriber); ok {
		if lines := d.WillUndo([]Change{c}, e.Target, e.RunID, e.Spec.Name); len(lines) > 0 {
			e.Emit(&UndoPlanned{Lines: lines})
		}
	}
	return nil
}

// Changes returns the changes this step recorded, oldest first.
func (e *Env) Changes() []Change {
	if e.journal == nil {
		if e.planState != nil {
			return slices.Clone(e.planState.Changes)
		}
		return nil // planning a new run
	}
	var c []Change
	e.journal.Read(func(*RunState) { c = slices.Clone(e.state().Changes) })
	return c
}

// Done says whether item was marked done in an earlier attempt of this step.
func (e *Env) Done(item string) bool {
	if e.journal == nil {
		return e.planState != nil && slices.Contains(e.planState.Checkpoints, item) // planning
	}
	var done bool
	e.journal.Read(func(*RunState) { done = slices.Contains(e.state().Checkpoints, item) })
	return done
}

// MarkDone durably records that item is done, so that a re-entered step skips it.
func (e *Env) MarkDone(ctx context.Context, item string) error {
	return e.journal.Update(ctx, func(*RunState) {
		if !slices.Contains(e.state().Checkpoints, item) {
			e.state().Checkpoints = append(e.state().Checkpoints, item)
		}
	})
}

// SaveData durably keeps v (as JSON) under key for later attempts of this step (a resume).
func (e *Env) SaveData(ctx context.Context, key string, v any) error {
	if e.journal == nil {
		return nil // planning
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("journal: keep %s: %w", key, err)
	}
	return e.journal.Update(ctx, func(*RunState) {
		if e.state().Data == nil {
			e.state().Data = map[string]json.RawMessage{}
		}
		e.state().Data[key] = b
	})
}

// LoadData reads what an earlier attempt of this step kept under key into v; false if nothing.
func (e *Env) LoadData(key string, v any) bool {
	if e.journal == nil {
		return false
	}
	var b json.RawMessage
	e.journal.Read(func(*RunState) { b = e.state().Data[key] })
	return b != nil && json.Unmarshal(b, v) == nil
}

// Unmark durably forgets that item was done, so that a re-entered step does it again (a node that
// was drained, then uncordoned when the step failed, must be drained again).
func (e *Env) Unmark(ctx context.Context, item string) error {
	if !e.Done(item) {
		return nil
	}
	return e.journal.Update(ctx, func(*RunState) {
		e.state().Checkpoints = slices.DeleteFunc(e.state().Checkpoints, func(c string) bool { return c == item })
	})
}

// Keep records, while the step is rolled back, something it cannot undo and why; the run then
// ends partly rolled back and says what is left. Recording the same thing twice (a rollback run
// again after a crash) keeps one.
func (e *Env) Keep(ctx context.Context, k Kept) error {
	return e.journal.Update(ctx, func(*RunState) {
		st := e.state()
		if !slices.Contains(st.Kept, k) {
			st.Kept = append(st.Kept, k)
		}
	})
}

// SetRollbackPoint records something a person can roll back to from here (e.g. a Velero backup).
func (e *Env) SetRollbackPoint(ctx context.Context, p RollbackPoint) error {
	if err := e.journal.Update(ctx, func(*RunState) { e.state().RollbackPoint = &p }); err != nil {
		return err
	}
	e.Emit(&RollbackPointSet{Point: p})
	return nil
}

// RelaxApproved says, once, whether a person approved relaxing budget pdb (Engine.ApproveRelax)
// within the last two minutes: an approval is for the drain the person was looking at, not for
// one that meets the budget later.
func (e *Env) RelaxApproved(pdb string) bool {
	if e.relaxOK == nil {
		return false
	}
	at, ok := e.relaxOK.LoadAndDelete(pdb)
	return ok && time.Since(at.(time.Time)) < 2*time.Minute
}

// PauseIfRequested is a pause point that exists only when someone asked for one (the TUI's `p`:
// pause after the current node). Steps call it between nodes.
func (e *Env) PauseIfRequested(ctx context.Context, key, message string) error {
	if e.pauseNext == nil || !e.pauseNext.CompareAndSwap(true, false) {
		return nil
	}
	return e.Pause(ctx, "requested/"+key, message)
}

// Node reports a node's state in a node step.
func (e *Env) Node(node string, state NodeState, detail string) {
	e.Emit(&NodeChanged{Node: node, State: state, Detail: detail})
}

// NodeInGroup reports a node's state with its group.
func (e *Env) NodeInGroup(node, group string, state NodeState) {
	e.Emit(&NodeChanged{Node: node, Group: group, State: state})
}
