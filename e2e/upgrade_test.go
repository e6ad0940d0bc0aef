// Package e2e runs the whole upgrade the way `make demo` does, on a simulated cluster that starts one
// minor behind: the demo's own runbook (examples/demo.yaml), with drydock killed (-9) twice on the
// way — in the control-plane step and in the add-on step — and resumed each time.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/drydock-dev/drydock/internal/invariants"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

const root = ".."

// cluster starts the demo's cluster in small: a v1.36.3 control plane serving the API v1.37 drops,
// five nodes at v1.36.3 in the demo's four groups, Velero, the demo's workloads and add-ons, and its
// planted problems with the fixes pre-flight names already applied.
func cluster(t *testing.T) *simcluster.Cluster {
	t.Helper()
	ctx := context.Background()
	c, err := simcluster.Start(ctx, simcluster.Options{Previous: true, RuntimeConfig: "storage.k8s.io/v1beta1=true",
		PodReadyDelay: 500 * time.Millisecond, PodDeleteDelay: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	v, err := c.StartVelero(ctx, simcluster.VeleroOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Stop)
	for _, n := range []string{"system-1", "general-1", "general-2", "batch-1", "edge-1"} {
		group, _, _ := strings.Cut(n, "-")
		if _, err := c.CreateNode(ctx, n, simcluster.NodeOptions{KubeletVersion: simcluster.PreviousVersion, Labels: map[string]string{"drydock.dev/group": group}}); err != nil {
			t.Fatal(err)
		}
	}
	kubectl(t, c, "", "create", "namespace", "shop")
	kubectl(t, c, "", "create", "namespace", "batch")
	kubectl(t, c, "", "create", "namespace", "ledger")
	kubectl(t, c, "", "-n", "shop", "create", "deployment", "web", "--image=registry.example/web:1", "--replicas=3")
	kubectl(t, c, "", "-n", "shop", "create", "deployment", "api", "--image=registry.example/api:1", "--replicas=2")
	kubectl(t, c, "", "-n", "batch", "create", "deployment", "worker", "--image=registry.example/worker:1", "--replicas=2")
	kubectl(t, c, "", "-n", "ledger", "create", "deployment", "ledger", "--image=registry.example/ledger:3", "--replicas=2")
	kubectl(t, c, "", "-n", "shop", "create", "pdb", "web", "--selector=app=web", "--max-unavailable=1")
	kubectl(t, c, "", "-n", "shop", "create", "pdb", "api", "--selector=app=api", "--min-available=1")
	kubectl(t, c, "", "-n", "batch", "create", "pdb", "worker", "--selector=app=worker", "--max-unavailable=1")
	// The planted object through storage.k8s.io/v1beta1, then the demo's fixes (it, and the ledger's budget).
	kubectl(t, c, "", "apply", "-f", filepath.Join(root, "hack/demo/gold-storage-class-v1beta1.yaml"))
	kubectl(t, c, "", "apply", "-f", filepath.Join(root, "hack/demo/fixes.yaml"))
	for chart, ns := range map[string]string{"fake-cni": "kube-system", "fake-mesh": "mesh-system"} {
		if err := simcluster.InstallChart(ctx, c.Config, filepath.Join(root, "testdata/charts", chart), chart, ns, "1.0.0", nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"shop/web", "shop/api", "batch/worker", "ledger/ledger", "mesh-system/fake-mesh-control"} {
		ns, name, _ := strings.Cut(d, "/")
		if err := c.WaitDeploymentReady(ctx, ns, name, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func kubectl(t *testing.T, c *simcluster.Cluster, stdin string, args ...string) {
	t.Helper()
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestWholeUpgradeKilledTwice: the demo's runbook takes the cluster from v1.36 to v1.37 — pre-flight,
// a Velero backup proven by a restore, the control plane member by member, storage migration, the
// canary, the node groups, the add-ons — while drydock is killed (-9) inside the control-plane step
// and again inside the add-on step, each time resumed with one `drydock resume`. It ends as an
// uninterrupted run would: the apiserver and every kubelet at v1.37.1, the object stored at the new
// version, each add-on upgraded once (Helm revision 2), no budget ever broken, nothing left cordoned.
func TestWholeUpgradeKilledTwice(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	c := cluster(t)
	budgets := c.WatchBudgets()
	defer budgets.Stop()
	for _, ns := range []string{"shop", "batch", "ledger", "mesh-system"} {
		budgets.Arm(ns)
	}

	dir := t.TempDir()
	drydock := filepath.Join(dir, "drydock")
	if out, err := exec.Command("go", "build", "-o", drydock, "github.com/drydock-dev/drydock/cmd/drydock").CombinedOutput(); err != nil {
		t.Fatalf("build drydock: %v\n%s", err, out)
	}
	// The demo's runbook, pointed at this cluster instead of make demo's.
	text, err := os.ReadFile(filepath.Join(root, "examples/demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rbText := strings.ReplaceAll(string(text), "--name, drydock-demo,", fmt.Sprintf("--name, %s, --work-dir, %q,", c.Name, c.WorkDir))
	if rbText == string(text) {
		t.Fatal("examples/demo.yaml no longer names the demo cluster in its control-plane members: update this test")
	}
	rb := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(rb, []byte(rbText), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, _ := simcluster.BinDir()
	state := filepath.Join(dir, "state")
	var logs strings.Builder
	start := func(args ...string) *exec.Cmd {
		cmd := exec.Command(drydock, append(args, "--kubeconfig", c.Kubeconfig, "--state-dir", state, "--no-mirror", "--yes")...)
		cmd.Dir = root // the runbook's commands and charts are relative to the repository
		cmd.Env = append(os.Environ(), "KUBECTL="+filepath.Join(bin, "kubectl"), "KUBECONFIG="+c.Kubeconfig, "NO_COLOR=1")
		fmt.Fprintf(&logs, "\n$ drydock %s\n", strings.Join(args, " "))
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	run := func() *runbook.RunState {
		runs, _ := runbook.ListRuns(state)
		if len(runs) != 1 {
			return nil
		}
		return runs[0]
	}
	step := func(st *runbook.RunState, name string) *runbook.StepState {
		for i := range st.Steps {
			if st.Steps[i].Name == name {
				return &st.Steps[i]
			}
		}
		t.Fatalf("no step %q", name)
		return nil
	}
	// killWhen kills drydock with SIGKILL once the journal satisfies cond.
	killWhen := func(cmd *exec.Cmd, what string, cond func(*runbook.RunState) bool) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 8*time.Minute, true, func(context.Context) (bool, error) {
			select {
			case err := <-done:
				if err == nil {
					return false, fmt.Errorf("drydock succeeded before %s", what)
				}
				return false, fmt.Errorf("drydock ended (%w) before %s", err, what)
			default:
			}
			st := run()
			return st != nil && cond(st), nil
		})
		if err != nil {
			_ = cmd.Process.Kill()
			t.Fatalf("%v\n%s", err, logs.String())
		}
		_ = cmd.Process.Kill()
		var ee *exec.ExitError
		if err := <-done; !errors.As(err, &ee) || ee.ExitCode() != -1 {
			t.Fatalf("want drydock killed %s, got %v\n%s", what, err, logs.String())
		}
		fmt.Fprintf(&logs, "--- killed (-9) %s\n", what)
	}

	// 1. Killed in the control-plane step, once the apiserver is upgraded and before the other members.
	killWhen(start("run", rb), "in the control-plane step", func(st *runbook.RunState) bool {
		return slices.Contains(step(st, "control-plane").Checkpoints, "member/kube-apiserver")
	})
	id := run().ID
	// 2. Resumed, and killed in the add-on step, once Helm made the CNI's new revision.
	killWhen(start("resume", id), "in the add-on step", func(st *runbook.RunState) bool {
		s := step(st, "addons")
		h, _ := simcluster.HelmHistory(c.Config, "kube-system", "fake-cni")
		return s.Status == runbook.StatusRunning && strings.Contains(h, "2:deployed")
	})
	// 3. Resumed to the end.
	if err := start("resume", id).Wait(); err != nil {
		t.Fatalf("the last resume: %v\n%s", err, logs.String())
	}
	st := run()
	if st.Status != runbook.RunSucceeded {
		t.Fatalf("run %s: %s\n%s", id, st.Status, logs.String())
	}

	if v, err := c.Client.Discovery().ServerVersion(); err != nil || v.GitVersion != simcluster.KubernetesVersion {
		t.Errorf("the apiserver answers %v (%v), want %s", v, err, simcluster.KubernetesVersion)
	}
	for _, m := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if !slices.Contains(step(st, "control-plane").Checkpoints, "member/"+m) {
			t.Errorf("control-plane member %s is not done in the journal", m)
		}
	}
	if v := invariants.Check(ctx, c.Client, invariants.Scene{Selector: "drydock.dev/group", Target: simcluster.KubernetesVersion}, st); len(v) > 0 {
		t.Errorf("invariants: %s", strings.Join(v, "; "))
	}
	if b := budgets.Broken(); len(b) > 0 {
		t.Errorf("budgets broken: %v", b)
	}
	for chart, ns := range map[string]string{"fake-cni": "kube-system", "fake-mesh": "mesh-system"} {
		want := fmt.Sprintf("1:superseded:%[1]s-1.0.0 2:deployed:%[1]s-1.1.0", chart)
		if h, err := simcluster.HelmHistory(c.Config, ns, chart); err != nil || h != want {
			t.Errorf("helm history %s: %s (%v), want %s (upgraded once, across the kill)", chart, h, err, want)
		}
	}
	// The object applied through v1beta1 was rewritten at the storage version by the cluster's migrator.
	svm := "drydock-" + id + "-volumeattributesclasses.storage.k8s.io"
	m, err := c.Client.StoragemigrationV1().StorageVersionMigrations().Get(ctx, svm, metav1.GetOptions{})
	if err != nil {
		t.Errorf("StorageVersionMigration %s: %v", svm, err)
	} else if cond := apimeta.FindStatusCondition(m.Status.Conditions, "Succeeded"); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("StorageVersionMigration %s: %+v", svm, m.Status.Conditions)
	}
	if _, err := c.Client.StorageV1().VolumeAttributesClasses().Get(ctx, "gold", metav1.GetOptions{}); err != nil {
		t.Errorf("the storage class at storage.k8s.io/v1 after the upgrade: %v", err)
	}
	if t.Failed() {
		t.Log(logs.String())
	}
}
