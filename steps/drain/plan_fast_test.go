package drain

// The fast tier for "would it fit": a drain that would leave a pod Pending is a blocker before
// anything moves, whether for room, required pod anti-affinity, topology spread or a zonal volume.

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

func planNode(name, zone string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

// tainted gives n a NoSchedule taint key, and a cordon if cordoned.
func tainted(n *corev1.Node, key string, cordoned bool) *corev1.Node {
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule})
	n.Spec.Unschedulable = cordoned
	return n
}

func planPod(name, node string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	yes := true
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{"app": "db"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "sts", Controller: &yes}}},
		Spec:   corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func antiAffinity(key string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, TopologyKey: key}}}}
	}
}

func spread(when corev1.UnsatisfiableConstraintAction) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone",
			WhenUnsatisfiable: when, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}
	}
}

func claim(name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}}}
	}
}

func zonalPV(claimName, zone string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv-" + claimName},
		Spec: corev1.PersistentVolumeSpec{
			ClaimRef: &corev1.ObjectReference{Namespace: "db", Name: claimName},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{zone}}}}}}},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "disk.example", VolumeHandle: claimName}},
		},
	}
}

func TestPlanPredictsPending(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		objs    []runtime.Object
		drain   []string
		blocked string // "" when the drain must be planned as safe
	}{
		{"anti-affinity: every other node already holds a replica",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), planNode("n3", "a"),
				planPod("db-0", "n1", antiAffinity("kubernetes.io/hostname")), planPod("db-1", "n2", antiAffinity("kubernetes.io/hostname")), planPod("db-2", "n3", antiAffinity("kubernetes.io/hostname"))},
			[]string{"n1"}, "required pod anti-affinity"},
		{"anti-affinity: a spare node",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), planNode("n3", "a"), planNode("n4", "a"),
				planPod("db-0", "n1", antiAffinity("kubernetes.io/hostname")), planPod("db-1", "n2", antiAffinity("kubernetes.io/hostname")), planPod("db-2", "n3", antiAffinity("kubernetes.io/hostname"))},
			[]string{"n1"}, ""},
		{"anti-affinity: two replicas leaving, one spare node",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), planNode("n3", "a"), planNode("n4", "a"),
				planPod("db-0", "n1", antiAffinity("kubernetes.io/hostname")), planPod("db-1", "n2", antiAffinity("kubernetes.io/hostname")), planPod("db-2", "n3", antiAffinity("kubernetes.io/hostname"))},
			[]string{"n1", "n2"}, "required pod anti-affinity"},
		{"anti-affinity the other way: the pod that stays must avoid the one that moves",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"),
				planPod("db-0", "n1"), planPod("db-1", "n2", antiAffinity("kubernetes.io/hostname"))},
			[]string{"n1"}, "which must avoid it"},
		{"spread DoNotSchedule: the drained zone keeps counting",
			[]runtime.Object{planNode("a1", "a"), planNode("b1", "b"), planNode("c1", "c"), planNode("b2", "b"),
				planPod("db-0", "a1", spread(corev1.DoNotSchedule)), planPod("db-1", "b1", spread(corev1.DoNotSchedule)), planPod("db-2", "c1", spread(corev1.DoNotSchedule))},
			[]string{"a1"}, "topology spread constraint"},
		{"spread ScheduleAnyway",
			[]runtime.Object{planNode("a1", "a"), planNode("b1", "b"), planNode("c1", "c"), planNode("b2", "b"),
				planPod("db-0", "a1", spread(corev1.ScheduleAnyway)), planPod("db-1", "b1", spread(corev1.ScheduleAnyway)), planPod("db-2", "c1", spread(corev1.ScheduleAnyway))},
			[]string{"a1"}, ""},
		{"spread: another node in the same zone",
			[]runtime.Object{planNode("a1", "a"), planNode("a2", "a"), planNode("b1", "b"),
				planPod("db-0", "a1", spread(corev1.DoNotSchedule)), planPod("db-1", "b1", spread(corev1.DoNotSchedule))},
			[]string{"a1"}, ""},
		{"zonal volume: no other node in its zone",
			[]runtime.Object{planNode("a1", "a"), planNode("b1", "b"), zonalPV("data-db-0", "a"), planPod("db-0", "a1", claim("data-db-0"))},
			[]string{"a1"}, "its PersistentVolume can only be used on nodes"},
		{"taint: the only other node is tainted",
			[]runtime.Object{planNode("n1", "a"), tainted(planNode("n2", "a"), "dedicated", false), planPod("db-0", "n1")},
			[]string{"n1"}, "no node that stays schedulable matches"},
		{"taint: the other node's cordon was just lifted, the node controller's taint not yet",
			[]runtime.Object{planNode("n1", "a"), tainted(planNode("n2", "a"), corev1.TaintNodeUnschedulable, false), planPod("db-0", "n1")},
			[]string{"n1"}, ""},
		{"taint: the other node is cordoned",
			[]runtime.Object{planNode("n1", "a"), tainted(planNode("n2", "a"), corev1.TaintNodeUnschedulable, true), planPod("db-0", "n1")},
			[]string{"n1"}, "no node that stays schedulable matches"},
		{"zonal volume: another node in its zone",
			[]runtime.Object{planNode("a1", "a"), planNode("a2", "a"), planNode("b1", "b"), zonalPV("data-db-0", "a"), planPod("db-0", "a1", claim("data-db-0"))},
			[]string{"a1"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			client := fake.NewClientset(c.objs...)
			plan, err := NewPlanner(client, Options{}, "").Plan(context.Background(), c.drain)
			if err != nil {
				t.Fatal(err)
			}
			var capacity []string
			for _, b := range plan.Blockers() {
				if b.Kind == BlockCapacity {
					capacity = append(capacity, b.String())
				}
			}
			got := strings.Join(capacity, "\n")
			switch {
			case c.blocked == "" && got != "":
				t.Fatalf("planned as blocked, want safe:\n%s", got)
			case c.blocked != "" && !strings.Contains(got, c.blocked):
				t.Fatalf("want a blocker saying %q, got:\n%s", c.blocked, got)
			case c.blocked != "" && !plan.Fatal():
				t.Fatal("a pod that would stay Pending must stop the drain before anything moves")
			}
			if writes := writeActions(client); len(writes) > 0 {
				t.Fatalf("planning wrote: %v", writes)
			}
		})
	}
}

func writeActions(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			out = append(out, v+" "+a.GetResource().Resource)
		}
	}
	return out
}
