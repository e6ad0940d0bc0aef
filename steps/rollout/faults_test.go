package rollout_test

// The fault tier: canary and node groups, and drains, against the real simulated apiserver with
// injected faults (internal/faults) and with the apiserver itself restarted, checking the same
// invariants each time: no budget ever broken, nothing left cordoned by drydock, an admin's cordon
// kept, every node at the target after at most one resume, and the journal true to the cluster.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drydock-dev/drydock/internal/faults"
	"github.com/drydock-dev/drydock/internal/invariants"
	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
	"github.com/drydock-dev/drydock/steps/drain"
)

// faultyEngine is an engine whose every request (steps, lock, journal mirror) passes the injector.
func faultyEngine(t *testing.T, in *faults.Injector) (*runbook.Engine, *recorder) {
	cfg := kube.Resilient(in.Wrap(cluster.Config)) // as the command builds it, with faults beneath
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	return &runbook.Engine{Registry: steps.Registry, Sink: rec, Decider: runbook.AlwaysContinue, Kube: client, REST: cfg, StateDir: t.TempDir()}, rec
}

// DefaultFaultSeeds is how many seeds the fault tier runs in `make test`; `make bench` runs more
// (drainbench -fault-seeds), through DRYDOCK_FAULT_SEEDS.
const DefaultFaultSeeds = 20

// faultSeeds are the seeds to run: DRYDOCK_FAULT_SEEDS as "N" (1 to N) or "FROM-TO", by default
// 1 to DefaultFaultSeeds.
func faultSeeds(t *testing.T) (from, to uint64) {
	v := os.Getenv("DRYDOCK_FAULT_SEEDS")
	if v == "" {
		return 1, DefaultFaultSeeds
	}
	a, b, ranged := strings.Cut(v, "-")
	from, err := strconv.ParseUint(a, 10, 64)
	if err == nil && ranged {
		to, err = strconv.ParseUint(b, 10, 64)
	} else if err == nil {
		from, to = 1, from
	}
	if err != nil || from == 0 || to < from {
		t.Fatalf("DRYDOCK_FAULT_SEEDS=%q: want N or FROM-TO (seeds from 1)", v)
	}
	return from, to
}

// TestRolloutUnderInjectedFaults: canary then node groups, with one request in ten failing in one
// of the ways a real connection fails, under every seed of faultSeeds. A run may fail (a fault can
// outlast a deadline); then one resume must finish it. The invariants hold every time.
func TestRolloutUnderInjectedFaults(t *testing.T) {
	simcluster.Need(t)
	total := faults.New(faults.Config{})
	var runs, resumes int
	start := time.Now()
	from, to := faultSeeds(t)
	for seed := from; seed <= to; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			suite := fmt.Sprintf("flt%d", seed)
			namespace(t, suite)
			t.Cleanup(func() { dropSuite(suite) }) // twenty seeds' nodes and pods would slow the later ones
			for _, g := range []string{"a", "b"} {
				nodes(t, suite+"-"+g, 2, map[string]string{"suite": suite, "pool": g})
				workload(t, suite, "app-"+g, 3, map[string]string{"suite": suite, "pool": g})
			}
			// A node the drain step empties first (in no pool: nodegroups leaves it alone), and a
			// workload that may run on any node of the suite.
			spare := suite + "-spare"
			if _, err := cluster.CreateNode(context.Background(), spare, simcluster.NodeOptions{KubeletVersion: "v1.37.1",
				Labels: map[string]string{"suite": suite}}); err != nil {
				t.Fatal(err)
			}
			workload(t, suite, "app-any", 4, map[string]string{"suite": suite})
			// An admin cordoned this node before the run: it is upgraded, and stays cordoned.
			admin := suite + "-b-9"
			if _, err := cluster.CreateNode(context.Background(), admin, simcluster.NodeOptions{KubeletVersion: oldKubelet, Unschedulable: true,
				Labels: map[string]string{"suite": suite, "pool": "b"}}); err != nil {
				t.Fatal(err)
			}
			budgets := cluster.WatchBudgets()
			defer budgets.Stop()
			budgets.Arm(suite)
			in := faults.New(faults.Config{Seed: seed, Rate: 0.1})
			e, rec := faultyEngine(t, in)
			rb := parseSpec(t, "v1.37.1", fmt.Sprintf(`  state: {namespace: %[1]s}
  defaults: {timeout: 3m}
  steps:
    - name: spare
      type: drain
      with: {nodes: [%[1]s-spare]}
    - name: canary
      type: canary
      pause: none
      with:
        selector: suite=%[1]s,pool=a
        action: {exec: %[2]s}
        soak: 1s
        health: {namespaces: [%[1]s], timeout: 1m}
    - name: fleet
      type: nodegroups
      with:
        groupBy: pool
        selector: suite=%[1]s
        order: [a, b]
        action: {exec: %[2]s}
        health: {namespaces: [%[1]s], timeout: 1m}
`, suite, upgradeAction(t)))
			ctx := context.Background()
			st, err := e.Start(ctx, rb)
			runs++
			if err != nil {
				t.Logf("seed %d: the run failed under faults (%v); resuming once", seed, err)
				resumes++
				if st, err = e.Resume(ctx, st); err != nil {
					t.Fatalf("seed %d: resume: %v\n%s", seed, err, rec.Text())
				}
			}
			in.Pause(true)
			if err := budgets.CaughtUp(context.Background()); err != nil { // the budget watch sees the last status
				t.Fatal(err)
			}
			for _, v := range invariants.Check(context.Background(), cluster.Client, invariants.Scene{Selector: "suite=" + suite, Target: "v1.37.1", Admin: admin, Drained: spare}, st) {
				t.Error(v)
			}
			if b := budgets.Broken(); len(b) > 0 {
				t.Errorf("budgets broken:\n%s", strings.Join(b, "\n"))
			}
			counts, n := in.Counts()
			injected := int64(0)
			for _, c := range counts {
				injected += c
			}
			if injected == 0 {
				t.Fatalf("no fault was injected in %d requests: the test proves nothing", n)
			}
			t.Logf("seed %d: %s", seed, in)
			mergeCounts(total, in)
		})
	}
	t.Logf("fault tier: %d seeds (%d-%d) in %s, %d resumes, faults: %s", runs, from, to, time.Since(start).Round(time.Second), resumes, total)
}

// dropSuite deletes a seed's namespace and nodes (best effort: the cluster goes at the end anyway).
func dropSuite(suite string) {
	ctx := context.Background()
	_ = cluster.Client.CoreV1().Namespaces().Delete(ctx, suite, metav1.DeleteOptions{})
	_ = cluster.Client.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "suite=" + suite})
}

func mergeCounts(into, from *faults.Injector) { into.Add(from) }

// parseSpec parses a runbook whose spec after targetVersion is body (state, defaults, steps).
func parseSpec(t *testing.T, target, body string) *runbook.Runbook {
	t.Helper()
	text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: " + target + "\n" + body
	rb, err := runbook.Parse(t.Name()+".yaml", []byte(text), steps.Registry)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return rb
}

// TestDrainSurvivesAPIServerRestart: the apiserver is stopped and started again on the same etcd
// in the middle of a drain (evictions in flight, watches cut, connections refused for a while):
// the drain finishes, the budget is never broken, the node is left cordoned and empty.
func TestDrainSurvivesAPIServerRestart(t *testing.T) {
	simcluster.Need(t)
	ns := "restart"
	namespace(t, ns)
	names := nodes(t, "rst", 3, nil)
	workload(t, ns, "web", 6, map[string]string{"suite": "rst"})
	victim := ""
	var most int
	for _, n := range names {
		pods, _ := cluster.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + n})
		if len(pods.Items) > most {
			victim, most = n, len(pods.Items)
		}
	}
	budgets := cluster.WatchBudgets()
	defer budgets.Stop()
	budgets.Arm(ns)
	e, rec := engine(t, runbook.AlwaysContinue)
	e.NoMirror = false
	rb := parseSpec(t, "v1.37.1", fmt.Sprintf("  state: {namespace: %s}\n  defaults: {timeout: 4m}\n  steps:\n    - {name: drain, type: drain, with: {nodes: [%s]}}\n", ns, victim))
	done := make(chan error, 1)
	var st *runbook.RunState
	go func() {
		var err error
		st, err = e.Start(context.Background(), rb)
		done <- err
	}()
	// Restart once the first pod was evicted.
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(rec.Text(), "evicted") {
		if time.Now().After(deadline) {
			t.Fatalf("no eviction within a minute:\n%s", rec.Text())
		}
		time.Sleep(20 * time.Millisecond)
	}
	restartAt := time.Now()
	if err := cluster.RestartAPIServer(context.Background(), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("the apiserver was away for %v", time.Since(restartAt).Round(time.Millisecond))
	if err := <-done; err != nil {
		t.Fatalf("drain across an apiserver restart: %v\n%s", err, rec.Text())
	}
	if st.Status != runbook.RunSucceeded {
		t.Fatalf("run %s", st.Status)
	}
	n := node(t, victim)
	if !n.Spec.Unschedulable || n.Annotations[drain.AnnotationCordonedBy] != st.ID {
		t.Fatalf("the drained node must stay cordoned by the run: unschedulable %v, annotations %v", n.Spec.Unschedulable, n.Annotations)
	}
	pods, _ := cluster.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + victim})
	if len(pods.Items) != 0 {
		t.Fatalf("%d pod(s) left on the drained node", len(pods.Items))
	}
	if b := budgets.Broken(); len(b) > 0 {
		t.Fatalf("budget broken:\n%s", strings.Join(b, "\n"))
	}
	// Leave the node usable for the tests after this one.
	_ = cluster.SetUnschedulable(context.Background(), victim, false)
}
