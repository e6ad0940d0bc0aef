package preflight

import (
	"context"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/drydock-dev/drydock/preflight/apis"
)

// servingPod is a pod of app (namespace shop) on node, owned by ReplicaSet app-rs, with a readiness
// probe and a preStop hook unless mutate takes them away.
func servingPod(app, name, node string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID(name), Labels: map[string]string{"app": app},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-rs", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "x",
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/"}}},
			Lifecycle:      &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func serviceFor(app string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: app}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app}}}
}

func replicaSetOf(app string) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: app + "-rs",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: app, Controller: ptr.To(true)}}}}
}

// TestTrafficCheck: each way a served workload loses requests is one finding on its Deployment,
// naming the Service and the fix; a well-made one, and pods no Service selects, have none; the
// check only reads.
func TestTrafficCheck(t *testing.T) {
	noProbe := func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe = nil }
	noPreStop := func(p *corev1.Pod) { p.Spec.Containers[0].Lifecycle = nil }
	noGrace := func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](0) }
	objs := []runtime.Object{
		serviceFor("good"), replicaSetOf("good"), servingPod("good", "good-1", "n1"), servingPod("good", "good-2", "n2"),
		serviceFor("probe"), replicaSetOf("probe"), servingPod("probe", "probe-1", "n1", noProbe), servingPod("probe", "probe-2", "n2", noProbe),
		serviceFor("prestop"), replicaSetOf("prestop"), servingPod("prestop", "prestop-1", "n1", noPreStop), servingPod("prestop", "prestop-2", "n2", noPreStop),
		serviceFor("grace"), replicaSetOf("grace"), servingPod("grace", "grace-1", "n1", noGrace), servingPod("grace", "grace-2", "n2", noGrace),
		serviceFor("packed"), replicaSetOf("packed"), servingPod("packed", "packed-1", "n1"), servingPod("packed", "packed-2", "n1"),
		serviceFor("solo"), replicaSetOf("solo"), servingPod("solo", "solo-1", "n1"),
		replicaSetOf("unserved"), servingPod("unserved", "unserved-1", "n1", noProbe, noPreStop),
	}
	client := fake.NewClientset(objs...)
	rep, err := Run(context.Background(), &Input{Kube: client, Server: apis.Release{Major: 1, Minor: 37}, Target: apis.Release{Major: 1, Minor: 38}}, []string{"traffic-check"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range rep.Findings() {
		if f.Fix == "" || !strings.Contains(f.Message, "behind Service shop/"+f.Name) {
			t.Errorf("finding without the Service or a fix: %+v", f)
		}
		got = append(got, f.ObjectRef.String()+": "+strings.SplitN(f.Message, ",", 2)[0])
	}
	sort.Strings(got)
	want := []string{
		"Deployment shop/grace: terminationGracePeriodSeconds: 0",
		"Deployment shop/packed: all 2 pods on node n1",
		"Deployment shop/prestop: no preStop delay",
		"Deployment shop/probe: no readiness probe",
		"Deployment shop/solo: one pod",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, a := range client.Actions() {
		if v := a.GetVerb(); v != "list" && v != "get" {
			t.Errorf("traffic-check did %s %s: it must only read", v, a.GetResource().Resource)
		}
	}
}
