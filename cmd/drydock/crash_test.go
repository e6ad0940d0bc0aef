package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/drydock-dev/drydock/internal/invariants"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
)

// TestCrashAtEveryJournalWrite kills drydock (SIGKILL, from inside, right after the k-th journal
// write) for every k of a canary + node groups run, enumerated rather than sampled, and resumes
// each once. Every time: every node at the target, nothing left cordoned by drydock, the admin's
// cordon kept, no budget broken, and the journal true to the cluster.
func TestCrashAtEveryJournalWrite(t *testing.T) {
	simcluster.Need(t)
	drydockBinary(t) // built here, on the test's goroutine
	budgets := cluster.WatchBudgets()
	defer budgets.Stop()
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	action := fmt.Sprintf(`[%q, --kubeconfig, %q, patch, node, "{{.Node.Name}}", --subresource=status, -p, '{"status":{"nodeInfo":{"kubeletVersion":"{{.TargetVersion}}"}}}']`,
		filepath.Join(bin, "kubectl"), cluster.Kubeconfig)

	// One crash point at a time, each on its own nodes and state namespace: a cluster has one lock,
	// so a second run beside a crashed one is refused (exit 3), as it must be.
	const batch = 1
	var mu sync.Mutex
	writes := 0 // the clean run's number of journal writes, once a k past it is seen
	covered := 0
	for first := 1; writes == 0 && first < 200; first += batch {
		var wg sync.WaitGroup
		for k := first; k < first+batch; k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				clean := crashAt(t, k, action, budgets.Arm)
				mu.Lock()
				defer mu.Unlock()
				if clean && (writes == 0 || k-1 < writes) {
					writes = k - 1
				}
				if !clean {
					covered++
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			break
		}
	}
	if writes == 0 && !t.Failed() {
		t.Fatal("the run never finished without a crash")
	}
	time.Sleep(500 * time.Millisecond)
	if b := budgets.Broken(); len(b) > 0 {
		t.Errorf("budgets broken:\n%s", strings.Join(b, "\n"))
	}
	if gatesRechecked.Load() == 0 && !t.Failed() {
		t.Error("no crash fell inside a health gate (or its resume did not check the gate again)")
	}
	t.Logf("crash points: the run makes %d journal writes; %d crashes at distinct writes, each resumed once (%d inside a health gate); violations: %d",
		writes, covered, gatesRechecked.Load(), len(budgets.Broken()))
}

// crashAt runs the scenario with a crash after journal write k, then resumes it, and checks the
// invariants. clean says the run finished without reaching write k.
func crashAt(t *testing.T, k int, action string, arm func(ns string)) (clean bool) {
	ctx := context.Background()
	suite := fmt.Sprintf("crash-%d", k)
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: suite}}, metav1.CreateOptions{}); err != nil {
		t.Error(err)
		return false
	}
	for i, unschedulable := range []bool{false, false, true} {
		name := fmt.Sprintf("%s-%d", suite, i+1)
		if _, err := cluster.CreateNode(ctx, name, simcluster.NodeOptions{KubeletVersion: "v1.36.3", Unschedulable: unschedulable,
			Labels: map[string]string{"suite": suite, "pool": "a"}}); err != nil {
			t.Error(err)
			return false
		}
	}
	admin := suite + "-3" // an admin cordoned it before the run
	d := simcluster.Deployment(suite, "web", 2)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"suite": suite}
	if _, err := cluster.Client.AppsV1().Deployments(suite).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Error(err)
		return false
	}
	one := intstr.FromInt32(1)
	if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets(suite).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: suite, Name: "web"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Error(err)
		return false
	}
	if err := cluster.WaitDeploymentReady(ctx, suite, "web", time.Minute); err != nil {
		t.Error(err)
		return false
	}
	arm(suite) // from here on, the budget must hold
	dir := t.TempDir()
	rb := filepath.Join(dir, "crash.yaml")
	text := fmt.Sprintf(`apiVersion: drydock.dev/v1alpha1
kind: Runbook
metadata: {name: crash}
spec:
  targetVersion: v1.37.1
  state: {namespace: %[1]s}
  defaults: {timeout: 2m}
  steps:
    - name: canary
      type: canary
      pause: none
      with:
        selector: suite=%[1]s
        action: {exec: %[2]s}
        soak: 1s
        health: {namespaces: [%[1]s], timeout: 1m}
    - name: fleet
      type: nodegroups
      with:
        groupBy: pool
        selector: suite=%[1]s
        action: {exec: %[2]s}
        health: {namespaces: [%[1]s], timeout: 1m}
`, suite, action)
	if err := os.WriteFile(rb, []byte(text), 0o644); err != nil {
		t.Error(err)
		return false
	}
	p := &proc{t: t, stateDir: filepath.Join(dir, "state")}
	cmd := p.command("run", rb, "--yes")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", crashAtEnv, k))
	out, err := cmd.CombinedOutput()
	if err == nil {
		checkInvariants(t, k, suite, admin, p)
		return true
	}
	if code := cmd.ProcessState.ExitCode(); code != -1 { // -1: killed by a signal
		t.Errorf("k=%d: the run exited %d instead of being killed at its journal write:\n%s", k, code, out)
		return false
	}
	runs, err := runbook.ListRuns(p.stateDir)
	if err != nil || len(runs) != 1 {
		t.Errorf("k=%d: %d journals after the crash (%v)", k, len(runs), err)
		return false
	}
	if runs[0].Status == runbook.RunSucceeded {
		// Killed after its last write, the run's end: there is nothing to resume, but its lock is
		// still held by its dead process, and the next run is refused until resume releases it.
		out, code := p.run("resume", runs[0].ID, "--yes")
		if code != 0 || !strings.Contains(out, "nothing to resume") || !strings.Contains(out, "released the cluster lock its last session left behind") {
			t.Errorf("k=%d: resume of the run killed after its last write: exit %d, want 0 releasing the lock it left:\n%s", k, code, out)
		}
		checkInvariants(t, k, suite, admin, p)
		return false
	}
	checkStatusAfterCrash(t, k, p, runs[0])
	resumed, code := p.run("resume", runs[0].ID, "--yes")
	if code != 0 {
		t.Errorf("k=%d: resume after the crash exited %d:\n%s", k, code, resumed)
		return false
	}
	checkGateFirst(t, k, resumed)
	checkInvariants(t, k, suite, admin, p)
	return false
}

// checkStatusAfterCrash: status of the killed run says its process is dead (when the journal says
// running) and names every node the run holds cordoned, with the command that finishes it.
func checkStatusAfterCrash(t *testing.T, k int, p *proc, st *runbook.RunState) {
	out, code := p.run("status", st.ID)
	if code != 0 {
		t.Errorf("k=%d: status after the crash exited %d:\n%s", k, code, out)
		return
	}
	if st.Status == runbook.RunRunning && st.Holder != nil && !strings.Contains(out, fmt.Sprintf("dead: pid %d on this machine is gone", st.Holder.PID)) {
		t.Errorf("k=%d: status does not say the run's process is dead:\n%s", k, out)
	}
	nodes, err := cluster.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: "suite=crash-" + strconv.Itoa(k)})
	if err != nil {
		t.Error(err)
		return
	}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable && n.Annotations[drain.AnnotationCordonedBy] == st.ID && !strings.Contains(out, "  "+n.Name+": `drydock resume "+st.ID+"` finishes it") {
			t.Errorf("k=%d: status does not name %s, which the run holds cordoned:\n%s", k, n.Name, out)
		}
	}
}

// gatesRechecked counts the crashes that fell inside a health gate (their resume said so).
var gatesRechecked atomic.Int32

// movedRE is a line saying a node was cordoned or began draining.
var movedRE = regexp.MustCompile(`node \S+( \(group [^)]*\))?: (cordoned|draining)`)

// checkGateFirst: a resume after a crash inside a health gate checks that gate again before any
// node is cordoned or drained.
func checkGateFirst(t *testing.T, k int, resumed string) {
	gate := strings.Index(resumed, "the health gate had not passed when the run stopped")
	if gate < 0 {
		return
	}
	gatesRechecked.Add(1)
	if m := movedRE.FindStringIndex(resumed); m != nil && m[0] < gate {
		t.Errorf("k=%d: resume moved a node before it checked again the gate the crash fell in:\n%s", k, resumed)
	}
}

func checkInvariants(t *testing.T, k int, suite, admin string, p *proc) {
	runs, err := runbook.ListRuns(p.stateDir)
	if err != nil || len(runs) != 1 {
		t.Errorf("k=%d: %d journals (%v)", k, len(runs), err)
		return
	}
	for _, v := range invariants.Check(context.Background(), cluster.Client, invariants.Scene{Selector: "suite=" + suite, Target: "v1.37.1", Admin: admin}, runs[0]) {
		t.Errorf("k=%d: %s", k, v)
	}
}
