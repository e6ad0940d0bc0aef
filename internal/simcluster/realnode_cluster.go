package simcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/ociimage"
)

var (
	nodeBins     = &builtBins{env: "DRYDOCK_NODE_BIN", script: "node-bin.sh", marker: "kubelet", make: "hack/node-bin.sh"}
	prevNodeBins = &builtBins{env: "DRYDOCK_NODE_BIN_PREV", script: "node-bin.sh", args: []string{"prev"}, marker: "kubelet", make: "hack/node-bin.sh prev"}
)

// NodeBinDir holds what a real node runs at KubernetesVersion: kubelet, kube-proxy, containerd,
// its shim, ctr and the CNI plugins ($DRYDOCK_NODE_BIN, else hack/node-bin.sh builds them).
func NodeBinDir() (string, error) { return nodeBins.dir() }

// PrevNodeBinDir holds the kubelet and kube-proxy at PreviousVersion.
func PrevNodeBinDir() (string, error) { return prevNodeBins.dir() }

// nodeBinDirFor is the directory of the kubelet at the given minor.
func nodeBinDirFor(minor string) (string, error) {
	if "v1."+minor+"." == PreviousVersion[:len("v1."+minor+".")] {
		return PrevNodeBinDir()
	}
	return NodeBinDir()
}

func goarch() string { return runtime.GOARCH }

func processAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil && procState(pid) != "Z"
}

// realImages builds the images real nodes import (once per cluster) and returns their archives.
func (c *Cluster) realImages(ctx context.Context) ([]string, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, img := range ociimage.All {
		dest := filepath.Join(c.WorkDir, "images", img.Binary()+".tar")
		if _, err := os.Stat(dest); err != nil {
			if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
				return nil, err
			}
			if err := ociimage.Build(ctx, root, img, dest+".tmp"); err != nil {
				return nil, err
			}
			if err := os.Rename(dest+".tmp", dest); err != nil {
				return nil, err
			}
		}
		out = append(out, dest)
	}
	return out, nil
}

// ensureKubeProxy starts, with the cluster's first real node, the namespace's kube-proxy and the
// relay it reaches the apiserver through (internal/cmd/netrelay): at 127.0.0.1 inside, the same
// address as outside, so the cluster's kubeconfig serves unchanged.
func (c *Cluster) ensureKubeProxy(ctx context.Context, first *RealNode) error {
	if first.Index != 0 {
		return nil
	}
	port, err := c.apiserverPort()
	if err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	dir := filepath.Join(c.WorkDir, "realnet")
	relay := filepath.Join(dir, "netrelay")
	build := exec.CommandContext(ctx, "go", "build", "-o", relay, "./internal/cmd/netrelay")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build netrelay: %w: %s", err, out)
	}
	addr := "127.0.0.1:" + port
	p := &process{Name: "netrelay", Argv: []string{relay, "-netns", first.net.nsPath(), "-listen", addr, "-to", addr},
		Cwd: dir, Env: os.Environ(), LogFile: filepath.Join(dir, "netrelay.log"), PidFile: filepath.Join(dir, "netrelay.pid")}
	if err := c.start(p); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "kube-proxy.yaml")
	if err := os.WriteFile(cfg, []byte(first.net.kubeProxyConfig(c.Kubeconfig, first.Name)), 0o644); err != nil {
		return err
	}
	kp := filepath.Join(first.BinDir, "kube-proxy")
	if err := makeCgroup(first.net.cgroup() + "/kube-proxy"); err != nil {
		return err
	}
	script := joinCgroupScript(first.net.cgroup()+"/kube-proxy") +
		fmt.Sprintf("exec nsenter --net=%s -- %s\n", first.net.nsPath(), shellQuote([]string{kp, "--config", cfg}))
	proxy := &process{Name: "kube-proxy", Argv: []string{"/bin/sh", "-ec", script}, Cwd: dir, Env: first.process("", "").Env,
		LogFile: filepath.Join(dir, "kube-proxy.log"), PidFile: filepath.Join(dir, "kube-proxy.pid")}
	return c.start(proxy)
}

// stopRealNodes ends every process of the cluster's real nodes and removes their network.
func (c *Cluster) stopRealNodes() error {
	n := c.loadRealNet()
	if n == nil {
		return nil
	}
	err := n.teardown()
	matches, _ := filepath.Glob(fmt.Sprintf("/run/drydock/%d-*", n.Index))
	for _, m := range matches {
		_ = os.RemoveAll(m)
	}
	_ = os.Remove("/run/drydock") // when no other cluster's real nodes use it
	return err
}

// RealNetCommand is a command that runs in the network namespace of the cluster's real nodes:
// where the pods' addresses and the Services' ClusterIPs (kube-proxy's rules) are reachable.
func (c *Cluster) RealNetCommand(ctx context.Context, name string, args ...string) (*exec.Cmd, error) {
	n := c.loadRealNet()
	if n == nil {
		return nil, fmt.Errorf("simcluster: cluster %s has no real nodes", c.Name)
	}
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.nsPath(), "--", name}, args...)...), nil
}

// RealNetworks are the networks of the cluster's real nodes, for a load generator's allow list:
// the pods' and the veth's (the Services' ClusterIPs are the apiserver's range, ServiceCIDR).
func (c *Cluster) RealNetworks() []string {
	n := c.loadRealNet()
	if n == nil {
		return nil
	}
	return []string{n.podCIDR(), fmt.Sprintf("10.250.%d.0/24", n.Index)}
}

// RealNetNamespace is the name of the network namespace (and top cgroup) of the cluster's real
// nodes, "" when it has none.
func (c *Cluster) RealNetNamespace() string {
	if n := c.loadRealNet(); n != nil {
		return n.ns()
	}
	return ""
}

// RealNodeReport is what a failed test prints: the pods of namespace ns with their conditions,
// container states and events, and the end of each real node's kubelet and containerd logs.
func (c *Cluster) RealNodeReport(ctx context.Context, ns string) string {
	var b strings.Builder
	pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		fmt.Fprintf(&b, "pods: %v\n", err)
	} else {
		for _, p := range pods.Items {
			fmt.Fprintf(&b, "pod %s on %q: phase %s\n", p.Name, p.Spec.NodeName, p.Status.Phase)
			for _, cond := range p.Status.Conditions {
				fmt.Fprintf(&b, "  %s=%s %s %s\n", cond.Type, cond.Status, cond.Reason, cond.Message)
			}
			for _, cs := range p.Status.ContainerStatuses {
				fmt.Fprintf(&b, "  container %s ready=%v restarts=%d state=%+v\n", cs.Name, cs.Ready, cs.RestartCount, cs.State)
			}
		}
	}
	if evs, err := c.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, e := range evs.Items {
			fmt.Fprintf(&b, "event %s %s: %s %s\n", e.InvolvedObject.Name, e.Type, e.Reason, e.Message)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(c.WorkDir, "nodes"))
	for _, e := range entries {
		for _, f := range []string{"kubelet.log", "containerd.log"} {
			p := filepath.Join(c.WorkDir, "nodes", e.Name(), f)
			fmt.Fprintf(&b, "--- %s %s\n%s\n", e.Name(), f, tail(readFile(p), 25))
		}
	}
	for _, f := range []string{"kube-proxy.log", "netrelay.log"} {
		fmt.Fprintf(&b, "--- %s\n%s\n", f, tail(readFile(filepath.Join(c.WorkDir, "realnet", f)), 15))
	}
	return b.String()
}
