package drain

// Stalls: a drain that stops moving is explained live (the budget that holds it, its unhealthy pods)
// and fails after stallTimeout.

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drydock-dev/drydock/runbook"
)

// tellBlocked reports s blocked by its budget with chain c, unless that is what it last said.
func (d *Drainer) tellBlocked(s *podState, mu *sync.Mutex, c *runbook.BudgetChain) {
	if c == nil {
		return
	}
	reason := c.Reason() // counts that add up: a pod evicted but not yet recounted is said
	told := reason + "|" + c.Short()
	mu.Lock()
	if s.told == told || s.evicted {
		mu.Unlock()
		return
	}
	s.told, s.chain = told, c
	mu.Unlock()
	d.report(s.ref, PodUpdate{State: runbook.PodBlocked, Reason: reason, PDB: c.PDB, Chain: c})
}

// watchStalls keeps the chains of the pods waiting on a budget live (each is reported again when
// its chain changes) and stops the drain with a StalledError when a budget has allowed no
// disruption for stallTimeout and its unhealthy pods are not replacements still starting.
func (d *Drainer) watchStalls(ctx context.Context, node string, x *explainer, bud *budgets, states map[types.UID]*podState, mu *sync.Mutex, gone map[types.UID]chan struct{}, podOf func(PodRef) *corev1.Pod, cancel context.CancelCauseFunc) {
	after := d.Options.stallTimeout()
	tick := time.NewTicker(min(time.Second, after/4))
	defer tick.Stop()
	zeroSince := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d.tellHeld(states, mu, gone, podOf)
		waiting := map[string][]*podState{}
		mu.Lock()
		for uid, s := range states {
			if _, left := gone[uid]; left && s.waiting && s.pdb != "" {
				waiting[s.pdb] = append(waiting[s.pdb], s)
			}
		}
		mu.Unlock()
		now := time.Now()
		for key := range zeroSince {
			if _, ok := waiting[key]; !ok {
				delete(zeroSince, key)
			}
		}
		for key, pods := range waiting {
			st, ok := bud.status(key)
			if !ok || st.DisruptionsAllowed > 0 {
				delete(zeroSince, key)
				continue
			}
			if zeroSince[key].IsZero() {
				zeroSince[key] = now
			}
			if d.relax != nil && d.approved != nil && d.approved(key) {
				if obj, ok, _ := bud.store.GetByKey(key); ok {
					// What fails is said by relax; the drain goes on waiting either way.
					_ = d.relax(ctx, obj.(*policyv1.PodDisruptionBudget), podOf(pods[0].ref), "approved at the terminal")
					delete(zeroSince, key)
					continue
				}
			}
			var c *runbook.BudgetChain
			for _, s := range pods {
				c = x.chain(ctx, key, podOf(s.ref))
				d.tellBlocked(s, mu, c)
			}
			if !stalled(c, zeroSince[key], now, after) {
				continue
			}
			if d.relax != nil && d.autoRelax {
				obj, ok, _ := bud.store.GetByKey(key)
				if !ok {
					continue
				}
				err := d.relax(ctx, obj.(*policyv1.PodDisruptionBudget), podOf(pods[0].ref), "allowBudgetRelax")
				switch {
				case err == nil || apierrors.IsConflict(err):
					// Relaxed (or the budget changed meanwhile: look again): the clock starts again.
					delete(zeroSince, key)
					continue
				case ctx.Err() != nil:
					return
				}
				cancel(&StalledError{Node: node, After: after, Chain: c, Relax: err})
				return
			}
			cancel(&StalledError{Node: node, After: after, Chain: c})
			return
		}
	}
}

// tellHeld names the finalizers that keep an evicted pod from going once its grace period is over
// (kubectl says only "terminating"): reported when they change, and said in what the drain leaves.
func (d *Drainer) tellHeld(states map[types.UID]*podState, mu *sync.Mutex, gone map[types.UID]chan struct{}, podOf func(PodRef) *corev1.Pod) {
	var evicted []*podState
	mu.Lock()
	for uid, s := range states {
		if _, left := gone[uid]; left && s.evicted {
			evicted = append(evicted, s)
		}
	}
	mu.Unlock()
	now := time.Now()
	for _, s := range evicted {
		held := heldBy(podOf(s.ref), now)
		mu.Lock()
		told := s.held
		if held != "" {
			s.held = held
		}
		mu.Unlock()
		if held == "" || held == told {
			continue
		}
		why := fmt.Sprintf("is terminating, %s: what set them must remove them (if that controller is gone: "+
			`kubectl patch pod %s -n %s --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]')`, held, s.ref.Name, s.ref.Namespace)
		mu.Lock()
		s.last = why
		mu.Unlock()
		d.report(s.ref, PodUpdate{State: runbook.PodEvicted, Reason: why})
	}
}
