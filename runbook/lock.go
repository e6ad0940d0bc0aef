package runbook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// LockName is the Lease that makes drydock runs against one cluster take turns.
const LockName = "drydock-lock"

// Lease annotations naming the holder.
const (
	annRunID    = "drydock.dev/run-id"
	annOperator = "drydock.dev/operator"
	annHost     = "drydock.dev/host"
	annPID      = "drydock.dev/pid"
)

// Lock is a coordination.k8s.io/v1 Lease held and renewed for the whole of a run, so that two
// operators cannot run drydock against the same cluster at once.
type Lock struct {
	Client    kubernetes.Interface
	Namespace string
	RunID     string
	Operator  string
	// Duration of the lease; it is renewed every Duration/3 (default 30s).
	Duration time.Duration

	host string
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
	Expired         bool
	StealRefused    bool // --steal-lock was given but the lease is live
}

func (e *LockedError) Error() string {
	who := fmt.Sprintf("run %s by %s (pid %d on %s)", e.RunID, e.Operator, e.PID, e.Host)
	base := fmt.Sprintf("cluster is locked by %s: Lease %s/%s held for %s, renewed %s ago", who, e.Namespace, e.Name,
		e.HeldFor.Round(time.Second), e.RenewedAgo.Round(time.Second))
	switch {
	case e.StealRefused:
		return base + "; --steal-lock refused: the lease is still being renewed, so its holder is alive: wait for it, or stop it"
	case e.Expired:
		return base + "; the lease has expired, so its holder is probably dead: if you are sure, run again with --steal-lock"
	}
	return base + "; wait for that run to finish (`drydock runs` shows it)"
}

func (l *Lock) init() {
	if l.Duration == 0 {
		l.Duration = 30 * time.Second
	}
	l.host, _ = os.Hostname()
	l.pid = os.Getpid()
}

func (l *Lock) identity() string {
	return fmt.Sprintf("%s/%s/%d", l.RunID, l.host, l.pid)
}

// Acquire takes the lock. A lease held by a live holder is refused with a *LockedError; an expired
// one is taken only with steal. A lease left by this same run on this machine by a process that no
// longer exists (a crash) is taken over: that holder is certainly dead.
func (l *Lock) Acquire(ctx context.Context, steal bool) error {
	l.init()
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	for attempt := 0; attempt < 5; attempt++ {
		now := metav1.NewMicroTime(time.Now())
		lease, err := leases.Get(ctx, LockName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = leases.Create(ctx, l.stamp(&coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: l.Namespace},
			}, now), metav1.CreateOptions{})
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
			switch {
			case locked.RunID == l.RunID && locked.Host == l.host && !processAlive(locked.PID):
				// our own run, left by a process that died on this machine
			case locked.Expired && steal:
			case steal:
				locked.StealRefused = true
				return locked
			default:
				return locked
			}
		}
		_, err = leases.Update(ctx, l.stamp(lease, now), metav1.UpdateOptions{})
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

func valueOf[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (l *Lock) stamp(lease *coordinationv1.Lease, now metav1.MicroTime) *coordinationv1.Lease {
	id := l.identity()
	secs := int32(l.Duration / time.Second)
	lease.Spec.HolderIdentity = &id
	lease.Spec.LeaseDurationSeconds = &secs
	lease.Spec.AcquireTime = &now
	lease.Spec.RenewTime = &now
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[annRunID] = l.RunID
	lease.Annotations[annOperator] = l.Operator
	lease.Annotations[annHost] = l.host
	lease.Annotations[annPID] = strconv.Itoa(l.pid)
	return lease
}

func (l *Lock) lockedError(lease *coordinationv1.Lease) *LockedError {
	e := &LockedError{Namespace: l.Namespace, Name: LockName,
		RunID: lease.Annotations[annRunID], Operator: lease.Annotations[annOperator], Host: lease.Annotations[annHost]}
	e.PID, _ = strconv.Atoi(lease.Annotations[annPID])
	now := time.Now()
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

// Hold renews the lease until ctx ends. If the lease cannot be renewed for a whole lease duration,
// or someone else took it, lost is called once: the run must stop, since it no longer owns the cluster.
func (l *Lock) Hold(ctx context.Context, lost func(error)) {
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	lastRenew := time.Now()
	ticker := time.NewTicker(l.Duration / 3)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		err := func() error {
			rctx, cancel := context.WithTimeout(ctx, l.Duration/3)
			defer cancel()
			lease, err := leases.Get(rctx, LockName, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if valueOf(lease.Spec.HolderIdentity) != l.identity() {
				return &LockedError{Namespace: l.Namespace, Name: LockName, RunID: lease.Annotations[annRunID], Operator: lease.Annotations[annOperator]}
			}
			now := metav1.NewMicroTime(time.Now())
			lease.Spec.RenewTime = &now
			_, err = leases.Update(rctx, lease, metav1.UpdateOptions{})
			return err
		}()
		var locked *LockedError
		switch {
		case err == nil:
			lastRenew = time.Now()
		case errors.As(err, &locked):
			lost(fmt.Errorf("lock: run %s by %s took the Lease %s/%s", locked.RunID, locked.Operator, l.Namespace, LockName))
			return
		case time.Since(lastRenew) > l.Duration && ctx.Err() == nil:
			lost(fmt.Errorf("lock: could not renew Lease %s/%s for %s: %w", l.Namespace, LockName, l.Duration, err))
			return
		}
	}
}

// Release gives the lock up, if this run still holds it.
func (l *Lock) Release(ctx context.Context) error {
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	for attempt := 0; attempt < 3; attempt++ {
		lease, err := leases.Get(ctx, LockName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock: release Lease %s/%s: %w", l.Namespace, LockName, err)
		}
		if valueOf(lease.Spec.HolderIdentity) != l.identity() {
			return nil
		}
		lease.Spec.HolderIdentity = nil
		lease.Spec.RenewTime = nil
		lease.Spec.AcquireTime = nil
		for _, a := range []string{annRunID, annOperator, annHost, annPID} {
			delete(lease.Annotations, a)
		}
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("lock: release Lease %s/%s: %w", l.Namespace, LockName, err)
		}
		return nil
	}
	return fmt.Errorf("lock: release Lease %s/%s: kept conflicting", l.Namespace, LockName)
}
