package drain

import (
	"context"
	"errors"
	"fmt"
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

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// Drainer evicts the pods of a node plan and waits until they are gone.
type Drainer struct {
	Client  kubernetes.Interface
	Options Options
	// Watches are the run's shared informers (Env.Watches); nil: the drain watches budgets itself.
	Watches *runbook.Watches
	// Progress is told what happens to each pod; it must not block.
	Progress func(pod PodRef, u PodUpdate)
	// relax relaxes a budget for this node; with autoRelax (allowBudgetRelax) the stall detector
	// uses it instead of failing the drain; approved says, once, whether a person approved
	// relaxing a budget (a confirmed key in the terminal UI): it is then relaxed at once.
	relax     func(ctx context.Context, pdb *policyv1.PodDisruptionBudget, blocked *corev1.Pod, how string) error
	autoRelax bool
	approved  func(pdb string) bool
	// Record, when set, durably records that pod p is about to be evicted, before its eviction is
	// sent: when it fails, that eviction and every later one are not sent and the drain stops with a
	// RecordError (a full disk stops a drain before its next eviction, not after its last).
	Record func(ctx context.Context, p PodRef) error
}

// recorder records each eviction before it is sent, one at a time; after a failed write it
// refuses every later one.
type recorder struct {
	mu     sync.Mutex
	node   string
	record func(ctx context.Context, p PodRef) error
	err    error
}

func (r *recorder) before(ctx context.Context, p PodRef) error {
	if r == nil || r.record == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if err := r.record(ctx, p); err != nil {
		r.err = &RecordError{Node: r.node, Pod: p.String(), Err: err}
	}
	return r.err
}

// podState is what the drainer knows of one pod.
type podState struct {
	ref     PodRef
	evicted bool   // the eviction (or delete) was accepted
	last    string // the last reason it is still there
	pdb     string
	// waiting: it waits for its turn on budget pdb (the stall detector watches that budget).
	waiting bool
	told    string // the chain it was last reported blocked with
	held    string // the finalizers it was last reported held by
	chain   *runbook.BudgetChain
	// guard is the Service guard the pod passes before its eviction is sent (nil: off).
	guard *serviceGuard
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
	if t := d.Options.NodeTimeout.Duration; t > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, t, &NodeTimeoutError{Node: np.Node, After: t})
		defer stop()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// One watch on the node's pods, one on the budgets of the namespaces involved.
	podFactory := informers.NewSharedInformerFactoryWithOptions(d.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", np.Node).String()
	}))
	podInf := podFactory.Core().V1().Pods().Informer()
	// The budgets are shared by every drain in this process (nodegroups drains several nodes at
	// once): one watch, and one queue per budget, so that concurrent drains do not each spend
	// the same allowed disruptions.
	watched, releaseBudgets, err := sharedBudgets(ctx, d.Client, d.Watches)
	if err != nil {
		return fmt.Errorf("drain node %q: watch budgets: %w", np.Node, err)
	}
	defer releaseBudgets()
	bud := watched.bud
	var guard *serviceGuard
	if !d.Options.DisableServiceGuard {
		if guard, err = watched.serviceGuard(ctx); err != nil {
			return fmt.Errorf("drain node %q: %w", np.Node, err)
		}
	}

	states := map[types.UID]*podState{}
	var mu sync.Mutex
	gone := map[types.UID]chan struct{}{}
	for _, p := range np.Evict {
		states[types.UID(p.UID)] = &podState{ref: p, last: "waiting for its turn", guard: guard}
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
	defer func() {
		cancel(nil) // stops the informer; Shutdown waits for it
		podFactory.Shutdown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), podInf.HasSynced) {
		return fmt.Errorf("drain node %q: watch pods: %w", np.Node, context.Cause(ctx))
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

	stopNode, err := watchNode(ctx, d.Client, np.Node, cancel)
	if err != nil {
		return err
	}
	defer stopNode()
	rec := &recorder{node: np.Node, record: d.Record}

	x := newExplainer(d.Client, bud, min(5*time.Second, d.Options.stallTimeout()/4))
	stallDone := make(chan struct{})
	go func() {
		defer close(stallDone)
		d.watchStalls(ctx, np.Node, x, bud, states, &mu, gone, func(p PodRef) *corev1.Pod {
			obj, ok, _ := podInf.GetStore().GetByKey(p.Namespace + "/" + p.Name)
			if pod, isPod := obj.(*corev1.Pod); ok && isPod && string(pod.UID) == p.UID {
				return pod
			}
			return nil
		}, cancel)
	}()
	defer func() { cancel(nil); <-stallDone }()

	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	errs := make(chan error, len(np.Evict))
	for _, p := range np.Evict {
		uid := types.UID(p.UID)
		mu.Lock()
		ch, waiting := gone[uid]
		mu.Unlock()
		if !waiting {
			d.report(p, PodUpdate{State: runbook.PodGone})
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
			podNow := func() *corev1.Pod {
				obj, ok, _ := podInf.GetStore().GetByKey(p.Namespace + "/" + p.Name)
				if pod, isPod := obj.(*corev1.Pod); ok && isPod && pod.UID == uid {
					return pod
				}
				return nil
			}
			if err := d.evict(ctx, states[uid], &mu, bud, x, ch, func() { closeGone(uid) }, podNow, rec); err != nil {
				errs <- err
				cancel(err)
				return
			}
			select {
			case <-ch:
				d.report(p, PodUpdate{State: runbook.PodGone})
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
	var left []*podState
	mu.Lock()
	for uid := range gone {
		left = append(left, states[uid])
	}
	mu.Unlock()
	var deleted *NodeDeletedError
	if errors.As(context.Cause(ctx), &deleted) {
		return &NodeDeletedError{Node: np.Node, Left: len(left)}
	}
	// Out of time (or cancelled): say exactly what is left and why.
	be := &BlockedError{Node: np.Node, Cause: context.Cause(ctx)}
	sort.Slice(left, func(i, j int) bool { return left[i].ref.String() < left[j].ref.String() })
	for _, s := range left {
		mu.Lock()
		line := s.ref.String() + " " + s.last
		mu.Unlock()
		if s.pdb != "" {
			if st, ok := bud.status(s.pdb); ok && !s.evicted {
				line = fmt.Sprintf("%s blocked by PDB %s: needs %d healthy, has %d", s.ref, s.pdb, st.DesiredHealthy, st.CurrentHealthy)
				mu.Lock()
				if why := s.chain.Why(); why != "" {
					line += "; " + why
				}
				mu.Unlock()
				be.ByBudget = true
			}
		}
		be.Left = append(be.Left, line)
	}
	return be
}

// watchNode follows the drained node: when it is deleted (or already is), cancel stops the drain
// with a NodeDeletedError at once, instead of waiting for its pods to be collected.
func watchNode(ctx context.Context, client kubernetes.Interface, node string, cancel context.CancelCauseFunc) (stop func(), err error) {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
	}))
	inf := f.Core().V1().Nodes().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if n, ok := obj.(*corev1.Node); ok && n.Name == node {
				cancel(&NodeDeletedError{Node: node})
			}
		},
	})
	f.Start(ctx.Done())
	stop = func() {
		cancel(nil)
		f.Shutdown()
	}
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		var deleted *NodeDeletedError
		if errors.As(context.Cause(ctx), &deleted) {
			return stop, nil // the drain says it, with what was left
		}
		stop()
		return nil, fmt.Errorf("drain node %q: watch the node: %w", node, context.Cause(ctx))
	}
	if _, ok, _ := inf.GetStore().GetByKey(node); !ok {
		cancel(&NodeDeletedError{Node: node})
	}
	return stop, nil
}

// PodUpdate is what happened to one pod of a drain.
type PodUpdate struct {
	State  runbook.PodState // runbook.PodEvicted, PodGone or PodBlocked
	Reason string           // why it is blocked
	PDB    string           // namespace/name of the budget it waits for, when it is that
	Chain  *runbook.BudgetChain
}

func (d *Drainer) report(p PodRef, u PodUpdate) {
	if d.Progress != nil {
		d.Progress(p, u)
	}
}

// evict asks until the API accepts the eviction of one pod. A pod under one budget waits for its
// turn first: the budget's watch wakes as many waiters as it allows disruptions, so the API sees
// about one eviction per allowed disruption instead of a retry per pod every few seconds. An
// unhealthy pod whose budget says unhealthyPodEvictionPolicy: AlwaysAllow skips the queue: the API
// lets it go whatever the budget's count.
//
// What the API answers decides what happens next:
//   - accepted, or the pod is gone (404): done;
//   - 409: gone only if a GET by name finds nothing or another pod (a StatefulSet's successor);
//     otherwise it is asked again;
//   - 429 from the budget: back in the budget's queue;
//   - 403 because the namespace is terminating: done if the pod is already being deleted (as kubectl
//     does: the eviction can never succeed, the deletion will), otherwise asked again;
//   - a transient error (5xx, the 504 of a budget update conflict, 429 of throttling, a broken
//     connection): asked again after a jittered backoff, never sooner than a Retry-After;
//   - anything else fails the drain.
//
// It returns nil when the pod was evicted, is gone, or the drain is over (ctx or gone).
func (d *Drainer) evict(ctx context.Context, s *podState, mu *sync.Mutex, bud *budgets, x *explainer, gone <-chan struct{}, closeGone func(), podNow func() *corev1.Pod, rec *recorder) error {
	uid := types.UID(s.ref.UID)
	pdbKey := ""
	if len(s.ref.PDBs) == 1 {
		pdbKey = s.ref.PDBs[0]
		mu.Lock()
		s.pdb = pdbKey
		mu.Unlock()
	}
	setLast := func(why string) { mu.Lock(); s.last = why; mu.Unlock() }
	reported := false
	refused := func(why, pdb string) {
		setLast(why)
		if !reported {
			d.report(s.ref, PodUpdate{State: runbook.PodBlocked, Reason: why, PDB: pdb})
			reported = true
		}
	}
	markGone := func(why string) {
		mu.Lock()
		s.evicted, s.last = true, why
		mu.Unlock()
		closeGone() // the watch may see the deletion too: closing is idempotent
	}
	// later waits before the next attempt; false: the drain is over or the pod went meanwhile.
	later := func(wait time.Duration) bool {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-gone:
			return false
		case <-timer.C:
			return true
		}
	}
	// look asks the API for the pod by name after the answer err: done says the matter is settled
	// (the pod is gone — none by that name, or another UID —, the look-up failed, or the drain is
	// over) and evict returns result; otherwise p is our pod, still there.
	look := func(answer error) (p *corev1.Pod, done bool, result error) {
		err := kube.Retry(ctx, nil, func(ctx context.Context) error {
			var err error
			p, err = d.Client.CoreV1().Pods(s.ref.Namespace).Get(ctx, s.ref.Name, metav1.GetOptions{})
			return err
		})
		switch {
		case apierrors.IsNotFound(err) || (err == nil && p.UID != uid):
			markGone("is gone")
			return nil, true, nil
		case err != nil && ctx.Err() != nil:
			return nil, true, nil
		case err != nil:
			return nil, true, fmt.Errorf("evict %s: %w; and looking it up failed: %w", s.ref, answer, err)
		}
		return p, false, nil
	}
	if s.guard != nil {
		// The guard first, then the budget's queue: a pod that waits for its Service holds no
		// budget slot. Marked leaving from here until the eviction is sent.
		if ok, err := d.passGuard(ctx, s, mu, gone); !ok || err != nil {
			return err
		}
		defer func() {
			mu.Lock()
			sent := s.evicted
			mu.Unlock()
			if !sent {
				s.guard.stay(uid)
			}
		}()
	}
	backoff := kube.Backoff()
	recorded := false
	for {
		granted := false
		if pdbKey != "" && !bud.alwaysAllows(pdbKey, podNow()) {
			var stop bool
			granted, stop = d.turn(ctx, bud, pdbKey, gone, func() {
				if st, ok := bud.status(pdbKey); ok {
					mu.Lock()
					s.waiting = true
					first := !reported
					mu.Unlock()
					if first {
						// The first report says why at once; watchStalls reports it again when the chain changes.
						d.tellBlocked(s, mu, x.chain(ctx, pdbKey, podNow()))
						reported = true
					}
					setLast(fmt.Sprintf("waits for PDB %s: needs %d healthy, has %d", pdbKey, st.DesiredHealthy, st.CurrentHealthy))
				}
			})
			mu.Lock()
			s.waiting = false
			mu.Unlock()
			if stop {
				return nil
			}
		}
		if !recorded {
			// Journaled before it is sent; a failed write sends nothing more.
			if err := rec.before(ctx, s.ref); err != nil {
				if granted {
					bud.returned(pdbKey)
				}
				return err
			}
			recorded = true
		}
		if ctx.Err() != nil { // the drain stopped meanwhile (another pod's record failed)
			if granted {
				bud.returned(pdbKey)
			}
			return nil
		}
		err := d.send(ctx, s.ref, uid)
		budgetRefused := kube.BudgetRefusal(err)
		if granted {
			if err == nil || budgetRefused {
				bud.answered(pdbKey)
			} else {
				bud.returned(pdbKey)
			}
		}
		switch {
		case err == nil:
			mu.Lock()
			s.evicted, s.last = true, "is terminating"
			mu.Unlock()
			d.report(s.ref, PodUpdate{State: runbook.PodEvicted})
			return nil
		case apierrors.IsNotFound(err):
			markGone("is gone")
			return nil
		case apierrors.IsConflict(err):
			// The UID precondition failed, or something else changed: look before believing it gone.
			if _, done, result := look(err); done {
				return result
			}
			refused("is refused: "+err.Error(), "")
			if !later(kube.RetryAfter(&backoff, err)) {
				return nil
			}
		case budgetRefused:
			if pdbKey != "" {
				continue // back in the budget's queue
			}
			// A budget the plan did not know (created since, or one of several): wait and ask again.
			refused("is refused: "+err.Error(), "")
			if !later(kube.RetryAfter(&backoff, err)) {
				return nil
			}
		case apierrors.IsForbidden(err) && apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
			p, done, result := look(err)
			switch {
			case done:
				return result
			case p.DeletionTimestamp != nil:
				// Its namespace is being deleted and so is the pod: wait for it to go.
				mu.Lock()
				s.evicted, s.last = true, "is terminating with its namespace"
				mu.Unlock()
				d.report(s.ref, PodUpdate{State: runbook.PodEvicted})
				return nil
			}
			refused("waits: its namespace is terminating and the pod is not deleted yet", "")
			if !later(kube.RetryAfter(&backoff, err)) {
				return nil
			}
		case apierrors.IsInternalError(err) && len(s.ref.PDBs) > 1:
			return fmt.Errorf("%s: the eviction API refuses it because more than one PodDisruptionBudget covers it (%s): make their selectors disjoint", s.ref, strings.Join(s.ref.PDBs, ", "))
		case ctx.Err() != nil:
			return nil
		case kube.Transient(err):
			wait := kube.RetryAfter(&backoff, err)
			setLast(fmt.Sprintf("is being retried after %v: %v", wait.Round(time.Millisecond), err))
			if !later(wait) {
				return nil
			}
		default:
			return fmt.Errorf("evict %s: %w", s.ref, err)
		}
	}
}

// send asks the API to evict (or, with DisableEviction, delete) the pod with this UID.
func (d *Drainer) send(ctx context.Context, p PodRef, uid types.UID) error {
	opts := &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, GracePeriodSeconds: d.Options.GracePeriodSeconds}
	if d.Options.DisableEviction {
		return d.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, *opts)
	}
	return d.Client.PolicyV1().Evictions(p.Namespace).Evict(ctx, &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name},
		DeleteOptions: opts,
	})
}
