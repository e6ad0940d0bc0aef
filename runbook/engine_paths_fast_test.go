package runbook

// The fast tier for the engine's error paths, on a fake clientset with reactors: a failed step with
// and without onFailure rollback, a timeout, an interruption, a lock another run holds, transient
// API errors on the lock, and a journal copy the cluster refuses.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// scripted is a step whose Run and Rollback the test case gives; it counts its runs and rollbacks.
type scripted struct {
	fakeSettings
	run       func(ctx context.Context, env *Env) error
	runs      *atomic.Int32
	rollbacks *[]string
	keep      string // Rollback of "first" keeps node/n1 for this reason
}

func (s *scripted) Run(ctx context.Context, env *Env) error {
	s.runs.Add(1)
	if err := env.Record(ctx, Change{Kind: "touched", Object: env.Spec.Name}); err != nil {
		return err
	}
	if s.run != nil {
		return s.run(ctx, env)
	}
	return nil
}

func (s *scripted) Rollback(ctx context.Context, env *Env) error {
	*s.rollbacks = append(*s.rollbacks, env.Spec.Name)
	if env.Spec.Name == "first" && s.keep != "" {
		return env.Keep(ctx, Kept{Object: "node/n1", Reason: s.keep})
	}
	return nil
}

type pathCase struct {
	name      string
	onFailure string
	timeout   string
	second    func(ctx context.Context, env *Env) error // the second step's Run
	react     func(c *fake.Clientset)
	cancel    bool   // cancel the run's context once the second step runs
	keep      string // the first step's rollback cannot undo node/n1, for this reason
	check     func(t *testing.T, st *RunState, err error, runs int32, rollbacks []string, c *fake.Clientset, rec []Event)
}

func TestEngineErrorPaths(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, tc := range []pathCase{
		{
			name: "a failed step stops the run, resumable", second: func(context.Context, *Env) error { return boom },
			check: func(t *testing.T, st *RunState, err error, runs int32, rollbacks []string, _ *fake.Clientset, _ []Event) {
				if !errors.Is(err, boom) || errors.Is(err, ErrRolledBack) || st.Status != RunFailed || !st.Status.Resumable() || len(rollbacks) != 0 {
					t.Errorf("err %v, status %s, rollbacks %v", err, st.Status, rollbacks)
				}
			},
		},
		{
			name: "onFailure rollback undoes the completed steps, newest first", onFailure: "rollback",
			second: func(context.Context, *Env) error { return boom },
			check: func(t *testing.T, st *RunState, err error, runs int32, rollbacks []string, _ *fake.Clientset, _ []Event) {
				if !errors.Is(err, ErrRolledBack) || st.Status != RunRolledBack || strings.Join(rollbacks, ",") != "second,first" {
					t.Errorf("err %v, status %s, rollbacks %v", err, st.Status, rollbacks)
				}
			},
		},
		{
			name: "a rollback that cannot undo everything says so", onFailure: "rollback", keep: "left at v1.37.2: the upgrade action has no rollback command",
			second: func(context.Context, *Env) error { return boom },
			check: func(t *testing.T, st *RunState, err error, _ int32, _ []string, _ *fake.Clientset, events []Event) {
				var fin *RunFinished
				for _, ev := range events {
					if f, ok := ev.(*RunFinished); ok {
						fin = f
					}
				}
				if !errors.Is(err, ErrRolledBack) || st.Status != RunPartlyRolledBack || fin == nil ||
					!strings.Contains(fin.Message, "node/n1: left at v1.37.2: the upgrade action has no rollback command") {
					t.Errorf("err %v, status %s, finished %+v", err, st.Status, fin)
				}
			},
		},
		{
			name: "a step past its timeout fails with the typed cause", timeout: "1s",
			second: func(ctx context.Context, _ *Env) error { <-ctx.Done(); return context.Cause(ctx) },
			check: func(t *testing.T, st *RunState, err error, _ int32, _ []string, _ *fake.Clientset, _ []Event) {
				var te *StepTimeoutError
				if !errors.As(err, &te) || te.After != time.Second || st.Status != RunFailed {
					t.Errorf("err %v, status %s", err, st.Status)
				}
			},
		},
		{
			name: "an interrupted run is resumable and lets the lock go", cancel: true,
			second: func(ctx context.Context, _ *Env) error { <-ctx.Done(); return ctx.Err() },
			check: func(t *testing.T, st *RunState, err error, _ int32, _ []string, c *fake.Clientset, _ []Event) {
				if !errors.Is(err, ErrInterrupted) || st.Status != RunInterrupted {
					t.Errorf("err %v, status %s", err, st.Status)
				}
				if l, err := c.CoordinationV1().Leases("kube-system").Get(context.Background(), LockName, metav1.GetOptions{}); err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
					t.Errorf("the lock is still held by %s", *l.Spec.HolderIdentity)
				}
			},
		},
		{
			name: "a lock another run holds blocks before anything runs",
			react: func(c *fake.Clientset) {
				holder, secs, now := "other-run/elsewhere/1", int32(90), metav1.NewMicroTime(time.Now())
				_, _ = c.CoordinationV1().Leases("kube-system").Create(context.Background(), &coordinationv1.Lease{
					ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: "kube-system", Annotations: map[string]string{"drydock.dev/run-id": "other-run", "drydock.dev/host": "elsewhere"}},
					Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now},
				}, metav1.CreateOptions{})
			},
			check: func(t *testing.T, st *RunState, err error, runs int32, _ []string, _ *fake.Clientset, _ []Event) {
				var le *LockedError
				if !errors.Is(err, ErrBlocked) || !errors.As(err, &le) || runs != 0 {
					t.Errorf("err %v, runs %d", err, runs)
				}
			},
		},
		{
			name: "transient errors on the lock are retried",
			react: func(c *fake.Clientset) {
				var n atomic.Int32
				c.PrependReactor("create", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
					if n.Add(1) <= 2 {
						return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
					}
					return false, nil, nil
				})
			},
			check: func(t *testing.T, st *RunState, err error, runs int32, _ []string, _ *fake.Clientset, _ []Event) {
				if err != nil || st.Status != RunSucceeded || runs != 2 {
					t.Errorf("err %v, status %v, runs %d", err, st, runs)
				}
			},
		},
		{
			name: "a journal copy the cluster refuses is a warning, not a failure",
			react: func(c *fake.Clientset) {
				c.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "drydock-run", errors.New("denied"))
				})
			},
			check: func(t *testing.T, st *RunState, err error, runs int32, _ []string, _ *fake.Clientset, events []Event) {
				warned := false
				for _, ev := range events {
					if l, ok := ev.(*LogLine); ok && l.Stream == "warning" && strings.Contains(l.Line, "forbidden") {
						warned = true
					}
				}
				if err != nil || st.Status != RunSucceeded || !warned {
					t.Errorf("err %v, status %v, warned %v", err, st, warned)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var runs atomic.Int32
			var rollbacks []string
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			second := tc.second
			if tc.cancel {
				inner := second
				second = func(ctx context.Context, env *Env) error { cancel(); return inner(ctx, env) }
			}
			reg := Registry{
				{Name: "first", Phase: PhaseAny, New: func() Step {
					return &scripted{fakeSettings: fakeSettings{kind: "first"}, runs: &runs, rollbacks: &rollbacks, keep: tc.keep}
				}},
				{Name: "second", Phase: PhaseAny, New: func() Step {
					return &scripted{fakeSettings: fakeSettings{kind: "second"}, runs: &runs, rollbacks: &rollbacks, run: second}
				}},
			}
			text := header
			if tc.onFailure != "" {
				text += "  onFailure: " + tc.onFailure + "\n"
			}
			text += "  steps:\n    - {name: first, type: first}\n    - {name: second, type: second"
			if tc.timeout != "" {
				text += ", timeout: " + tc.timeout
			}
			text += "}\n"
			rb, err := Parse("t.yaml", []byte(text), reg)
			if err != nil {
				t.Fatal(err)
			}
			client := fake.NewClientset()
			authorizer(client, "")
			if tc.react != nil {
				tc.react(client)
			}
			var (
				mu     sync.Mutex
				events []Event
			)
			// Events come from the run and from the journal copy's goroutine (its warnings).
			sink := sinkFunc(func(ev Event) { mu.Lock(); events = append(events, ev); mu.Unlock() })
			dir := t.TempDir()
			e := &Engine{Registry: reg, Decider: AlwaysContinue, Kube: client, StateDir: dir, Sink: sink}
			st, err := e.Start(ctx, rb)
			if st == nil {
				st = &RunState{}
			}
			if tc.name == "a lock another run holds blocks before anything runs" {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("a refused run left journals: %v", entries)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			tc.check(t, st, err, runs.Load(), rollbacks, client, events)
		})
	}
}

type sinkFunc func(Event)

func (f sinkFunc) Emit(ev Event) { f(ev) }

// nodeStep reports a node cordoned then upgraded, and a pod moved, as the node steps do.
type nodeStep struct{ fakeSettings }

func (*nodeStep) Run(_ context.Context, env *Env) error {
	env.Node("n1", NodeCordoned, "")
	env.Emit(&PodChanged{Node: "n1", Pod: "a/web-1", State: PodGone, Done: 1, Total: 1})
	env.NodeInGroup("n1", "general", NodeUpgraded)
	env.Node("n2", NodeSkipped, "already at v1.37.2")
	return nil
}

// TestRunSummaryAndEventLog: a run ends with a run.summary (nodes upgraded per group, skipped,
// pods moved, what is left) before run.finished, and writes every event to events.jsonl next to
// its journal.
func TestRunSummaryAndEventLog(t *testing.T) {
	t.Parallel()
	reg := Registry{{Name: "nodes", Phase: PhaseAny, New: func() Step { return &nodeStep{fakeSettings{kind: "nodes"}} }}, fakeKind("fake", PhaseAny)}
	rb, err := Parse("t.yaml", []byte(header+"  steps:\n    - {name: fleet, type: nodes}\n    - {name: later, type: fake, pause: before}\n"), reg)
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	authorizer(client, "")
	var (
		mu     sync.Mutex
		events []Event
	)
	dir := t.TempDir()
	e := &Engine{Registry: reg, Decider: StopAtPause, Kube: client, StateDir: dir, NoMirror: true,
		Sink: sinkFunc(func(ev Event) { mu.Lock(); events = append(events, ev); mu.Unlock() })}
	st, err := e.Start(context.Background(), rb)
	if !errors.Is(err, ErrPaused) {
		t.Fatalf("want a pause before step later: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	var sum *RunSummary
	for i, ev := range events {
		if s, ok := ev.(*RunSummary); ok {
			sum = s
			if i+1 >= len(events) || events[i+1].Type() != "run.finished" {
				t.Error("run.summary must come just before run.finished")
			}
		}
	}
	if sum == nil || sum.Status != RunPaused || len(sum.Groups) != 1 || sum.Groups[0].Group != "general" || sum.Groups[0].Nodes[0].Node != "n1" ||
		strings.Join(sum.Skipped, ",") != "n2" || sum.Pods != 1 || len(sum.Left) != 1 || sum.Left[0] != "step later (pending)" {
		t.Fatalf("summary %+v", sum)
	}
	log, err := os.ReadFile(filepath.Join(dir, "runs", st.ID, EventLogName))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	var types []string
	for _, l := range lines {
		var v struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		types = append(types, v.Type)
	}
	if types[0] != "run.started" || types[len(types)-1] != "run.finished" || !slices.Contains(types, "run.summary") || !slices.Contains(types, "node.state") {
		t.Errorf("event log types %v", types)
	}
}
