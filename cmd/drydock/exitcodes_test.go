package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
)

// TestExitCodeTable runs the real binary, each command in each failure mode it can meet, and checks
// the exit code against the README's table (internal/exitcode) and that the message says what is
// wrong: invalid input, no kubeconfig, an unreachable apiserver, a forbidden user, a blocker, a
// pause point, a rollback, an interruption.
func TestExitCodeTable(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	drydockBinary(t)
	dir := t.TempDir()

	// A node whose one pod sits under a minAvailable: 100% budget: a certain blocker.
	ns := "codes"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.CreateNode(ctx, "codes-1", simcluster.NodeOptions{KubeletVersion: "v1.36.3", Labels: map[string]string{"suite": "codes"}}); err != nil {
		t.Fatal(err)
	}
	fullBudget(t, ns, map[string]string{"suite": "codes"})

	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	runbookWith := func(name, steps string, extra ...string) string {
		return write(name+".yaml", fmt.Sprintf("apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: %s}\nspec:\n  targetVersion: v1.37.1\n%s  steps:\n%s", name, strings.Join(extra, ""), steps))
	}
	blockedRB := runbookWith("blocked", "    - {name: drain, type: drain, with: {nodes: [codes-1]}}\n")
	unknownNodeRB := runbookWith("unknown", "    - {name: drain, type: drain, with: {nodes: [no-such-node]}}\n")
	badRB := write("bad.yaml", "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: bad}\nspec: {targetVersion: v1.37.1, steps: [{name: x, type: nope}]}\n")
	echoRB := runbookWith("echo", "    - {name: hi, type: exec, with: {command: [echo, hi]}}\n")
	// These two take the cluster lock: each in a namespace of its own, so that they (run in parallel)
	// and the other tests never wait for one another.
	for _, n := range []string{"codes-paused", "codes-rolledback"} {
		if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pausedRB := runbookWith("paused", "    - {name: hi, type: exec, pause: after, with: {command: [echo, hi]}}\n", "  state: {namespace: codes-paused}\n")
	rolledBackRB := runbookWith("rolledback", "    - {name: first, type: exec, with: {command: [echo, one], rollback: [echo, undo]}}\n    - {name: fails, type: exec, with: {command: [sh, -c, 'exit 7']}}\n", "  onFailure: rollback\n  state: {namespace: codes-rolledback}\n")
	unreachable := write("unreachable", "apiVersion: v1\nkind: Config\nclusters: [{name: gone, cluster: {server: \"https://127.0.0.1:1\"}}]\ncontexts: [{name: gone, context: {cluster: gone, user: u}}]\nusers: [{name: u, user: {token: x}}]\ncurrent-context: gone\n")

	const (
		good   = "cluster"     // the test cluster's kubeconfig
		none   = "none"        // no kubeconfig at all
		gone   = "unreachable" // nothing listens at the server
		nobody = "nobody"      // the cluster, impersonating a user without any role
	)
	for _, tc := range []struct {
		name   string
		kube   string
		args   []string
		want   exitcode.Code
		saying string
	}{
		// 2: usage errors and invalid input.
		{"unknown command", good, []string{"frobnicate"}, exitcode.Usage, "unknown command"},
		{"bad flag", good, []string{"drain", "codes-1", "--concurrency", "0"}, exitcode.Usage, "--concurrency must be at least 1"},
		{"validate an invalid runbook", good, []string{"validate", badRB}, exitcode.Usage, `unknown step type "nope"`},
		{"run an invalid runbook", good, []string{"run", badRB}, exitcode.Usage, "invalid runbook"},
		{"plan an invalid runbook", good, []string{"plan", badRB}, exitcode.Usage, "invalid runbook"},
		{"drain an unknown node", good, []string{"drain", "no-such-node"}, exitcode.Usage, `node "no-such-node" not found`},
		{"run with an unknown node", good, []string{"run", unknownNodeRB}, exitcode.Usage, `node "no-such-node" not found`},
		{"uncordon an unknown node", good, []string{"uncordon", "no-such-node"}, exitcode.Usage, "not found"},
		{"resume an unknown run", good, []string{"resume", "20200101-0000-dead"}, exitcode.Usage, "20200101-0000-dead"},
		// 2: no kubeconfig at all, for every command that needs the cluster.
		{"drain without a kubeconfig", none, []string{"drain", "codes-1"}, exitcode.Usage, "no kubeconfig"},
		{"run without a kubeconfig", none, []string{"run", echoRB}, exitcode.Usage, "no kubeconfig"},
		{"plan without a kubeconfig", none, []string{"plan", echoRB}, exitcode.Usage, "no kubeconfig"},
		{"uncordon without a kubeconfig", none, []string{"uncordon", "codes-1"}, exitcode.Usage, "no kubeconfig"},
		{"runs --cluster without a kubeconfig", none, []string{"runs", "--from-cluster"}, exitcode.Usage, "no kubeconfig"},
		{"version without a kubeconfig", none, []string{"version"}, exitcode.Usage, "no kubeconfig"},
		{"preflight without a kubeconfig", none, []string{"preflight"}, exitcode.Usage, "no kubeconfig"},
		// 1: the apiserver cannot be reached (reported in seconds: it never answered).
		{"drain, unreachable", gone, []string{"drain", "codes-1"}, exitcode.Failure, "connection refused"},
		{"run, unreachable", gone, []string{"run", echoRB}, exitcode.Failure, "connection refused"},
		{"plan, unreachable", gone, []string{"plan", echoRB}, exitcode.Failure, "connection refused"},
		{"uncordon, unreachable", gone, []string{"uncordon", "codes-1"}, exitcode.Failure, "connection refused"},
		{"preflight, unreachable", gone, []string{"preflight"}, exitcode.Failure, "connection refused"},
		{"version, unreachable", gone, []string{"version"}, exitcode.Failure, "connection refused"},
		// 6: not allowed.
		{"drain, forbidden", nobody, []string{"drain", "codes-1"}, exitcode.Forbidden, "permission(s) missing, so nothing was changed"},
		{"run, forbidden", nobody, []string{"run", blockedRB}, exitcode.Forbidden, "permission(s) missing, so nothing was changed"},
		{"plan, forbidden", nobody, []string{"plan", blockedRB}, exitcode.Forbidden, "forbidden"},
		{"uncordon, forbidden", nobody, []string{"uncordon", "codes-1"}, exitcode.Forbidden, "forbidden"},
		{"runs --cluster, forbidden", nobody, []string{"runs", "--from-cluster"}, exitcode.Forbidden, "forbidden"},
		{"preflight, forbidden", nobody, []string{"preflight", "--fail-on", "never"}, exitcode.Forbidden, "could not be examined"},
		// 3: blocked before anything moved.
		{"drain, blocked", good, []string{"drain", "codes-1"}, exitcode.Blocked, "minAvailable: 100%"},
		{"drain --dry-run, blocked", good, []string{"drain", "codes-1", "--dry-run"}, exitcode.Blocked, "minAvailable: 100%"},
		{"run, blocked", good, []string{"run", blockedRB}, exitcode.Blocked, "blocked before the first node moved"},
		{"plan, blocked", good, []string{"plan", blockedRB}, exitcode.Blocked, "blocked before the first node moved"},
		// 5, 4: paused; rolled back.
		{"run, paused", good, []string{"run", pausedRB}, exitcode.Paused, "drydock resume"},
		{"run, rolled back", good, []string{"run", rolledBackRB}, exitcode.Aborted, "rolled-back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{}, tc.args...)
			home := t.TempDir()
			env := []string{"HOME=" + home, "PATH=/usr/bin:/bin", "XDG_STATE_HOME=" + filepath.Join(home, "state")}
			switch tc.kube {
			case good:
				env = append(env, "KUBECONFIG="+cluster.Kubeconfig)
			case nobody:
				env = append(env, "KUBECONFIG="+cluster.Kubeconfig)
				args = append(args, "--as", "nobody-at-all")
			case gone:
				env = append(env, "KUBECONFIG="+unreachable)
			}
			out, code := runEnv(t, env, args...)
			if code != int(tc.want) || !strings.Contains(out, tc.saying) {
				t.Errorf("drydock %s: exit %d, want %d saying %q:\n%s", strings.Join(args, " "), code, tc.want, tc.saying, out)
			}
			if tc.kube == gone && strings.Contains(out, "localhost:8080") {
				t.Errorf("fell back to localhost:8080:\n%s", out)
			}
		})
	}

	// 130: interrupted (SIGTERM while a step runs).
	t.Run("run, interrupted", func(t *testing.T) {
		started := filepath.Join(dir, "started")
		rb := runbookWith("term", fmt.Sprintf("    - {name: long, type: exec, with: {command: [sh, -c, 'touch %s; sleep 30']}}\n", started))
		cmd := exec.Command(drydockBinary(t), "run", rb, "--kubeconfig", cluster.Kubeconfig, "--state-dir", t.TempDir())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFile(t, started, 30*time.Second)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != int(exitcode.Interrupted) || !strings.Contains(out.String(), "drydock resume") {
			t.Errorf("exit %v, want %d:\n%s", err, exitcode.Interrupted, out.String())
		}
	})
}

// runEnv runs the binary with exactly env (nil: this process's); stdout and stderr together.
func runEnv(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(drydockBinary(t), args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}
