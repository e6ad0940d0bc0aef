package drain

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Drainer evicts the pods of a node plan and waits until they are gone.
type Drainer struct {
	Client  kubernetes.Interface
	Options Options
	// Progress is told what happens to each pod; it must not block.
	Progress func(pod PodRef, state string)
}

// BlockedError is a drain that ran out of time with pods left; it says which and why.
type BlockedError struct {
	Node string
	Left []string // "default/web-7d9 blocked by PDB default/web: needs 3 healthy, has 3"
	// ByBudget says whether a PodDisruptionBudget holds at least one of them.
	ByBudget bool
	Cause    error
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("drain node %q: %v with %d pod(s) left: %s", e.Node, e.Cause, len(e.Left), strings.Join(e.Left, "; "))
}

// podState is what the drainer knows of one pod.
type podState struct {
	ref     PodRef
	evicted bool   // the eviction (or delete) was accepted
	last    string // the last reason it is still there
	pdb     string
}

// budgets wakes the evictions waiting on a PodDisruptionBudget when its status allows disruptions,
// as many as it allows, so that a budget of one does not send every waiting pod at the API at once.
type budgets struct {
	mu      sync.Mutex
	waiters map[string][]chan struct{}
	store   cache.Store
}

func (b *budgets) wait(key string) chan struct{} {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	b.waiters[key] = append(b.waiters[key], ch)
	b.mu.Unlock()
	b.check(key)
	return ch
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
	n := int(pdb.Status.DisruptionsAllowed)
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.waiters[key]
	for n > 0 && len(ws) > 0 {
		ws[0] <- struct{}{}
		ws = ws[1:]
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

// Drain evicts (or, with DisableEviction, deletes) the plan's pods, lowest priority first, at most
// Options.Concurrency at a time, and returns when every one of them is gone. It watches the node's
// pods and the budgets; it never polls.
func (d *Drainer) Drain(ctx context.Context, np NodePlan) error {
	if len(np.Evict) == 0 {
		return nil
	}
	conc := d.Options.Concurrency
	if conc <= 0 {
		conc = 10
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// One watch on the node's pods, one on the budgets of the namespaces involved.
	podFactory := informers.NewSharedInformerFactoryWithOptions(d.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", np.Node).String()
	}))
	pdbFactory := informers.NewSharedInformerFactory(d.Client, 0)
	podInf := podFactory.Core().V1().Pods().Informer()
	pdbInf := pdbFactory.Policy().V1().PodDisruptionBudgets().Informer()
	bud := &budgets{waiters: map[string][]chan struct{}{}, store: pdbInf.GetStore()}
	_, _ = pdbInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { bud.check(keyOf(obj)) },
		UpdateFunc: func(_, obj any) { bud.check(keyOf(obj)) },
	})

	states := map[types.UID]*podState{}
	var mu sync.Mutex
	gone := map[types.UID]chan struct{}{}
	for _, p := range np.Evict {
		states[types.UID(p.UID)] = &podState{ref: p, last: "waiting for its turn"}
		gone[types.UID(p.UID)] = make(chan struct{})
	}
	closeGone := func(uid types.UID) {
		mu.Lock()
		defer mu.Unlock()
		if ch, ok := gone[uid]; ok {
			close(ch)
			delete(gone, uid)
		}
	}
	_, _ = podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				closeGone(p.UID)
			}
		},
	})
	podFactory.Start(ctx.Done())
	pdbFactory.Start(ctx.Done())
	defer func() {
		cancel(nil) // stops the informers; Shutdown waits for them
		podFactory.Shutdown()
		pdbFactory.Shutdown()
	}()
	for _, synced := range []cache.InformerSynced{podInf.HasSynced, pdbInf.HasSynced} {
		if !cache.WaitForCacheSync(ctx.Done(), synced) {
			return fmt.Errorf("drain node %q: watch pods and budgets: %w", np.Node, context.Cause(ctx))
		}
	}
	// Pods already gone since the plan was made.
	present := map[types.UID]bool{}
	for _, obj := range podInf.GetStore().List() {
		present[obj.(*corev1.Pod).UID] = true
	}
	for uid := range states {
		if !present[uid] {
			closeGone(uid)
		}
	}

	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	errs := make(chan error, len(np.Evict))
	for _, p := range np.Evict {
		uid := types.UID(p.UID)
		mu.Lock()
		ch, waiting := gone[uid]
		mu.Unlock()
		if !waiting {
			d.report(p, "gone")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := d.evict(ctx, states[uid], &mu, bud, ch); err != nil {
				errs <- err
				cancel(err)
				return
			}
			select {
			case <-ch:
				d.report(p, "gone")
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("drain node %q: %w", np.Node, err)
	}
	if ctx.Err() == nil {
		return nil
	}
	// Out of time (or cancelled): say exactly what is left and why.
	be := &BlockedError{Node: np.Node, Cause: context.Cause(ctx)}
	var left []*podState
	mu.Lock()
	for uid := range gone {
		left = append(left, states[uid])
	}
	mu.Unlock()
	sort.Slice(left, func(i, j int) bool { return left[i].ref.String() < left[j].ref.String() })
	for _, s := range left {
		mu.Lock()
		line := s.ref.String() + " " + s.last
		mu.Unlock()
		if s.pdb != "" {
			if st, ok := bud.status(s.pdb); ok && !s.evicted {
				line = fmt.Sprintf("%s blocked by PDB %s: needs %d healthy, has %d", s.ref, s.pdb, st.DesiredHealthy, st.CurrentHealthy)
				be.ByBudget = true
			}
		}
		be.Left = append(be.Left, line)
	}
	return be
}

func keyOf(obj any) string {
	k, _ := cache.MetaNamespaceKeyFunc(obj)
	return k
}

func (d *Drainer) report(p PodRef, state string) {
	if d.Progress != nil {
		d.Progress(p, state)
	}
}

// evict asks until the API accepts the eviction of one pod, waiting on its budget in between.
func (d *Drainer) evict(ctx context.Context, s *podState, mu *sync.Mutex, bud *budgets, gone chan struct{}) error {
	uid := types.UID(s.ref.UID)
	backoff := time.Second
	setLast := func(why string) { mu.Lock(); s.last = why; mu.Unlock() }
	for attempt := 1; ; attempt++ {
		var err error
		opts := &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, GracePeriodSeconds: d.Options.GracePeriodSeconds}
		if d.Options.DisableEviction {
			err = d.Client.CoreV1().Pods(s.ref.Namespace).Delete(ctx, s.ref.Name, *opts)
		} else {
			err = d.Client.PolicyV1().Evictions(s.ref.Namespace).Evict(ctx, &policyv1.Eviction{
				ObjectMeta:    metav1.ObjectMeta{Namespace: s.ref.Namespace, Name: s.ref.Name},
				DeleteOptions: opts,
			})
		}
		switch {
		case err == nil:
			mu.Lock()
			s.evicted, s.last = true, "is terminating"
			mu.Unlock()
			d.report(s.ref, "evicted")
			return nil
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// Gone already, or a new pod with the same name (a StatefulSet's): not ours to evict.
			mu.Lock()
			s.evicted, s.last = true, "is gone"
			mu.Unlock()
			select {
			case <-gone:
			default:
				close(gone)
			}
			return nil
		case apierrors.IsTooManyRequests(err):
			// Refused by a budget (or throttled). Wait for the budget to allow it, with a jittered
			// backoff as a safety net, and never less than a Retry-After the server asked for.
			pdbKey := ""
			if len(s.ref.PDBs) == 1 {
				pdbKey = strings.Replace(s.ref.PDBs[0], "/", "/", 1)
			}
			mu.Lock()
			s.pdb = pdbKey
			mu.Unlock()
			wait := backoff
			if secs, ok := apierrors.SuggestsClientDelay(err); ok && secs > 0 && pdbKey == "" {
				wait = time.Duration(secs) * time.Second
			}
			wait = time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
			why := "is refused: " + err.Error()
			if pdbKey != "" {
				if st, ok := bud.status(pdbKey); ok {
					why = fmt.Sprintf("waits for PDB %s: needs %d healthy, has %d", pdbKey, st.DesiredHealthy, st.CurrentHealthy)
				}
			}
			setLast(why)
			if attempt == 1 {
				d.report(s.ref, "blocked: "+why)
			}
			var woke chan struct{}
			if pdbKey != "" {
				woke = bud.wait(pdbKey)
			}
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				if woke != nil {
					bud.cancel(pdbKey, woke)
				}
				return nil
			case <-gone:
				timer.Stop()
				if woke != nil {
					bud.cancel(pdbKey, woke)
				}
				return nil
			case <-woke:
				timer.Stop()
			case <-timer.C:
				if woke != nil {
					bud.cancel(pdbKey, woke)
				}
				backoff = min(backoff*2, 15*time.Second)
			}
		case apierrors.IsInternalError(err) && strings.Contains(err.Error(), "more than one PodDisruptionBudget"):
			return fmt.Errorf("%s: the eviction API refuses it because more than one PodDisruptionBudget covers it (%s): make their selectors disjoint", s.ref, strings.Join(s.ref.PDBs, ", "))
		case ctx.Err() != nil:
			return nil
		default:
			return fmt.Errorf("evict %s: %w", s.ref, err)
		}
	}
}

// ErrBlocked reports whether err is a drain blocked by a budget.
func ErrBlocked(err error) bool {
	var be *BlockedError
	return errors.As(err, &be) && be.ByBudget
}
