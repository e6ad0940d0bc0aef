package runbook

// The fast tier for the lock: clock skew, the renew deadline, same-machine takeover and a stolen
// lease, against a fake clientset (no cluster).

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/clock"
)

// skewed is the real clock, off by d: a laptop whose clock is wrong.
type skewed struct {
	clock.RealClock
	d time.Duration
}

func (s skewed) Now() time.Time                  { return time.Now().Add(s.d) }
func (s skewed) Since(t time.Time) time.Duration { return s.Now().Sub(t) }

func getLease(t *testing.T, c *fake.Clientset) *coordinationv1.Lease {
	t.Helper()
	l, err := c.CoordinationV1().Leases("ns").Get(context.Background(), LockName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLockSkewedClockCannotStealALiveLease: B's clock is an hour ahead, so by A's RenewTime the
// lease looks long expired; --steal-lock still refuses while A renews, because B judges expiry
// by watching the record change on its own clock. Once A is gone (killed, no release), B takes
// it after one lease duration.
func TestLockSkewedClockCannotStealALiveLease(t *testing.T) {
	t.Parallel()
	c := fake.NewClientset()
	ctx := context.Background()
	a := &Lock{Client: c, Namespace: "ns", RunID: "run-a", Operator: "alice", Duration: 2 * time.Second}
	if err := a.Acquire(ctx, false); err != nil {
		t.Fatal(err)
	}
	holdCtx, kill := context.WithCancel(ctx)
	go a.Hold(holdCtx, func(err error) { t.Errorf("A lost its lock: %v", err) })

	b := &Lock{Client: c, Namespace: "ns", RunID: "run-b", Operator: "bob", Duration: 2 * time.Second, Clock: skewed{d: time.Hour}}
	err := b.Acquire(ctx, false)
	var locked *LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("B without --steal-lock: %v", err)
	}
	start := time.Now()
	if err := b.Acquire(ctx, true); !errors.As(err, &locked) || !locked.StealRefused {
		t.Fatalf("B with --steal-lock while A renews: %v, want refused", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("took %v to see A renew (every %v)", time.Since(start), a.Duration/3)
	}
	kill() // A dies without releasing
	start = time.Now()
	if err := b.Acquire(ctx, true); err != nil {
		t.Fatalf("B with --steal-lock after A died: %v", err)
	}
	if waited := time.Since(start); waited < b.Duration {
		t.Fatalf("B took the lease after %v, before a whole lease duration (%v) without a renewal", waited, b.Duration)
	}
	if h := *getLease(t, c).Spec.HolderIdentity; h != b.identity() {
		t.Fatalf("holder %q, want B", h)
	}
}

// TestLockHolderStopsBeforeOthersMayTakeOver: when renewals fail, the holder gives up after its
// renew deadline (2/3 of the duration) — before an observer, who waits a whole duration from the
// last change it saw, may take over.
func TestLockHolderStopsBeforeOthersMayTakeOver(t *testing.T) {
	t.Parallel()
	c := fake.NewClientset()
	var mu sync.Mutex
	failing := false
	var lastOK time.Time
	c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return true, nil, apierrors.NewServiceUnavailable("apiserver restarting")
		}
		lastOK = time.Now()
		return false, nil, nil
	})
	l := &Lock{Client: c, Namespace: "ns", RunID: "r", Operator: "o", Duration: 3 * time.Second}
	if err := l.Acquire(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	lost := make(chan time.Time, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Hold(ctx, func(error) { lost <- time.Now() })
	time.Sleep(1500 * time.Millisecond) // a renewal or so succeeds
	mu.Lock()
	failing = true
	mu.Unlock()
	select {
	case at := <-lost:
		mu.Lock()
		since := at.Sub(lastOK)
		mu.Unlock()
		if since >= l.Duration {
			t.Fatalf("the holder stopped %v after its last renewal: others may take over after %v", since, l.Duration)
		}
		if since < l.RenewDeadline()-200*time.Millisecond {
			t.Fatalf("the holder gave up after %v, before its renew deadline %v", since, l.RenewDeadline())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the holder never noticed it could not renew")
	}
}

// TestLockRetriesTransientRenewalErrors: a renewal that fails now and then is retried; the lock
// is not lost.
func TestLockRetriesTransientRenewalErrors(t *testing.T) {
	t.Parallel()
	c := fake.NewClientset()
	var mu sync.Mutex
	n := 0
	c.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n%2 == 0 {
			return true, nil, apierrors.NewInternalError(errors.New("etcd timeout"))
		}
		return false, nil, nil
	})
	l := &Lock{Client: c, Namespace: "ns", RunID: "r", Operator: "o", Duration: 3 * time.Second}
	if err := l.Acquire(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.Hold(ctx, func(err error) { t.Errorf("lost the lock on transient errors: %v", err) })
}

// TestLockStolenMidRunIsNoticed: someone else takes the lease: the holder is told at its next renewal.
func TestLockStolenMidRunIsNoticed(t *testing.T) {
	t.Parallel()
	c := fake.NewClientset()
	l := &Lock{Client: c, Namespace: "ns", RunID: "r", Operator: "o", Duration: time.Second}
	if err := l.Acquire(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	lease := getLease(t, c)
	other := "thief/host/1"
	lease.Spec.HolderIdentity = &other
	lease.Annotations[annRunID] = "thief"
	if _, err := c.CoordinationV1().Leases("ns").Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l.Hold(ctx, func(err error) { lost <- err })
	select {
	case err := <-lost:
		if err == nil {
			t.Fatal("nil error")
		}
	default:
		t.Fatal("the holder did not notice its lease was taken")
	}
}

// deadPID is the id of a process that has exited.
func deadPID(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestLockSameMachineTakeover: a holder on this machine and boot whose process is gone is taken
// over at once by a resume of its run and by --steal-lock alike; a holder that only shares the
// hostname (another machine, or another boot) is not.
func TestLockSameMachineTakeover(t *testing.T) {
	t.Parallel()
	me := &Lock{}
	me.init()
	if me.boot == "" {
		t.Fatal("no machine id or boot id on this machine: the same-machine takeover cannot be tested")
	}
	lease := func(boot string, pid int) *coordinationv1.Lease {
		holder := "old-run/" + me.host + "/" + strconv.Itoa(pid)
		secs := int32(2)
		now := metav1.NewMicroTime(time.Now())
		return &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: "ns", Annotations: map[string]string{
				annRunID: "old-run", annOperator: "o", annHost: me.host, annPID: strconv.Itoa(pid), annBoot: boot}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now, AcquireTime: &now},
		}
	}
	for _, c := range []struct {
		name   string
		boot   string
		pid    int
		run    string
		steal  bool
		atOnce bool // taken without watching
		taken  bool
	}{
		{"resume, same boot, dead", me.boot, deadPID(t), "old-run", false, true, true},
		{"steal, same boot, dead", me.boot, deadPID(t), "new-run", true, true, true},
		{"new run without steal, same boot, dead", me.boot, deadPID(t), "new-run", false, false, false},
		{"resume, other boot (PIDs repeat)", "other-machine/other-boot", deadPID(t), "old-run", false, false, false},
		{"resume, same boot, alive", me.boot, 1, "old-run", false, false, false},
		{"steal, other boot: watched first", "other-machine/other-boot", deadPID(t), "new-run", true, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cs := fake.NewClientset(lease(c.boot, c.pid))
			l := &Lock{Client: cs, Namespace: "ns", RunID: c.run, Operator: "o", Duration: 2 * time.Second}
			start := time.Now()
			err := l.Acquire(context.Background(), c.steal)
			if c.taken != (err == nil) {
				t.Fatalf("acquire: %v, want taken=%v", err, c.taken)
			}
			if c.taken && c.atOnce != (time.Since(start) < time.Second) {
				t.Fatalf("took %v; want at once=%v", time.Since(start), c.atOnce)
			}
			// A refusal says so when the holder is certainly dead: not "wait for that run".
			var locked *LockedError
			if errors.As(err, &locked) {
				dead := c.boot == me.boot && c.pid != 1
				says := strings.Contains(err.Error(), "gone from this machine") && strings.Contains(err.Error(), "--steal-lock") &&
					!strings.Contains(err.Error(), "wait for that run")
				if locked.HolderDead != dead || says != dead {
					t.Fatalf("refusal %q: HolderDead=%v, want %v", err, locked.HolderDead, dead)
				}
			}
		})
	}
}

// TestReleaseAbandoned: a succeeded run's lease left by its dead last session is released by that
// run (the resume that finds nothing to do); a live holder, another run's lease or a holder on
// another boot is left alone.
func TestReleaseAbandoned(t *testing.T) {
	t.Parallel()
	me := &Lock{}
	me.init()
	if me.boot == "" {
		t.Fatal("no machine id or boot id on this machine: the abandoned lease cannot be tested")
	}
	for _, c := range []struct {
		name     string
		boot     string
		pid      int
		run      string
		released bool
	}{
		{"its own run, dead", me.boot, deadPID(t), "old-run", true},
		{"its own run, alive", me.boot, 1, "old-run", false},
		{"another run's lease", me.boot, deadPID(t), "new-run", false},
		{"its own run, another boot", "other-machine/other-boot", deadPID(t), "old-run", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			holder := "old-run/" + me.host + "/" + strconv.Itoa(c.pid)
			now := metav1.NewMicroTime(time.Now())
			cs := fake.NewClientset(&coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: "ns", Annotations: map[string]string{
					annRunID: "old-run", annOperator: "o", annHost: me.host, annPID: strconv.Itoa(c.pid), annBoot: c.boot}},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &now, AcquireTime: &now},
			})
			l := &Lock{Client: cs, Namespace: "ns", RunID: c.run, Operator: "o"}
			released, err := l.ReleaseAbandoned(context.Background())
			if err != nil || released != c.released {
				t.Fatalf("released %v (%v), want %v", released, err, c.released)
			}
			lease, err := cs.CoordinationV1().Leases("ns").Get(context.Background(), LockName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if free := valueOf(lease.Spec.HolderIdentity) == ""; free != c.released {
				t.Fatalf("lease free %v after the call, want %v", free, c.released)
			}
		})
	}
}
