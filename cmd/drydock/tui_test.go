package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

// tmuxSession runs a command in a detached tmux session of its own server (80x24 is too small for
// nothing here, but the screen is checked at 100x30).
type tmuxSession struct {
	t      *testing.T
	socket string
}

func (s *tmuxSession) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (s *tmuxSession) screen() string { return s.tmux("capture-pane", "-p", "-t", "e2e") }

// history is the screen with what scrolled off it (for failures: a plan's blockers scroll away).
func (s *tmuxSession) history() string {
	return s.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "e2e")
}

func (s *tmuxSession) waitFor(text string, timeout time.Duration) string {
	s.t.Helper()
	return s.waitIn(s.screen, text, timeout)
}

// waitForPrinted waits for text printed after the screen closed, which may have scrolled off it.
func (s *tmuxSession) waitForPrinted(text string, timeout time.Duration) string {
	s.t.Helper()
	return s.waitIn(s.history, text, timeout)
}

func (s *tmuxSession) waitIn(capture func() string, text string, timeout time.Duration) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		scr := capture()
		if strings.Contains(scr, text) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the screen did not show %q within %s:\n%s", text, timeout, s.history())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestTUIEndToEnd runs the real binary in tmux against the simulated cluster: a canary with its
// pause point; the test waits for the pause modal, presses c, waits for the run to finish, checks
// the final screen, quits with q and checks the exit code.
func TestTUIEndToEnd(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	for _, n := range []string{"tui-1", "tui-2"} {
		if _, err := cluster.CreateNode(ctx, n, simcluster.NodeOptions{KubeletVersion: "v1.36.3", Labels: map[string]string{"drydock.dev/group": "tui"}}); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	rb := writeRunbook(t, "tui", fmt.Sprintf(`    - name: canary
      type: canary
      with:
        selector: drydock.dev/group=tui
        soak: 1s
        action:
          exec: [%q, --kubeconfig, %q, patch, node, "{{.Node.Name}}", --subresource=status, -p, '{"status":{"nodeInfo":{"kubeletVersion":"{{.TargetVersion}}"}}}']
          readyTimeout: 1m
    - name: after
      type: exec
      with: {command: [sh, -c, "echo the fleet would follow"]}
`, filepath.Join(bin, "kubectl"), cluster.Kubeconfig))
	dir := t.TempDir()
	exitFile := filepath.Join(dir, "exit")
	s := &tmuxSession{t: t, socket: fmt.Sprintf("drydock-e2e-%d", os.Getpid())}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	cmdline := fmt.Sprintf("%q run %q --kubeconfig %q --state-dir %q --no-mirror; echo $? > %q; sleep 600",
		drydockBinary(t), rb, cluster.Kubeconfig, filepath.Join(dir, "state"), exitFile)
	s.tmux("new-session", "-d", "-s", "e2e", "-x", "100", "-y", "30", "-e", "TERM=xterm-256color", cmdline)

	scr := s.waitFor("Pause point after step canary", 90*time.Second)
	for _, want := range []string{"drydock run", "‖ canary", "· after", "[waiting for you]", "Continue", "soak: every gate green for 1s", "✓ pods", "nodes: upgraded 1"} {
		if !strings.Contains(scr, want) {
			t.Errorf("pause screen lacks %q:\n%s", want, scr)
		}
	}
	s.tmux("send-keys", "-t", "e2e", "c")
	scr = s.waitFor("[succeeded]", 60*time.Second)
	for _, want := range []string{"✓ canary", "✓ after", "every step done"} {
		if !strings.Contains(scr, want) {
			t.Errorf("final screen lacks %q:\n%s", want, scr)
		}
	}
	s.tmux("send-keys", "-t", "e2e", "q")
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := os.ReadFile(exitFile)
		if err == nil && len(b) > 0 {
			if code := strings.TrimSpace(string(b)); code != "0" {
				t.Errorf("exit %s, want 0\n%s", code, s.screen())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drydock did not exit after q:\n%s", s.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if scr := s.screen(); !strings.Contains(scr, "drydock: run ") || !strings.Contains(scr, "succeeded: every step done") {
		t.Errorf("no summary line after the screen closed:\n%s", scr)
	}
}

// TestTUIOperatorStory is issue 13's operator story on the real binary in tmux at 80x24: a
// minAvailable: 100% budget in the last group stops the run before anything moves (exit 3); with
// it gone, the run pauses after the canary, r asks again (enter goes back), r → enter rolls back,
// and the screen says which node stays upgraded because the action has no rollback command (exit 4).
func TestTUIOperatorStory(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ns := "story"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Group names of their own: other tests' nodes in this cluster have groups a and b.
	for name, group := range map[string]string{"story-a-1": "story-a", "story-b-1": "story-b", "story-b-2": "story-b"} {
		if _, err := cluster.CreateNode(ctx, name, simcluster.NodeOptions{KubeletVersion: "v1.36.3", Labels: map[string]string{"suite": ns, "drydock.dev/group": group}}); err != nil {
			t.Fatal(err)
		}
	}
	fullBudget(t, ns, map[string]string{"drydock.dev/group": "story-b"})
	budgets := cluster.Client.PolicyV1().PodDisruptionBudgets(ns)
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	action := fmt.Sprintf(`[%q, --kubeconfig, %q, patch, node, "{{.Node.Name}}", --subresource=status, -p, '{"status":{"nodeInfo":{"kubeletVersion":"{{.TargetVersion}}"}}}']`,
		filepath.Join(bin, "kubectl"), cluster.Kubeconfig)
	rb := writeRunbook(t, "story", fmt.Sprintf(`    - name: canary
      type: canary
      with: {node: story-a-1, soak: 1s, action: {exec: %s, readyTimeout: 1m}}
    - name: fleet
      type: nodegroups
      with: {selector: suite=%s, groupBy: drydock.dev/group, order: [story-a, story-b], action: {exec: %s, readyTimeout: 1m}}
`, action, ns, action))
	// The run's lock in the test's own namespace: a run left paused by a failure here never holds
	// kube-system's lock, which the other tests of this cluster take.
	patchRunbook(t, rb, "  state: {namespace: "+ns+"}\n")
	dir := t.TempDir()
	s := &tmuxSession{t: t}
	startWith := func(window string, args ...string) string {
		exitFile := filepath.Join(dir, window+".exit")
		var quoted []string
		for _, a := range args {
			quoted = append(quoted, fmt.Sprintf("%q", a))
		}
		cmdline := fmt.Sprintf("%q %s --kubeconfig %q --state-dir %q --no-mirror; echo $? > %q; sleep 600",
			drydockBinary(t), strings.Join(quoted, " "), cluster.Kubeconfig, filepath.Join(dir, "state"), exitFile)
		// A tmux server of its own per run: reusing one just killed races its exit ("server exited
		// unexpectedly").
		s.socket = fmt.Sprintf("drydock-story-%d-%s", os.Getpid(), window)
		socket := s.socket
		t.Cleanup(func() { _ = exec.Command("tmux", "-L", socket, "kill-server").Run() })
		s.tmux("new-session", "-d", "-s", "e2e", "-x", "80", "-y", "24", "-e", "TERM=xterm-256color", cmdline)
		return exitFile
	}
	start := func(window string) string { return startWith(window, "run", rb) }
	exitCode := func(exitFile string) string {
		deadline := time.Now().Add(20 * time.Second)
		for {
			if b, err := os.ReadFile(exitFile); err == nil && len(b) > 0 {
				return strings.TrimSpace(string(b))
			}
			if time.Now().After(deadline) {
				t.Fatalf("drydock did not exit after q:\n%s", s.screen())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	nodeAt := func(name string) string {
		n, err := cluster.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Spec.Unschedulable {
			t.Errorf("node %s left cordoned", name)
		}
		return n.Status.NodeInfo.KubeletVersion
	}

	// 1. The budget in the last group: nothing moves; the screen names the blocker.
	exitFile := start("blocked")
	scr := s.waitFor("[failed]", 60*time.Second)
	if !strings.Contains(scr, "BLOCK story-b-") && !strings.Contains(scr, "blocked before the first node moved") {
		t.Errorf("the blocked screen does not name the blocker:\n%s", scr)
	}
	s.tmux("send-keys", "-t", "e2e", "q")
	if code := exitCode(exitFile); code != "3" {
		t.Errorf("blocked run: exit %s, want 3\n%s", code, s.screen())
	}
	if v := nodeAt("story-a-1"); v != "v1.36.3" {
		t.Errorf("story-a-1 moved to %s although the run was blocked", v)
	}

	// 2. Without the budget: the canary, its pause point, r twice (the first time back), rollback.
	if err := budgets.Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	exitFile = start("rollback")
	s.waitFor("Pause point after step canary", 90*time.Second)
	s.tmux("send-keys", "-t", "e2e", "r")
	scr = s.waitFor("Roll back the run?", 10*time.Second)
	if !strings.Contains(scr, "[Back to the pause point]") {
		t.Errorf("the confirmation does not start on the safe choice:\n%s", scr)
	}
	s.tmux("send-keys", "-t", "e2e", "Enter")
	s.waitFor("Pause point after step canary", 10*time.Second)
	s.tmux("send-keys", "-t", "e2e", "r")
	s.waitFor("Roll back the run?", 10*time.Second)
	s.tmux("send-keys", "-t", "e2e", "Right")
	s.tmux("send-keys", "-t", "e2e", "Enter")
	scr = s.waitFor("[partly-rolled-back]", 60*time.Second)
	if !strings.Contains(scr, "left at v1.37.1") {
		t.Errorf("the rollback does not say what it left:\n%s", scr)
	}
	s.tmux("send-keys", "-t", "e2e", "q")
	if code := exitCode(exitFile); code != "4" {
		t.Errorf("rolled back run: exit %s, want 4\n%s", code, s.screen())
	}
	if v := nodeAt("story-a-1"); v != "v1.37.1" {
		t.Errorf("story-a-1 at %s: the action has no rollback command, so it stays upgraded", v)
	}
	if scr := s.screen(); !strings.Contains(scr, "node/story-a-1: left at v1.37.1") {
		t.Errorf("the closing lines do not name the node left upgraded:\n%s", scr)
	}

	// 3. Stopped at the pause point (s, confirmed), then resumed by id in the screen: it asks again,
	// with the earlier session's work shown, and c finishes the run.
	exitFile = start("stop")
	s.waitFor("Pause point after step canary", 90*time.Second)
	s.tmux("send-keys", "-t", "e2e", "s")
	s.waitFor("[Back to the pause point]", 10*time.Second)
	s.tmux("send-keys", "-t", "e2e", "Right")
	s.tmux("send-keys", "-t", "e2e", "Enter")
	s.waitFor("[paused]", 30*time.Second)
	s.tmux("send-keys", "-t", "e2e", "q")
	if code := exitCode(exitFile); code != "5" {
		t.Fatalf("stopped run: exit %s, want 5\n%s", code, s.screen())
	}
	var paused string
	runs, _ := runbook.ListRuns(filepath.Join(dir, "state"))
	for _, r := range runs {
		if r.Status == runbook.RunPaused {
			paused = r.ID
		}
	}
	if paused == "" {
		t.Fatalf("no paused run after s: %d runs", len(runs))
	}
	exitFile = startWith("resume", "resume", paused)
	scr = s.waitFor("Pause point after step canary", 60*time.Second)
	if !strings.Contains(s.history()+scr, "earlier session") {
		t.Errorf("the resumed screen does not show the earlier session:\n%s", scr)
	}
	s.tmux("send-keys", "-t", "e2e", "c")
	s.waitFor("[succeeded]", 90*time.Second)
	s.tmux("send-keys", "-t", "e2e", "q")
	if code := exitCode(exitFile); code != "0" {
		t.Errorf("resumed run: exit %s, want 0\n%s", code, s.screen())
	}
	if out := s.history(); !strings.Contains(out, "resuming run "+paused) {
		t.Errorf("resume did not say which run it resumed:\n%s", out)
	}
	for _, n := range []string{"story-b-1", "story-b-2"} {
		if v := nodeAt(n); v != "v1.37.1" {
			t.Errorf("%s at %s after the resumed run", n, v)
		}
	}
}

// TestRehearseOnScreen runs `drydock rehearse` on a terminal (tmux): the copy's run is on the
// terminal UI as a run is, the screen closes by itself when the rehearsal ends, and the report
// follows with each node group; exit 0. Its two nodes are tainted so that no other test's pods land
// on them.
func TestRehearseOnScreen(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	taint := []corev1.Taint{{Key: "drydock.dev/rehearse-test", Value: "only", Effect: corev1.TaintEffectNoSchedule}}
	for n, g := range map[string]string{"rh-1": "a", "rh-2": "b"} {
		if _, err := cluster.CreateNode(ctx, n, simcluster.NodeOptions{KubeletVersion: "v1.36.3", Taints: taint,
			Labels: map[string]string{"drydock.dev/rh-group": g, "drydock.dev/rh": "yes"}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cluster.Client.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{}) })
	}
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "rh"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cluster.Client.CoreV1().Namespaces().Delete(context.Background(), "rh", metav1.DeleteOptions{})
	})
	d := simcluster.Deployment("rh", "web", 2)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"drydock.dev/rh": "yes"}
	d.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "drydock.dev/rehearse-test", Operator: corev1.TolerationOpExists}}
	if _, err := cluster.Client.AppsV1().Deployments("rh").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WaitDeploymentReady(ctx, "rh", "web", 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	rb := writeRunbook(t, "rh", `    - name: fleet
      type: nodegroups
      with:
        groupBy: drydock.dev/rh-group
        selector: drydock.dev/rh=yes
        action: {exec: [upgrade-node], expectedDuration: 1s}
        health: {namespaces: [rh], timeout: 1m}
`)
	dir := t.TempDir()
	exitFile := filepath.Join(dir, "exit")
	s := &tmuxSession{t: t, socket: fmt.Sprintf("drydock-rh-%d", os.Getpid())}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	cmdline := fmt.Sprintf("%q rehearse %q --kubeconfig %q --sim-bin %q --state-dir %q; echo $? > %q; sleep 600",
		drydockBinary(t), rb, cluster.Kubeconfig, bin, filepath.Join(dir, "state"), exitFile)
	s.tmux("new-session", "-d", "-s", "e2e", "-x", "100", "-y", "30", "-e", "TERM=xterm-256color", cmdline)
	s.waitFor("drydock rehearse", 90*time.Second) // the screen's title
	// the report follows the screen; the copy holds the shared cluster's other tests' workloads,
	// so it may be longer than the terminal
	scr := s.waitForPrinted("Rehearsal on a simulated copy", 4*time.Minute)
	for _, want := range []string{": succeeded", "fleet group a: took", "fleet group b: took", "on the cluster"} {
		if !strings.Contains(scr, want) {
			t.Errorf("the report after the screen lacks %q:\n%s", want, scr)
		}
	}
	waitFile(t, exitFile, 30*time.Second)
	var code string
	for range 50 {
		if b, _ := os.ReadFile(exitFile); len(b) > 0 {
			code = strings.TrimSpace(string(b))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != "0" {
		t.Errorf("exit %q, want 0:\n%s", code, s.screen())
	}
}
