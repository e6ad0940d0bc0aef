package drain

// The budget queue: each PodDisruptionBudget's waiters, woken by its watch, one slot per allowed
// disruption.

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/drydock-dev/drydock/internal/kube"
)

// budgets wakes the evictions waiting on a PodDisruptionBudget when its status allows disruptions,
// as many as it allows, so that a budget of one does not send every waiting pod at the API at once.
type budgets struct {
	mu       sync.Mutex
	waiters  map[string][]chan struct{}
	inflight map[string]int // woken, and not yet back with an answer from the API
	// answered since the budget's status last changed: the status we hold does not count them yet
	// (an accepted eviction lowers disruptionsAllowed only in the next status we see).
	spent   map[string]int
	spentAt map[string]time.Time
	seenRV  map[string]string
	store   cache.Store

	// Each budget's pods as the explainer last listed them, shared by every drain of the process:
	// nodegroups drains a batch's nodes at once, and their pods wait on the same budgets.
	listMu  sync.Mutex
	listed  map[string]listedPods
	listing singleflight.Group
}

// spentFor is how long an answer counts against a budget whose status has not moved since: long
// enough for the status to catch up, short enough that a lost update cannot stall the queue.
const spentFor = 5 * time.Second

func (b *budgets) wait(key string) chan struct{} {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	b.waiters[key] = append(b.waiters[key], ch)
	b.mu.Unlock()
	b.check(key)
	return ch
}

// answered says a woken eviction got the budget's answer (accepted, or refused by the budget).
func (b *budgets) answered(key string) {
	b.mu.Lock()
	if b.inflight[key] > 0 {
		b.inflight[key]--
	}
	b.spent[key]++
	b.spentAt[key] = time.Now()
	b.mu.Unlock()
	b.check(key)
}

// returned gives a woken slot back unused (the API refused for another reason, e.g. throttling).
func (b *budgets) returned(key string) {
	b.mu.Lock()
	if b.inflight[key] > 0 {
		b.inflight[key]--
	}
	b.mu.Unlock()
	b.check(key)
}

func (b *budgets) cancel(key string, ch chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.waiters[key]
	for i, w := range ws {
		if w == ch {
			b.waiters[key] = append(ws[:i:i], ws[i+1:]...)
			return
		}
	}
}

func (b *budgets) check(key string) {
	obj, ok, _ := b.store.GetByKey(key)
	if !ok {
		return
	}
	pdb := obj.(*policyv1.PodDisruptionBudget)
	if pdb.Status.ObservedGeneration < pdb.Generation {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if pdb.ResourceVersion != b.seenRV[key] || time.Since(b.spentAt[key]) > spentFor {
		b.seenRV[key], b.spent[key] = pdb.ResourceVersion, 0
	}
	// As many as the budget allows, less those woken and not yet answered, and those answered
	// since this status was written: a burst of updates must not send every waiter at the API.
	n := int(pdb.Status.DisruptionsAllowed) - b.inflight[key] - b.spent[key]
	ws := b.waiters[key]
	for n > 0 && len(ws) > 0 {
		ws[0] <- struct{}{}
		ws = ws[1:]
		b.inflight[key]++
		n--
	}
	b.waiters[key] = ws
}

func (b *budgets) status(key string) (policyv1.PodDisruptionBudgetStatus, bool) {
	obj, ok, _ := b.store.GetByKey(key)
	if !ok {
		return policyv1.PodDisruptionBudgetStatus{}, false
	}
	return obj.(*policyv1.PodDisruptionBudget).Status, true
}

// alwaysAllows says whether the budget lets pod go whatever its count: the pod is not Ready and
// the budget's unhealthyPodEvictionPolicy is AlwaysAllow. (IfHealthyBudget, the default, lets an
// unhealthy pod go only while the budget is met: such a pod waits in the queue like the others.)
func (b *budgets) alwaysAllows(key string, pod *corev1.Pod) bool {
	if pod == nil || kube.PodReady(pod) {
		return false
	}
	obj, ok, _ := b.store.GetByKey(key)
	if !ok {
		return false
	}
	p := obj.(*policyv1.PodDisruptionBudget).Spec.UnhealthyPodEvictionPolicy
	return p != nil && *p == policyv1.AlwaysAllow
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// turn waits until the budget lets this pod try. granted says the budget's watch woke it (a slot
// is held until answered); stop says the pod is gone or the drain is over. While it waits, a
// jittered timer re-checks the budget, in case an update was missed, and lets the pod try blindly
// when the budget is not in the watch at all (just created, or deleted).
func (d *Drainer) turn(ctx context.Context, bud *budgets, key string, gone <-chan struct{}, waiting func()) (granted, stop bool) {
	backoff := 5 * time.Second
	for {
		woke := bud.wait(key)
		select {
		case <-woke:
			return true, false
		default:
		}
		waiting()
		timer := time.NewTimer(jitter(backoff))
		select {
		case <-ctx.Done():
			timer.Stop()
			release(bud, key, woke)
			return false, true
		case <-gone:
			timer.Stop()
			release(bud, key, woke)
			return false, true
		case <-woke:
			timer.Stop()
			return true, false
		case <-timer.C:
			bud.cancel(key, woke)
			select {
			case <-woke:
				return true, false
			default:
			}
			if _, known := bud.status(key); !known {
				return false, false
			}
			bud.check(key)
			backoff = min(backoff*2, 30*time.Second)
		}
	}
}

// release gives up a wait: the waiter leaves the queue, and a wake it already got goes back.
func release(bud *budgets, key string, woke chan struct{}) {
	if woke == nil {
		return
	}
	bud.cancel(key, woke)
	select {
	case <-woke:
		bud.answered(key)
	default:
	}
}
