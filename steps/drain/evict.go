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

	"golang.org/x/sync/singleflight"
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

// RecordError: the journal write that records an eviction before it is sent failed; the drain
// stopped, and sent no eviction after it.
type RecordError struct {
	Node, Pod string
	Err       error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("journal the eviction of %s before sending it: %v; no eviction was sent after it", e.Pod, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// NodeDeletedError: the node was deleted while it was drained (an autoscaler, a person); Left is
// how many of the plan's pods were still on it. The drain stops at once: a deleted node's pods are
// removed by the cluster (pod garbage collection), not evicted, and none of them is the drain's to wait for.
type NodeDeletedError struct {
	Node string
	Left int
}

func (e *NodeDeletedError) Error() string {
	return fmt.Sprintf("drain node %q: the node was deleted while drydock drained it, with %d pod(s) of the plan still on it: "+
		"they were not evicted (their budgets were not asked); the cluster deletes them and their controllers recreate them elsewhere", e.Node, e.Left)
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

// Unwrap is why the drain stopped: the step's or the node's timeout, or an interruption.
func (e *BlockedError) Unwrap() error { return e.Cause }

// NodeTimeoutError is the cause of a drain that ran out of its nodeTimeout.
type NodeTimeoutError struct {
	Node  string
	After time.Duration
}

func (e *NodeTimeoutError) Error() string {
	return fmt.Sprintf("nodeTimeout %s ran out", e.After)
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

var shared struct {
	sync.Mutex
	bySource map[any]*sharedEntry
}

// sharedEntry is the watches the drains of one source (the run's Watches, or a client) share: the
// budgets, and once a drain guards Services, the EndpointSlices.
type sharedEntry struct {
	bud     *budgets
	refs    int
	stops   []func()
	synced  cache.InformerSynced
	factory informers.SharedInformerFactory
	start   func()
	guard   *serviceGuard
	guarded cache.InformerSynced
}

// sharedBudgets returns the budget tracker of the run's watches (one budget watch for the whole
// run, shared with the health gates), or without them (a Drainer used alone) the process's tracker
// for client with a watch of its own. The first use starts it; release ends it with the last drain.
func sharedBudgets(ctx context.Context, client kubernetes.Interface, w *runbook.Watches) (*sharedEntry, func(), error) {
	var source any = client
	if w != nil {
		source = w
	}
	shared.Lock()
	if shared.bySource == nil {
		shared.bySource = map[any]*sharedEntry{}
	}
	e := shared.bySource[source]
	if e == nil {
		var err error
		if e, err = newSharedEntry(client, w); err != nil {
			shared.Unlock()
			return nil, nil, err
		}
		shared.bySource[source] = e
	}
	e.refs++
	shared.Unlock()
	release := func() {
		shared.Lock()
		defer shared.Unlock()
		e.refs--
		if e.refs == 0 {
			delete(shared.bySource, source)
			go func() {
				for i := len(e.stops) - 1; i >= 0; i-- {
					e.stops[i]()
				}
			}()
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), e.synced) {
		release()
		return nil, nil, context.Cause(ctx)
	}
	return e, release, nil
}

// newSharedEntry starts the budget watch of the run's watches w, or without them one of its own.
//
//nolint:contextcheck // the watches outlive the drain that started them (released with the last one)
func newSharedEntry(client kubernetes.Interface, w *runbook.Watches) (*sharedEntry, error) {
	e := &sharedEntry{}
	if w != nil {
		e.factory, e.start = w.Factory(), w.Start
	} else {
		wctx, cancel := context.WithCancel(context.Background())
		f := informers.NewSharedInformerFactory(client, 0)
		e.factory, e.start = f, func() { f.Start(wctx.Done()) }
		e.stops = append(e.stops, func() { cancel(); f.Shutdown() })
	}
	inf := e.factory.Policy().V1().PodDisruptionBudgets().Informer()
	bud := &budgets{waiters: map[string][]chan struct{}{}, inflight: map[string]int{}, spent: map[string]int{}, spentAt: map[string]time.Time{}, seenRV: map[string]string{}, store: inf.GetStore()}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { bud.check(keyOf(obj)) },
		UpdateFunc: func(_, obj any) { bud.check(keyOf(obj)) },
	})
	if err != nil {
		for _, stop := range e.stops {
			stop()
		}
		return nil, err
	}
	e.start()
	if w != nil {
		e.stops = append(e.stops, func() { _ = inf.RemoveEventHandler(reg) })
	}
	e.bud, e.synced = bud, inf.HasSynced
	return e, nil
}

// serviceGuard returns the entry's Service guard, watching EndpointSlices from its first use.
func (e *sharedEntry) serviceGuard(ctx context.Context) (*serviceGuard, error) {
	shared.Lock()
	if e.guard == nil {
		inf := e.factory.Discovery().V1().EndpointSlices().Informer()
		g := newServiceGuard(inf.GetIndexer())
		reg, err := inf.AddEventHandler(g.handler())
		if err != nil {
			shared.Unlock()
			return nil, err
		}
		e.start()
		e.stops = append(e.stops, func() { _ = inf.RemoveEventHandler(reg) })
		e.guard, e.guarded = g, reg.HasSynced
	}
	g, synced := e.guard, e.guarded
	shared.Unlock()
	if !cache.WaitForCacheSync(ctx.Done(), synced) {
		return nil, fmt.Errorf("watch EndpointSlices: %w", context.Cause(ctx))
	}
	return g, nil
}

func keyOf(obj any) string {
	k, _ := cache.MetaNamespaceKeyFunc(obj)
	return k
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

// ErrBlocked reports whether err is a drain blocked by a budget.
func ErrBlocked(err error) bool {
	var be *BlockedError
	return errors.As(err, &be) && be.ByBudget
}

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
