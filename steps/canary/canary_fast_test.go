package canary

// The fast tier of the canary's choice: the node whose drain tests the most budgets and workloads
// within the disruption bound, never one with nothing to move when another has pods, and why.

import (
	"context"
	"errors"
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

// TestNoSilentCanary: a selector that matches no node, or only nodes an admin cordoned, is an error
// naming the selector (and the labels that exist): it must never read as "every node is at the target"
// and let the fleet move with no canary. Only when every matched node is at the target is there
// nothing to do.
func TestNoSilentCanary(t *testing.T) {
	t.Parallel()
	upgraded := node("up-1")
	upgraded.Status.NodeInfo.KubeletVersion = "v1.37.1"
	cordoned := node("cord-1")
	cordoned.Spec.Unschedulable = true
	cordoned.Labels["pool"] = "cordoned"
	upgraded.Labels["pool"] = "done"
	for _, c := range []struct {
		name     string
		selector string
		err      error
		says     []string
		nothing  bool
	}{
		{"a typo in the selector", "drydock.dev/grup=general", runbook.ErrInvalid,
			[]string{`"drydock.dev/grup=general" matches none of the cluster's 3 node(s)`, "kubernetes.io/hostname=", "pool=cordoned|done"}, false},
		{"only nodes an admin cordoned", "pool=cordoned", runbook.ErrBlocked, []string{"cord-1", "uncordon"}, false},
		{"every matched node at the target", "pool=done", nil, nil, true},
		{"a node behind the target", "", nil, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := &runbook.Env{Kube: fake.NewClientset(node("behind-1"), upgraded.DeepCopy(), cordoned.DeepCopy()), Target: "v1.37.1"}
			s := &Step{Selector: c.selector}
			got, _, err := s.Pick(context.Background(), env)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Pick: %v, want %v", err, c.err)
				}
				for _, w := range c.says {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("the error %q does not say %q", err, w)
					}
				}
				if _, perr := s.Plan(context.Background(), env); !errors.Is(perr, c.err) {
					t.Errorf("Plan: %v, want %v", perr, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == "") != c.nothing {
				t.Fatalf("picked %q", got)
			}
			if c.nothing {
				lines, err := s.Plan(context.Background(), env)
				if err != nil || !strings.Contains(strings.Join(lines, "\n"), "every node the selector pool=done matches is already at v1.37.1") {
					t.Fatalf("Plan: %q, %v", lines, err)
				}
			}
		})
	}
}
