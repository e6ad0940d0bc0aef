package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

// proc runs the real binary against the test cluster with its own state directory.
type proc struct {
	t        *testing.T
	stateDir string
}

func newProc(t *testing.T) *proc {
	return &proc{t: t, stateDir: t.TempDir()}
}

func (p *proc) command(args ...string) *exec.Cmd {
	cmd := exec.Command(drydockBinary(p.t), append(args, "--kubeconfig", cluster.Kubeconfig, "--state-dir", p.stateDir)...)
	cmd.Stdin = nil // no TTY: nobody can answer a pause point
	return cmd
}

func (p *proc) run(args ...string) (string, int) {
	p.t.Helper()
	var out bytes.Buffer
	cmd := p.command(args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatal(err)
	}
	return out.String(), code
}

// startUntil starts drydock in the background and returns once the file marker exists (a step's
// command creates it), with the process and its combined output.
func (p *proc) startUntil(marker string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	p.t.Helper()
	cmd := p.command(args...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFile(p.t, marker, 30*time.Second)
	return cmd, out
}

func writeRunbook(t *testing.T, name, steps string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".yaml")
	text := fmt.Sprintf("apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: %s}\nspec:\n  targetVersion: v1.37.1\n  steps:\n%s", name, steps)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var runIDRE = regexp.MustCompile(`run (\d{8}-\d{4}-[0-9a-f]{4})`)

func waitFile(t *testing.T, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", path, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKillAndResume SIGKILLs drydock in the middle of a step, resumes, and checks that every
// step's effect happened exactly once (the interrupted step's command is killed with drydock and
// run again; the steps done before are not).
func TestKillAndResume(t *testing.T) {
	simcluster.Need(t)
	dir := t.TempDir()
	log, started := filepath.Join(dir, "log"), filepath.Join(dir, "started")
	rb := writeRunbook(t, "killme", fmt.Sprintf(`    - name: one
      type: exec
      with: {command: [sh, -c, "echo one >> %[1]s"]}
    - name: two
      type: exec
      with: {command: [sh, -c, "touch %[2]s; sleep 4; echo two >> %[1]s"]}
    - name: nodes
      type: wait
      with: {for: nodesReady}
    - name: three
      type: exec
      with: {command: [sh, -c, "echo three >> %[1]s"]}
`, log, started))
	if _, err := cluster.CreateNode(context.Background(), "kill-1", simcluster.NodeOptions{}); err != nil {
		t.Fatal(err)
	}
	p := newProc(t)
	cmd, out := p.startUntil(started, "run", rb)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	m := runIDRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no run id in output:\n%s", out.String())
	}
	id := m[1]
	st, err := runbook.ReadRun(p.stateDir, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Step("two").Status != runbook.StatusRunning || st.Step("one").Status != runbook.StatusDone {
		t.Fatalf("journal after the kill: one %s, two %s", st.Step("one").Status, st.Step("two").Status)
	}

	resumed, code := p.run("resume", id)
	if code != 0 {
		t.Fatalf("resume exit %d:\n%s", code, resumed)
	}
	if !strings.Contains(resumed, "attempt 2") {
		t.Errorf("resume should say it re-enters step two:\n%s", resumed)
	}
	time.Sleep(500 * time.Millisecond) // an orphan of the killed run would have written by now
	got, _ := os.ReadFile(log)
	if string(got) != "one\ntwo\nthree\n" {
		t.Fatalf("effects %q, want each step once: one, two, three", got)
	}
	st, _ = runbook.ReadRun(p.stateDir, id)
	if st.Status != runbook.RunSucceeded || st.Step("one").Attempts != 1 || st.Step("two").Attempts != 2 {
		t.Fatalf("journal: %s, attempts one=%d two=%d", st.Status, st.Step("one").Attempts, st.Step("two").Attempts)
	}
}

// TestPauseWithoutTTY: with no terminal and no --yes, the run stops at the pause point (exit 5,
// status paused); `resume --yes` finishes it.
func TestPauseWithoutTTY(t *testing.T) {
	simcluster.Need(t)
	rb := writeRunbook(t, "pauses", `    - name: before-gate
      type: exec
      pause: after
      with: {command: ["true"]}
    - name: after-gate
      type: exec
      with: {command: [echo, finished]}
`)
	p := newProc(t)
	out, code := p.run("run", rb, "-o", "json")
	if code != int(exitcode.Paused) {
		t.Fatalf("exit %d, want %d:\n%s", code, exitcode.Paused, out)
	}
	var last map[string]any
	var id string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil {
			last = ev
			if ev["type"] == "run.started" {
				id, _ = ev["run"].(string)
			}
		}
	}
	if last["type"] != "run.finished" || last["status"] != "paused" {
		t.Fatalf("last event %v", last)
	}
	st, err := runbook.ReadRun(p.stateDir, id)
	if err != nil || st.Status != runbook.RunPaused || st.Step("after-gate").Status != runbook.StatusPending {
		t.Fatalf("journal %v: %+v", err, st)
	}
	list, _ := p.run("runs")
	if !strings.Contains(list, id) || !strings.Contains(list, "paused") {
		t.Fatalf("drydock runs:\n%s", list)
	}

	out, code = p.run("resume", "--yes")
	if code != 0 || !strings.Contains(out, "stdout: finished") {
		t.Fatalf("resume --yes exit %d:\n%s", code, out)
	}
	st, _ = runbook.ReadRun(p.stateDir, id)
	if st.Status != runbook.RunSucceeded {
		t.Fatalf("status %s", st.Status)
	}
}

// TestLockBetweenProcesses: a second drydock against the same cluster is refused, naming the holder.
//
// The first run keeps its state in a namespace of its own and the second is a `drydock drain` (state
// in kube-system): one lock per cluster all the same (issue 30: they used to drain one cluster at once).
func TestLockBetweenProcesses(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	const stateNS = "lock-between-processes"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: stateNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.CreateNode(ctx, "lock-drain-1", simcluster.NodeOptions{}); err != nil {
		t.Fatal(err)
	}
	slow := filepath.Join(dir, "slow.yaml")
	if err := os.WriteFile(slow, []byte(fmt.Sprintf("apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: slow}\nspec:\n  targetVersion: v1.37.1\n"+
		"  state: {namespace: %s}\n  steps:\n    - name: hold\n      type: exec\n      with: {command: [sh, -c, \"touch %s; sleep 3\"]}\n", stateNS, started)), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b := newProc(t), newProc(t)
	cmd, out := a.startUntil(started, "run", slow)
	refused, code := b.run("drain", "lock-drain-1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("first run: %v\n%s", err, out.String())
	}
	id := runIDRE.FindStringSubmatch(out.String())[1]
	if code != int(exitcode.Blocked) || !strings.Contains(refused, "cluster is locked by run "+id) {
		t.Fatalf("a drain beside a run whose state lives elsewhere: exit %d, want %d naming run %s:\n%s", code, exitcode.Blocked, id, refused)
	}
	if n, err := cluster.Client.CoreV1().Nodes().Get(ctx, "lock-drain-1", metav1.GetOptions{}); err != nil || n.Spec.Unschedulable {
		t.Fatalf("the refused drain cordoned the node (or %v)", err)
	}
	if again, code := b.run("drain", "lock-drain-1"); code != 0 {
		t.Fatalf("after the first run ended, exit %d:\n%s", code, again)
	}
	if err := cluster.SetUnschedulable(ctx, "lock-drain-1", false); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedJournalResumesFromTheClusterCopy: a truncated local journal is named (status, runs),
// and resume continues the run from its copy in the cluster, saying so, keeping the damaged file
// aside (issue 30, item 10).
func TestDamagedJournalResumesFromTheClusterCopy(t *testing.T) {
	simcluster.Need(t)
	p := newProc(t)
	rb := writeRunbook(t, "damaged", "    - {name: first, type: exec, pause: after, with: {command: [\"true\"]}}\n    - {name: second, type: exec, with: {command: [echo, second-ran]}}\n")
	out, code := p.run("run", rb)
	if code != int(exitcode.Paused) {
		t.Fatalf("run: exit %d, want %d:\n%s", code, exitcode.Paused, out)
	}
	id := runIDRE.FindStringSubmatch(out)[1]
	path := filepath.Join(p.stateDir, "runs", id, "journal.json")
	if err := os.Truncate(path, 100); err != nil {
		t.Fatal(err)
	}
	if out, _ := p.run("status", id); !strings.Contains(out, path) || !strings.Contains(out, "--from-cluster") {
		t.Fatalf("status of a damaged journal must name the file and the way to the copy:\n%s", out)
	}
	if out, code := p.run("runs"); code != 0 || !regexp.MustCompile(id+`.*damaged`).MatchString(out) {
		t.Fatalf("runs must list the damaged run (exit %d):\n%s", code, out)
	}
	out, code = p.run("resume", id, "--yes")
	if code != 0 || !strings.Contains(out, "is damaged") || !strings.Contains(out, "using the cluster's copy") || !strings.Contains(out, "second-ran") {
		t.Fatalf("resume from the cluster copy: exit %d:\n%s", code, out)
	}
	if kept, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "journal.damaged-*.json")); len(kept) != 1 {
		t.Fatalf("the damaged journal was not kept aside: %v", kept)
	}
	if out, code := p.run("status", id); code != 0 || !strings.Contains(out, "succeeded") {
		t.Fatalf("status after the resume (exit %d):\n%s", code, out)
	}
}

// TestSIGTERMLeavesRunResumable: SIGTERM cancels the step, journals the run as interrupted,
// releases the lock and exits 130; resume finishes the run.
func TestSIGTERMLeavesRunResumable(t *testing.T) {
	simcluster.Need(t)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	done := filepath.Join(dir, "done")
	rb := writeRunbook(t, "term", fmt.Sprintf("    - name: long\n      type: exec\n      with: {command: [sh, -c, \"test -e %s && exit 0; touch %s; sleep 30\"]}\n    - name: after\n      type: exec\n      with: {command: [echo, after]}\n", done, started))
	p := newProc(t)
	cmd, out := p.startUntil(started, "run", rb)
	begin := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	ok := errors.As(err, &ee)
	if !ok || ee.ExitCode() != int(exitcode.Interrupted) {
		t.Fatalf("exit %v, want %d:\n%s", err, exitcode.Interrupted, out.String())
	}
	if time.Since(begin) > 15*time.Second {
		t.Fatalf("took %v to stop after SIGTERM", time.Since(begin))
	}
	id := runIDRE.FindStringSubmatch(out.String())[1]
	st, _ := runbook.ReadRun(p.stateDir, id)
	if st.Status != runbook.RunInterrupted || st.Step("long").Status != runbook.StatusInterrupted {
		t.Fatalf("journal: run %s, step %s", st.Status, st.Step("long").Status)
	}
	// The lock was released (no --steal-lock needed), and the step is re-entered: this time its
	// command finds its work done.
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	resumed, code := p.run("resume", id)
	if code != 0 || !strings.Contains(resumed, "step long: started (exec, attempt 2") || !strings.Contains(resumed, "stdout: after") {
		t.Fatalf("resume exit %d:\n%s", code, resumed)
	}
}

// TestSecondSignalExitsAtOnce: a second SIGTERM (or Ctrl-C) exits at once, without the cleanup;
// the run is still resumable, and resume on this machine takes the dead process's lease at once
// (same machine and boot, process gone), with no --steal-lock.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	simcluster.Need(t)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	done := filepath.Join(dir, "done")
	// The command ignores SIGTERM, so stopping it takes drydock a while: the second signal comes
	// in the middle of the cleanup.
	rb := writeRunbook(t, "term2", fmt.Sprintf("    - name: long\n      type: exec\n      with: {command: [sh, -c, \"test -e %s && exit 0; trap '' TERM; touch %s; sleep 30\"]}\n", done, started))
	p := newProc(t)
	cmd, out := p.startUntil(started, "run", rb)
	begin := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond) // drydock is waiting for the command to stop
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	ok := errors.As(err, &ee)
	if !ok || ee.ExitCode() != int(exitcode.Interrupted) {
		t.Fatalf("exit %v, want %d:\n%s", err, exitcode.Interrupted, out.String())
	}
	if time.Since(begin) > 5*time.Second {
		t.Fatalf("took %v to exit after the second signal", time.Since(begin))
	}
	if !strings.Contains(out.String(), "exiting now") {
		t.Fatalf("the second signal was not acknowledged:\n%s", out.String())
	}
	id := runIDRE.FindStringSubmatch(out.String())[1]
	st, err := runbook.ReadRun(p.stateDir, id)
	if err != nil || !st.Status.Resumable() {
		t.Fatalf("journal after the second signal: %v %+v", err, st)
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	resumed, code := p.run("resume", id)
	if code != 0 {
		t.Fatalf("resume exit %d:\n%s", code, resumed)
	}
}

// TestKeepRunsAndPrune: a run ends by pruning the cluster copies of finished runs beyond
// --keep-runs; `drydock runs --prune --keep-runs 0` removes the rest.
func TestKeepRunsAndPrune(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ns := "prune-runs"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := filepath.Join(t.TempDir(), "quick.yaml")
	text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: quick}\nspec:\n  targetVersion: v1.37.1\n  state: {namespace: " + ns + "}\n  steps:\n    - {name: hi, type: exec, with: {command: [echo, hi]}}\n"
	if err := os.WriteFile(rb, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	mirrored := func() int {
		list, err := cluster.Client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: runbook.LabelPartOf + "=drydock"})
		if err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}
	p := newProc(t)
	for range 3 {
		if out, code := p.run("run", rb, "--keep-runs", "2"); code != 0 {
			t.Fatalf("run: exit %d\n%s", code, out)
		}
	}
	if n := mirrored(); n != 2 {
		t.Fatalf("%d run ConfigMaps after 3 runs with --keep-runs 2, want 2", n)
	}
	if out, code := p.run("runs", "--prune", "--keep-runs", "0", "--state-namespace", ns); code != 0 || !strings.Contains(out, "2 run(s) pruned") {
		t.Fatalf("runs --prune: exit %d\n%s", code, out)
	}
	if n := mirrored(); n != 0 {
		t.Fatalf("%d run ConfigMaps after runs --prune --keep-runs 0", n)
	}
	if out, code := p.run("run", rb, "--keep-runs", "0"); code != 2 || !strings.Contains(out, "--keep-runs must be at least 1") {
		t.Fatalf("run --keep-runs 0: exit %d, want 2\n%s", code, out)
	}
}
