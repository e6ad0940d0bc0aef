package main

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

// TestCancelledDrainBesideAPausedUpgrade: an upgrade waits at its pause point; a responder drains
// a node and cancels it with Ctrl-C mid-eviction. The `drydock resume` meant for the upgrade must
// resume the upgrade (saying so first), not cordon the drain's node and evict again; a bare
// `drydock rollback` must refuse and list both runs; `drydock status` lists both as in flight.
func TestCancelledDrainBesideAPausedUpgrade(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ns := "cancelled-drain"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"cdrain-1", "cdrain-2"} {
		if _, err := cluster.CreateNode(ctx, n, simcluster.NodeOptions{Labels: map[string]string{"suite": ns}}); err != nil {
			t.Fatal(err)
		}
	}
	// The pod is held by a finalizer: its eviction leaves it Terminating, and the drain waits.
	d := simcluster.Deployment(ns, "held", 1)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"suite": ns}
	d.Spec.Template.Finalizers = []string{"drydock.dev/test-hold"}
	if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { releaseFinalizers(t, ns) })
	if err := cluster.WaitDeploymentReady(ctx, ns, "held", time.Minute); err != nil {
		t.Fatal(err)
	}
	pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods: %v %d", err, len(pods.Items))
	}
	drained := pods.Items[0].Spec.NodeName

	p := newProc(t)
	rb := writeRunbook(t, "paused-upgrade", "    - {name: first, type: exec, pause: after, with: {command: [\"true\"]}}\n    - {name: second, type: exec, with: {command: [echo, finished]}}\n")
	out, code := p.run("run", rb)
	if code != int(exitcode.Paused) {
		t.Fatalf("run: exit %d, want %d:\n%s", code, exitcode.Paused, out)
	}
	upgrade := runIDRE.FindStringSubmatch(out)[1]

	cmd := p.command("drain", drained)
	var dout strings.Builder
	cmd.Stdout, cmd.Stderr = &dout, &dout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) > 0 && pods.Items[0].DeletionTimestamp != nil || len(pods.Items) > 1, nil
	}); err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("the drain never evicted the pod:\n%s", dout.String())
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	if cmd.ProcessState.ExitCode() != int(exitcode.Interrupted) {
		t.Fatalf("drain after Ctrl-C: exit %d, want %d:\n%s", cmd.ProcessState.ExitCode(), exitcode.Interrupted, dout.String())
	}
	if n, err := cluster.Client.CoreV1().Nodes().Get(ctx, drained, metav1.GetOptions{}); err != nil || n.Spec.Unschedulable {
		t.Fatalf("the cancelled drain left %s cordoned:\n%s", drained, dout.String())
	}

	out, code = p.run("rollback")
	if code != int(exitcode.Usage) || !strings.Contains(out, "2 runs could be meant") || !strings.Contains(out, "drydock rollback "+upgrade) {
		t.Errorf("bare rollback: exit %d, want %d listing both runs:\n%s", code, exitcode.Usage, out)
	}
	out, code = p.run("status")
	if code != int(exitcode.Usage) || !strings.Contains(out, "2 runs are in flight") {
		t.Errorf("bare status: exit %d, want both runs listed:\n%s", code, out)
	}

	cordons := watchCordons(t, drained)
	out, code = p.run("resume", "--yes")
	if code != 0 || !strings.Contains(out, "resuming run "+upgrade) || !strings.Contains(out, "stdout: finished") {
		t.Fatalf("resume --yes: exit %d, want the upgrade resumed:\n%s", code, out)
	}
	if n := cordons(); n > 0 {
		t.Errorf("resume cordoned %s again (%d time(s)): it resumed the drain:\n%s", drained, n, out)
	}
	if st, _ := runbook.ReadRun(p.stateDir, upgrade); st.Status != runbook.RunSucceeded {
		t.Errorf("the upgrade is %s after resume", st.Status)
	}
}

// watchCordons counts the times node is cordoned from now on; the func stops the watch and says.
func watchCordons(t *testing.T, name string) func() int {
	t.Helper()
	w, err := cluster.Client.CoreV1().Nodes().Watch(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if nd, ok := ev.Object.(*corev1.Node); ok && nd.Spec.Unschedulable {
				n++
			}
		}
	}()
	return func() int {
		time.Sleep(500 * time.Millisecond) // the last events of the command
		w.Stop()
		<-done
		return n
	}
}

// releaseFinalizers lets the test's held pods go.
func releaseFinalizers(t *testing.T, ns string) {
	ctx := context.Background()
	pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Log(err)
		return
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": nil}})
	for _, p := range pods.Items {
		if _, err := cluster.Client.CoreV1().Pods(ns).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Log(err)
		}
	}
}
