package drain_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
)

// failOnSecondNode makes a drain of [nodes[0], nodes[1]] that empties the first node and then
// fails on the second: a budget there allows no disruption (its other pod never gets Ready). It
// returns a function that clears the blocker.
func failOnSecondNode(s *scenario) (unblock func()) {
	// Each placed on its node by the scheduler while the others are cordoned, free to move after.
	place := func(name string, node int, mutate func(*appsv1.Deployment)) {
		for i, n := range s.nodes {
			s.cordon(n, i != node)
		}
		s.deploy(name, 1, mutate)
		s.waitReady(name)
		for _, n := range s.nodes {
			s.cordon(n, false)
		}
	}
	place("free", 0, func(*appsv1.Deployment) {})
	place("held", 1, func(d *appsv1.Deployment) { d.Spec.Template.Labels["tier"] = "held" })
	s.deploy("slow", 1, func(d *appsv1.Deployment) {
		d.Spec.Template.Labels["tier"] = "held"
		d.Spec.Template.Annotations = map[string]string{"pod-ready.stage.kwok.x-k8s.io/delay": "1h"}
		d.Spec.Template.Spec.NodeSelector["kubernetes.io/hostname"] = s.nodes[2]
	})
	s.pdb("held", map[string]string{"tier": "held"}, ptr(intstr.FromInt32(1)), nil) // 2 pods, 1 healthy: 0 allowed
	return func() {
		if err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.ns).Delete(s.ctx, "held", metav1.DeleteOptions{}); err != nil {
			s.t.Fatal(err)
		}
	}
}

// TestFailureRuleUncordonsAndForgets: the drain fails on its second node; the first, already
// drained, is uncordoned AND its checkpoint cleared, so that resume drains it again rather than
// reporting it done while it is schedulable.
func TestFailureRuleUncordonsAndForgets(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 3)
	unblock := failOnSecondNode(s)
	st, e, rec, err := s.run(fmt.Sprintf("{nodes: [%s, %s]}", s.nodes[0], s.nodes[1]), "6s")
	if exitcode.For(err) != exitcode.Blocked || !strings.Contains(rec.Text(), s.nodes[0]+": uncordoned") {
		t.Fatalf("exit %d: %v\n%s", exitcode.For(err), err, rec.Text())
	}
	for _, n := range s.nodes[:2] {
		if s.node(n).Spec.Unschedulable {
			t.Fatalf("%s stays cordoned after the failure", n)
		}
	}
	if cps := st.Step("drain").Checkpoints; slices.Contains(cps, "drained/"+s.nodes[0]) {
		t.Fatalf("the journal still says %s is drained while it is schedulable: %v", s.nodes[0], cps)
	}
	unblock()
	before := strings.Count(rec.Text(), s.nodes[0]+": cordoned")
	if _, err := e.Resume(s.ctx, st); err != nil {
		t.Fatalf("resume: %v\n%s", err, rec.Text())
	}
	if strings.Count(rec.Text(), s.nodes[0]+": cordoned") != before+1 {
		t.Fatalf("resume did not drain %s again:\n%s", s.nodes[0], rec.Text())
	}
	for _, n := range s.nodes[:2] {
		if nd := s.node(n); !nd.Spec.Unschedulable || nd.Annotations[drain.AnnotationCordonedBy] != st.ID {
			t.Fatalf("%s after resume: unschedulable %v, annotations %v", n, nd.Spec.Unschedulable, nd.Annotations)
		}
	}
}

// TestFailureRuleKeepCordoned: with keepCordoned, the drained first node stays cordoned and
// recorded as drained; resume does not drain it again, and finishes the second.
func TestFailureRuleKeepCordoned(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 3)
	unblock := failOnSecondNode(s)
	st, e, rec, err := s.run(fmt.Sprintf("{nodes: [%s, %s], keepCordoned: true}", s.nodes[0], s.nodes[1]), "6s")
	if exitcode.For(err) != exitcode.Blocked {
		t.Fatalf("exit %d: %v\n%s", exitcode.For(err), err, rec.Text())
	}
	for _, n := range s.nodes[:2] {
		if !s.node(n).Spec.Unschedulable {
			t.Fatalf("%s was uncordoned although keepCordoned", n)
		}
	}
	if cps := st.Step("drain").Checkpoints; !slices.Contains(cps, "drained/"+s.nodes[0]) || st.Step("drain").Status != runbook.StatusFailed {
		t.Fatalf("journal: %s, %v", st.Step("drain").Status, cps)
	}
	unblock()
	before := strings.Count(rec.Text(), s.nodes[0]+": cordoned")
	if _, err := e.Resume(s.ctx, st); err != nil {
		t.Fatalf("resume: %v\n%s", err, rec.Text())
	}
	if strings.Count(rec.Text(), s.nodes[0]+": cordoned") != before {
		t.Fatalf("resume drained %s again although it was drained and stayed cordoned:\n%s", s.nodes[0], rec.Text())
	}
	if !s.node(s.nodes[1]).Spec.Unschedulable {
		t.Fatal("the second node is not drained after resume")
	}
}

// TestAlwaysAllowDrainsUnhealthyPods: pods that never get Ready, under a budget that allows no
// disruption but says unhealthyPodEvictionPolicy: AlwaysAllow, are evicted at once (kubectl drain
// empties such a node in seconds; drydock must not wait on the budget queue until it times out).
func TestAlwaysAllowDrainsUnhealthyPods(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 2)
	s.deploy("sick", 2, func(d *appsv1.Deployment) {
		d.Spec.Template.Annotations = map[string]string{"pod-ready.stage.kwok.x-k8s.io/delay": "1h"}
	})
	always := policyv1.AlwaysAllow
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "sick"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromInt32(1)), UnhealthyPodEvictionPolicy: &always,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sick"}}},
	}
	if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.ns).Create(s.ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.ns).Get(ctx, "sick", metav1.GetOptions{})
		return err == nil && p.Status.ObservedGeneration == p.Generation && p.Status.ExpectedPods == 2, nil
	}); err != nil {
		t.Fatal("the budget never got a status")
	}
	var node string
	if err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := cluster.Client.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=sick"})
		if err != nil || len(pods.Items) < 2 || pods.Items[0].Spec.NodeName == "" {
			return false, err
		}
		node = pods.Items[0].Spec.NodeName
		return true, nil
	}); err != nil {
		t.Fatal("the sick pods were never scheduled")
	}
	st, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s]}", node), "1m")
	if err != nil {
		t.Fatalf("drain of unhealthy pods under an AlwaysAllow budget: %v\n%s", err, rec.Text())
	}
	if st.Status != runbook.RunSucceeded || strings.Contains(rec.Text(), "waits for PDB") {
		t.Fatalf("the unhealthy pods waited on the budget:\n%s", rec.Text())
	}
}
