package drain

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// defaultEndpointSettle is how long a new ready endpoint must have been ready before the Service
// guard counts it: the time kube-proxy (on every node) needs to route to it.
const defaultEndpointSettle = 5 * time.Second

// endpointSettle is Options.EndpointSettle or its default.
func (o Options) endpointSettle() time.Duration {
	if o.EndpointSettle.Duration > 0 {
		return o.EndpointSettle.Duration
	}
	return defaultEndpointSettle
}

// serviceGuard keeps a drain from taking a Service's last ready endpoint away: a pod that is a ready
// endpoint of a Service leaves only while another ready endpoint of that Service, not itself on its
// way out, has been ready long enough for kube-proxy to route to it (Options.EndpointSettle). It follows the cluster's EndpointSlices; one guard serves
// every drain of the process (nodegroups drains a batch's nodes at once, and their pods may back
// the same Services).
type serviceGuard struct {
	slices cache.Indexer
	now    func() time.Time

	mu sync.Mutex
	// ready: Service namespace/name → its ready endpoints' pods → since when (zero: ready before the
	// guard began watching, settled).
	ready map[string]map[types.UID]time.Time
	// leaving: pods whose eviction a drain of this process is about to send or sent, still counted
	// ready by the EndpointSlices; they are forgotten when they leave their Services' ready endpoints.
	leaving map[types.UID]bool
	changed chan struct{} // closed and replaced when ready changes
}

func newServiceGuard(slices cache.Indexer) *serviceGuard {
	return &serviceGuard{slices: slices, now: time.Now,
		ready: map[string]map[types.UID]time.Time{}, leaving: map[types.UID]bool{}, changed: make(chan struct{})}
}

// handler keeps the guard's view of the ready endpoints up to date.
func (g *serviceGuard) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc:    func(obj any, initial bool) { g.observe(obj, initial) },
		UpdateFunc: func(_, obj any) { g.observe(obj, false) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			g.observe(obj, false)
		},
	}
}

// observe recounts the ready endpoints of the Service of the EndpointSlice obj.
func (g *serviceGuard) observe(obj any, initial bool) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || es.Labels[discoveryv1.LabelServiceName] == "" {
		return
	}
	key := es.Namespace + "/" + es.Labels[discoveryv1.LabelServiceName]
	now := g.now()
	objs, _ := g.slices.ByIndex(cache.NamespaceIndex, es.Namespace)
	pods := readyPods(objs, es.Labels[discoveryv1.LabelServiceName])
	g.mu.Lock()
	defer g.mu.Unlock()
	before := g.ready[key]
	after := make(map[types.UID]time.Time, len(pods))
	for uid := range pods {
		since, known := before[uid]
		switch {
		case known:
		case initial:
			since = time.Time{}
		default:
			since = now
		}
		after[uid] = since
	}
	for uid := range before {
		if _, still := after[uid]; !still {
			delete(g.leaving, uid)
		}
	}
	if len(after) == 0 {
		delete(g.ready, key)
	} else {
		g.ready[key] = after
	}
	close(g.changed)
	g.changed = make(chan struct{})
}

// readyPods is the set of pods that are ready endpoints of Service name over the EndpointSlices
// objs (one namespace's): a pod in an IPv4 and an IPv6 slice counts once; a nil ready condition
// means ready, as the API says.
func readyPods(objs []any, name string) map[types.UID]bool {
	out := map[types.UID]bool{}
	for _, obj := range objs {
		es, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok || es.Labels[discoveryv1.LabelServiceName] != name {
			continue
		}
		for _, ep := range es.Endpoints {
			if (ep.Conditions.Ready == nil || *ep.Conditions.Ready) && ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" && ep.TargetRef.UID != "" {
				out[ep.TargetRef.UID] = true
			}
		}
	}
	return out
}

// guardVerdict is what the guard says of one pod now.
type guardVerdict struct {
	// waitFor: the Services the pod is the last counted ready endpoint of (sorted); empty: it may go.
	waitFor []string
	// alone: some of them have no other ready endpoint at all, settled or not, nor one on its way
	// out: nothing is coming unless something makes a replacement (a surge).
	alone bool
	// next: when an endpoint not yet settled settles (zero: none).
	next time.Time
	// changed is closed when the endpoints change.
	changed <-chan struct{}
}

// judge says whether pod uid may leave now, counting endpoints ready for settle; when it may, the pod is marked leaving at once, so that
// a concurrent judgement of another endpoint of the same Service does not count it.
func (g *serviceGuard) judge(uid types.UID, settle time.Duration) guardVerdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	v := guardVerdict{changed: g.changed}
	now, serves := g.now(), false
	for svc, pods := range g.ready {
		if _, backs := pods[uid]; !backs {
			continue
		}
		serves = true
		settled, others := false, 0
		for other, since := range pods {
			if other == uid || g.leaving[other] {
				continue
			}
			others++
			at := since.Add(settle)
			if since.IsZero() || !now.Before(at) {
				settled = true
				break
			}
			if v.next.IsZero() || at.Before(v.next) {
				v.next = at
			}
		}
		if !settled {
			v.waitFor = append(v.waitFor, svc)
			v.alone = v.alone || (others == 0 && !g.anyLeaving(pods))
		}
	}
	sort.Strings(v.waitFor)
	if serves && len(v.waitFor) == 0 {
		g.leaving[uid] = true // forgotten when it leaves its Services' ready endpoints
	}
	return v
}

func (g *serviceGuard) anyLeaving(pods map[types.UID]time.Time) bool {
	for uid := range pods {
		if g.leaving[uid] {
			return true
		}
	}
	return false
}

// stay undoes judge's mark: the pod's eviction was not sent after all.
func (g *serviceGuard) stay(uid types.UID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.leaving, uid)
}

// LastEndpointError: the Service guard waited stallTimeout for another ready endpoint of a Service
// whose last ready endpoint a pod of the drain is, and none came.
type LastEndpointError struct {
	Pod      string
	Services []string
	Waited   time.Duration
}

func (e *LastEndpointError) Error() string {
	return fmt.Sprintf("%s is the last ready endpoint of Service %s and no other became ready in %s: evicting it would stop the Service "+
		"(fix: make a replacement Ready on another node (a second replica, an uncordoned node with room), or --disable-service-guard (disableServiceGuard: true) to accept the outage)",
		e.Pod, strings.Join(e.Services, ", "), e.Waited)
}

// guardWait waits until the guard lets the pod go (it is then marked leaving), the pod is gone, or
// the drain is over (ok false, err nil), or stall passed with no other endpoint ready (a
// LastEndpointError). waiting is told each time the Services waited for change; alone (once) when
// nothing else serves them.
func (g *serviceGuard) guardWait(ctx context.Context, p PodRef, settle, stall time.Duration, gone <-chan struct{}, waiting func(v guardVerdict)) (ok bool, err error) {
	uid := types.UID(p.UID)
	start, told := g.now(), ""
	for {
		v := g.judge(uid, settle)
		if len(v.waitFor) == 0 {
			return true, nil
		}
		if key := strings.Join(v.waitFor, ",") + fmt.Sprint(v.alone); key != told {
			waiting(v)
			told = key
		}
		if waited := g.now().Sub(start); waited >= stall {
			return false, &LastEndpointError{Pod: p.String(), Services: v.waitFor, Waited: waited.Round(time.Second)}
		}
		wake := stall - g.now().Sub(start)
		if !v.next.IsZero() {
			wake = min(wake, v.next.Sub(g.now())+10*time.Millisecond)
		}
		timer := time.NewTimer(wake)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false, nil
		case <-gone:
			timer.Stop()
			return false, nil
		case <-v.changed:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// passGuard waits until the Service guard lets s's pod go (ok), saying why it waits; a pod the plan
// surges (the only endpoint of a Service, of a Deployment that surges) has its Deployment restarted
// first, once, when nothing else serves the Service.
func (d *Drainer) passGuard(ctx context.Context, s *podState, mu *sync.Mutex, gone <-chan struct{}) (ok bool, err error) {
	settle, surged := d.Options.endpointSettle(), false
	return s.guard.guardWait(ctx, s.ref, settle, d.Options.stallTimeout(), gone, func(v guardVerdict) {
		svc := strings.Join(v.waitFor, ", ")
		why := fmt.Sprintf("waits: the last ready endpoint of Service %s; it goes once another has been ready for %s", svc, settle)
		if v.alone && s.ref.Surge != "" && !surged {
			surged = true
			if err := restartDeployment(ctx, d.Client, s.ref.Namespace, s.ref.Surge); err != nil {
				why += fmt.Sprintf("; restarting Deployment %s/%s to make one failed: %v", s.ref.Namespace, s.ref.Surge, err)
			} else {
				why = fmt.Sprintf("waits: the only ready endpoint of Service %s; drydock restarted Deployment %s/%s (rollout restart) so that a replacement is Ready elsewhere first", svc, s.ref.Namespace, s.ref.Surge)
			}
		}
		mu.Lock()
		s.last = why
		mu.Unlock()
		d.report(s.ref, PodUpdate{State: runbook.PodBlocked, Reason: why})
	})
}

// restartDeployment is `kubectl rollout restart`: a new pod-template annotation, so that the
// Deployment replaces its pods, surging before it removes one.
func restartDeployment(ctx context.Context, client kubernetes.Interface, ns, name string) error {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, restartedAtAnnotation, time.Now().Format(time.RFC3339))
	return kube.Retry(ctx, nil, func(ctx context.Context) error {
		_, err := client.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "drydock"})
		return err
	})
}

// restartedAtAnnotation is the annotation `kubectl rollout restart` sets.
const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// loadEndpoints reads the EndpointSlices once, for the Service guard's part of the plan.
func (pl *Planner) loadEndpoints(ctx context.Context) error {
	if pl.Options.DisableServiceGuard || pl.slices != nil {
		return nil
	}
	list, err := pl.Client.DiscoveryV1().EndpointSlices(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list EndpointSlices (the Service guard; --disable-service-guard turns it off): %w", err)
	}
	pl.slices = map[string][]any{}
	for i := range list.Items {
		es := &list.Items[i]
		pl.slices[es.Namespace] = append(pl.slices[es.Namespace], es)
	}
	return nil
}

// guardPlan is the Service guard's part of a pod's plan: the Services it is a ready endpoint of, and
// for each of which it is the only one, a surge (its Deployment restarted first) or a blocker.
func (pl *Planner) guardPlan(ctx context.Context, node string, p *corev1.Pod, r *PodRef) []Blocker {
	var out []Blocker
	for _, svc := range pl.servicesOf(p) {
		r.Services = append(r.Services, p.Namespace+"/"+svc)
		if len(readyPods(pl.slices[p.Namespace], svc)) > 1 {
			continue
		}
		dep, why := pl.surgeable(ctx, p)
		if why == "" {
			r.Surge = dep
			continue
		}
		out = append(out, Blocker{Kind: BlockLastEndpoint, Node: node, Pod: r.String(), Fatal: true,
			Message: fmt.Sprintf("%s is the only ready endpoint of Service %s/%s and %s: evicting it stops the Service until its replacement is Ready", r, p.Namespace, svc, why),
			Fix:     "run a second replica on another node first, or --disable-service-guard (disableServiceGuard: true) to accept the outage"})
	}
	return out
}

// servicesOf lists the Services (names, in the pod's namespace) the pod is a ready endpoint of.
func (pl *Planner) servicesOf(p *corev1.Pod) []string {
	seen := map[string]bool{}
	for _, obj := range pl.slices[p.Namespace] {
		es := obj.(*discoveryv1.EndpointSlice)
		svc := es.Labels[discoveryv1.LabelServiceName]
		if svc == "" || seen[svc] {
			continue
		}
		if readyPods([]any{es}, svc)[p.UID] {
			seen[svc] = true
		}
	}
	out := make([]string, 0, len(seen))
	for svc := range seen {
		out = append(out, svc)
	}
	sort.Strings(out)
	return out
}

// surgeable returns the Deployment of p when a rollout restart would make a replacement Ready
// before it removes p (RollingUpdate with no unavailable pod allowed, not paused); otherwise why not.
func (pl *Planner) surgeable(ctx context.Context, p *corev1.Pod) (string, string) {
	c := metav1.GetControllerOf(p)
	if c == nil || c.Kind != "ReplicaSet" {
		return "", "no Deployment replaces it before it goes"
	}
	rs, err := pl.Client.AppsV1().ReplicaSets(p.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Sprintf("its ReplicaSet could not be read (%v)", err)
	}
	dc := metav1.GetControllerOf(rs)
	if dc == nil || dc.Kind != "Deployment" {
		return "", "no Deployment replaces it before it goes"
	}
	dep, err := pl.Client.AppsV1().Deployments(p.Namespace).Get(ctx, dc.Name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Sprintf("its Deployment could not be read (%v)", err)
	}
	if why := surgeBlocked(dep); why != "" {
		return "", fmt.Sprintf("its Deployment %s %s", dep.Name, why)
	}
	return dep.Name, ""
}

// surgeBlocked says why a rollout restart of dep would not start a new pod before it stops an old
// one ("": it would).
func surgeBlocked(dep *appsv1.Deployment) string {
	if dep.Spec.Paused {
		return "is paused (a restart would wait)"
	}
	ru := dep.Spec.Strategy.RollingUpdate
	if dep.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return "uses the Recreate strategy (a restart stops the pod first)"
	}
	replicas := int(ptr.Deref(dep.Spec.Replicas, 1))
	surge, unavailable := intstr.FromString("25%"), intstr.FromString("25%")
	if ru != nil && ru.MaxSurge != nil {
		surge = *ru.MaxSurge
	}
	if ru != nil && ru.MaxUnavailable != nil {
		unavailable = *ru.MaxUnavailable
	}
	s, err1 := intstr.GetScaledValueFromIntOrPercent(&surge, replicas, true)
	u, err2 := intstr.GetScaledValueFromIntOrPercent(&unavailable, replicas, false)
	if err1 != nil || err2 != nil || s < 1 || u > 0 {
		return fmt.Sprintf("allows %d unavailable and %d surge (a restart would not start a replacement first: maxUnavailable 0 and maxSurge 1 would)", u, s)
	}
	return ""
}
