package drain

// The fast tier of the deadlock detector: the planted deadlocks of a whole-runbook plan are found
// before anything moves, each with the smallest fix that works, and the batches are played forward
// (a pod a batch moves is where the next batch finds it).

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// budget is the db budget as the disruption controller reports it with every pod healthy.
func budget(maxUnavailable, pods int) *policyv1.PodDisruptionBudget {
	mu := intstr.FromInt32(int32(maxUnavailable))
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "db"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &mu, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}},
		Status: policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 1, ExpectedPods: int32(pods), CurrentHealthy: int32(pods),
			DesiredHealthy: int32(pods - maxUnavailable), DisruptionsAllowed: int32(maxUnavailable)},
	}
}

func pinned(node string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": node} }
}

func grouped(group string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"group": group} }
}

func inGroup(n *corev1.Node, group string) *corev1.Node {
	n.Labels["group"] = group
	return n
}

func TestDeadlocksFound(t *testing.T) {
	t.Parallel()
	anti := antiAffinity("kubernetes.io/hostname")
	for _, c := range []struct {
		name     string
		objs     []runtime.Object
		batches  [][]string
		deadlock string // what the blocker says; "" when there is none
		fix      string // the first fix offered
	}{
		{"required anti-affinity, as many replicas as nodes, two drained at once",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), planNode("n3", "a"), budget(1, 3),
				planPod("db-0", "n1", anti), planPod("db-1", "n2", anti), planPod("db-2", "n3", anti)},
			[][]string{{"n1", "n2"}}, "1 disruption(s) at once, but 2 of its 2 pod(s) on n1, n2 would have nowhere to go", "drain at most 1 of these nodes at once"},
		{"required anti-affinity, as many replicas as nodes, one at a time: Pending until the node is back, no deadlock",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), planNode("n3", "a"), budget(1, 3),
				planPod("db-0", "n1", anti), planPod("db-1", "n2", anti), planPod("db-2", "n3", anti)},
			[][]string{{"n1"}, {"n2"}, {"n3"}}, "", ""},
		{"a batch that takes every node a pinned workload may use",
			[]runtime.Object{inGroup(planNode("g1", "a"), "gpu"), inGroup(planNode("g2", "a"), "gpu"), planNode("n1", "a"), budget(1, 2),
				planPod("db-0", "g1", grouped("gpu")), planPod("db-1", "g2", grouped("gpu"))},
			[][]string{{"g1", "g2"}}, "2 of its 2 pod(s) on g1, g2 would have nowhere to go", "drain at most 1 of these nodes at once"},
		{"a budget that needs the node the batch takes away",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), budget(1, 2),
				planPod("db-0", "n1", pinned("n1")), planPod("db-1", "n1", pinned("n1"))},
			[][]string{{"n1"}}, "2 of its 2 pod(s) on n1 would have nowhere to go", "let PodDisruptionBudget db/db allow 2 disruption(s)"},
		{"a budget short of room: one more node fixes it",
			[]runtime.Object{inGroup(planNode("g1", "a"), "gpu"), inGroup(planNode("g2", "a"), "gpu"), budget(1, 3),
				planPod("db-0", "g1", grouped("gpu"), anti), planPod("db-1", "g2", grouped("gpu"), anti), planPod("db-2", "g1", grouped("gpu"))},
			[][]string{{"g1"}}, "2 of its 2 pod(s) on g1", "add one more node like g1"},
		{"the budget allows as many as have nowhere to go",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), budget(2, 2),
				planPod("db-0", "n1", pinned("n1")), planPod("db-1", "n1", pinned("n1"))},
			[][]string{{"n1"}}, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			client := fake.NewClientset(c.objs...)
			pl := NewPlanner(client, Options{}, "")
			var found []Blocker
			for _, batch := range c.batches {
				plan, err := pl.Plan(context.Background(), batch)
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range plan.Blockers() {
					if b.Kind == BlockDeadlock {
						found = append(found, b)
					}
				}
				pl.Advance(plan)
			}
			switch {
			case c.deadlock == "" && len(found) > 0:
				t.Fatalf("a deadlock where there is none: %v", found)
			case c.deadlock == "":
			case len(found) != 1:
				t.Fatalf("want one deadlock saying %q, got %v", c.deadlock, found)
			case !strings.Contains(found[0].Message, c.deadlock) || !found[0].Fatal:
				t.Fatalf("deadlock says %q, want %q (fatal)", found[0].Message, c.deadlock)
			case !strings.HasPrefix(found[0].Fix, c.fix):
				t.Fatalf("fix %q, want it to start with %q", found[0].Fix, c.fix)
			}
			if writes := writeActions(client); len(writes) > 0 {
				t.Fatalf("planning wrote: %v", writes)
			}
		})
	}
}

// TestPlayedForward: the first batch moves its pods onto a node of the second batch, which the
// second batch's plan must then count, and the nodes of the first batch are schedulable again.
func TestPlayedForward(t *testing.T) {
	t.Parallel()
	objs := []runtime.Object{inGroup(planNode("g1", "a"), "gpu"), inGroup(planNode("g2", "a"), "gpu"), planNode("n1", "a"), budget(1, 2),
		planPod("db-0", "g1", grouped("gpu")), planPod("db-1", "g1", grouped("gpu"))}
	client := fake.NewClientset(objs...)
	// The apiserver lists a node's pods by field selector; the fake ignores it: do what the apiserver does,
	// so that the second batch's pods are ones the live cluster does not have there yet.
	client.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		fs := a.(k8stesting.ListAction).GetListRestrictions().Fields
		obj, err := client.Tracker().List(corev1.SchemeGroupVersion.WithResource("pods"), corev1.SchemeGroupVersion.WithKind("Pod"), "")
		if err != nil || fs.Empty() {
			return true, obj, err
		}
		list := obj.(*corev1.PodList)
		var keep []corev1.Pod
		for _, p := range list.Items {
			if fs.Matches(fields.Set{"spec.nodeName": p.Spec.NodeName}) {
				keep = append(keep, p)
			}
		}
		list.Items = keep
		return true, list, nil
	})
	pl := NewPlanner(client, Options{}, "")
	first, err := pl.Plan(context.Background(), []string{"g1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Nodes[0].Evict) != 2 || first.Fatal() {
		t.Fatalf("first batch: %+v", first.Nodes[0])
	}
	pl.Advance(first)
	second, err := pl.Plan(context.Background(), []string{"g2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(second.Nodes[0].Evict); got != 2 {
		t.Fatalf("the second batch evicts %d pods, want the 2 the first moved there", got)
	}
	if second.Fatal() {
		t.Fatalf("g1 is back after its batch: the pods have somewhere to go, got %v", second.Blockers())
	}
}
