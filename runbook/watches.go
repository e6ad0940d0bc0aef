package runbook

import (
	"sync"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Watches is a run's shared informer factory: in one session every step, health gate and drain
// watches pods, budgets and nodes through it, so that the run holds one watch per resource however
// many of them look. Informers start when a step asks (Start after taking them from Factory) and
// all stop when the session ends. A step registers its own event handlers and removes them when it
// is done; it never shuts the factory down.
type Watches struct {
	client  kubernetes.Interface
	once    sync.Once
	factory informers.SharedInformerFactory
	stop    chan struct{}
	stopped sync.Once
}

// NewWatches returns the watches of a session on client.
func NewWatches(client kubernetes.Interface) *Watches {
	return &Watches{client: client, stop: make(chan struct{})}
}

// Factory is the shared factory; its informers list and watch the whole cluster (no resync).
func (w *Watches) Factory() informers.SharedInformerFactory {
	w.once.Do(func() { w.factory = informers.NewSharedInformerFactory(w.client, 0) })
	return w.factory
}

// Start starts the informers taken from Factory so far (again after taking more; started ones go on).
func (w *Watches) Start() { w.Factory().Start(w.stop) }

// Shutdown stops every informer and waits for them (the engine, when the session ends).
func (w *Watches) Shutdown() {
	w.stopped.Do(func() {
		close(w.stop)
		if w.factory != nil {
			w.factory.Shutdown()
		}
	})
}
