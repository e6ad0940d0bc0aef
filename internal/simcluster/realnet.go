package simcluster

// The network and cgroups of a cluster's real nodes. All real nodes of a cluster share one network
// namespace, drydock-K (K a free index on this machine, 0..63, taken by creating the namespace),
// joined to this machine's by a veth pair: 10.250.K.1 on this side, 10.250.K.2 inside, and a route
// to the pods through it. Node i's pods are on a bridge of their own, 10.244.(4K+i).0/24. kube-proxy
// and the bridges' rules live inside the namespace, so deleting it removes every rule a real node
// made. Every process of a real node (containerd, its shims and containers, the kubelet) runs in
// the cgroup subtree /drydock-K/NODE, by which Stop and the watchdog find and end them all.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	realNetFile    = "realnet.json"
	maxRealNets    = 64
	maxRealNodes   = 4 // per cluster: each has a /24 of the cluster's /22
	realNetIfInner = "eth0"
)

// cgroupHierarchies are the cgroup v1 hierarchies a real node's processes are put in: the kubelet
// wants its cgroup root in each it uses.
var cgroupHierarchies = []string{"cpu", "cpuacct", "cpuset", "memory", "pids", "hugetlb", "blkio", "devices", "freezer", "systemd"}

// realNet is the network namespace of a cluster's real nodes.
type realNet struct {
	Index int `json:"index"`
}

func (n realNet) ns() string      { return fmt.Sprintf("drydock-%d", n.Index) }
func (n realNet) nsPath() string  { return "/run/netns/" + n.ns() }
func (n realNet) hostIf() string  { return fmt.Sprintf("drydock%dh", n.Index) }
func (n realNet) hostIP() string  { return fmt.Sprintf("10.250.%d.1", n.Index) }
func (n realNet) innerIP() string { return fmt.Sprintf("10.250.%d.2", n.Index) }

// podCIDR is the cluster's pod network: a /22, a /24 of it per real node.
func (n realNet) podCIDR() string { return fmt.Sprintf("10.244.%d.0/22", 4*n.Index) }

func (n realNet) podSubnet(i int) string { return fmt.Sprintf("10.244.%d.0/24", 4*n.Index+i) }

// cgroup is the cgroup path (under each hierarchy) of the cluster's real nodes.
func (n realNet) cgroup() string { return "/" + n.ns() }

// loadRealNet reads the cluster's real-node network, nil when it has none.
func (c *Cluster) loadRealNet() *realNet {
	b, err := os.ReadFile(filepath.Join(c.WorkDir, realNetFile))
	if err != nil {
		return nil
	}
	var n realNet
	if json.Unmarshal(b, &n) != nil {
		return nil
	}
	return &n
}

// realNetwork returns the cluster's real-node network, making it the first time.
func (c *Cluster) realNetwork(ctx context.Context) (*realNet, error) {
	if n := c.loadRealNet(); n != nil {
		return n, nil
	}
	for i := range maxRealNets {
		n := realNet{Index: i}
		// Creating the namespace is the machine-wide claim on the index: it fails when taken.
		if exec.CommandContext(ctx, "ip", "netns", "add", n.ns()).Run() != nil {
			continue
		}
		b, _ := json.Marshal(n)
		if err := os.WriteFile(filepath.Join(c.WorkDir, realNetFile), b, 0o644); err != nil {
			_ = exec.Command("ip", "netns", "del", n.ns()).Run()
			return nil, fmt.Errorf("simcluster: %w", err)
		}
		if err := n.setup(ctx); err != nil {
			n.teardown()
			_ = os.Remove(filepath.Join(c.WorkDir, realNetFile))
			return nil, err
		}
		return &n, nil
	}
	return nil, fmt.Errorf("simcluster: no free network namespace drydock-0..%d for real nodes: `ip netns list` shows them; `simcluster down` each cluster, or `ip netns del` one left behind", maxRealNets-1)
}

// setup joins the namespace to this machine and lets it route between its bridges.
func (n realNet) setup(ctx context.Context) error {
	in := func(args ...string) []string { return append([]string{"ip", "netns", "exec", n.ns()}, args...) }
	steps := [][]string{
		{"ip", "link", "add", n.hostIf(), "type", "veth", "peer", "name", realNetIfInner, "netns", n.ns()},
		{"ip", "addr", "add", n.hostIP() + "/24", "dev", n.hostIf()},
		{"ip", "link", "set", n.hostIf(), "up"},
		in("ip", "link", "set", "lo", "up"),
		in("ip", "addr", "add", n.innerIP()+"/24", "dev", realNetIfInner),
		in("ip", "link", "set", realNetIfInner, "up"),
		in("ip", "route", "add", "default", "via", n.hostIP()),
		in("sysctl", "-qw", "net.ipv4.ip_forward=1"),
		// The kubelet (in this machine's namespace) probes pods through the veth.
		{"ip", "route", "add", n.podCIDR(), "via", n.innerIP(), "dev", n.hostIf()},
	}
	for _, s := range steps {
		if out, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("simcluster: real-node network: %s: %w: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// teardown ends every process of the cluster's real nodes, removes their cgroups and deletes the
// namespace (its veth, routes and rules go with it). It is safe to call more than once.
func (n realNet) teardown() error {
	err := killCgroupTree(n.cgroup())
	if e := exec.Command("ip", "netns", "del", n.ns()).Run(); e != nil && nsExists(n.ns()) {
		err = errors.Join(err, fmt.Errorf("simcluster: ip netns del %s: %w", n.ns(), e))
	}
	return err
}

func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

// realNetTeardownScript is teardown for the watchdog's shell, which starts before any real node:
// it reads the namespace's index from the work directory when it runs.
func realNetTeardownScript(workDir string) string {
	return fmt.Sprintf(`if [ -f %[1]q ]; then
K=$(tr -cd 0-9 < %[1]q)
for i in 1 2 3 4 5 6 7 8 9 10; do
  p=$(find /sys/fs/cgroup/pids/drydock-$K -name cgroup.procs -exec cat {} + 2>/dev/null)
  [ -z "$p" ] && break
  kill -9 $p 2>/dev/null; sleep 1
done
for d in /sys/fs/cgroup/*/drydock-$K; do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
ip netns del drydock-$K 2>/dev/null
rm -rf /run/drydock/$K-*; rmdir /run/drydock 2>/dev/null
fi
`, filepath.Join(workDir, realNetFile))
}

// makeCgroup creates path in every hierarchy (a cpuset gets its parent's cpus and memory nodes, as
// a new one starts with none).
func makeCgroup(path string) error {
	for _, h := range cgroupHierarchies {
		base := filepath.Join("/sys/fs/cgroup", h)
		if _, err := os.Stat(base); err != nil {
			continue
		}
		dir := base
		for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("simcluster: cgroup %s: %w", dir, err)
			}
			if h == "cpuset" {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					if b, err := os.ReadFile(filepath.Join(parent, f)); err == nil {
						_ = os.WriteFile(filepath.Join(dir, f), b, 0o644)
					}
				}
			}
		}
	}
	return nil
}

// joinCgroupScript is shell that moves the shell itself into path in every hierarchy.
func joinCgroupScript(path string) string {
	return fmt.Sprintf(`for h in %s; do [ -d /sys/fs/cgroup/$h%s ] && echo $$ > /sys/fs/cgroup/$h%s/cgroup.procs; done
`, strings.Join(cgroupHierarchies, " "), path, path)
}

// killCgroupTree SIGKILLs every process under path (the pids hierarchy lists them) until none is
// left, then removes the cgroups, deepest first, in every hierarchy.
func killCgroupTree(path string) error {
	root := filepath.Join("/sys/fs/cgroup/pids", path)
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids := cgroupProcs(root)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("simcluster: processes %v of %s still run 20s after SIGKILL", pids, path)
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Every hierarchy, not only those a node is put in: runc and the kubelet also make the same
	// path in cgroup v2's unified one, on a hybrid machine.
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", path))
	var err error
	for _, d := range dirs {
		err = errors.Join(err, removeCgroupDirs(d))
	}
	return err
}

func cgroupProcs(root string) []int {
	var pids []int
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// removeCgroupDirs removes the cgroup directory tree at dir, deepest first (a cgroup directory is
// removed with rmdir, its files with it).
func removeCgroupDirs(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var err error
	for i := len(dirs) - 1; i >= 0; i-- {
		if e := syscall.Rmdir(dirs[i]); e != nil && !errors.Is(e, syscall.ENOENT) {
			err = errors.Join(err, fmt.Errorf("simcluster: rmdir %s: %w", dirs[i], e))
		}
	}
	return err
}
