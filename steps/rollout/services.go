package rollout

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/drydock-dev/drydock/internal/kube"
)

// serviceBase is a Service as it was when the step began: its ready endpoints, and the replicas of
// the controllers of its pods (so that a workload scaled down on purpose is not taken for damage).
type serviceBase struct {
	Ready  int              `json:"ready"`
	Owners map[string]int32 `json:"owners,omitempty"` // "ReplicaSet/name" → spec.replicas then
}

// serviceGate compares each Service's ready endpoints (EndpointSlices) with the step's baseline.
type serviceGate struct {
	client   kubernetes.Interface
	services cache.SharedIndexInformer
	slices   cache.SharedIndexInformer
	pods     cache.SharedIndexInformer
	watched  func(ns string) bool
	base     map[string]serviceBase // namespace/name → baseline

	mu       sync.Mutex
	ownersAt time.Time
	owners   map[string]int32 // namespace/Kind/name → spec.replicas now (read at most every 5s, only when needed)
}

// readyEndpoints counts the ready endpoints of a Service over its EndpointSlices (an endpoint in an
// IPv4 and an IPv6 slice counts once; a nil ready condition means ready, as the API says).
func (s *serviceGate) readyEndpoints(ns, name string) int {
	objs, _ := s.slices.GetIndexer().ByIndex(cache.NamespaceIndex, ns)
	seen := map[string]bool{}
	for _, obj := range objs {
		es := obj.(*discoveryv1.EndpointSlice)
		if es.Labels[discoveryv1.LabelServiceName] != name {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			id := strings.Join(ep.Addresses, ",")
			if ep.TargetRef != nil && ep.TargetRef.UID != "" {
				id = string(ep.TargetRef.UID)
			}
			seen[id] = true
		}
	}
	return len(seen)
}

// ownersOf lists the controllers (ReplicaSet, StatefulSet, ReplicationController) of the pods svc selects.
func (s *serviceGate) ownersOf(svc *corev1.Service) []string {
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	objs, _ := s.pods.GetIndexer().ByIndex(cache.NamespaceIndex, svc.Namespace)
	set := map[string]bool{}
	for _, obj := range objs {
		p := obj.(*corev1.Pod)
		if !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		if c := metav1.GetControllerOf(p); c != nil {
			switch c.Kind {
			case "ReplicaSet", "StatefulSet", "ReplicationController":
				set[c.Kind+"/"+c.Name] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// replicas reads a controller's spec.replicas (0 when it is gone).
func (s *serviceGate) replicas(ctx context.Context, ns, owner string) (int32, error) {
	kind, name, _ := strings.Cut(owner, "/")
	var r *int32
	err := kube.Retry(ctx, nil, func(ctx context.Context) error {
		switch kind {
		case "ReplicaSet":
			o, err := s.client.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				r = o.Spec.Replicas
			}
			return err
		case "StatefulSet":
			o, err := s.client.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				r = o.Spec.Replicas
			}
			return err
		default:
			o, err := s.client.CoreV1().ReplicationControllers(ns).Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				r = o.Spec.Replicas
			}
			return err
		}
	})
	switch {
	case apierrors.IsNotFound(err):
		return 0, nil
	case err != nil:
		return 0, err
	case r == nil:
		return 1, nil
	}
	return *r, nil
}

// baseline records every Service with a selector in the watched namespaces.
func (s *serviceGate) baseline(ctx context.Context) (map[string]serviceBase, error) {
	out := map[string]serviceBase{}
	for _, obj := range s.services.GetStore().List() {
		svc := obj.(*corev1.Service)
		if !s.watched(svc.Namespace) || len(svc.Spec.Selector) == 0 {
			continue
		}
		b := serviceBase{Ready: s.readyEndpoints(svc.Namespace, svc.Name), Owners: map[string]int32{}}
		if b.Ready == 0 {
			continue // nothing to keep
		}
		for _, o := range s.ownersOf(svc) {
			n, err := s.replicas(ctx, svc.Namespace, o)
			if err != nil {
				return nil, fmt.Errorf("health gates: read %s in %s for the baseline of Service %s/%s: %w", o, svc.Namespace, svc.Namespace, svc.Name, err)
			}
			b.Owners[o] = n
		}
		out[svc.Namespace+"/"+svc.Name] = b
	}
	return out, nil
}

// check lists the Services with fewer ready endpoints than at the baseline, less what their
// controllers were scaled down by since.
func (s *serviceGate) check(ctx context.Context) gateResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := gateResult{}
	r.Name, r.Kind = "services", "services"
	keys := make([]string, 0, len(s.base))
	for k := range s.base {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		b := s.base[key]
		ns, name, _ := strings.Cut(key, "/")
		ready := s.readyEndpoints(ns, name)
		if ready >= b.Ready {
			continue
		}
		want, why := b.Ready, ""
		if _, ok, _ := s.services.GetStore().GetByKey(key); !ok {
			continue // the Service was deleted: nothing serves through it any more
		}
		down := 0
		for o, was := range b.Owners {
			now, err := s.current(ctx, ns, o)
			if err != nil {
				why = fmt.Sprintf(" (could not read %s: %v)", o, err)
				continue
			}
			if now < was {
				down += int(was - now)
			}
		}
		want -= down
		if ready < want {
			r.problems = append(r.problems, fmt.Sprintf("Service %s has %d ready endpoint(s), %d before the step%s", key, ready, want, why))
		}
	}
	r.Value = fmt.Sprintf("%d below baseline", len(r.problems))
	return r
}

// current is a controller's replicas now, read at most every 5 seconds.
func (s *serviceGate) current(ctx context.Context, ns, owner string) (int32, error) {
	if time.Since(s.ownersAt) > 5*time.Second {
		s.owners, s.ownersAt = map[string]int32{}, time.Now()
	}
	key := ns + "/" + owner
	if n, ok := s.owners[key]; ok {
		return n, nil
	}
	n, err := s.replicas(ctx, ns, owner)
	if err == nil {
		s.owners[key] = n
	}
	return n, err
}
