package canary

// The fast tier of the canary's choice: the node whose drain tests the most budgets and workloads
// within the disruption bound, never one with nothing to move when another has pods, and why.

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/drydock-dev/drydock/runbook"
)

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.36.3"},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

func pod(app, name, nodeName string) *corev1.Pod {
	yes := true
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID(name), Labels: map[string]string{"app": app},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-rs", Controller: &yes}}},
		Spec:   corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
}

func pdb(app string) *policyv1.PodDisruptionBudget {
	one := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: app},
		Spec:   policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
		Status: policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 1, ExpectedPods: 4, CurrentHealthy: 4, DesiredHealthy: 3, DisruptionsAllowed: 1}}
}

func TestPickByCoverage(t *testing.T) {
	t.Parallel()
	objs := []runtime.Object{node("a-empty"), node("b-web"), node("c-mixed"), node("d-busy"), pdb("web"), pdb("api"),
		pod("web", "web-1", "b-web"), pod("web", "web-2", "b-web"),
		pod("web", "web-3", "c-mixed"), pod("api", "api-1", "c-mixed"), pod("cache", "cache-1", "c-mixed"),
		pod("web", "web-4", "d-busy"), pod("api", "api-2", "d-busy"), pod("cache", "cache-2", "d-busy"), pod("cache", "cache-3", "d-busy"),
		pod("cache", "cache-4", "d-busy"), pod("worker", "worker-1", "d-busy")}
	for _, c := range []struct {
		name     string
		step     Step
		want     string
		saysWhat []string
	}{
		{"the most budgets and workloads within the median candidate's pods", Step{}, "c-mixed",
			[]string{"3 pod(s) of 3 workload(s)", "under 2 budget(s) (shop/api, shop/web)", "the median candidate's"}},
		{"a bound that leaves only the smaller nodes", Step{MaxEvict: 2}, "b-web", []string{"within the bound of 2 pod(s) to move (maxEvict)", "shop/web"}},
		{"a bound that lets the busiest in", Step{MaxEvict: 10}, "d-busy", []string{"4 workload(s)"}},
		{"pinned", Step{Node: "a-empty"}, "a-empty", []string{"named in the runbook"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			client := fake.NewClientset(objs...)
			env := &runbook.Env{Kube: client, Target: "v1.37.1"}
			got, why, err := c.step.Pick(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("picked %s, want %s (%v)", got, c.want, why)
			}
			for _, s := range c.saysWhat {
				if !strings.Contains(strings.Join(why, "\n"), s) {
					t.Errorf("the reason %q does not say %q", why, s)
				}
			}
			for _, a := range client.Actions() {
				if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
					t.Fatalf("picking wrote: %s %s", v, a.GetResource().Resource)
				}
			}
		})
	}
}
