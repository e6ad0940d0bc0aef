package runbook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Engine runs runbooks: it journals every step transition, holds the cluster lock for the whole run,
// stops at pause points, and undoes steps on request.
type Engine struct {
	Registry Registry
	Sink     Sink
	Decider  Decider
	Kube     kubernetes.Interface
	REST     *rest.Config
	// StateDir holds the local journals (DefaultStateDir()).
	StateDir string
	// NoMirror keeps the journal on this machine only (no ConfigMap in the cluster).
	NoMirror bool
	// LockDuration of the cluster Lease (default DefaultLockDuration).
	LockDuration time.Duration
	// StealLock takes an expired lease left by a dead run.
	StealLock bool
	// AfterJournalWrite, when set, is called after every local journal write of a session with its
	// count: the crash-point tests kill the process there (DRYDOCK_CRASH_AT_JOURNAL_WRITE).
	AfterJournalWrite func(n int)
	// KeepRuns is how many finished runs keep their journal ConfigMap; older ones are pruned when
	// a run ends (default DefaultKeepRuns; negative: never prune).
	KeepRuns int
	// Cluster and Context describe the target for the journal (the API server URL, kubeconfig context).
	Cluster, Context string
	// Kind is what starts the run, kept in its journal: "run" (default) or "drain".
	Kind string

	pauseNext atomic.Bool
	relaxOK   sync.Map // budget → when a person approved relaxing it, not yet used
}

// RequestPause asks the running step to stop at a pause point after the node it is on (steps that
// move nodes offer one between nodes). Safe to call from any goroutine.
func (e *Engine) RequestPause() { e.pauseNext.Store(true) }

// ApproveRelax records that a person approved relaxing budget pdb (namespace/name) for the node
// being drained (a confirmed key in the terminal UI): the drain that waits on it applies the
// budget's fix at once and restores it after the node. Safe to call from any goroutine.
func (e *Engine) ApproveRelax(pdb string) { e.relaxOK.Store(pdb, time.Now()) }

// Start begins a new run of rb.
func (e *Engine) Start(ctx context.Context, rb *Runbook) (*RunState, error) {
	if err := e.Registry.Check(); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	st := &RunState{
		ID:          NewRunID(now),
		Kind:        e.Kind,
		Runbook:     rb.Metadata.Name,
		Target:      rb.Spec.TargetVersion,
		Cluster:     e.Cluster,
		Context:     e.Context,
		StateNS:     rb.StateNamespace(),
		Status:      RunRunning,
		Created:     now,
		Operator:    Operator(),
		RunbookPath: "",
	}
	if rb.Source != nil {
		st.RunbookPath = rb.Source.Path
		st.RunbookText = string(rb.Source.Text)
	}
	for _, s := range rb.Spec.Steps {
		st.Steps = append(st.Steps, StepState{Name: s.Name, Kind: s.Type, Status: StatusPending})
	}
	return st, e.drive(ctx, rb, st, false)
}

// Resume continues a run from its journal: the step that was in flight is re-entered, a pause point
// that was waiting is asked again. The runbook is the one journaled when the run started.
func (e *Engine) Resume(ctx context.Context, st *RunState) (*RunState, error) {
	if !st.Status.Resumable() {
		return st, Invalid(fmt.Errorf("resume run %s: it is %s, not resumable", st.ID, st.Status))
	}
	rb, err := e.runbookOf(st)
	if err != nil {
		return st, err
	}
	return st, e.drive(ctx, rb, st, true)
}

func (e *Engine) runbookOf(st *RunState) (*Runbook, error) {
	rb, err := Parse(st.RunbookPath+" (as journaled)", []byte(st.RunbookText), e.Registry)
	if err != nil {
		return nil, fmt.Errorf("run %s: the journaled runbook no longer loads (was drydock upgraded?): %w", st.ID, err)
	}
	if len(rb.Spec.Steps) != len(st.Steps) {
		return nil, fmt.Errorf("run %s: the journal has %d steps but its runbook %d", st.ID, len(st.Steps), len(rb.Spec.Steps))
	}
	return rb, nil
}

// session is one process's turn at a run: the journal, the lock and the event stream.
type session struct {
	e       *Engine
	rb      *Runbook
	journal *Journal
	lock    *Lock
	watches *Watches
	sum     *summarizer
	log     *eventLog
	// lockLost: another process may own the cluster now, so the session writes nothing more to it
	// (not its journal's copy, not old runs' copies).
	lockLost atomic.Bool
}

func (e *Engine) open(ctx context.Context, st *RunState) (*session, func(), error) {
	var mirror *ConfigMapMirror
	if !e.NoMirror {
		mirror = &ConfigMapMirror{Client: e.Kube, Namespace: st.StateNS}
	}
	s := &session{e: e, watches: NewWatches(e.Kube)}
	// The lock first: a run refused because another holds the cluster leaves no journal behind.
	s.lock = &Lock{Client: e.Kube, RunID: st.ID, Operator: Operator(), Duration: e.LockDuration}
	if err := s.lock.Acquire(ctx, e.StealLock); err != nil {
		var locked *LockedError
		if errors.As(err, &locked) {
			return nil, nil, Blocked(fmt.Errorf("run %s: %w", st.ID, err))
		}
		return nil, nil, err
	}
	j, err := OpenJournal(e.StateDir, st, mirror, func(err error) {
		s.emit(&LogLine{Meta: Meta{RunID: st.ID}, Stream: "warning", Line: err.Error()})
	})
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = s.lock.Release(rctx)
		return nil, nil, err
	}
	s.journal = j
	j.AfterWrite = e.AfterJournalWrite
	s.sum = newSummarizer(time.Now())
	if s.log, err = openEventLog(e.StateDir, st.ID); err != nil {
		s.emit(&LogLine{Meta: Meta{RunID: st.ID}, Stream: "warning", Line: err.Error()})
	}
	release := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		s.watches.Shutdown()
		defer s.log.close()
		// The cluster copy first (while the lock is held), then old runs' copies, then the lock.
		s.journal.Close(rctx)
		if mirror != nil && e.KeepRuns >= 0 && !s.lockLost.Load() {
			keep := e.KeepRuns
			if keep == 0 {
				keep = DefaultKeepRuns
			}
			if _, err := mirror.Prune(rctx, keep); err != nil {
				s.emit(&LogLine{Meta: Meta{RunID: st.ID}, Stream: "warning", Line: err.Error()})
			}
		}
		if err := s.lock.Release(rctx); err != nil {
			s.emit(&LogLine{Meta: Meta{RunID: st.ID}, Stream: "warning", Line: err.Error()})
		}
	}
	return s, release, nil
}

// hold renews the lock while the returned context lives; losing the lock cancels it with the cause.
func (s *session) hold(ctx context.Context) (context.Context, func()) {
	runCtx, cancel := context.WithCancelCause(ctx)
	holdCtx, stopHold := context.WithCancel(runCtx)
	go s.lock.Hold(holdCtx, func(err error) {
		// Another process may own the run now: never overwrite its copy of the journal.
		s.lockLost.Store(true)
		s.journal.StopMirror()
		cancel(err)
	})
	return runCtx, func() { stopHold(); cancel(nil) }
}

func (s *session) emit(ev Event) {
	m := ev.meta()
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	if m.RunID == "" {
		m.RunID = s.journal.State().ID
	}
	if s.sum != nil {
		s.sum.see(ev)
	}
	s.log.write(ev)
	if s.e.Sink != nil {
		s.e.Sink.Emit(ev)
	}
}

func (s *session) update(ctx context.Context, f func(*RunState)) error {
	return s.journal.Update(ctx, f)
}

// checkAccess refuses a run, before its first change (the lock), when the user lacks a permission
// the runbook needs (its steps declare them): a drain that may cordon but not evict must not start.
func (e *Engine) checkAccess(ctx context.Context, rb *Runbook) error {
	missing, known, err := Allowed(ctx, e.Kube, rb.Access())
	if err != nil {
		return err
	}
	if !known {
		if e.Sink != nil {
			e.Sink.Emit(&LogLine{Meta: Meta{Time: time.Now()}, Stream: "warning", Line: "check access: the apiserver does not let this user ask (SelfSubjectAccessReview is forbidden): going on without knowing"})
		}
		return nil
	}
	if len(missing) > 0 {
		return Forbidden(&AccessError{Missing: missing})
	}
	return nil
}

// drive runs the steps that are not done yet, holding the lock.
func (e *Engine) drive(ctx context.Context, rb *Runbook, st *RunState, resumed bool) error {
	if err := e.checkAccess(ctx, rb); err != nil {
		return err
	}
	// The whole-runbook plan, read-only and before the lock: a certain blocker anywhere, or a node
	// that does not exist, stops the run before anything moves and leaves no run behind.
	plans, err := e.PlanNodes(ctx, rb, st)
	var forecast *RunForecast
	if len(plans) > 0 {
		forecast = e.ForecastRun(rb, plans)
	}
	if len(plans) > 0 && e.Sink != nil {
		e.Sink.Emit(&RunPlanned{Meta: Meta{Time: time.Now(), RunID: st.ID}, Steps: plans, Forecast: forecast})
	}
	var bpe *BlockedPlanError
	if errors.As(err, &bpe) {
		bpe.Listed, bpe.Drain = e.Sink != nil, e.Kind == "drain"
	}
	if err != nil {
		if resumed {
			return fmt.Errorf("resume run %s: %w", st.ID, err)
		}
		return fmt.Errorf("runbook %q: %w", rb.Metadata.Name, err)
	}
	s, release, err := e.open(ctx, st)
	if err != nil {
		return err
	}
	defer release()
	s.rb = rb
	s.sum.forecast = forecast // the summary sets it against what each step took

	runCtx, stop := s.hold(ctx)
	defer stop()

	if err := s.update(ctx, func(r *RunState) { r.Status = RunRunning; r.Pause = nil; r.Message = ""; r.Holder = ThisProcess() }); err != nil {
		return err
	}
	var h *RunHistory
	if resumed {
		h = s.history() // read before this session writes to the log
	}
	s.emit(&RunStarted{Runbook: st.Runbook, Target: st.Target, Cluster: st.Cluster, Steps: stepNames(rb), StepStates: briefs(s.journal.State()), Resumed: resumed})
	if h != nil {
		s.emit(h)
	}

	err = s.steps(runCtx)
	return s.finish(ctx, runCtx, err)
}

func stepNames(rb *Runbook) []string {
	var names []string
	for _, s := range rb.Spec.Steps {
		names = append(names, s.Name)
	}
	return names
}

// finish records how the run ended and maps it to an exit code.
func (s *session) finish(ctx, runCtx context.Context, err error) error {
	st := s.journal.State()
	var status RunStatus
	var msg string
	switch {
	case err == nil:
		status, msg = RunSucceeded, "every step done"
	case errors.Is(err, ErrPaused):
		status = RunPaused
		msg = fmt.Sprintf("paused %s step %q: `drydock resume %s` continues (add --yes to answer the pause point)", st.Pause.When, st.Pause.Step, st.ID)
	case errors.Is(err, ErrRolledBack):
		status, msg = RunRolledBack, "the completed steps were undone"
		if kept := s.kept(); kept != "" {
			status, msg = RunPartlyRolledBack, "undone, except what cannot be: "+kept
		}
	case errors.Is(err, errRollbackFailed):
		status, msg = RunRollbackFailed, fmt.Sprintf("%v: fix the cause, then `drydock rollback %s` continues the rollback", err, st.ID)
	case runCtx.Err() != nil:
		status = RunInterrupted
		cause := context.Cause(runCtx)
		msg = fmt.Sprintf("interrupted (%v): `drydock resume %s` re-enters the step that was running", cause, st.ID)
		if ctx.Err() != nil {
			err = fmt.Errorf("run %s: %w", st.ID, ErrInterrupted)
		} else {
			err = fmt.Errorf("run %s: %w", st.ID, cause) // lost the lock: a failure, not a Ctrl-C
		}
	default:
		status = RunFailed
		msg = fmt.Sprintf("%v: `drydock resume %s` retries the failed step, `drydock rollback %s` undoes the completed steps", err, st.ID, st.ID)
	}
	if uerr := s.update(ctx, func(r *RunState) { r.Status, r.Message = status, msg }); uerr != nil && err == nil {
		err = uerr
	}
	s.emit(s.sum.summary(s.journal.State(), status, time.Now()))
	s.emit(&RunFinished{Status: status, Message: msg})
	return err
}

var errRollbackFailed = errors.New("rollback failed")

// StepTimeoutError is the cause of a step that ran out of its timeout.
type StepTimeoutError struct{ After time.Duration }

func (e *StepTimeoutError) Error() string { return fmt.Sprintf("timed out after %s", e.After) }

// ErrNothingToUndo is what a Rollbacker returns when the step changed nothing that it can undo.
var ErrNothingToUndo = errors.New("nothing to undo")

// pauseOf is the step's pause point: the runbook's word, else the kind's default.
func pauseOf(spec StepSpec) string {
	if spec.Pause != "" {
		return spec.Pause
	}
	if d, ok := spec.Step.(PauseDefaulter); ok {
		return d.DefaultPause()
	}
	return PauseNone
}

func (s *session) steps(ctx context.Context) error {
	for i, spec := range s.rb.Spec.Steps {
		st := &s.journal.State().Steps[i]
		if st.Status == StatusRolledBack {
			return fmt.Errorf("step %q was rolled back: start a new run", spec.Name)
		}
		if st.Status != StatusDone && st.Status != StatusSkipped {
			if err := s.runStep(ctx, i); err != nil {
				return err
			}
		}
		if st.Status == StatusDone && pauseOf(spec) == PauseAfter && !st.AfterAnswered {
			if err := s.pause(ctx, i, PauseAfter, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *session) env(i int) *Env {
	spec := s.rb.Spec.Steps[i]
	return &Env{
		RunID: s.journal.State().ID, Spec: spec, Runbook: s.rb, Target: s.rb.Spec.TargetVersion,
		Kube: s.e.Kube, REST: s.e.REST, emit: s.emit, journal: s.journal, index: i, pauseNext: &s.e.pauseNext, relaxOK: &s.e.relaxOK, watches: s.watches,
		ask: func(ctx context.Context, key, message string) error { return s.askInside(ctx, i, key, message) },
	}
}

// askInside answers a pause point inside step i.
func (s *session) askInside(ctx context.Context, i int, key, message string) error {
	spec := s.rb.Spec.Steps[i]
	// The key is the step's checkpoint; a person reads the message ("group a is done; next: b").
	s.emit(&StepPaused{Meta: Meta{Step: spec.Name}, When: PauseInside, Message: message})
	var done []string
	for _, x := range s.journal.State().Steps {
		if x.Status == StatusDone {
			done = append(done, x.Name)
		}
	}
	d, err := s.e.Decider.Decide(ctx, PauseRequest{RunID: s.journal.State().ID, Step: spec.Name, When: PauseInside, Message: message, Done: done})
	if err != nil {
		return err
	}
	switch d {
	case Continue:
		s.emit(&PauseAnswered{Meta: Meta{Step: spec.Name}, When: PauseInside, Decision: "continue"})
		return nil
	case RollBack:
		return errRollbackRequested
	}
	return ErrStepPaused
}

var errRollbackRequested = errors.New("roll back requested at a pause point")

func (s *session) runStep(ctx context.Context, i int) error {
	spec := s.rb.Spec.Steps[i]
	st := &s.journal.State().Steps[i]
	env := s.env(i)
	meta := Meta{Step: spec.Name}

	gate, isGate := spec.Step.(Gate)
	if (pauseOf(spec) == PauseBefore || isGate) && !st.BeforeAnswered {
		msg := ""
		if isGate {
			msg = gate.GateMessage()
		}
		if err := s.pause(ctx, i, PauseBefore, msg); err != nil {
			return err
		}
	}

	if sk, ok := spec.Step.(Skipper); ok && st.Attempts == 0 {
		skip, reason, err := sk.Skip(ctx, env)
		if err != nil {
			return s.failStep(ctx, i, time.Now(), fmt.Errorf("decide whether to skip: %w", err))
		}
		if skip {
			now := time.Now().UTC()
			if err := s.update(ctx, func(*RunState) { st.Status, st.Finished = StatusSkipped, &now }); err != nil {
				return err
			}
			s.emit(&StepFinished{Meta: meta, Skipped: true, Reason: reason})
			return nil
		}
	}

	start := time.Now().UTC()
	if err := s.update(ctx, func(*RunState) {
		st.Status, st.Error, st.Started, st.Finished = StatusRunning, "", &start, nil
		st.Attempts++
	}); err != nil {
		return err
	}
	s.emit(&StepStarted{Meta: meta, Kind: spec.Type, Attempt: st.Attempts})

	// The skew policy again at each boundary of a step that moves versions: what the step before
	// left (or someone did meanwhile) must not put a kubelet past the apiserver.
	if k, ok := s.e.Registry.Lookup(spec.Type); ok && changesVersions(k.Phase) && s.e.Kube != nil {
		checked, err := CheckSkew(ctx, s.e.Kube)
		if err != nil {
			return s.failStep(ctx, i, start, err)
		}
		if !checked {
			env.Logf("skew", "not checked: the apiserver reports no version")
		}
	}

	timeout := s.rb.TimeoutOf(spec)
	stepCtx, cancel := context.WithTimeoutCause(ctx, timeout, &StepTimeoutError{After: timeout})
	err := spec.Step.Run(stepCtx, env)
	if err == nil && stepCtx.Err() != nil && ctx.Err() == nil {
		err = context.Cause(stepCtx)
	}
	cancel()
	if errors.Is(err, ErrStepPaused) {
		if uerr := s.update(ctx, func(r *RunState) {
			st.Status = StatusPaused
			r.Pause = &PausePoint{Step: spec.Name, When: PauseInside}
		}); uerr != nil {
			return uerr
		}
		return ErrPaused
	}
	if errors.Is(err, errRollbackRequested) {
		if uerr := s.update(ctx, func(*RunState) { st.Status = StatusFailed; st.Error = "roll back requested" }); uerr != nil {
			return uerr
		}
		if rerr := s.rollback(ctx, 0); rerr != nil {
			return rerr
		}
		return fmt.Errorf("at a pause point inside step %q, the run was %w", spec.Name, ErrRolledBack)
	}
	if err != nil {
		var timedOut *StepTimeoutError
		if ctx.Err() == nil && errors.Is(stepCtx.Err(), context.DeadlineExceeded) && !errors.As(err, &timedOut) {
			err = fmt.Errorf("%w: %w", &StepTimeoutError{After: timeout}, err)
		}
		return s.failStep(ctx, i, start, err)
	}
	end := time.Now().UTC()
	if err := s.update(ctx, func(*RunState) { st.Status, st.Finished = StatusDone, &end }); err != nil {
		return err
	}
	s.emit(&StepFinished{Meta: meta, Duration: end.Sub(start)})
	return nil
}

func (s *session) failStep(ctx context.Context, i int, start time.Time, err error) error {
	spec := s.rb.Spec.Steps[i]
	st := &s.journal.State().Steps[i]
	end := time.Now().UTC()
	interrupted := ctx.Err() != nil
	status := StatusFailed
	switch {
	case interrupted:
		status = StatusInterrupted
	case errors.Is(err, ErrRolledBack):
		status = StatusRolledBack // the step undid itself (a failed canary)
	}
	if uerr := s.update(ctx, func(*RunState) { st.Status, st.Error, st.Finished = status, err.Error(), &end }); uerr != nil {
		return uerr
	}
	s.emit(&StepFailed{Meta: Meta{Step: spec.Name}, Error: err.Error(), Duration: end.Sub(start), Interrupted: interrupted})
	if interrupted {
		return ctx.Err()
	}
	if errors.Is(err, ErrRolledBack) {
		return fmt.Errorf("step %q: %w", spec.Name, err)
	}
	if s.rb.Spec.OnFailure == "rollback" {
		if rerr := s.rollback(ctx, 0); rerr != nil {
			return rerr
		}
		return fmt.Errorf("step %q failed (%w), and the run was %w", spec.Name, err, ErrRolledBack)
	}
	return fmt.Errorf("step %q: %w", spec.Name, err)
}

// pause asks the Decider at a pause point and acts on the answer.
func (s *session) pause(ctx context.Context, i int, when, message string) error {
	spec := s.rb.Spec.Steps[i]
	st := &s.journal.State().Steps[i]
	s.emit(&StepPaused{Meta: Meta{Step: spec.Name}, When: when, Message: message})
	var done []string
	for _, x := range s.journal.State().Steps {
		if x.Status == StatusDone {
			done = append(done, x.Name)
		}
	}
	d, err := s.e.Decider.Decide(ctx, PauseRequest{RunID: s.journal.State().ID, Step: spec.Name, When: when, Message: message, Done: done})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("pause point %s step %q: %w", when, spec.Name, err)
	}
	switch d {
	case Continue:
		err := s.update(ctx, func(r *RunState) {
			if when == PauseBefore {
				st.BeforeAnswered = true
			} else {
				st.AfterAnswered = true
			}
			r.Pause = nil
		})
		if err == nil {
			s.emit(&PauseAnswered{Meta: Meta{Step: spec.Name}, When: when, Decision: "continue"})
		}
		return err
	case RollBack:
		if err := s.rollback(ctx, 0); err != nil {
			return err
		}
		return fmt.Errorf("at the pause point %s step %q, the run was %w", when, spec.Name, ErrRolledBack)
	default:
		if err := s.update(ctx, func(r *RunState) { r.Pause = &PausePoint{Step: spec.Name, When: when} }); err != nil {
			return err
		}
		return ErrPaused
	}
}

// Rollback undoes a run's steps, newest first: every step from the last one that did anything back
// to and including step `to` (all of them when to is ""). A failure stops the rollback and is
// reported; running Rollback again continues where it stopped.
func (e *Engine) Rollback(ctx context.Context, st *RunState, to string) (*RunState, error) {
	rb, err := e.runbookOf(st)
	if err != nil {
		return st, err
	}
	from := 0
	if to != "" {
		from = slices.IndexFunc(st.Steps, func(x StepState) bool { return x.Name == to })
		if from < 0 {
			var names []string
			for _, x := range st.Steps {
				names = append(names, x.Name)
			}
			return st, Invalid(fmt.Errorf("rollback run %s: no step %q (steps: %s)", st.ID, to, strings.Join(names, ", ")))
		}
	}
	if err := e.checkAccess(ctx, rb); err != nil {
		return st, err
	}
	s, release, err := e.open(ctx, st)
	if err != nil {
		return st, err
	}
	defer release()
	s.rb = rb
	runCtx, stop := s.hold(ctx)
	defer stop()
	if err := s.update(ctx, func(r *RunState) { r.Status = RunRunning; r.Holder = ThisProcess() }); err != nil {
		return st, err
	}
	h := s.history()
	s.emit(&RunStarted{Runbook: st.Runbook, Target: st.Target, Cluster: st.Cluster, Steps: stepNames(rb), StepStates: briefs(s.journal.State()), Resumed: true, Rollback: true})
	if h != nil {
		s.emit(h)
	}
	err = s.rollback(runCtx, from)
	if err == nil {
		err = ErrRolledBack
	}
	err = s.finish(ctx, runCtx, err)
	if errors.Is(err, ErrRolledBack) {
		if kept := s.kept(); kept != "" {
			// Not a success a pipeline may take for a clean undo: exit 4, naming what is left.
			return st, fmt.Errorf("run %s: %w only in part: not undone: %s", st.ID, ErrRolledBack, kept)
		}
		return st, nil // the rollback the operator asked for succeeded
	}
	return st, err
}

func (s *session) rollback(ctx context.Context, from int) error {
	steps := s.journal.State().Steps
	for i := len(steps) - 1; i >= from; i-- {
		st := &s.journal.State().Steps[i]
		switch st.Status {
		case StatusPending, StatusSkipped, StatusRolledBack:
			continue
		}
		spec := s.rb.Spec.Steps[i]
		meta := Meta{Step: spec.Name}
		s.emit(&RollbackStarted{Meta: meta})
		rb, can := spec.Step.(Rollbacker)
		if !can {
			if err := s.update(ctx, func(*RunState) { st.Status = StatusRolledBack }); err != nil {
				return err
			}
			s.emit(&RollbackFinished{Meta: meta, Nothing: true})
			continue
		}
		err := rb.Rollback(ctx, s.env(i))
		if errors.Is(err, ErrNothingToUndo) {
			if err := s.update(ctx, func(*RunState) { st.Status, st.Checkpoints = StatusRolledBack, nil }); err != nil {
				return err
			}
			s.emit(&RollbackFinished{Meta: meta, Nothing: true, Kept: slices.Clone(st.Kept)})
			continue
		}
		if err != nil {
			_ = s.update(ctx, func(*RunState) { st.Status, st.Error = StatusRollbackFailed, "rollback: "+err.Error() })
			s.emit(&RollbackFinished{Meta: meta, Error: err.Error()})
			return fmt.Errorf("%w at step %q: %w", errRollbackFailed, spec.Name, err)
		}
		if err := s.update(ctx, func(*RunState) {
			st.Status, st.Checkpoints = StatusRolledBack, nil
		}); err != nil {
			return err
		}
		s.emit(&RollbackFinished{Meta: meta, Kept: slices.Clone(st.Kept)})
	}
	return nil
}

// kept is what the rollback could not undo, in step order, grouped by reason: "node/a, node/b:
// left at v1.37.1: the upgrade action has no rollback command; ...".
func (s *session) kept() string {
	var reasons []string
	objects := map[string][]string{}
	for _, st := range s.journal.State().Steps {
		for _, k := range st.Kept {
			if objects[k.Reason] == nil {
				reasons = append(reasons, k.Reason)
			}
			objects[k.Reason] = append(objects[k.Reason], k.Object)
		}
	}
	var parts []string
	for _, r := range reasons {
		parts = append(parts, strings.Join(objects[r], ", ")+": "+r)
	}
	return strings.Join(parts, "; ")
}

// Plan describes what each step of rb would do, without changing anything.
func (e *Engine) Plan(ctx context.Context, rb *Runbook) ([]StepPlan, error) {
	var plans []StepPlan
	watches := NewWatches(e.Kube)
	defer watches.Shutdown()
	for i, spec := range rb.Spec.Steps {
		k, _ := e.Registry.Lookup(spec.Type)
		p := StepPlan{Name: spec.Name, Kind: spec.Type, Description: k.Description, Pause: pauseOf(spec), Timeout: Duration{rb.TimeoutOf(spec)}}
		if _, ok := spec.Step.(Gate); ok {
			p.Pause = PauseBefore
		}
		_, p.CanRollback = spec.Step.(Rollbacker)
		if pl, ok := spec.Step.(Planner); ok {
			env := &Env{RunID: "plan", Spec: spec, Runbook: rb, Target: rb.Spec.TargetVersion, Kube: e.Kube, REST: e.REST, DryRun: true,
				emit: func(ev Event) {
					if e.Sink != nil {
						e.Sink.Emit(ev)
					}
				}, index: i, watches: watches}
			actions, err := pl.Plan(ctx, env)
			if err != nil {
				return plans, fmt.Errorf("plan step %q: %w", spec.Name, err)
			}
			p.Actions = actions
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// StepPlan is what `drydock plan` says of a step.
type StepPlan struct {
	Name        string   `json:"name"`
	Kind        string   `json:"kind"`
	Description string   `json:"description,omitempty"`
	Pause       string   `json:"pause,omitempty"`
	Timeout     Duration `json:"timeout"`
	CanRollback bool     `json:"canRollback"`
	Actions     []string `json:"actions,omitempty"`
}
