package simcluster

// Real nodes: a kubelet that runs containers, beside the kwok nodes. Each has its own containerd
// (built from its Go module, with the runc shim and Debian's runc), its own directories, socket,
// cgroup root and kubelet ports; the kubelet runs in this machine's network namespace (it reaches
// the apiserver on loopback and the apiserver reaches it there), containerd and the pods in the
// cluster's real-node namespace (realnet.go), the two sharing a mount namespace of the node's own,
// so that what they mount (volumes, container filesystems) is the node's alone and goes with it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/drydock-dev/drydock/internal/ociimage"
)

// RealNodeLabel marks a real node (its value "true"); kwok leaves such nodes alone.
const RealNodeLabel = "simcluster.drydock.dev/real-node"

var pauseRef = ociimage.Pause.Ref

// RealNode is a node of the cluster whose kubelet runs containers.
type RealNode struct {
	Name string
	// Index among the cluster's real nodes (0..3): its bridge and pod subnet.
	Index int
	// BinDir holds the kubelet it runs now (NodeBinDir or PrevNodeBinDir).
	BinDir string

	c           *Cluster
	net         *realNet
	bin         string // containerd, its shim and the CNI plugins (always NodeBinDir's)
	runc        string
	dir, run    string
	kubeletPort int
	streamPort  int
	containerd  *process
	kubelet     *process
	labels      map[string]string
	taint       bool
	placeholder []string
}

func (n *RealNode) socket() string     { return filepath.Join(n.run, "ctd.sock") }
func (n *RealNode) cgroup() string     { return n.net.cgroup() + "/" + n.Name }
func (n *RealNode) cgroupRoot() string { return n.cgroup() + "/pods" }

// RealNodeOptions configure a real node. The zero value is usable.
type RealNodeOptions struct {
	// Labels of the node besides RealNodeLabel (a node group's, say).
	Labels map[string]string
	// Previous starts the kubelet at PreviousVersion, to be upgraded with UpgradeKubelet; default
	// the control plane's minor.
	Previous bool
	// Taint registers the node with RealNodeTaint, so that only pods that tolerate it (WebDeployment's)
	// come to it: in a cluster whose other workloads name images no registry here serves.
	Taint bool
	// Placeholders are image names the node runs the pause image as (a DaemonSet that tolerates
	// every taint, say): imported under each name, never pulled.
	Placeholders []string
}

// RealNodeTaint is the taint of a real node started with RealNodeOptions.Taint (NoSchedule).
const RealNodeTaint = RealNodeLabel

// AddRealNode starts a real node named name and waits until it is Ready with the images of
// ociimage.All imported. On error nothing of it is left running.
func (c *Cluster) AddRealNode(ctx context.Context, name string, opts RealNodeOptions) (*RealNode, error) {
	if err := RealNodesSupported(); err != nil {
		return nil, err
	}
	n, err := c.newRealNode(ctx, name, opts)
	if err != nil {
		return nil, err
	}
	if err := n.start(ctx); err != nil {
		n.stop()
		return nil, fmt.Errorf("simcluster: real node %s: %w", name, err)
	}
	return n, nil
}

// RealNodesSupported says what this machine lacks to run real nodes, naming it: root, the
// programs a real node runs (runc, iptables for kube-proxy, ip, nsenter, unshare), cgroup v1's pids
// hierarchy, overlayfs.
func RealNodesSupported() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (a kubelet and containerd run as root)")
	}
	for _, p := range []string{"runc", "iptables", "iptables-restore", "ip", "nsenter", "unshare"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p+" (Debian: apt-get install runc iptables iproute2 util-linux; make test-deps does)")
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/pids/cgroup.procs"); err != nil {
		missing = append(missing, "cgroup v1's pids hierarchy at /sys/fs/cgroup/pids")
	}
	if b, _ := os.ReadFile("/proc/filesystems"); !strings.Contains(string(b), "overlay") {
		missing = append(missing, "overlayfs (modprobe overlay)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("simcluster: real nodes cannot start on this machine: missing %s", strings.Join(missing, "; "))
	}
	return nil
}

func (c *Cluster) newRealNode(ctx context.Context, name string, opts RealNodeOptions) (*RealNode, error) {
	minor, err := c.serverMinor()
	if err != nil {
		return nil, err
	}
	if opts.Previous {
		minor = strings.Split(PreviousVersion, ".")[1]
	}
	kubeletBin, err := nodeBinDirFor(minor)
	if err != nil {
		return nil, err
	}
	bin, err := NodeBinDir()
	if err != nil {
		return nil, err
	}
	runc, _ := exec.LookPath("runc")
	net, err := c.realNetwork(ctx)
	if err != nil {
		return nil, err
	}
	entries, _ := os.ReadDir(filepath.Join(c.WorkDir, "nodes"))
	if len(entries) >= maxRealNodes {
		return nil, fmt.Errorf("simcluster: a cluster has at most %d real nodes", maxRealNodes)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	n := &RealNode{Name: name, Index: len(entries), BinDir: kubeletBin, c: c, net: net, bin: bin, runc: runc,
		dir:         filepath.Join(c.WorkDir, "nodes", name),
		run:         fmt.Sprintf("/run/drydock/%d-%d", net.Index, len(entries)),
		kubeletPort: ports[0], streamPort: 10010 + len(entries), labels: opts.Labels,
		taint: opts.Taint, placeholder: opts.Placeholders}
	return n, nil
}

// serverMinor is the apiserver's minor version ("37").
func (c *Cluster) serverMinor() (string, error) {
	v, err := c.Client.Discovery().ServerVersion()
	if err != nil {
		return "", fmt.Errorf("simcluster: apiserver version: %w", err)
	}
	return strings.TrimSuffix(v.Minor, "+"), nil
}

func (n *RealNode) start(ctx context.Context) error {
	if err := n.writeFiles(); err != nil {
		return err
	}
	if err := n.save(); err != nil {
		return err
	}
	for _, cg := range []string{n.cgroup() + "/daemons", n.cgroupRoot()} {
		if err := makeCgroup(cg); err != nil {
			return err
		}
	}
	if err := n.startContainerd(ctx); err != nil {
		return err
	}
	if err := n.importImages(ctx); err != nil {
		return err
	}
	if err := n.startKubelet(); err != nil {
		return err
	}
	if err := n.c.ensureKubeProxy(ctx, n); err != nil {
		return err
	}
	return n.WaitReady(ctx)
}

func (n *RealNode) writeFiles() error {
	files := map[string]string{
		"containerd.toml":               n.containerdConfig(),
		"cni/net.d/10-drydock.conflist": n.cniConfig(),
		"kubelet.yaml":                  n.kubeletConfig(),
		"resolv.conf":                   "",
	}
	for k, v := range kernelTunables {
		files["sysctl/"+k] = v + "\n"
	}
	for _, d := range []string{"manifests", "pod-logs", "volume-plugins", "tmp", "kubelet/pki", "var-lib-kubelet", "log-containers"} {
		files[d+"/.keep"] = ""
	}
	for rel, body := range files {
		p := filepath.Join(n.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return os.MkdirAll(n.run, 0o755)
}

// mountNSScript prepares the node's mount namespace (already entered): the kubelet's kernel
// tunables and its fixed paths on the machine (/var/lib/kubelet, /var/log/containers) are the
// node's own files there.
func (n *RealNode) mountNSScript() string {
	var b strings.Builder
	for k := range kernelTunables {
		fmt.Fprintf(&b, "mount --bind %q /proc/sys/%s\n", filepath.Join(n.dir, "sysctl", k), k)
	}
	fmt.Fprintf(&b, "mkdir -p /var/lib/kubelet /var/log/containers\nmount --bind %q /var/lib/kubelet\nmount --bind %q /var/log/containers\n",
		filepath.Join(n.dir, "var-lib-kubelet"), filepath.Join(n.dir, "log-containers"))
	return b.String()
}

func (n *RealNode) startContainerd(ctx context.Context) error {
	inner := n.mountNSScript() + fmt.Sprintf("exec %q --config %q\n", filepath.Join(n.bin, "containerd"), filepath.Join(n.dir, "containerd.toml"))
	script := joinCgroupScript(n.cgroup()+"/daemons") +
		fmt.Sprintf("exec nsenter --net=%s -- unshare --mount --propagation slave -- /bin/sh -ec %s\n", n.net.nsPath(), shellQuote([]string{inner}))
	n.containerd = n.process("containerd", script)
	if err := n.c.start(n.containerd); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := n.ctr(ctx, "version"); err != nil {
			if !processAlive(n.containerd.pid) {
				return false, fmt.Errorf("containerd exited: %s", tail(readFile(n.containerd.LogFile), 20))
			}
			return false, nil
		}
		return true, nil
	})
}

func (n *RealNode) process(name, script string) *process {
	return &process{Name: name + "-" + n.Name, Argv: []string{"/bin/sh", "-ec", script}, Cwd: n.dir,
		Env:     append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
		LogFile: filepath.Join(n.dir, name+".log"), PidFile: filepath.Join(n.dir, name+".pid")}
}

// ctr runs containerd's ctr against the node's containerd, in the namespace the kubelet's pods use.
func (n *RealNode) ctr(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(n.bin, "ctr"), append([]string{"--address", n.socket(), "--namespace", "k8s.io"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (n *RealNode) importImages(ctx context.Context) error {
	tars, err := n.c.realImages(ctx)
	if err != nil {
		return err
	}
	for _, t := range tars {
		if err := n.ctr(ctx, "images", "import", "--platform", "linux/"+goarch(), t); err != nil {
			return err
		}
	}
	for _, ref := range n.placeholder {
		if err := n.ctr(ctx, "images", "tag", "--force", pauseRef, ref); err != nil {
			return fmt.Errorf("placeholder image %s: %w", ref, err)
		}
	}
	return nil
}

func (n *RealNode) startKubelet() error {
	args := []string{filepath.Join(n.BinDir, "kubelet"),
		"--config", filepath.Join(n.dir, "kubelet.yaml"),
		"--kubeconfig", n.c.Kubeconfig,
		"--root-dir", filepath.Join(n.dir, "kubelet"),
		"--cert-dir", filepath.Join(n.dir, "kubelet", "pki"),
		"--hostname-override", n.Name,
		"--node-ip", n.net.hostIP(), // the kubelet refuses a loopback node address
		"--node-labels", n.nodeLabels(),
	}
	script := joinCgroupScript(n.cgroup()+"/daemons") +
		fmt.Sprintf("exec nsenter --target %d --mount -- %s\n", n.containerd.pid, shellQuote(args))
	n.kubelet = n.process("kubelet", script)
	return n.c.start(n.kubelet)
}

// WaitReady waits until the node reports Ready.
func (n *RealNode) WaitReady(ctx context.Context) error { return n.waitReady(ctx, "") }

// waitReady waits until the node reports Ready, and the kubelet version when not "".
func (n *RealNode) waitReady(ctx context.Context, version string) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err := n.c.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		switch {
		case err != nil:
			last = err.Error()
		case version != "" && node.Status.NodeInfo.KubeletVersion != version:
			last = "kubelet " + node.Status.NodeInfo.KubeletVersion + ", want " + version
		default:
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					last = fmt.Sprintf("Ready=%s: %s", cond.Status, cond.Message)
					if cond.Status == corev1.ConditionTrue {
						return true, nil
					}
				}
			}
		}
		if n.kubelet != nil && !processAlive(n.kubelet.pid) {
			return false, fmt.Errorf("the kubelet exited: %s", tail(readFile(n.kubelet.LogFile), 20))
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("node %s not Ready (%s): %w\n%s", n.Name, last, err, tail(readFile(n.kubelet.LogFile), 20))
	}
	return nil
}

// stop ends every process of the node (by its cgroup) and removes its run directory.
func (n *RealNode) stop() {
	_ = killCgroupTree(n.cgroup())
	_ = os.RemoveAll(n.run)
}

// UpgradeKubelet stops the node's kubelet and starts the one in binDir with the same configuration
// and data: what `kubeadm upgrade node` and a kubelet restart do. Containers keep running. It
// returns once the node reports the new kubelet's version and is Ready.
func (n *RealNode) UpgradeKubelet(ctx context.Context, binDir string) error {
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "kubelet"), "--version").Output()
	if err != nil {
		return fmt.Errorf("simcluster: upgrade kubelet of %s: %s --version: %w", n.Name, filepath.Join(binDir, "kubelet"), err)
	}
	version := strings.TrimPrefix(strings.TrimSpace(string(out)), "Kubernetes ")
	if err := n.kubelet.stop(ctx); err != nil {
		return fmt.Errorf("simcluster: upgrade kubelet of %s: %w", n.Name, err)
	}
	n.BinDir = binDir
	if err := n.startKubelet(); err != nil {
		return fmt.Errorf("simcluster: upgrade kubelet of %s: %w", n.Name, err)
	}
	if err := n.save(); err != nil {
		return fmt.Errorf("simcluster: upgrade kubelet of %s: %w", n.Name, err)
	}
	return n.waitReady(ctx, version)
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// apiserverPort is the port of the cluster's apiserver on loopback.
func (c *Cluster) apiserverPort() (string, error) {
	u, err := url.Parse(c.Config.Host)
	if err != nil || u.Port() == "" {
		return "", errors.Join(fmt.Errorf("simcluster: apiserver address %q has no port", c.Config.Host), err)
	}
	if _, err := strconv.Atoi(u.Port()); err != nil {
		return "", err
	}
	return u.Port(), nil
}

// realNodeState is what a later process (`simcluster upgrade-node`, the demo's node upgrade)
// needs to find a real node again: node.json in its directory.
type realNodeState struct {
	Name        string            `json:"name"`
	Index       int               `json:"index"`
	BinDir      string            `json:"binDir"`
	KubeletPort int               `json:"kubeletPort"`
	StreamPort  int               `json:"streamPort"`
	Labels      map[string]string `json:"labels,omitempty"`
	Taint       bool              `json:"taint,omitempty"`
}

func (n *RealNode) save() error {
	b, err := json.Marshal(realNodeState{Name: n.Name, Index: n.Index, BinDir: n.BinDir, KubeletPort: n.kubeletPort, StreamPort: n.streamPort, Labels: n.labels, Taint: n.taint})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.dir, "node.json"), b, 0o644)
}

// RealNode finds the cluster's real node name, which this or an earlier process started.
func (c *Cluster) RealNode(name string) (*RealNode, error) {
	dir := filepath.Join(c.WorkDir, "nodes", name)
	b, err := os.ReadFile(filepath.Join(dir, "node.json"))
	if err != nil {
		return nil, fmt.Errorf("simcluster: %s is not a real node of cluster %s: %w", name, c.Name, err)
	}
	var st realNodeState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("simcluster: real node %s: %w", name, err)
	}
	net := c.loadRealNet()
	bin, err := NodeBinDir()
	if err != nil || net == nil {
		return nil, errors.Join(fmt.Errorf("simcluster: real node %s: its network or binaries are gone", name), err)
	}
	runc, _ := exec.LookPath("runc")
	n := &RealNode{Name: name, Index: st.Index, BinDir: st.BinDir, c: c, net: net, bin: bin, runc: runc, dir: dir,
		run:         fmt.Sprintf("/run/drydock/%d-%d", net.Index, st.Index),
		kubeletPort: st.KubeletPort, streamPort: st.StreamPort, labels: st.Labels, taint: st.Taint}
	n.containerd, n.kubelet = n.process("containerd", ""), n.process("kubelet", "")
	for _, p := range []*process{n.containerd, n.kubelet} {
		pb, err := os.ReadFile(p.PidFile)
		if err != nil {
			return nil, fmt.Errorf("simcluster: real node %s: %w", name, err)
		}
		p.pid, _ = strconv.Atoi(strings.TrimSpace(string(pb)))
	}
	return n, nil
}

// nodeLabels is the kubelet's --node-labels: RealNodeLabel and the options', sorted.
func (n *RealNode) nodeLabels() string {
	l := []string{RealNodeLabel + "=true"}
	for k, v := range n.labels {
		l = append(l, k+"="+v)
	}
	slices.Sort(l)
	return strings.Join(l, ",")
}

// ContainerLog is the file the container's output goes to on the node (the CRI log format: a
// timestamp, the stream, a tag, the line). It stays until the kubelet removes the pod.
func (n *RealNode) ContainerLog(pod *corev1.Pod, container string) string {
	return filepath.Join(n.dir, "pod-logs", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID), container, "0.log")
}
