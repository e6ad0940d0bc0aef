package drain

// The process-global registry of shared watches (the budgets and, for the Service guard, the
// EndpointSlices), one entry per source (the run's Watches, or a client), so that the drains of a
// nodegroups batch wait in one queue.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/drydock-dev/drydock/runbook"
)

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
