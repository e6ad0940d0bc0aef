package simcluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// TestRealNodes: two real nodes join a simulated cluster, the second tainted and running a
// placeholder image as the pause image; a webserver pod runs on one of them and
// answers through its Service's ClusterIP from the nodes' network; the node's kubelet is upgraded
// (a new process of the next minor) while the container keeps running; deleting the pod runs its
// preStop hook and sends SIGTERM, as the container's own log says; and once the cluster is
// stopped no process, cgroup or network namespace of the real nodes is left.
func TestRealNodes(t *testing.T) {
	simcluster.NeedRealNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := simcluster.Start(ctx, simcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	r1, err := c.AddRealNode(ctx, "real-1", simcluster.RealNodeOptions{Previous: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddRealNode(ctx, "real-2", simcluster.RealNodeOptions{Taint: true, Placeholders: []string{"registry.example/agent:1"}}); err != nil {
		t.Fatal(err)
	}
	if v := kubeletVersion(ctx, t, c, "real-1"); v != simcluster.PreviousVersion {
		t.Fatalf("real-1 reports kubelet %s, want %s", v, simcluster.PreviousVersion)
	}
	placeholderRuns(ctx, t, c, "real-2", "registry.example/agent:1")

	ns := "web"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := simcluster.WebDeployment(ns, "web", 1, simcluster.WebOptions{PreStop: 2 * time.Second,
		NodeSelector: map[string]string{"kubernetes.io/hostname": "real-1"}})
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := c.Client.CoreV1().Services(ns).Create(ctx, simcluster.WebService(ns, "web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitDeploymentReady(ctx, ns, "web", 2*time.Minute); err != nil {
		t.Fatalf("web not ready on real-1: %v\n%s", err, c.RealNodeReport(ctx, ns))
	}
	pod := onlyPod(ctx, t, c, ns)
	if got := get(ctx, t, c, "http://"+svc.Spec.ClusterIP+"/"); strings.TrimSpace(got) != pod.Name {
		t.Fatalf("the ClusterIP answered %q, want the pod's name %s", got, pod.Name)
	}

	// The kubelet is replaced; the container is not.
	bin, err := simcluster.NodeBinDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.UpgradeKubelet(ctx, bin); err != nil {
		t.Fatal(err)
	}
	if v := kubeletVersion(ctx, t, c, "real-1"); v != simcluster.KubernetesVersion {
		t.Fatalf("after the upgrade real-1 reports kubelet %s, want %s", v, simcluster.KubernetesVersion)
	}
	after := onlyPod(ctx, t, c, ns)
	if cs := after.Status.ContainerStatuses; after.UID != pod.UID || len(cs) != 1 || cs[0].RestartCount != 0 ||
		cs[0].ContainerID != pod.Status.ContainerStatuses[0].ContainerID {
		t.Fatalf("the container did not survive the kubelet's upgrade: %+v", after.Status.ContainerStatuses)
	}

	// Deleting the pod runs its preStop, then SIGTERM: the container's own log says both, in order.
	// (The kubelet's log stream ends as soon as the container is being stopped: the file is read.)
	logs := followFile(ctx, r1.ContainerLog(pod, "app"), "stopped: served")
	if err := c.Client.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	text := <-logs
	pre, term, stopped := strings.Index(text, "preStop: sleeping 2s"), strings.Index(text, "SIGTERM received"), strings.Index(text, "stopped: served")
	if pre < 0 || term < pre || stopped < term {
		t.Fatalf("the container's log does not show preStop, then SIGTERM, then a clean stop:\n%s", text)
	}

	netns := c.RealNetNamespace()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	assertRealNodesGone(t, netns)
}

// placeholderRuns: the tainted node registered with simcluster.RealNodeTaint, and a pod that
// tolerates every taint runs image there, a name no registry here serves, as the pause image.
func placeholderRuns(ctx context.Context, t *testing.T, c *simcluster.Cluster, node, image string) {
	t.Helper()
	n, err := c.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil || len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != simcluster.RealNodeTaint || n.Spec.Taints[0].Effect != corev1.TaintEffectNoSchedule {
		t.Fatalf("%s's taints: %+v (%v), want %s:NoSchedule", node, n.Spec.Taints, err, simcluster.RealNodeTaint)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "agent"}, Spec: corev1.PodSpec{
		NodeName:    node,
		Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		Containers:  []corev1.Container{{Name: "agent", Image: image}},
	}}
	if _, err := c.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, "agent", metav1.GetOptions{})
		return err == nil && simcluster.PodReady(p), nil
	})
	if err != nil {
		t.Fatalf("a pod of %s on %s is not Ready: %v\n%s", image, node, err, c.RealNodeReport(ctx, "default"))
	}
}

func kubeletVersion(ctx context.Context, t *testing.T, c *simcluster.Cluster, node string) string {
	t.Helper()
	n, err := c.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Status.NodeInfo.KubeletVersion
}

func onlyPod(ctx context.Context, t *testing.T, c *simcluster.Cluster, ns string) *corev1.Pod {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods in %s: %v, %v", ns, pods, err)
	}
	return &pods.Items[0]
}

// get fetches url from the real nodes' network, with curl, retrying while kube-proxy catches up.
func get(ctx context.Context, t *testing.T, c *simcluster.Cluster, url string) string {
	t.Helper()
	var out []byte
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		cmd, err := c.RealNetCommand(ctx, "curl", "-sf", "--max-time", "2", url)
		if err != nil {
			return false, err
		}
		out, err = cmd.Output()
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("GET %s from the real nodes' network: %v", url, err)
	}
	return string(out)
}

// followFile reads the file every 100ms until it holds until, or is gone, or ctx ends, and sends
// the last content it read.
func followFile(ctx context.Context, path, until string) <-chan string {
	out := make(chan string, 1)
	go func() {
		var last string
		for ctx.Err() == nil {
			b, err := os.ReadFile(path)
			if err != nil {
				break
			}
			if last = string(b); strings.Contains(last, until) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		out <- last
	}()
	return out
}

// assertRealNodesGone: no network namespace, cgroup or run directory of the real nodes is left.
func assertRealNodesGone(t *testing.T, netns string) {
	t.Helper()
	var left []string
	k := strings.TrimPrefix(netns, "drydock-")
	for _, pattern := range []string{"/run/netns/" + netns, "/sys/fs/cgroup/*/" + netns, "/run/drydock/" + k + "-*"} {
		m, _ := filepath.Glob(pattern)
		left = append(left, m...)
	}
	if netns == "" || len(left) > 0 {
		t.Fatalf("real nodes' namespace %q: left behind %v", netns, left)
	}
}
