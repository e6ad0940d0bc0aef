package runbook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/utils/clock"

	"github.com/drydock-dev/drydock/internal/kube"
)

// DefaultLockDuration is the lease's duration. The holder keeps working while the apiserver is
// unreachable for up to 2/3 of it (60s: a single control-plane node's apiserver restart during its
// own upgrade); --steal-lock watches a lease this long before taking it.
const DefaultLockDuration = 90 * time.Second

// LockName is the Lease that makes drydock runs against one cluster take turns.
const LockName = "drydock-lock"

// LockNamespace is where the cluster's one lock lives, whatever namespace a run keeps its state in:
// two runs with different state namespaces (an upgrade's `state: {namespace: drydock}` and a
// `drydock drain`) still take turns. kube-system exists in every cluster.
const LockNamespace = "kube-system"

// Lease annotations naming the holder.
const (
	annRunID    = "drydock.dev/run-id"
	annOperator = "drydock.dev/operator"
	annHost     = "drydock.dev/host"
	annPID      = "drydock.dev/pid"
	// annBoot names the holder's machine and boot (machine id and boot id): a hostname repeats (CI
	// runners, pods), a PID repeats after a reboot; the two ids together do not.
	annBoot = "drydock.dev/boot"
)

// Lock is a coordination.k8s.io/v1 Lease held and renewed for the whole of a run, so that two
// operators cannot run drydock against the same cluster at once.
//
// Its timing follows client-go's leaderelection, so that clocks need not agree: whether a lease
// expired is judged from when this process last saw its record change, on this process's own
// clock, never by comparing the holder's RenewTime with the local time; and the holder stops
// working when it could not renew for RenewDeadline (2/3 of Duration), before anyone else may
// take over (after a whole Duration without a change).
type Lock struct {
	Client kubernetes.Interface
	// Namespace of the Lease (default LockNamespace; tests set their own).
	Namespace string
	RunID     string
	Operator  string
	// Duration of the lease; it is renewed every Duration/3 (default DefaultLockDuration).
	Duration time.Duration
	// Clock is the time source (default the real clock; tests skew it).
	Clock clock.Clock

	host string
	boot string // machine id + boot id; "" when they cannot be read
	pid  int
}

// LockedError says who holds the lock.
type LockedError struct {
	Namespace, Name string
	RunID, Operator string
	Host            string
	PID             int
	HeldFor         time.Duration
	RenewedAgo      time.Duration
	// Expired: by the record's RenewTime and this machine's clock, the lease looks expired. That is
	// only a hint (clocks differ): --steal-lock decides by watching whether the holder renews.
	Expired bool
	// HolderDead: the holder ran on this very machine in this very boot and its process is gone,
	// so there is nothing to wait for: --steal-lock takes the lease at once.
	HolderDead   bool
	StealRefused bool          // --steal-lock was given but the lease changed while drydock watched it
	Watched      time.Duration // how long --steal-lock watched the lease
}

func (e *LockedError) Error() string {
	who := fmt.Sprintf("run %s by %s (pid %d on %s)", e.RunID, e.Operator, e.PID, e.Host)
	base := fmt.Sprintf("cluster is locked by %s: Lease %s/%s held for %s, renewed %s ago by its holder's clock", who, e.Namespace, e.Name,
		e.HeldFor.Round(time.Second), e.RenewedAgo.Round(time.Second))
	switch {
	case e.StealRefused:
		return base + fmt.Sprintf("; --steal-lock refused: its holder renewed the lease while drydock watched it for %s, so it is alive: wait for it, or stop it", e.Watched.Round(time.Second))
	case e.HolderDead:
		return base + fmt.Sprintf("; its process (pid %d) is gone from this machine, so it will never finish: run again with --steal-lock (it takes the lease at once), or `drydock resume %s` to finish that run", e.PID, e.RunID)
	case e.Expired:
		return base + "; the lease looks expired, so its holder is probably dead: if you are sure, run again with --steal-lock (it watches the lease for one lease duration first)"
	}
	return base + "; wait for that run to finish (`drydock runs` shows it)"
}

func (l *Lock) init() {
	if l.Namespace == "" {
		l.Namespace = LockNamespace
	}
	if l.Duration == 0 {
		l.Duration = DefaultLockDuration
	}
	if l.Clock == nil {
		l.Clock = clock.RealClock{}
	}
	l.host, _ = os.Hostname()
	l.boot = bootIdentity()
	l.pid = os.Getpid()
}

// RenewDeadline is how long the holder may fail to renew before it stops: 2/3 of the duration,
// so that it has stopped before an observer, who waits a whole duration, takes over.
func (l *Lock) RenewDeadline() time.Duration { return l.Duration * 2 / 3 }

// bootIdentity is this machine's id and boot id, or "" when either cannot be read.
func bootIdentity() string {
	var machine string
	for _, f := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(f); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			machine = strings.TrimSpace(string(b))
			break
		}
	}
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	boot := strings.TrimSpace(string(b))
	if machine == "" || err != nil || boot == "" {
		return ""
	}
	return machine + "/" + boot
}

func (l *Lock) identity() string {
	return fmt.Sprintf("%s/%s/%d", l.RunID, l.host, l.pid)
}

// holderDead says whether the lease's holder is certainly dead: it ran on this very machine in
// this very boot (machine id and boot id match, not just the hostname), and its process is gone.
func (l *Lock) holderDead(lease *coordinationv1.Lease) bool {
	if l.boot == "" || lease.Annotations[annBoot] != l.boot {
		return false
	}
	pid, err := strconv.Atoi(lease.Annotations[annPID])
	return err == nil && pid != l.pid && !processAlive(pid)
}

// Acquire takes the lock. A lease held by someone else is refused with a *LockedError, except:
// a holder that is certainly dead (same machine and boot, process gone) is taken over at once, by
// a resume of its own run or with steal; with steal, any other lease is watched for one lease
// duration and taken only if its holder did not renew it meanwhile.
func (l *Lock) Acquire(ctx context.Context, steal bool) error {
	l.init()
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	for attempt := 0; attempt < 5; attempt++ {
		var lease *coordinationv1.Lease
		err := kube.Retry(ctx, nil, func(ctx context.Context) error {
			var err error
			lease, err = leases.Get(ctx, LockName, metav1.GetOptions{})
			return err
		})
		if apierrors.IsNotFound(err) {
			err = kube.Retry(ctx, nil, func(ctx context.Context) error {
				_, err := leases.Create(ctx, l.stamp(&coordinationv1.Lease{
					ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: l.Namespace},
				}, true), metav1.CreateOptions{})
				return err
			})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("lock: create Lease %s/%s: %w", l.Namespace, LockName, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock: get Lease %s/%s: %w", l.Namespace, LockName, err)
		}
		if holder := valueOf(lease.Spec.HolderIdentity); holder != "" && holder != l.identity() {
			locked := l.lockedError(lease)
			locked.HolderDead = l.holderDead(lease)
			switch {
			case locked.HolderDead && (steal || locked.RunID == l.RunID):
				// its process is gone from this machine: nothing to wait for
			case steal:
				changed, free, watched, err := l.watchForRenewal(ctx, lease)
				if err != nil {
					return err
				}
				if free {
					continue // released while we watched: take it from the top
				}
				if changed {
					locked.StealRefused, locked.Watched = true, watched
					return locked
				}
			default:
				return locked
			}
		}
		// The update carries the resourceVersion we judged: if the holder renewed since, it conflicts.
		err = kube.Retry(ctx, nil, func(ctx context.Context) error {
			_, err := leases.Update(ctx, l.stamp(lease.DeepCopy(), true), metav1.UpdateOptions{})
			return err
		})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("lock: take Lease %s/%s: %w", l.Namespace, LockName, err)
		}
		return nil
	}
	return fmt.Errorf("lock: Lease %s/%s keeps changing under us: another drydock is taking it", l.Namespace, LockName)
}

// watchForRenewal watches the lease (by re-reading it every Duration/10) for one lease duration on
// this process's clock; changed says its record changed (the holder is alive), free that it was
// released or deleted meanwhile. A lease whose duration is longer than ours is watched for its own.
func (l *Lock) watchForRenewal(ctx context.Context, seen *coordinationv1.Lease) (changed, free bool, watched time.Duration, err error) {
	dur := l.Duration
	if d := seen.Spec.LeaseDurationSeconds; d != nil && time.Duration(*d)*time.Second > dur {
		dur = time.Duration(*d) * time.Second
	}
	start := l.Clock.Now()
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	for {
		if l.Clock.Since(start) > dur {
			return false, false, l.Clock.Since(start), nil
		}
		t := l.Clock.NewTimer(dur / 10)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, false, 0, fmt.Errorf("lock: watching Lease %s/%s: %w", l.Namespace, LockName, context.Cause(ctx))
		case <-t.C():
		}
		cur, err := leases.Get(ctx, LockName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, true, l.Clock.Since(start), nil
		case err != nil && kube.Transient(err):
			continue
		case err != nil:
			return false, false, 0, fmt.Errorf("lock: watching Lease %s/%s: %w", l.Namespace, LockName, err)
		}
		if !apiequality.Semantic.DeepEqual(cur.Spec, seen.Spec) || cur.ResourceVersion != seen.ResourceVersion {
			return true, valueOf(cur.Spec.HolderIdentity) == "", l.Clock.Since(start), nil
		}
	}
}

func valueOf[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// stamp writes this holder into the lease; acquire also sets the acquire time.
func (l *Lock) stamp(lease *coordinationv1.Lease, acquire bool) *coordinationv1.Lease {
	now := metav1.NewMicroTime(l.Clock.Now())
	id := l.identity()
	secs := int32(l.Duration / time.Second)
	lease.Spec.HolderIdentity = &id
	lease.Spec.LeaseDurationSeconds = &secs
	if acquire {
		lease.Spec.AcquireTime = &now
	}
	lease.Spec.RenewTime = &now
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[annRunID] = l.RunID
	lease.Annotations[annOperator] = l.Operator
	lease.Annotations[annHost] = l.host
	lease.Annotations[annPID] = strconv.Itoa(l.pid)
	if l.boot != "" {
		lease.Annotations[annBoot] = l.boot
	} else {
		delete(lease.Annotations, annBoot)
	}
	return lease
}

func (l *Lock) lockedError(lease *coordinationv1.Lease) *LockedError {
	e := &LockedError{Namespace: l.Namespace, Name: LockName,
		RunID: lease.Annotations[annRunID], Operator: lease.Annotations[annOperator], Host: lease.Annotations[annHost]}
	e.PID, _ = strconv.Atoi(lease.Annotations[annPID])
	now := l.Clock.Now()
	if t := lease.Spec.AcquireTime; t != nil {
		e.HeldFor = now.Sub(t.Time)
	}
	renewed := now
	if t := lease.Spec.RenewTime; t != nil {
		renewed = t.Time
	}
	e.RenewedAgo = now.Sub(renewed)
	dur := 30 * time.Second
	if d := lease.Spec.LeaseDurationSeconds; d != nil {
		dur = time.Duration(*d) * time.Second
	}
	e.Expired = now.After(renewed.Add(dur))
	return e
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Hold renews the lease every Duration/3 until ctx ends, retrying a failed renewal every
// Duration/10. If no renewal succeeded for RenewDeadline, or someone else took the lease, lost is
// called once: the run must stop, since it no longer owns the cluster, and it stops before anyone
// watching the lease may take it.
func (l *Lock) Hold(ctx context.Context, lost func(error)) {
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	lastRenew := l.Clock.Now()
	wait := l.Duration / 3
	for {
		t := l.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		// A renewal never outlives the deadline: a hung request must not keep a lost lease "held".
		left := l.RenewDeadline() - l.Clock.Since(lastRenew)
		err := func() error {
			rctx, cancel := context.WithTimeout(ctx, max(left, time.Millisecond))
			defer cancel()
			return l.renew(rctx, leases)
		}()
		var locked *LockedError
		switch {
		case err == nil:
			lastRenew, wait = l.Clock.Now(), l.Duration/3
		case ctx.Err() != nil:
			return
		case errors.As(err, &locked):
			lost(&LockLostError{Err: fmt.Errorf("lock: run %s by %s took the Lease %s/%s", locked.RunID, locked.Operator, l.Namespace, LockName)})
			return
		case l.Clock.Since(lastRenew) >= l.RenewDeadline():
			lost(&LockLostError{Err: fmt.Errorf("lock: could not renew Lease %s/%s for %s (its renew deadline; others may take it after %s): %w",
				l.Namespace, LockName, l.RenewDeadline(), l.Duration, err)})
			return
		default:
			wait = min(l.Duration/10, l.RenewDeadline()-l.Clock.Since(lastRenew))
		}
	}
}

// LockLostError is why a run stopped when it lost the cluster lock: from then on another process
// may own the cluster, so the run changes nothing more, not even to clean up.
type LockLostError struct{ Err error }

func (e *LockLostError) Error() string { return e.Err.Error() }
func (e *LockLostError) Unwrap() error { return e.Err }

// LockLost says whether ctx ended because the run lost the cluster lock.
func LockLost(ctx context.Context) bool {
	var lost *LockLostError
	return errors.As(context.Cause(ctx), &lost)
}

// renew reads the lease and, while we still hold it, writes a new RenewTime carrying the
// resourceVersion it read: a write in between conflicts, and the next try reads again.
func (l *Lock) renew(ctx context.Context, leases coordinationv1client.LeaseInterface) error {
	lease, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if valueOf(lease.Spec.HolderIdentity) != l.identity() {
		return &LockedError{Namespace: l.Namespace, Name: LockName, RunID: lease.Annotations[annRunID], Operator: lease.Annotations[annOperator]}
	}
	_, err = leases.Update(ctx, l.stamp(lease, false), metav1.UpdateOptions{})
	return err
}

// Release gives the lock up, if this run still holds it, retrying transient errors until ctx
// ends. When it cannot, the lease keeps its last renewal: others may take it once they have seen
// it unchanged for a lease duration (`--steal-lock`), and a resume on this machine at once.
func (l *Lock) Release(ctx context.Context) error {
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	for attempt := 0; attempt < 3; attempt++ {
		var lease *coordinationv1.Lease
		err := kube.Retry(ctx, nil, func(ctx context.Context) error {
			var err error
			lease, err = leases.Get(ctx, LockName, metav1.GetOptions{})
			return err
		})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return l.releaseFailed(err)
		}
		if valueOf(lease.Spec.HolderIdentity) != l.identity() {
			return nil
		}
		lease.Spec.HolderIdentity = nil
		lease.Spec.RenewTime = nil
		lease.Spec.AcquireTime = nil
		for _, a := range []string{annRunID, annOperator, annHost, annPID, annBoot} {
			delete(lease.Annotations, a)
		}
		err = kube.Retry(ctx, nil, func(ctx context.Context) error {
			_, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
			return err
		})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return l.releaseFailed(err)
		}
		return nil
	}
	return l.releaseFailed(errors.New("it kept conflicting"))
}

func (l *Lock) releaseFailed(err error) error {
	return fmt.Errorf("lock: release Lease %s/%s: %w; it expires %s after its last renewal: then `drydock resume` on this machine, or --steal-lock elsewhere, takes it",
		l.Namespace, LockName, err, l.Duration)
}

// Holding reads the lock of the cluster without taking it: who holds it, as a LockedError says, or
// nil when nobody does. `drydock status` tells from it whether a run driven from another machine
// still has a live process (its lease is renewed) or not (expired).
func Holding(ctx context.Context, client kubernetes.Interface) (*LockedError, error) {
	namespace := LockNamespace
	lease, err := client.CoordinationV1().Leases(namespace).Get(ctx, LockName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lock %s/%s: %w", namespace, LockName, err)
	}
	if valueOf(lease.Spec.HolderIdentity) == "" {
		return nil, nil
	}
	l := &Lock{Namespace: namespace}
	l.init()
	return l.lockedError(lease), nil
}

// ReleaseAbandoned frees the cluster's lock when run l.RunID's own last session left it held and
// that session's process is certainly gone (this machine, this boot): a run killed after its last
// journal write, before it could release the lock, which nothing would otherwise ever release.
// released says whether it did; a lease held by anyone else is left alone.
func (l *Lock) ReleaseAbandoned(ctx context.Context) (released bool, err error) {
	l.init()
	lease, err := l.Client.CoordinationV1().Leases(l.Namespace).Get(ctx, LockName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock: get Lease %s/%s: %w", l.Namespace, LockName, err)
	}
	if valueOf(lease.Spec.HolderIdentity) == "" || lease.Annotations[annRunID] != l.RunID || !l.holderDead(lease) {
		return false, nil
	}
	if err := l.Acquire(ctx, false); err != nil {
		return false, err
	}
	return true, l.Release(ctx)
}
