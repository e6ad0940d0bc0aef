package rehearse

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// placer binds a StatefulSet's first pods (made by the copy's StatefulSet controller, by name) to the
// nodes their originals ran on. While it works every node of the copy is cordoned, so the scheduler
// places nothing but the DaemonSets' pods (which tolerate it); binding is not scheduling, and a cordon
// does not refuse it. When every copied pod is placed the nodes are uncordoned, and from then on the
// scheduler places the replacements as it would on the cluster. (Deployments' and ReplicaSets' pods
// are made on their nodes: stamp.)
type placer struct {
	client kubernetes.Interface
	mu     sync.Mutex
	spots  []*spots // one per workload with pods to place
	placed int
	want   int
	err    error
}

type spots struct {
	namespace string
	selector  labels.Selector
	byName    map[string]string // a StatefulSet's pod -> its node
}

func newPlacer(c kubernetes.Interface, ws []Workload) (*placer, error) {
	p := &placer{client: c}
	for _, w := range ws {
		if w.Kind != "StatefulSet" || len(w.Pods) == 0 {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(w.Selector)
		if err != nil {
			return nil, fmt.Errorf("rehearse: %s %s/%s: selector: %w", w.Kind, w.Namespace, w.Name, err)
		}
		sp := &spots{namespace: w.Namespace, selector: sel, byName: map[string]string{}}
		for _, pod := range w.Pods {
			sp.byName[pod.Name] = pod.Node
		}
		p.spots = append(p.spots, sp)
		p.want += len(w.Pods)
	}
	return p, nil
}

// spot takes the node a pod should run on ("" if none is left for it).
func (p *placer) spot(pod *corev1.Pod) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, sp := range p.spots {
		if sp.namespace != pod.Namespace || !sp.selector.Matches(labels.Set(pod.Labels)) {
			continue
		}
		if n, ok := sp.byName[pod.Name]; ok {
			delete(sp.byName, pod.Name)
			return n
		}
	}
	return ""
}

// run binds pods as they appear unscheduled, until ctx ends; done is closed when every pod to place
// is bound.
func (p *placer) run(ctx context.Context, done chan<- struct{}) {
	if p.want == 0 {
		close(done)
		return
	}
	factory := informers.NewSharedInformerFactoryWithOptions(p.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", "").String()
	}))
	inf := factory.Core().V1().Pods().Informer()
	q := workqueue.NewTyped[*corev1.Pod]()
	enqueue := func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok && pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil {
			q.Add(pod)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue}); err != nil {
		p.fail(err)
		close(done)
		return
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	go func() { <-ctx.Done(); q.ShutDown() }()
	var once sync.Once
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				pod, quit := q.Get()
				if quit {
					return
				}
				if node := p.spot(pod); node != "" {
					err := p.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, UID: pod.UID},
						Target: corev1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{})
					if err != nil && ctx.Err() == nil {
						p.fail(fmt.Errorf("rehearse: bind pod %s/%s to node %s: %w", pod.Namespace, pod.Name, node, err))
					}
					p.mu.Lock()
					p.placed++
					all := p.placed >= p.want
					p.mu.Unlock()
					if all {
						once.Do(func() { close(done) })
					}
				}
				q.Done(pod)
			}
		}()
	}
	wg.Wait()
}

func (p *placer) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

func (p *placer) progress() (placed, want int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.placed, p.want, p.err
}
