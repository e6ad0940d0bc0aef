package runbook_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

var cluster *simcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(simcluster.Main(m, &cluster, simcluster.Options{}))
}

// mark is a test step kind that really changes the cluster: it creates a ConfigMap named after the
// step, records the change, and its Rollback deletes it and notes the order of undoing.
type mark struct {
	Namespace  string `json:"namespace"`
	Fail       bool   `json:"fail,omitempty"`
	FailUndo   bool   `json:"failUndo,omitempty"`
	BlockUntil string `json:"blockUntil,omitempty"` // wait for this channel name in blockers
	SkipIf     string `json:"skipIf,omitempty"`     // skip when this ConfigMap exists in namespace
}

func (m *mark) Skip(ctx context.Context, env *runbook.Env) (bool, string, error) {
	if m.SkipIf == "" {
		return false, "", nil
	}
	_, err := env.Kube.CoreV1().ConfigMaps(m.Namespace).Get(ctx, m.SkipIf, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, "", nil
	}
	return err == nil, "ConfigMap " + m.SkipIf + " exists", err
}

var (
	undoneMu sync.Mutex
	undone   []string
	blockers sync.Map // name -> chan struct{}
)

func (*mark) Name() string { return "mark" }

func (m *mark) Run(ctx context.Context, env *runbook.Env) error {
	if m.BlockUntil != "" {
		ch, _ := blockers.LoadOrStore(m.BlockUntil, make(chan struct{}))
		select {
		case <-ch.(chan struct{}):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.Fail {
		return errors.New("told to fail")
	}
	name := env.RunID + "-" + env.Spec.Name
	if err := env.Record(ctx, runbook.Change{Kind: "configmap", Object: m.Namespace + "/" + name}); err != nil {
		return err
	}
	_, err := env.Kube.CoreV1().ConfigMaps(m.Namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: m.Namespace}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		err = nil
	}
	return err
}

func (m *mark) Rollback(ctx context.Context, env *runbook.Env) error {
	if m.FailUndo {
		return errors.New("undo refused")
	}
	for _, c := range env.Changes() {
		ns, name, _ := strings.Cut(c.Object, "/")
		err := env.Kube.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	undoneMu.Lock()
	undone = append(undone, env.Spec.Name)
	undoneMu.Unlock()
	return nil
}

var registry = runbook.Registry{{Name: "mark", New: func() runbook.Step { return &mark{} }}}

func parse(t *testing.T, steps string, extra ...string) *runbook.Runbook {
	t.Helper()
	text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: v1.37.1\n" +
		strings.Join(extra, "") + "  steps:\n" + steps
	rb, err := runbook.Parse(t.Name()+".yaml", []byte(text), registry)
	if err != nil {
		t.Fatal(err)
	}
	return rb
}

type recorder = printer.Recorder

func engine(t *testing.T, sink runbook.Sink) *runbook.Engine {
	return &runbook.Engine{Registry: registry, Sink: sink, Decider: runbook.AlwaysContinue, Kube: cluster.Client,
		StateDir: t.TempDir(), LockDuration: 3 * time.Second}
}

func configMapExists(t *testing.T, name string) bool {
	_, err := cluster.Client.CoreV1().ConfigMaps("default").Get(context.Background(), name, metav1.GetOptions{})
	return err == nil
}

func TestRollbackUndoesInReverseOrder(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	rec := &recorder{}
	e := engine(t, rec)
	rb := parse(t, "    - {name: first, type: mark, with: {namespace: default}}\n    - {name: second, type: mark, with: {namespace: default}}\n    - {name: third, type: mark, with: {namespace: default}}\n")
	st, err := e.Start(ctx, rb)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"first", "second", "third"} {
		if !configMapExists(t, st.ID+"-"+s) {
			t.Fatalf("step %s made no change", s)
		}
	}
	undoneMu.Lock()
	undone = nil
	undoneMu.Unlock()

	// --to second: third and second are undone, first stays.
	if _, err := e.Rollback(ctx, st, "second"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(undone, []string{"third", "second"}) {
		t.Fatalf("undone %v, want [third second]", undone)
	}
	if configMapExists(t, st.ID+"-third") || configMapExists(t, st.ID+"-second") || !configMapExists(t, st.ID+"-first") {
		t.Fatal("rollback --to second must undo second and third, and leave first")
	}
	// --to first: the rest.
	if _, err := e.Rollback(ctx, st, "first"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(undone, []string{"third", "second", "first"}) || configMapExists(t, st.ID+"-first") {
		t.Fatalf("undone %v", undone)
	}
	reread, err := runbook.ReadRun(e.StateDir, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if reread.Status != runbook.RunRolledBack {
		t.Fatalf("journal status %s", reread.Status)
	}
	for _, s := range reread.Steps {
		if s.Status != runbook.StatusRolledBack {
			t.Errorf("step %s is %s", s.Name, s.Status)
		}
	}
	var started []string
	for _, ev := range rec.Events() {
		if rs, ok := ev.(*runbook.RollbackStarted); ok {
			started = append(started, rs.Step)
		}
	}
	if !slices.Equal(started, []string{"third", "second", "first"}) {
		t.Fatalf("rollback events in order %v", started)
	}
}

func TestRollbackFailureStopsAndReports(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	e := engine(t, nil)
	rb := parse(t, "    - {name: a, type: mark, with: {namespace: default}}\n    - {name: b, type: mark, with: {namespace: default, failUndo: true}}\n    - {name: c, type: mark, with: {namespace: default}}\n")
	st, err := e.Start(ctx, rb)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Rollback(ctx, st, "")
	if err == nil || !strings.Contains(err.Error(), `step "b"`) || !strings.Contains(err.Error(), "undo refused") {
		t.Fatalf("rollback error %v", err)
	}
	if st.Status != runbook.RunRollbackFailed || st.Step("c").Status != runbook.StatusRolledBack ||
		st.Step("b").Status != runbook.StatusRollbackFailed || st.Step("a").Status != runbook.StatusDone {
		t.Fatalf("states: run %s, a %s, b %s, c %s", st.Status, st.Step("a").Status, st.Step("b").Status, st.Step("c").Status)
	}
	if !configMapExists(t, st.ID+"-a") {
		t.Fatal("a was undone although the rollback stopped at b: it must not guess")
	}
}

func TestOnFailureRollbackExitsAborted(t *testing.T) {
	simcluster.Need(t)
	e := engine(t, nil)
	rb := parse(t, "    - {name: a, type: mark, with: {namespace: default}}\n    - {name: b, type: mark, with: {namespace: default, fail: true}}\n", "  onFailure: rollback\n")
	st, err := e.Start(context.Background(), rb)
	if exitcode.For(err) != exitcode.Aborted {
		t.Fatalf("exit %d (%v), want %d", exitcode.For(err), err, exitcode.Aborted)
	}
	if configMapExists(t, st.ID+"-a") || st.Status != runbook.RunRolledBack {
		t.Fatalf("a not undone, or status %s", st.Status)
	}
}

func TestStepTimeout(t *testing.T) {
	simcluster.Need(t)
	e := engine(t, nil)
	rb := parse(t, "    - {name: slow, type: mark, timeout: 1s, with: {namespace: default, blockUntil: never}}\n")
	start := time.Now()
	st, err := e.Start(context.Background(), rb)
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s") || exitcode.For(err) != exitcode.Failure {
		t.Fatalf("err %v", err)
	}
	if time.Since(start) > 10*time.Second || st.Step("slow").Status != runbook.StatusFailed {
		t.Fatalf("took %v, status %s", time.Since(start), st.Step("slow").Status)
	}
}

func TestPauseStopsAndResumeContinues(t *testing.T) {
	simcluster.Need(t)
	e := engine(t, nil)
	e.Decider = runbook.StopAtPause
	rb := parse(t, "    - {name: a, type: mark, pause: after, with: {namespace: default}}\n    - {name: b, type: mark, with: {namespace: default}}\n")
	st, err := e.Start(context.Background(), rb)
	if exitcode.For(err) != exitcode.Paused || st.Status != runbook.RunPaused || st.Pause == nil || st.Pause.Step != "a" {
		t.Fatalf("exit %d, status %s, pause %+v", exitcode.For(err), st.Status, st.Pause)
	}
	if configMapExists(t, st.ID+"-b") {
		t.Fatal("b ran past the pause point")
	}
	e.Decider = runbook.AlwaysContinue
	if _, err := e.Resume(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	if st.Status != runbook.RunSucceeded || !configMapExists(t, st.ID+"-b") {
		t.Fatalf("status %s", st.Status)
	}
}

func TestJournalMirroredInCluster(t *testing.T) {
	simcluster.Need(t)
	e := engine(t, nil)
	rb := parse(t, "    - {name: a, type: mark, with: {namespace: default}}\n")
	st, err := e.Start(context.Background(), rb)
	if err != nil {
		t.Fatal(err)
	}
	mirror := &runbook.ConfigMapMirror{Client: cluster.Client, Namespace: "kube-system"}
	got, err := mirror.Load(context.Background(), st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != runbook.RunSucceeded || got.Steps[0].Status != runbook.StatusDone || got.RunbookText == "" {
		t.Fatalf("mirrored journal: %+v", got)
	}
}

func TestSecondRunRefusedWhileFirstHoldsLock(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	// A keeps its state in a namespace of its own, B in the default one: one lock per cluster all the
	// same (issue 30: an upgrade with `state: {namespace: drydock}` and a `drydock drain` drained
	// one cluster at once).
	const stateA = "drydock-state-a"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: stateA}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	rbA := parse(t, "    - {name: a, type: mark, with: {namespace: default, blockUntil: lock-test}}\n", "  state: {namespace: "+stateA+"}\n")
	rbB := parse(t, "    - {name: b, type: mark, with: {namespace: default}}\n")
	a, b := engine(t, nil), engine(t, nil)
	gate, _ := blockers.LoadOrStore("lock-test", make(chan struct{}))
	done := make(chan error, 1)
	var stA *runbook.RunState
	go func() {
		var err error
		stA, err = a.Start(ctx, rbA)
		done <- err
	}()
	// Wait until A holds the lease.
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, err := cluster.Client.CoordinationV1().Leases("kube-system").Get(ctx, runbook.LockName, metav1.GetOptions{})
		if err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("run A never took the lock")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err := b.Start(ctx, rbB)
	var locked *runbook.LockedError
	if !errors.As(err, &locked) || exitcode.For(err) != exitcode.Blocked {
		t.Fatalf("second run: %v (exit %d), want a LockedError, exit 3", err, exitcode.For(err))
	}
	if locked.Operator == "" || locked.RunID == "" || !strings.Contains(err.Error(), "locked by run "+locked.RunID) {
		t.Fatalf("the refusal must name the holder: %v", err)
	}
	b.StealLock = true
	if _, err := b.Start(ctx, rbB); !errors.As(err, &locked) || !locked.StealRefused {
		t.Fatalf("--steal-lock on a live lease must be refused: %v", err)
	}
	close(gate.(chan struct{}))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if locked.RunID != stA.ID {
		t.Fatalf("holder named %s, want %s", locked.RunID, stA.ID)
	}
	// A released the lock: B runs now.
	b.StealLock = false
	if _, err := b.Start(ctx, rbB); err != nil {
		t.Fatalf("after A finished: %v", err)
	}
}

func TestStaleLockTakenOnlyWithSteal(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ns := "default"
	leases := cluster.Client.CoordinationV1().Leases(ns)
	old := metav1.NewMicroTime(time.Now().Add(-time.Minute))
	holder, secs := "dead-run/other-host/4242", int32(5)
	_, err := leases.Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: runbook.LockName, Namespace: ns, Annotations: map[string]string{
			"drydock.dev/run-id": "dead-run", "drydock.dev/operator": "alice@other-host", "drydock.dev/host": "other-host", "drydock.dev/pid": "4242"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &old, RenewTime: &old},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := &runbook.Lock{Client: cluster.Client, Namespace: ns, RunID: "new-run", Operator: "bob@here"}
	err = l.Acquire(ctx, false)
	var locked *runbook.LockedError
	if !errors.As(err, &locked) || !locked.Expired || !strings.Contains(err.Error(), "--steal-lock") || locked.Operator != "alice@other-host" {
		t.Fatalf("expired lease without --steal-lock: %v", err)
	}
	if err := l.Acquire(ctx, true); err != nil {
		t.Fatalf("expired lease with --steal-lock: %v", err)
	}
	got, _ := leases.Get(ctx, runbook.LockName, metav1.GetOptions{})
	if !strings.HasPrefix(*got.Spec.HolderIdentity, "new-run/") || got.Annotations["drydock.dev/operator"] != "bob@here" {
		t.Fatalf("lease after steal: %v %v", *got.Spec.HolderIdentity, got.Annotations)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ = leases.Get(ctx, runbook.LockName, metav1.GetOptions{})
	if got.Spec.HolderIdentity != nil {
		t.Fatalf("released lease still names %s", *got.Spec.HolderIdentity)
	}
}

func TestSkipperSkipsAndIsNotRolledBack(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	if _, err := cluster.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "already-there"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	e := engine(t, rec)
	rb := parse(t, "    - {name: a, type: mark, with: {namespace: default, skipIf: already-there}}\n    - {name: b, type: mark, with: {namespace: default, skipIf: not-there}}\n")
	st, err := e.Start(ctx, rb)
	if err != nil {
		t.Fatal(err)
	}
	if st.Step("a").Status != runbook.StatusSkipped || st.Step("b").Status != runbook.StatusDone || configMapExists(t, st.ID+"-a") {
		t.Fatalf("a %s, b %s", st.Step("a").Status, st.Step("b").Status)
	}
	if !slices.Contains(rec.Lines(), "step a: skipped: ConfigMap already-there exists") {
		t.Fatalf("events:\n%s", strings.Join(rec.Lines(), "\n"))
	}
	undoneMu.Lock()
	undone = nil
	undoneMu.Unlock()
	if _, err := e.Rollback(ctx, st, ""); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(undone, []string{"b"}) {
		t.Fatalf("undone %v: a skipped step has nothing to undo", undone)
	}
}
