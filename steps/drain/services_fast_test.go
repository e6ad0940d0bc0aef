package drain

// The fast tier of the Service guard: which pod may leave when, counted over EndpointSlices, and
// what the plan says of a Service's only endpoint.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// slice is an EndpointSlice of Service svc in namespace web with these pods' endpoints (name:
// ready); its name is svc-suffix.
func slice(svc, suffix string, pods map[string]bool) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: svc + "-" + suffix,
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: discoveryv1.AddressTypeIPv4}
	for name, ready := range pods {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "web", Name: name, UID: types.UID("uid-" + name)}})
	}
	return es
}

// guardWith is a guard whose clock is *now, fed the slices as the initial list.
func guardWith(t *testing.T, now *time.Time, initial ...*discoveryv1.EndpointSlice) (*serviceGuard, func(es *discoveryv1.EndpointSlice)) {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	g := newServiceGuard(idx)
	g.now = func() time.Time { return *now }
	h := g.handler().(cache.ResourceEventHandlerDetailedFuncs)
	for _, es := range initial {
		_ = idx.Add(es)
		h.AddFunc(es, true)
	}
	update := func(es *discoveryv1.EndpointSlice) {
		_ = idx.Update(es)
		h.UpdateFunc(nil, es)
	}
	return g, update
}

func TestServiceGuardJudge(t *testing.T) {
	now := time.Unix(1000, 0)
	settle := 5 * time.Second
	g, update := guardWith(t, &now, slice("web", "a", map[string]bool{"a": true, "b": true}), slice("other", "a", map[string]bool{"x": true}))

	// a may go: b serves web. It is leaving now, so b may not: it would be web's last.
	if v := g.judge("uid-a", settle); len(v.waitFor) != 0 {
		t.Fatalf("a: waits for %v, want it may go (b serves web)", v.waitFor)
	}
	v := g.judge("uid-b", settle)
	if strings.Join(v.waitFor, ",") != "web/web" || v.alone {
		t.Fatalf("b: %+v, want it waits for web/web, not alone (a's replacement is on its way)", v)
	}
	// A pod that backs no Service, and one not ready, may go.
	if v := g.judge("uid-z", settle); len(v.waitFor) != 0 || g.leaving["uid-z"] {
		t.Fatalf("z backs nothing, waits for %v (marked leaving: %v: nothing would ever forget it)", v.waitFor, g.leaving["uid-z"])
	}
	// x is other's only endpoint, and nothing of it leaves: alone.
	if v := g.judge("uid-x", settle); !v.alone || strings.Join(v.waitFor, ",") != "web/other" {
		t.Fatalf("x: %+v, want it waits alone for web/other", v)
	}

	// a terminates (not ready), its replacement c is ready: b waits until c settled.
	update(slice("web", "a", map[string]bool{"a": false, "b": true, "c": true}))
	if g.leaving["uid-a"] {
		t.Fatal("a left web's ready endpoints and is still marked leaving")
	}
	v = g.judge("uid-b", settle)
	if len(v.waitFor) != 1 || !v.next.Equal(now.Add(settle)) {
		t.Fatalf("b with c ready just now: %+v, want it waits until %v", v, now.Add(settle))
	}
	now = now.Add(settle)
	if v := g.judge("uid-b", settle); len(v.waitFor) != 0 {
		t.Fatalf("b after c settled: waits for %v", v.waitFor)
	}
	// b was marked leaving; it stays after all: c counts b again.
	g.stay("uid-b")
	if v := g.judge("uid-c", settle); len(v.waitFor) != 0 {
		t.Fatalf("c with b back: waits for %v", v.waitFor)
	}
}

func TestServiceGuardCountsDualStackOnce(t *testing.T) {
	now := time.Unix(1000, 0)
	v4, v6 := slice("web", "v4", map[string]bool{"a": true}), slice("web", "v6", map[string]bool{"a": true})
	v6.AddressType = discoveryv1.AddressTypeIPv6
	g, _ := guardWith(t, &now, v4, v6)
	if v := g.judge("uid-a", time.Second); !v.alone {
		t.Fatalf("a in an IPv4 and an IPv6 slice is web's only endpoint: %+v", v)
	}
}

func TestServiceGuardWaitStalls(t *testing.T) {
	now := time.Unix(1000, 0)
	g, _ := guardWith(t, &now, slice("web", "a", map[string]bool{"a": true}))
	g.now = time.Now
	var told []guardVerdict
	ok, err := g.guardWait(context.Background(), PodRef{Namespace: "web", Name: "a", UID: "uid-a"}, time.Second, 50*time.Millisecond, nil,
		func(v guardVerdict) { told = append(told, v) })
	var last *LastEndpointError
	if ok || !errors.As(err, &last) || strings.Join(last.Services, ",") != "web/web" {
		t.Fatalf("guardWait = %v, %v; want a LastEndpointError naming web/web", ok, err)
	}
	if len(told) != 1 || !strings.Contains(err.Error(), "--disable-service-guard") {
		t.Fatalf("told %d time(s); error %q should say the fix", len(told), err)
	}
}

func TestSurgeBlocked(t *testing.T) {
	for _, tc := range []struct {
		name string
		dep  func(*appsv1.Deployment)
		want string
	}{
		{"defaults surge", func(*appsv1.Deployment) {}, ""},
		{"recreate", func(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType }, "Recreate"},
		{"paused", func(d *appsv1.Deployment) { d.Spec.Paused = true }, "paused"},
		{"maxUnavailable 1", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(1))}
		}, "allows 1 unavailable"},
		{"maxSurge 0", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: ptr.To(intstr.FromInt32(0)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}
		}, "0 surge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1)}}
			tc.dep(d)
			got := surgeBlocked(d)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("surgeBlocked = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPlanServiceGuard: the plan names each pod's Services; a Deployment's only pod behind a
// Service is surged, a StatefulSet's is a blocker; with the guard off the slices are not even read.
func TestPlanServiceGuard(t *testing.T) {
	yes := true
	owned := func(kind, name string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Namespace = "web"
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: "o", Controller: &yes}}
		}
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "api-1",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "api", UID: "d", Controller: &yes}}}}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "api"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1)}}
	objs := []runtime.Object{planNode("n1", "z"), planNode("n2", "z"), rs, dep,
		planPod("api", "n1", owned("ReplicaSet", "api-1")), planPod("db", "n1", owned("StatefulSet", "db")),
		planPod("w1", "n1", owned("StatefulSet", "w")), planPod("w2", "n2", owned("StatefulSet", "w")),
		slice("api", "a", map[string]bool{"api": true}), slice("db", "a", map[string]bool{"db": true}), slice("w", "a", map[string]bool{"w1": true, "w2": true})}

	for _, off := range []bool{false, true} {
		client := fake.NewSimpleClientset(objs...)
		listed := false
		client.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
			listed = true
			return false, nil, nil
		})
		plan, err := NewPlanner(client, Options{DisableServiceGuard: off}, "").Plan(context.Background(), []string{"n1"})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]PodRef{}
		for _, p := range plan.Nodes[0].Evict {
			got[p.Name] = p
		}
		var blocked []string
		for _, b := range plan.Nodes[0].Blockers {
			if b.Kind == BlockLastEndpoint {
				blocked = append(blocked, b.Pod)
			}
		}
		if off {
			if listed || len(blocked) > 0 || got["api"].Surge != "" || len(got["w1"].Services) > 0 {
				t.Fatalf("guard off: listed slices %v, blockers %v, plan %+v", listed, blocked, got)
			}
			continue
		}
		if got["api"].Surge != "api" || strings.Join(got["w1"].Services, ",") != "web/w" || strings.Join(blocked, ",") != "web/db" {
			t.Fatalf("api surge %q, w1 services %v, last-endpoint blockers %v; want api surged, w1 serving web/w, web/db blocked",
				got["api"].Surge, got["w1"].Services, blocked)
		}
		lines := strings.Join(DescribePlan(plan), "\n")
		if !strings.Contains(lines, "first restart Deployment web/api") || !strings.Contains(lines, "[Service web/w]") {
			t.Fatalf("the plan does not say the surge or the Service:\n%s", lines)
		}
	}
}
