// Package simcluster starts a real Kubernetes control plane on this machine for drydock's tests and demo:
// kube-apiserver, kube-controller-manager, kube-scheduler and etcd as processes, with kwok simulating
// the nodes and their kubelets. Evictions, PodDisruptionBudgets, watches and the controllers are the
// real ones; only the kubelets are simulated, with realistic pod start and stop delays (stages.yaml).
//
// The binaries are built once per machine by hack/cluster-bin.sh (see BinDir). Every cluster has its
// own kwok work directory, so parallel test packages never collide, and a watchdog process tears the
// cluster down if the process that started it dies without calling Stop.
package simcluster

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

//go:embed stages.yaml
var stagesTemplate string

// PreviousVersion is the version of the previous minor's control plane (hack/cluster-bin.sh prev),
// which a cluster started with Options.Previous runs until it is upgraded.
const PreviousVersion = "v1.36.3"

// RunningAnnotation on a pod made bound to a node makes kwok report it Running and Ready at once, in
// one status write (without it a pod goes Pending, then Ready after its ready delay): for copies of
// pods that already run elsewhere.
const RunningAnnotation = "simcluster.drydock.dev/running"

// KubernetesVersion is the version the simulated control plane is built at (hack/cluster-bin.sh).
const KubernetesVersion = "v1.37.1"

// Options configure a simulated cluster. The zero value is usable.
type Options struct {
	// Name of the cluster; default "drydock-<pid>-<n>".
	Name string
	// WorkDir holds the cluster's files (kwok's work directory); default a new temporary directory,
	// removed by Stop. A given WorkDir is kept.
	WorkDir string
	// PodReadyDelay is how long a scheduled pod takes to become Ready (default 2s).
	PodReadyDelay time.Duration
	// PodDeleteDelay is how long a deleted pod takes to stop (default 1s).
	PodDeleteDelay time.Duration
	// PodCompleteDelay is how long a Job's pod runs before it succeeds (default 2s).
	PodCompleteDelay time.Duration
	// Persistent clusters outlive the process that started them (make cluster-up); otherwise a
	// watchdog deletes the cluster when that process exits.
	Persistent bool
	// Log receives kwokctl's output; default io.Discard.
	Log io.Writer
	// RuntimeConfig enables or disables built-in APIs, as kube-apiserver's --runtime-config
	// (e.g. "resource.k8s.io/v1beta1=true").
	RuntimeConfig string
	// BinDir holds kwokctl, kwok, etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
	// kubectl (default: BinDir(), which builds them in a drydock checkout). drydock rehearse's --sim-bin.
	BinDir string
	// APIQPS raises the client rate of the controller-manager and the scheduler (requests per second,
	// burst twice that; 0: their defaults, 20 and 50): a cluster of thousands of pods creates and
	// schedules their replacements no faster than that.
	APIQPS int
	// PodWorkers is how many pods kwok takes through their stages at once (kwok's
	// podPlayStageParallelism; 0: kwok's default, 4). kwok's requests wait on the apiserver, not on
	// a rate limit: thousands of pods need more workers to be started in minutes.
	PodWorkers int
	// NoPodEvents leaves out the event kwok writes for every pod it starts ("Created container"):
	// one write fewer per pod, for copies of thousands of pods where nobody reads them.
	NoPodEvents bool
	// HoldControllers are controllers the controller-manager starts without (kube-controller-manager
	// --controllers), until ReleaseControllers: a copy of running pods creates the ReplicaSets and
	// their pods itself, on their nodes, and none of them must be made twice. The controller-manager
	// then runs without leader election, so that its restart takes effect at once.
	HoldControllers []string
	// Previous starts the control plane (apiserver, controller-manager, scheduler) at the previous
	// minor (PrevBinDir), so that it can be upgraded component by component with UpgradeComponent.
	// etcd and kwok are the current ones.
	Previous bool
}

// Cluster is a running simulated cluster.
type Cluster struct {
	Name       string
	WorkDir    string
	Kubeconfig string // a kubeconfig file with one context, the cluster's
	Config     *rest.Config
	Client     kubernetes.Interface

	binDir      string
	ownsWorkDir bool
	watchdog    *os.Process
	log         io.Writer
	stopOnce    sync.Once
	stopErr     error
}

var counter struct {
	sync.Mutex
	n int
}

// Start creates a cluster and waits until its apiserver answers. On error nothing is left running.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := opts.BinDir, error(nil)
	if bin == "" {
		bin, err = BinDir()
	} else if _, serr := os.Stat(filepath.Join(bin, "kwokctl")); serr != nil {
		err = fmt.Errorf("simcluster: %s has no kwokctl: give a directory with kwokctl, kwok, etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl", bin)
	}
	if err != nil {
		return nil, err
	}
	cp := bin // the control plane's binaries
	if opts.Previous {
		if cp, err = PrevBinDir(); err != nil {
			return nil, err
		}
	}
	opts = opts.withDefaults()
	c := &Cluster{Name: opts.Name, WorkDir: opts.WorkDir, binDir: bin, log: opts.Log}
	if c.WorkDir == "" {
		// kwokctl puts unix sockets under the work directory: keep the path short.
		c.WorkDir, err = os.MkdirTemp("", "drydock-sim-")
		if err != nil {
			return nil, fmt.Errorf("simcluster: %w", err)
		}
		c.ownsWorkDir = true
	} else if err := os.MkdirAll(c.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("simcluster: %w", err)
	}
	c.Kubeconfig = filepath.Join(c.WorkDir, "kubeconfig")
	// A given work directory may hold an earlier cluster's marks: this one starts afresh.
	_ = os.Remove(filepath.Join(c.WorkDir, stoppedFile))
	_ = os.Remove(filepath.Join(c.WorkDir, processesFile))

	// kwokctl picks ports by counting down from 32766, so two clusters created at once pick the same
	// ones. Ask the kernel for free ports instead, and create one cluster at a time on the machine.
	ports, err := freePorts(6)
	if err != nil {
		c.cleanup()
		return nil, err
	}
	unlock, err := lockMachine(ctx)
	if err != nil {
		c.cleanup()
		return nil, err
	}
	defer unlock()

	config := kwokConfig(opts, ports[4])
	configPath := filepath.Join(c.WorkDir, "kwok.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("simcluster: %w", err)
	}

	if !opts.Persistent {
		if err := c.startWatchdog(); err != nil {
			c.cleanup()
			return nil, err
		}
	}

	err = c.kwokctl(ctx, c.createArgs(opts, cp, configPath, ports)...)
	if err != nil {
		_ = c.Stop() //nolint:contextcheck // stopping the cluster must not depend on a context that ended
		return nil, err
	}

	c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		_ = c.Stop() //nolint:contextcheck // stopping the cluster must not depend on a context that ended
		return nil, fmt.Errorf("simcluster: read kubeconfig %s: %w", c.Kubeconfig, err)
	}
	c.Config.QPS, c.Config.Burst = 200, 400
	c.Client, err = kubernetes.NewForConfig(c.Config)
	if err != nil {
		_ = c.Stop() //nolint:contextcheck // stopping the cluster must not depend on a context that ended
		return nil, fmt.Errorf("simcluster: %w", err)
	}
	if err := c.waitReady(ctx); err != nil {
		_ = c.Stop() //nolint:contextcheck // stopping the cluster must not depend on a context that ended
		return nil, err
	}
	if err := c.recordComponents(); err != nil {
		_ = c.Stop() //nolint:contextcheck // stopping the cluster must not depend on a context that ended
		return nil, err
	}
	return c, nil
}

// withDefaults fills in the options Start leaves to it: a name unique on the machine, the
// simulated kubelets' delays, a log.
func (opts Options) withDefaults() Options {
	if opts.Name == "" {
		counter.Lock()
		counter.n++
		opts.Name = fmt.Sprintf("drydock-%d-%d", os.Getpid(), counter.n)
		counter.Unlock()
	}
	if opts.PodReadyDelay == 0 {
		opts.PodReadyDelay = 2 * time.Second
	}
	if opts.PodDeleteDelay == 0 {
		opts.PodDeleteDelay = time.Second
	}
	if opts.PodCompleteDelay == 0 {
		opts.PodCompleteDelay = 2 * time.Second
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	return opts
}

// createArgs is kwokctl's create command for the cluster: the control plane's binaries from cp,
// etcd and kwok from the cluster's own directory, and the free ports Start chose.
func (c *Cluster) createArgs(opts Options, cp, configPath string, ports []int) []string {
	args := []string{"create", "cluster",
		"--name", c.Name,
		"--runtime", "binary",
		"--config", configPath,
		"--kubeconfig", c.Kubeconfig,
		"--kube-apiserver-binary", filepath.Join(cp, "kube-apiserver"),
		"--kube-controller-manager-binary", filepath.Join(cp, "kube-controller-manager"),
		"--kube-scheduler-binary", filepath.Join(cp, "kube-scheduler"),
		"--etcd-binary", filepath.Join(c.binDir, "etcd"),
		"--kwok-controller-binary", filepath.Join(c.binDir, "kwok"),
		"--kube-apiserver-port", strconv.Itoa(ports[0]),
		"--etcd-port", strconv.Itoa(ports[1]),
		"--controller-port", strconv.Itoa(ports[2]),
		"--kube-controller-manager-port", strconv.Itoa(ports[3]),
		"--kube-scheduler-port", strconv.Itoa(ports[5]),
		"--wait", "90s",
	}
	if opts.RuntimeConfig != "" {
		args = append(args, "--kube-runtime-config", opts.RuntimeConfig)
	}
	return args
}

// kwokConfig is kwokctl's configuration for opts (stages.yaml filled in).
func kwokConfig(opts Options, etcdPeerPort int) string {
	return strings.NewReplacer(
		"@ETCD_PEER_PORT@", strconv.Itoa(etcdPeerPort),
		"@READY_MS@", strconv.FormatInt(opts.PodReadyDelay.Milliseconds(), 10),
		"@DELETE_MS@", strconv.FormatInt(opts.PodDeleteDelay.Milliseconds(), 10),
		"@COMPLETE_MS@", strconv.FormatInt(opts.PodCompleteDelay.Milliseconds(), 10),
		"@CONTROL_PLANE_PATCHES@", controlPlanePatches(opts.APIQPS, opts.HoldControllers),
		"@POD_CREATE_EVENT@", podCreateEvent(opts.NoPodEvents),
	).Replace(stagesTemplate) + kwokOptions(opts.PodWorkers)
}

// podCreateEvent is the event of the pod-create Stage (none with NoPodEvents).
func podCreateEvent(none bool) string {
	if none {
		return ""
	}
	return "    event:\n      type: Normal\n      reason: Created\n      message: Created container\n"
}

// kwokOptions is a KwokConfiguration document (kwokctl hands it to kwok) with kwok's pod workers,
// or nothing when kwok's default is kept. kwok does not default the options of a configuration it is
// given (a zero node-lease parallelism stops it at start), so every option kwok defaults is here with
// kwok's default (sigs.k8s.io/kwok/pkg/apis/config/v1alpha1, SetObjectDefaults_KwokConfiguration).
func kwokOptions(podWorkers int) string {
	if podWorkers <= 0 {
		return ""
	}
	return fmt.Sprintf(`---
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: 10.0.0.0/24
  manageAllNodes: false
  enableDebuggingHandlers: true
  enableContentionProfiling: false
  enableProfilingHandler: true
  podPlayStageParallelism: %d
  nodePlayStageParallelism: 4
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 1
  enablePodsOnNodeSyncListPager: true
  enablePodsOnNodeSyncStreamWatch: false
`, podWorkers)
}

// controlPlanePatches are kwokctl's componentsPatches giving the controller-manager and the
// scheduler a client rate of qps (none for 0), and the controller-manager its held controllers.
//
// The apiserver closes its watches when it is told to stop: without it, one open watch (an
// informer, kwok's, Velero's) holds its shutdown for the whole --request-timeout (60s), and a
// member restart outlasts a run's lock renew deadline (measured: 62s with `kubectl get -w` open,
// 1.3s with the flag). It reaches a kubelet at the node's InternalIP first: a real node's is its
// address on this machine, its Hostname (the node's name) resolves nowhere; a kwok node has only
// a Hostname, "localhost".
func controlPlanePatches(qps int, hold []string) string {
	args := map[string][]string{"kube-apiserver": {
		"shutdown-watch-termination-grace-period", "5s",
		"kubelet-preferred-address-types", "InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP",
	}}
	if qps > 0 {
		for _, c := range []string{"kube-controller-manager", "kube-scheduler"} {
			args[c] = append(args[c], "kube-api-qps", strconv.Itoa(qps), "kube-api-burst", strconv.Itoa(2*qps))
		}
	}
	if len(hold) > 0 {
		args["kube-controller-manager"] = append(args["kube-controller-manager"], "controllers", heldControllers(hold), "leader-elect", "false")
	}
	var b strings.Builder
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if len(args[c]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "- name: %s\n  extraArgs:\n", c)
		for i := 0; i < len(args[c]); i += 2 {
			fmt.Fprintf(&b, "  - key: %s\n    value: %q\n", args[c][i], args[c][i+1])
		}
	}
	return b.String()
}

// heldControllers is the controller-manager's --controllers without hold.
func heldControllers(hold []string) string {
	out := []string{"*"}
	for _, h := range hold {
		out = append(out, "-"+h)
	}
	return strings.Join(out, ",")
}

// ReleaseControllers restarts the controller-manager with every controller (Options.HoldControllers
// held some back), and returns once the new process runs. Nothing to do when none was held.
func (c *Cluster) ReleaseControllers(ctx context.Context) error {
	p, err := c.component("kube-controller-manager")
	if err != nil {
		return err
	}
	kept := p.Argv[:0:0]
	for _, a := range p.Argv {
		if !strings.HasPrefix(a, "--controllers=") {
			kept = append(kept, a)
		}
	}
	if len(kept) == len(p.Argv) {
		return nil
	}
	if err := p.stop(ctx); err != nil {
		return err
	}
	p.Argv = kept
	if err := c.start(p); err != nil {
		return err
	}
	all, err := c.loadComponents()
	if err != nil {
		return err
	}
	all[p.Name] = p // a later restart starts it with every controller
	return c.saveComponents(all)
}

// componentsFile keeps how each control-plane component was started (argv, environment, directory),
// so that one that exited (a controller-manager loses its lease while the apiserver restarts and
// exits, as it does for real; kwok does not supervise it) can be started again, or upgraded.
const componentsFile = "components.json"

func (c *Cluster) recordComponents() error {
	all := map[string]*process{}
	for _, name := range ControlPlane {
		p, err := c.component(name)
		if err != nil {
			return err
		}
		all[name] = p
	}
	return c.saveComponents(all)
}

func (c *Cluster) saveComponents(all map[string]*process) error {
	b, err := json.Marshal(all)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.WorkDir, componentsFile), b, 0o644)
}

func (c *Cluster) loadComponents() (map[string]*process, error) {
	b, err := os.ReadFile(filepath.Join(c.WorkDir, componentsFile))
	if err != nil {
		return nil, fmt.Errorf("simcluster: how the components were started: %w", err)
	}
	all := map[string]*process{}
	return all, json.Unmarshal(b, &all)
}

// Attach returns a handle on a persistent cluster that Start created earlier in workDir.
func Attach(name, workDir string) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Name: name, WorkDir: workDir, binDir: bin, log: io.Discard,
		Kubeconfig: filepath.Join(workDir, "kubeconfig")}
	if cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err == nil {
		c.Config = cfg
		c.Client, _ = kubernetes.NewForConfig(cfg)
	}
	return c, nil
}

// Stop deletes the cluster, stops every process it ever started (kwokctl's, and each restarted,
// upgraded or added one: processes.go) and removes a work directory Start created. No process of
// the cluster starts after Stop began. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c.markStopped() // nothing starts any more, here or in another process
		pids := append(c.componentPIDs(), c.tracked()...)
		// Real nodes first: their processes, cgroups and network namespace (realnet.go).
		rerr := c.stopRealNodes()
		c.stopErr = c.kwokctl(ctx, "delete", "cluster", "--name", c.Name)
		if c.stopErr == nil {
			c.stopErr = rerr
		}
		// What the cluster started itself (restarts, upgrades, more apiservers): kwokctl knows
		// only the processes its pid files name at this moment.
		if err := c.stopTracked(ctx); err != nil && c.stopErr == nil {
			c.stopErr = err
		}
		if err := waitGone(ctx, pids); err != nil && c.stopErr == nil {
			c.stopErr = err
		}
		c.cleanup()
	})
	return c.stopErr
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("simcluster: find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// lockMachine serializes cluster creation across processes (parallel test packages), so that one
// cluster's components have bound their ports before the next cluster looks for free ones.
func lockMachine(ctx context.Context) (func(), error) {
	return flockWait(ctx, "drydock-simcluster.lock", "wait for another cluster to start")
}

// flockWait takes an exclusive machine-wide lock on a file in the temporary directory, waiting
// while another process holds it; the returned func releases it.
func flockWait(ctx context.Context, name, waiting string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), name), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("simcluster: %w", err)
	}
	for {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("simcluster: %s: %w", waiting, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ComponentPIDs returns the process ids of the cluster's components (etcd, the control plane, kwok),
// as kwokctl recorded them: a benchmark reads the CPU time the cluster spent.
func (c *Cluster) ComponentPIDs() []int { return c.componentPIDs() }

// componentPIDs reads the process ids kwokctl recorded for the cluster's components.
func (c *Cluster) componentPIDs() []int {
	files, _ := filepath.Glob(filepath.Join(c.WorkDir, "kwok", "clusters", c.Name, "pids", "*.pid"))
	var pids []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitGone waits until none of pids exists any more, not even as a zombie waiting to be reaped,
// so that `pgrep kube-apiserver` finds nothing once Stop returns.
func waitGone(ctx context.Context, pids []int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var left []int
		for _, pid := range pids {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("simcluster: processes %v still exist 30s after the cluster was deleted", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) cleanup() {
	if c.watchdog != nil {
		_ = c.watchdog.Kill()
		_, _ = c.watchdog.Wait()
		c.watchdog = nil
	}
	if c.ownsWorkDir {
		_ = os.RemoveAll(c.WorkDir)
	}
}

// Kwokctl runs a kwokctl command against this cluster, e.g. Kwokctl(ctx, "get", "components").
func (c *Cluster) Kwokctl(ctx context.Context, args ...string) error {
	return c.kwokctl(ctx, args...)
}

func (c *Cluster) kwokctl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "kwokctl"), args...)
	cmd.Env = c.env()
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, c.log)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("simcluster: kwokctl %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 40))
	}
	return nil
}

func (c *Cluster) env() []string {
	return append(os.Environ(),
		"KWOK_WORKDIR="+filepath.Join(c.WorkDir, "kwok"),
		// kwokctl must never download anything, nor touch the user's ~/.kube/config.
		"KUBECONFIG="+c.Kubeconfig,
		// A simulated cluster is all on this machine: its apiserver proxies to nodes (node proxy,
		// /configz) and webhooks directly, never through a proxy the environment names for downloads.
		"NO_PROXY=*", "no_proxy=*",
	)
}

// startWatchdog starts a detached shell that deletes the cluster when this process exits, whatever
// the reason (a test timeout's panic, SIGKILL): Stop kills the watchdog first in the ordinary case.
func (c *Cluster) startWatchdog() error {
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done
%s%q delete cluster --name %q >/dev/null 2>&1
%s%s`, os.Getpid(), realNetTeardownScript(c.WorkDir), filepath.Join(c.binDir, "kwokctl"), c.Name, c.watchdogStopsTracked(), func() string {
		if c.ownsWorkDir {
			return fmt.Sprintf("rm -rf %q", c.WorkDir)
		}
		return ""
	}())
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = c.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("simcluster: start watchdog: %w", err)
	}
	c.watchdog = cmd.Process
	return nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error
	for {
		// The default ServiceAccount shows the controller-manager is working, not only the apiserver.
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("simcluster: cluster %s not ready after 90s: %w", c.Name, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// BinDir returns the directory holding the cluster binaries: $DRYDOCK_CLUSTER_BIN when set (the
// Makefile sets it), otherwise it runs hack/cluster-bin.sh, which builds them the first time.
func BinDir() (string, error) { return clusterBins.dir() }

// VeleroBinDir returns the directory with velero, velero-plugin-for-aws and minio:
// $DRYDOCK_VELERO_BIN when set, otherwise hack/velero-bin.sh builds them the first time.
func VeleroBinDir() (string, error) { return veleroBins.dir() }

// PrevBinDir returns the directory with the previous minor's kube-apiserver, kube-controller-manager,
// kube-scheduler and kubectl: $DRYDOCK_CLUSTER_BIN_PREV when set, otherwise `hack/cluster-bin.sh
// prev` builds them the first time.
func PrevBinDir() (string, error) { return prevBins.dir() }

var (
	clusterBins = &builtBins{env: "DRYDOCK_CLUSTER_BIN", script: "cluster-bin.sh", marker: "kwokctl", make: "make cluster-bin"}
	prevBins    = &builtBins{env: "DRYDOCK_CLUSTER_BIN_PREV", script: "cluster-bin.sh", args: []string{"prev"}, marker: "kube-apiserver", make: "hack/cluster-bin.sh prev"}
	veleroBins  = &builtBins{env: "DRYDOCK_VELERO_BIN", script: "velero-bin.sh", marker: "minio", make: "hack/velero-bin.sh"}
)

// builtBins is a directory of binaries a hack/ script builds once per machine and prints.
type builtBins struct {
	env, script, marker, make string
	args                      []string

	once sync.Once
	path string
	err  error
}

func (b *builtBins) dir() (string, error) {
	if dir := os.Getenv(b.env); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, b.marker)); err != nil {
			return "", fmt.Errorf("simcluster: %s=%s has no %s: run `%s`", b.env, dir, b.marker, b.make)
		}
		return dir, nil
	}
	b.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			b.err = err
			return
		}
		cmd := exec.Command(filepath.Join(root, "hack", b.script), b.args...)
		var stderr bytes.Buffer
		cmd.Stderr = io.MultiWriter(&stderr, os.Stderr)
		out, err := cmd.Output()
		if err != nil {
			b.err = fmt.Errorf("simcluster: hack/%s: %w\n%s", b.script, err, tail(stderr.String(), 40))
			return
		}
		b.path = strings.TrimSpace(string(out))
	})
	return b.path, b.err
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.HasPrefix(b, []byte("module github.com/drydock-dev/drydock\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("simcluster: cannot find the drydock repository above the working directory; set DRYDOCK_CLUSTER_BIN")
		}
		dir = parent
	}
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// RestartAPIServer stops the cluster's kube-apiserver (SIGTERM, as a rolling restart or a crash
// of the process would), leaves it down for down, then starts it again from the same binary and
// flags on the same etcd, and waits until it answers /readyz. Clients see refused connections,
// cut watches and lost answers in between, as they do on a real control-plane restart.
//
// kube-controller-manager and kube-scheduler exit when they cannot renew their leader lease (their
// kubelet restarts them on a real control-plane node; kwokctl's processes have no supervisor), so
// they are restarted too once the apiserver answers, as the kubelet would.
func (c *Cluster) RestartAPIServer(ctx context.Context, down time.Duration) error {
	apiserver, err := c.component("kube-apiserver")
	if err != nil {
		return err
	}
	var others []*process
	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		p, err := c.component(name)
		if err != nil {
			return err
		}
		others = append(others, p)
	}
	if err := apiserver.stop(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(down):
	}
	if err := c.start(apiserver); err != nil {
		return err
	}
	if err := c.waitReadyz(ctx); err != nil {
		return err
	}
	for _, p := range others {
		if err := p.stop(ctx); err != nil {
			return err
		}
		if err := c.start(p); err != nil {
			return err
		}
	}
	return nil
}

// ControlPlane are the components UpgradeComponent upgrades, in the order an upgrade takes them.
var ControlPlane = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// UpgradeComponent restarts one control-plane component from the binary of the same name in
// binDir, with the same flags, on the same etcd data: the simulated counterpart of upgrading a
// control-plane member. It returns once the apiserver answers /readyz again (and, for the
// controller-manager and the scheduler, once the new process runs).
func (c *Cluster) UpgradeComponent(ctx context.Context, name, binDir string) error {
	if !slices.Contains(ControlPlane, name) {
		return fmt.Errorf("simcluster: %q is not a control-plane component (%s)", name, strings.Join(ControlPlane, ", "))
	}
	bin := filepath.Join(binDir, name)
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("simcluster: upgrade %s: %w", name, err)
	}
	p, err := c.component(name)
	if err != nil {
		return err
	}
	if err := p.stop(ctx); err != nil {
		return err
	}
	p.Argv[0] = bin
	if err := c.start(p); err != nil {
		return err
	}
	if all, err := c.loadComponents(); err == nil {
		all[name] = p // a later restart starts the upgraded binary
		if err := c.saveComponents(all); err != nil {
			return err
		}
	}
	if err := c.waitReadyz(ctx); err != nil {
		return err
	}
	// As a kubelet restarts a static pod, start again a component that exited while the apiserver
	// was away (the controller-manager and the scheduler exit when they cannot renew their lease).
	for _, other := range ControlPlane {
		if other == name {
			continue
		}
		o, err := c.component(other)
		if err != nil {
			return err
		}
		if syscall.Kill(o.pid, 0) != nil {
			if err := c.start(o); err != nil {
				return err
			}
		}
	}
	return nil
}

// process is a component of the cluster as kwokctl started it: enough to start it again.
type process struct {
	Name    string   `json:"name"`
	PidFile string   `json:"pidFile"`
	LogFile string   `json:"logFile"`
	Cwd     string   `json:"cwd"`
	Argv    []string `json:"argv"`
	Env     []string `json:"env"`
	pid     int
}

func (c *Cluster) component(name string) (*process, error) {
	dir := filepath.Join(c.WorkDir, "kwok", "clusters", c.Name)
	p := &process{Name: name, PidFile: filepath.Join(dir, "pids", name+".pid"), LogFile: filepath.Join(dir, "logs", name+".log")}
	b, err := os.ReadFile(p.PidFile)
	if err != nil {
		return nil, fmt.Errorf("simcluster: %s: %w", name, err)
	}
	if p.pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return nil, fmt.Errorf("simcluster: %s: pid file %s: %w", name, p.PidFile, err)
	}
	if p.Argv, err = procStrings(p.pid, "cmdline"); err != nil {
		// It exited: start it as it was started (recorded when the cluster came up).
		all, lerr := c.loadComponents()
		if rec := all[name]; lerr == nil && rec != nil {
			rec.pid = p.pid
			return rec, nil
		}
		return nil, fmt.Errorf("simcluster: %s is not running: %w", name, err)
	}
	p.Env, _ = procStrings(p.pid, "environ")
	if p.Cwd, err = os.Readlink(fmt.Sprintf("/proc/%d/cwd", p.pid)); err != nil {
		return nil, fmt.Errorf("simcluster: %s: %w", name, err)
	}
	return p, nil
}

// stop ends the process if it still runs, as a kubelet ends a static pod: SIGTERM, then SIGKILL
// after 30s. It returns once the process exited: a zombie its parent has not reaped yet holds no
// port or file any more.
func (p *process) stop(ctx context.Context) error {
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
		return nil // gone already
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if waitExited(tctx, p.pid) == nil {
		return nil
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := waitExited(kctx, p.pid); err != nil {
		return fmt.Errorf("simcluster: stop %s: pid %d did not exit 30s after SIGTERM nor 10s after SIGKILL (state %s)", p.Name, p.pid, procState(p.pid))
	}
	return nil
}

// waitExited waits until pid no longer runs (gone, or a zombie) or ctx ends.
func waitExited(ctx context.Context, pid int) error {
	for {
		if st := procState(pid); st == "" || st == "Z" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// procState is the process's state letter (/proc/PID/stat field 3: R, S, D, Z...), "" when gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	if f := strings.Fields(s[i+1:]); i >= 0 && len(f) > 0 {
		return f[0]
	}
	return ""
}

func (c *Cluster) waitReadyz(ctx context.Context) error { return c.waitReadyzAt(ctx, c.Config.Host) }

// waitReadyzAt waits until the apiserver at url answers /readyz ok.
func (c *Cluster) waitReadyzAt(ctx context.Context, url string) error {
	cfg := rest.CopyConfig(c.Config)
	cfg.Host = url
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("simcluster: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error
	for {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("simcluster: apiserver %s not ready after restart: %w", url, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// procStrings reads a NUL-separated file of /proc/PID.
func procStrings(pid int, name string) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		out = append(out, string(s))
	}
	if len(out) == 0 || out[0] == "" {
		return nil, fmt.Errorf("/proc/%d/%s is empty", pid, name)
	}
	return out, nil
}
