package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// TestDrainRealNodeUnderLoad: `drydock drain` of a real node whose two webserver pods (a budget of
// one unavailable, a 5s preStop) serve a Service, while a load generator sends 50 requests a second
// through the Service's ClusterIP from the nodes' network: both pods move to the other real node,
// and not one request fails.
func TestDrainRealNodeUnderLoad(t *testing.T) {
	simcluster.NeedRealNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := simcluster.Start(ctx, simcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	for _, n := range []string{"real-1", "real-2"} {
		if _, err := c.AddRealNode(ctx, n, simcluster.RealNodeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Both replicas on real-1: real-2 is cordoned until they run.
	if err := c.SetUnschedulable(ctx, "real-2", true); err != nil {
		t.Fatal(err)
	}
	kubectl(t, c, "", "create", "namespace", "shop")
	// A 5s preStop: the time kube-proxy has to drop a terminating pod from its rules before the
	// process stops, on a machine as busy as CI (2s lost 40 requests once in 3 runs there).
	web := simcluster.WebDeployment("shop", "web", 2, simcluster.WebOptions{PreStop: 5 * time.Second})
	if _, err := c.Client.AppsV1().Deployments("shop").Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := c.Client.CoreV1().Services("shop").Create(ctx, simcluster.WebService("shop", "web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, c, "", "-n", "shop", "create", "pdb", "web", "--selector=app=web", "--max-unavailable=1")
	if err := c.WaitDeploymentReady(ctx, "shop", "web", 2*time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, c.RealNodeReport(ctx, "shop"))
	}
	if err := c.SetUnschedulable(ctx, "real-2", false); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	load, err := c.StartLoad(ctx, svc.Spec.ClusterIP, 50, 15000)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // requests flow before the drain starts
	drydock := buildDrydock(t, dir)
	out, err := exec.CommandContext(ctx, drydock, "drain", "real-1", "--kubeconfig", c.Kubeconfig, "--state-dir", filepath.Join(dir, "state")).CombinedOutput()
	if err != nil {
		t.Fatalf("drydock drain real-1: %v\n%s", err, out)
	}
	time.Sleep(3 * time.Second) // and after it ended
	sum, err := load.Stop()
	if err != nil {
		t.Fatal(err)
	}
	pods, err := c.Client.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != "real-2" || p.Status.Phase != corev1.PodRunning {
			t.Errorf("pod %s on %s (%s), want Running on real-2", p.Name, p.Spec.NodeName, p.Status.Phase)
		}
	}
	t.Logf("during the drain: %d requests sent, %d failed, p99 %v\n%s", sum.Sent, sum.Failed, sum.Latency.Quantile(0.99), out)
	if sum.Sent < 200 || sum.Failed != 0 {
		t.Fatalf("%d requests sent, %d failed (%v): want at least 200 sent and none failed", sum.Sent, sum.Failed, sum.Errors)
	}
}

func buildDrydock(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "drydock")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/drydock-dev/drydock/cmd/drydock").CombinedOutput(); err != nil {
		t.Fatalf("build drydock: %v\n%s", err, out)
	}
	return bin
}
