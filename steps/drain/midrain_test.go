package drain_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
)

// What happens to a node, its budgets and its pods while it drains (issue 30, item 11).

// TestNodeDeletedMidDrain: the node is deleted (an autoscaler, a person) while its pods wait on a
// budget at zero. The drain says "deleted" for that node at once, not "drained" after the cluster
// has collected its pods (40 s), and does not journal it as drained.
func TestNodeDeletedMidDrain(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 2)
	s.stuckBudget()
	node := s.nodeWithPods("web")
	var (
		once      sync.Once
		mu        sync.Mutex
		deletedAt time.Time
	)
	s.hook = func(_ *runbook.Engine, ev runbook.Event) {
		if p, ok := ev.(*runbook.PodChanged); ok && p.State == runbook.PodBlocked {
			once.Do(func() {
				mu.Lock()
				deletedAt = time.Now()
				mu.Unlock()
				if err := cluster.Client.CoreV1().Nodes().Delete(s.ctx, node, metav1.DeleteOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
	}
	st, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s]}", node), "2m")
	mu.Lock()
	at := deletedAt
	mu.Unlock()
	if at.IsZero() {
		t.Fatalf("no pod waited on the budget: the test proves nothing (%v)\n%s", err, rec.Text())
	}
	if took := time.Since(at); took > 15*time.Second {
		t.Fatalf("the drain ended %v after its node was deleted", took)
	}
	if err != nil {
		t.Fatalf("drain of a node deleted meanwhile: %v\n%s", err, rec.Text())
	}
	if !strings.Contains(rec.Text(), "node "+node+": deleted: deleted while drydock drained it") {
		t.Fatalf("the deletion was not said:\n%s", rec.Text())
	}
	if slices.Contains(st.Step("drain").Checkpoints, "drained/"+node) {
		t.Fatalf("the journal says %s is drained: %v", node, st.Step("drain").Checkpoints)
	}
}

// TestBudgetTightenedMidDrainStalls: a budget that let the first pod go is set to maxUnavailable: 0
// during the drain; every pod of it is healthy again, and it allows none. The stall detector stops
// the drain after stallTimeout (3 s), naming the budget and its fix, instead of waiting out the
// 3-minute timeout.
func TestBudgetTightenedMidDrainStalls(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 3)
	s.deployOn("web", 3, s.nodes[0])
	s.pdb("web", map[string]string{"app": "web"}, nil, ptr(intstr.FromInt32(1)))
	var once sync.Once
	s.hook = func(_ *runbook.Engine, ev runbook.Event) {
		if p, ok := ev.(*runbook.PodChanged); ok && p.State == runbook.PodEvicted {
			once.Do(func() {
				if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.ns).Patch(s.ctx, "web", types.MergePatchType,
					[]byte(`{"spec":{"maxUnavailable":0}}`), metav1.PatchOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
	}
	start := time.Now()
	_, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s], stallTimeout: 3s}", s.nodes[0]), "3m")
	var se *drain.StalledError
	if !errors.As(err, &se) || exitcode.For(err) != exitcode.Blocked {
		t.Fatalf("want a StalledError with exit 3, got exit %d: %v\n%s", exitcode.For(err), err, rec.Text())
	}
	if took := time.Since(start); took > 45*time.Second {
		t.Fatalf("the stall was found after %v", took)
	}
	if fix := "kubectl patch pdb web -n " + s.ns + ` --type=merge -p '{"spec":{"maxUnavailable":1}}'`; !strings.Contains(err.Error(), fix) {
		t.Fatalf("the error does not name the fix %q: %v", fix, err)
	}
	if s.node(s.nodes[0]).Spec.Unschedulable {
		t.Fatal("the node drydock cordoned must be uncordoned after the stall")
	}
}

// TestFinalizerNamedWhileTerminating: an evicted pod is held by a finalizer past its grace period.
// The drain names the finalizer while it waits and in what it leaves when it times out (kubectl
// says only that the pod is terminating).
func TestFinalizerNamedWhileTerminating(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 2)
	grace := int64(1)
	s.cordon(s.nodes[1], true)
	s.deploy("held", 1, func(d *appsv1.Deployment) {
		d.Spec.Template.Finalizers = []string{"drydock.test/hold"}
		d.Spec.Template.Spec.TerminationGracePeriodSeconds = &grace
	})
	s.waitReady("held")
	s.cordon(s.nodes[1], false)
	t.Cleanup(func() {
		pods, err := cluster.Client.CoreV1().Pods(s.ns).List(s.ctx, metav1.ListOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		for _, p := range pods.Items {
			_, _ = cluster.Client.CoreV1().Pods(s.ns).Patch(s.ctx, p.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		}
	})
	_, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s]}", s.nodes[0]), "8s")
	var be *drain.BlockedError
	if !errors.As(err, &be) || len(be.Left) != 1 {
		t.Fatalf("want a BlockedError with the held pod left, got %v\n%s", err, rec.Text())
	}
	const held = "held by finalizer(s) drydock.test/hold"
	if !strings.Contains(be.Left[0], "is terminating, "+held) {
		t.Fatalf("left: %q, want it to name the finalizer", be.Left[0])
	}
	if !strings.Contains(rec.Text(), "evicted: is terminating, "+held) {
		t.Fatalf("the finalizer was not named while the drain waited:\n%s", rec.Text())
	}
}
