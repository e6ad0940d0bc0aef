package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

// TestWholeRunbookPlanStopsBeforeAnythingMoves is the operator's story of issue 13: a canary and
// two node groups, and a minAvailable: 100% budget on a node of the last group. `drydock plan`
// names the blocker with its batch and exits 3; `drydock run` stops before the first step runs
// (exit 3): no node cordoned, no node upgraded, no run in `drydock runs`. Without the budget the run
// starts and pauses after the canary; with the budget back, resume plans again and refuses before
// anything moves (the run stays paused); with it gone again, one resume finishes every node.
func TestWholeRunbookPlanStopsBeforeAnythingMoves(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	suite := "wplan"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: suite}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nodes := map[string]string{"wplan-a-1": "a", "wplan-a-2": "a", "wplan-b-1": "b", "wplan-b-2": "b"}
	for name, group := range nodes {
		labels := map[string]string{"suite": suite, "drydock.dev/group": group}
		if group == "b" {
			labels["wplan-db"] = "here" // the database runs in group b (either node can take it)
		}
		if _, err := cluster.CreateNode(ctx, name, simcluster.NodeOptions{KubeletVersion: "v1.36.3", Labels: labels}); err != nil {
			t.Fatal(err)
		}
	}
	recreateBudget := fullBudget(t, suite, map[string]string{"wplan-db": "here"})
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	action := fmt.Sprintf(`[%q, --kubeconfig, %q, patch, node, "{{.Node.Name}}", --subresource=status, -p, '{"status":{"nodeInfo":{"kubeletVersion":"{{.TargetVersion}}"}}}']`,
		filepath.Join(bin, "kubectl"), cluster.Kubeconfig)
	steps := func() string {
		return fmt.Sprintf(`    - name: canary
      type: canary
      with: {node: wplan-a-1, soak: 1s, action: {exec: %s, readyTimeout: 1m}}
    - name: fleet
      type: nodegroups
      timeout: 3m
      with: {selector: suite=%s, groupBy: drydock.dev/group, order: [a, b], action: {exec: %s, readyTimeout: 1m}}
`, action, suite, action)
	}
	p := newProc(t)

	// drydock plan: the blocker, in its batch and group; exit 3.
	rb := writeRunbook(t, "wplan", steps())
	out, code := runPlain(t, "plan", rb)
	if code != int(exitcode.Blocked) || !regexp.MustCompile(`batch 2 group b ~[^:]*: wplan-b-1`).MatchString(out) || strings.Contains(out, "would stay Pending") || !strings.Contains(out, "BLOCK wplan-b-") || !strings.Contains(out, "minAvailable: 100%") ||
		!strings.Contains(out, "left alone: wplan-a-1 (upgraded by step canary first)") {
		t.Fatalf("plan: exit %d, want 3, with the blocker in batch 2 of group b:\n%s", code, out)
	}
	// The forecast: per step and batch, the critical path, what it assumed, and the run's total: never, while
	// the budget allows nothing.
	if !strings.Contains(out, "step fleet (nodegroups): 3 node(s) in 3 batch(es)") || !regexp.MustCompile(`batch 1 group a ~[0-9.]+m?[0-9.]*s \(`).MatchString(out) ||
		!strings.Contains(out, "critical path: batch") || !strings.Contains(out, "assumed: the upgrade action takes ~2m0s") || !strings.Contains(out, "fleet: never (blocked)") || !strings.Contains(out, "Forecast: never (blocked)") {
		t.Fatalf("plan: no forecast:\n%s", out)
	}
	out, code = runPlain(t, "plan", rb, "-o", "yaml")
	var plan RunbookPlan
	if i := strings.Index(out, "\nerror: "); i > 0 {
		out = out[:i] // stdout and stderr share out: the error line comes after the document
	}
	if err := yaml.Unmarshal([]byte(out), &plan); err != nil || code != int(exitcode.Blocked) || plan.Kind != KindRunbookPlan || len(plan.Nodes) != 2 || len(plan.Nodes[1].Certain()) == 0 || len(plan.Nodes[0].Certain()) != 0 {
		t.Fatalf("plan -o yaml: exit %d, %v:\n%s", code, err, out)
	}

	// drydock run: refused before anything moves; no run left behind.
	out, code = p.run("run", rb)
	if code != int(exitcode.Blocked) || !strings.Contains(out, "blocked before the first node moved") || !strings.Contains(out, "onBlocked: proceed") {
		t.Fatalf("run: exit %d, want 3:\n%s", code, out)
	}
	for name := range nodes {
		n, err := cluster.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Spec.Unschedulable || n.Status.NodeInfo.KubeletVersion != "v1.36.3" {
			t.Errorf("node %s moved: unschedulable %v, kubelet %s", name, n.Spec.Unschedulable, n.Status.NodeInfo.KubeletVersion)
		}
	}
	if runs, err := runbook.ListRuns(p.stateDir); err != nil || len(runs) != 0 {
		t.Errorf("a refused run left %d run(s) behind (%v)", len(runs), err)
	}

	// Without the budget the run starts; it pauses after the canary (nobody to answer).
	budgets := cluster.Client.PolicyV1().PodDisruptionBudgets(suite)
	if err := budgets.Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	out, code = p.run("run", rb)
	if code != int(exitcode.Paused) {
		t.Fatalf("run without the budget: exit %d, want 5 at the canary's pause point:\n%s", code, out)
	}
	id := runIDRE.FindStringSubmatch(out)[1]
	// The budget is back while the run waits: resume plans again and refuses before anything moves.
	recreateBudget()
	out, code = p.run("resume", id, "--yes")
	if code != int(exitcode.Blocked) || !strings.Contains(out, "resume run "+id+": blocked before the first node moved") {
		t.Fatalf("resume with the budget back: exit %d, want 3:\n%s", code, out)
	}
	if st, err := runbook.ReadRun(p.stateDir, id); err != nil || st.Status != runbook.RunPaused {
		t.Fatalf("the refused resume changed the run: %v %v", st.Status, err)
	}
	nodesAt := func(want map[string]string) {
		t.Helper()
		for name := range nodes {
			n, err := cluster.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if n.Spec.Unschedulable || n.Status.NodeInfo.KubeletVersion != want[name] {
				t.Errorf("node %s: unschedulable %v, kubelet %s, want %s", name, n.Spec.Unschedulable, n.Status.NodeInfo.KubeletVersion, want[name])
			}
		}
	}
	nodesAt(map[string]string{"wplan-a-1": "v1.37.1", "wplan-a-2": "v1.36.3", "wplan-b-1": "v1.36.3", "wplan-b-2": "v1.36.3"})
	// Fixed: one resume finishes the run.
	if err := budgets.Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	out, code = p.run("resume", id, "--yes")
	if code != 0 || !strings.Contains(out, "forecast against actual: fleet ~") {
		t.Fatalf("resume after the fix: exit %d, want 0 and the fleet's forecast against what it took:\n%s", code, out)
	}
	nodesAt(map[string]string{"wplan-a-1": "v1.37.1", "wplan-a-2": "v1.37.1", "wplan-b-1": "v1.37.1", "wplan-b-2": "v1.37.1"})
}

// runPlain runs the binary with args and the test cluster's kubeconfig only (commands without
// --state-dir); stdout and stderr together.
func runPlain(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runEnv(t, nil, append(args, "--kubeconfig", cluster.Kubeconfig)...) // nil: this process's environment
}
