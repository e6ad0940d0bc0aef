// Command simcluster starts and stops a persistent simulated cluster for people (make cluster-up,
// make cluster-down, make demo). Tests use package simcluster directly.
//
//	simcluster restart-apiserver [--name N] [--down 2s]
//	simcluster upgrade-controlplane [--name N] [--component kube-apiserver]   (every component without it)
//	simcluster up   [--name N] [--nodes K] [--groups system=3,general=8] [--kubelet-version V] [--previous] [--runtime-config G/V=true]
//	                [--real-nodes K] [--real-groups general,batch [--placeholder-images REF,...]]
//	simcluster down [--name N]
//	simcluster helm-install [--name N] --chart DIR --release R --namespace NS [--chart-version V]
//	simcluster real-nodes-check                 (exit 1 naming what this machine lacks to run real nodes)
//	simcluster web [--name N] --namespace NS [--replicas K] [--pre-stop 2s] NAME
//	simcluster load [--name N] --service NS/NAME --out FILE [--rate 20] [--ready-file F]   (until interrupted)
//	simcluster load-report --seconds FILE --state-dir DIR [--run ID]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "simcluster: %v\n", err)
		os.Exit(1)
	}
}

// cliFlags are every subcommand's flags (one flag set: each says which subcommand reads it).
type cliFlags struct {
	fs                                                                *flag.FlagSet
	name, groups, kubelet, readyFile, runtimeConfig, workDir          string
	chart, release, namespace, chartVersion, realGroups, placeholders string
	service, out, seconds, runStateDir, runID, component              string
	nodes, realNodes, replicas, rate                                  int
	readyDelay, down, preStop                                         time.Duration
	previous                                                          bool
}

func parseFlags(cmd string, args []string) (*cliFlags, error) {
	f := &cliFlags{fs: flag.NewFlagSet("simcluster "+cmd, flag.ContinueOnError)}
	fs := f.fs
	fs.StringVar(&f.name, "name", "drydock-dev", "cluster name")
	fs.IntVar(&f.nodes, "nodes", 3, "number of nodes when --groups is not given")
	fs.StringVar(&f.groups, "groups", "", "node groups as NAME=COUNT,... (label drydock.dev/group=NAME)")
	fs.StringVar(&f.kubelet, "kubelet-version", simcluster.KubernetesVersion, "kubelet version the nodes report")
	fs.DurationVar(&f.readyDelay, "pod-ready-delay", 2*time.Second, "how long a pod takes to become Ready")
	fs.StringVar(&f.readyFile, "ready-file", "", "velero, load: create this file once it is up")
	fs.DurationVar(&f.down, "down", 2*time.Second, "restart-apiserver: how long the apiserver stays stopped")
	fs.StringVar(&f.runtimeConfig, "runtime-config", "", "up: kube-apiserver's --runtime-config (e.g. storage.k8s.io/v1beta1=true, an API the next minor no longer serves)")
	fs.BoolVar(&f.previous, "previous", false, "up: start the control plane at the previous minor (hack/cluster-bin.sh prev), to be upgraded")
	fs.StringVar(&f.workDir, "work-dir", "", "the cluster's work directory (default: drydock's state directory, clusters/NAME)")
	fs.StringVar(&f.chart, "chart", "", "helm-install: the chart directory")
	fs.StringVar(&f.release, "release", "", "helm-install: the release name")
	fs.StringVar(&f.namespace, "namespace", "", "helm-install: the release namespace (created when missing); web: the Deployment's")
	fs.StringVar(&f.chartVersion, "chart-version", "", "helm-install: install the chart as this (older) version of itself")
	fs.IntVar(&f.realNodes, "real-nodes", 0, "up: real nodes (a kubelet that runs containers, with its own containerd) beside the kwok nodes, named real-1..N")
	fs.StringVar(&f.realGroups, "real-groups", "", "up: the first node of each of these groups (of --groups) is a real node, tainted "+simcluster.RealNodeTaint+" so that only pods that tolerate it run there")
	fs.StringVar(&f.placeholders, "placeholder-images", "", "up: image names the --real-groups nodes run the pause image as (for a DaemonSet that tolerates every taint)")
	fs.IntVar(&f.replicas, "replicas", 3, "web: the Deployment's replicas")
	fs.DurationVar(&f.preStop, "pre-stop", 2*time.Second, "web: the preStop hook's sleep")
	fs.StringVar(&f.service, "service", "", "load: the Service (NAMESPACE/NAME) whose ClusterIP the requests go to")
	fs.IntVar(&f.rate, "rate", 20, "load: requests a second")
	fs.StringVar(&f.out, "out", "", "load: write what each second saw to this file (JSON lines) when interrupted")
	fs.StringVar(&f.seconds, "seconds", "", "load-report: the file simcluster load wrote")
	fs.StringVar(&f.runStateDir, "state-dir", "", "load-report: the directory of drydock's run journals (drydock run's --state-dir)")
	fs.StringVar(&f.runID, "run", "", "load-report: the run (default: the newest in --state-dir)")
	fs.StringVar(&f.component, "component", "", "upgrade-controlplane: only this component ("+strings.Join(simcluster.ControlPlane, ", ")+"); default: each in turn")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if f.workDir == "" {
		f.workDir = filepath.Join(stateDir(), "clusters", f.name)
	}
	return f, nil
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: simcluster up|down|kubeconfig|velero|restart-apiserver|upgrade-controlplane|upgrade-node|helm-install|real-nodes-check|web|load|load-report [flags]")
	}
	f, err := parseFlags(args[0], args[1:])
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch args[0] {
	case "up":
		return up(ctx, upOptions{name: f.name, workDir: f.workDir, groups: f.groups, nodes: f.nodes, realNodes: f.realNodes,
			realGroups: splitList(f.realGroups), placeholders: splitList(f.placeholders), kubelet: f.kubelet, previous: f.previous,
			opts: simcluster.Options{Name: f.name, WorkDir: f.workDir, Persistent: true,
				PodReadyDelay: f.readyDelay, Previous: f.previous, RuntimeConfig: f.runtimeConfig}})
	case "down":
		return stopCluster(f.name, f.workDir)
	case "kubeconfig":
		fmt.Println(filepath.Join(f.workDir, "kubeconfig"))
		return nil
	case "upgrade-node":
		// Restarts a real node's kubelet as the current minor's, with the same configuration and
		// data (hack/sim-upgrade-node.sh, for a node labelled simcluster.drydock.dev/real-node).
		return upgradeRealNode(ctx, f.name, f.workDir, f.fs.Arg(0))
	case "real-nodes-check":
		return simcluster.RealNodesSupported()
	case "load-report":
		return loadReport(os.Stdout, f.seconds, f.runStateDir, f.runID)
	case "restart-apiserver", "upgrade-controlplane", "helm-install", "web", "load", "velero":
		c, err := running(f.name, f.workDir)
		if err != nil {
			return err
		}
		return onCluster(ctx, args[0], c, f)
	}
	return fmt.Errorf("unknown command %q: use up, down, kubeconfig, velero, restart-apiserver, upgrade-controlplane, upgrade-node, helm-install, real-nodes-check, web, load or load-report", args[0])
}

// onCluster runs the subcommands that work on a running cluster.
func onCluster(ctx context.Context, cmd string, c *simcluster.Cluster, f *cliFlags) error {
	switch cmd {
	case "restart-apiserver":
		// Stops the apiserver and starts it again on the same etcd (for trying drydock across a
		// control-plane restart by hand; the fault tests use the same helper).
		start := time.Now()
		if err := c.RestartAPIServer(ctx, f.down); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "simcluster: apiserver of %q restarted; it answered again after %v\n", f.name, time.Since(start).Round(time.Millisecond))
		return nil
	case "upgrade-controlplane":
		// Restarts control-plane components from the current minor's binaries on the same etcd data:
		// the simulated counterpart of upgrading control-plane members (hack/sim-upgrade-controlplane.sh).
		return upgradeControlPlane(ctx, c, f.name, f.component)
	case "helm-install":
		// Installs a local chart as an older version of itself: the add-on the demo's runbook upgrades.
		if f.chart == "" || f.release == "" || f.namespace == "" {
			return errors.New("helm-install needs --chart, --release and --namespace")
		}
		if err := simcluster.InstallChart(ctx, c.Config, f.chart, f.release, f.namespace, f.chartVersion, nil); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "simcluster: Helm release %s/%s installed from %s\n", f.namespace, f.release, f.chart)
		return nil
	case "web":
		return deployWeb(ctx, c, f.namespace, f.fs.Arg(0), int32(f.replicas), f.preStop) //nolint:gosec // a flag's small count
	case "load":
		return runLoad(ctx, c, loadOptions{service: f.service, out: f.out, readyFile: f.readyFile, rate: f.rate})
	}
	// velero: runs MinIO and a Velero server against the cluster until interrupted (make demo runs
	// it in the background): their processes end with this one.
	return runVelero(ctx, c, f.readyFile)
}

type plannedNode struct {
	name   string
	labels map[string]string
	real   bool
}

// nodePlan names the nodes of --groups (or --nodes), the first of each group in realGroups real.
func nodePlan(groups string, nodes int, realGroups []string) ([]plannedNode, error) {
	if len(realGroups) > 0 && groups == "" {
		return nil, fmt.Errorf("--real-groups %s: give the groups with --groups", strings.Join(realGroups, ","))
	}
	if groups == "" {
		var plan []plannedNode
		for i := 1; i <= nodes; i++ {
			plan = append(plan, plannedNode{name: fmt.Sprintf("node-%d", i)})
		}
		return plan, nil
	}
	var plan []plannedNode
	for _, g := range strings.Split(groups, ",") {
		name, count, ok := strings.Cut(g, "=")
		n, err := strconv.Atoi(count)
		if !ok || err != nil || n < 1 {
			return nil, fmt.Errorf("--groups %q: want NAME=COUNT,... with COUNT ≥ 1", groups)
		}
		for i := 1; i <= n; i++ {
			plan = append(plan, plannedNode{
				name:   fmt.Sprintf("%s-%d", name, i),
				labels: map[string]string{"drydock.dev/group": name},
				real:   i == 1 && slices.Contains(realGroups, name),
			})
		}
	}
	for _, g := range realGroups {
		if !slices.ContainsFunc(plan, func(n plannedNode) bool { return n.real && n.labels["drydock.dev/group"] == g }) {
			return nil, fmt.Errorf("--real-groups: %q is not a group of --groups %q", g, groups)
		}
	}
	return plan, nil
}

func stateDir() string {
	if d := os.Getenv("DRYDOCK_CACHE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "drydock")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "drydock")
}

func upgradeRealNode(ctx context.Context, name, workDir, node string) error {
	if node == "" {
		return errors.New("usage: simcluster upgrade-node [--name CLUSTER | --work-dir DIR] NODE")
	}
	c, err := simcluster.Attach(name, workDir)
	if err != nil {
		return err
	}
	n, err := c.RealNode(node)
	if err != nil {
		return err
	}
	bin, err := simcluster.NodeBinDir()
	if err != nil {
		return err
	}
	if err := n.UpgradeKubelet(ctx, bin); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "simcluster: node %s: the kubelet now runs %s (a new process, same configuration and data)\n", node, simcluster.KubernetesVersion)
	return nil
}

type upOptions struct {
	name, workDir, groups, kubelet string
	nodes, realNodes               int
	realGroups, placeholders       []string
	previous                       bool
	opts                           simcluster.Options
}

// up starts a persistent cluster with its kwok nodes and real nodes; on error nothing of it is left.
func up(ctx context.Context, o upOptions) (err error) {
	plan, err := nodePlan(o.groups, o.nodes, o.realGroups)
	if err != nil {
		return err
	}
	if o.realNodes > 0 || len(o.realGroups) > 0 {
		// Before anything starts: nothing is left half-started on a machine that cannot.
		if err := simcluster.RealNodesSupported(); err != nil {
			return fmt.Errorf("%s: %w", realFlags(o), err)
		}
	}
	if _, err := os.Stat(filepath.Join(o.workDir, "kubeconfig")); err == nil {
		return fmt.Errorf("cluster %q already exists (kubeconfig %s): run `make cluster-down` first", o.name, filepath.Join(o.workDir, "kubeconfig"))
	}
	c, err := simcluster.Start(ctx, o.opts)
	if err != nil {
		_ = os.RemoveAll(o.workDir)
		return err
	}
	defer func() { //nolint:contextcheck // Stop has a timeout of its own: it must run after ctx ended too
		if err != nil {
			_ = c.Stop()
			_ = os.RemoveAll(o.workDir)
		}
	}()
	for _, n := range plan {
		if n.real {
			continue
		}
		if _, err := c.CreateNode(ctx, n.name, simcluster.NodeOptions{Labels: n.labels, KubeletVersion: o.kubelet}); err != nil {
			return err
		}
	}
	for _, n := range plan {
		if !n.real {
			continue
		}
		if _, err := c.AddRealNode(ctx, n.name, simcluster.RealNodeOptions{Labels: n.labels, Taint: true, Placeholders: o.placeholders}); err != nil {
			return err
		}
	}
	for i := 1; i <= o.realNodes; i++ {
		if _, err := c.AddRealNode(ctx, fmt.Sprintf("real-%d", i), simcluster.RealNodeOptions{}); err != nil {
			return err
		}
	}
	cp := simcluster.KubernetesVersion
	if o.previous {
		cp = simcluster.PreviousVersion
	}
	fmt.Fprintf(os.Stderr, "simcluster: cluster %q is up with %d nodes (control plane Kubernetes %s)\n", o.name, len(plan)+o.realNodes, cp)
	fmt.Println(c.Kubeconfig)
	return nil
}

// realFlags names the flags that asked for real nodes, for an error.
func realFlags(o upOptions) string {
	var f []string
	if o.realNodes > 0 {
		f = append(f, fmt.Sprintf("--real-nodes %d", o.realNodes))
	}
	if len(o.realGroups) > 0 {
		f = append(f, "--real-groups "+strings.Join(o.realGroups, ","))
	}
	return strings.Join(f, " ")
}

// running attaches to the cluster name in workDir, which must be up.
func running(name, workDir string) (*simcluster.Cluster, error) {
	c, err := simcluster.Attach(name, workDir)
	if err != nil {
		return nil, err
	}
	if c.Client == nil {
		return nil, fmt.Errorf("no cluster %q: run simcluster up first", name)
	}
	return c, nil
}

// upgradeControlPlane restarts component (every one in turn when "") from the current minor's binary.
func upgradeControlPlane(ctx context.Context, c *simcluster.Cluster, name, component string) error {
	bin, err := simcluster.BinDir()
	if err != nil {
		return err
	}
	comps := simcluster.ControlPlane
	if component != "" {
		comps = []string{component}
	}
	for _, comp := range comps {
		if err := c.UpgradeComponent(ctx, comp, bin); err != nil {
			return err
		}
		v, err := c.Client.Discovery().ServerVersion()
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "simcluster: %s of %q now runs %s (the apiserver answers %s)\n", comp, name, simcluster.KubernetesVersion, v.GitVersion)
	}
	return nil
}

// runVelero runs MinIO and a Velero server against c until ctx ends, creating readyFile once up.
func runVelero(ctx context.Context, c *simcluster.Cluster, readyFile string) error {
	v, err := c.StartVelero(ctx, simcluster.VeleroOptions{})
	if err != nil {
		return err
	}
	defer v.Stop()
	fmt.Fprintf(os.Stderr, "simcluster: Velero is up in namespace %s (object store: MinIO at %s)\n", v.Namespace, v.S3URL)
	if readyFile != "" {
		if err := os.WriteFile(readyFile, []byte("ready\n"), 0o644); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

// stopCluster stops the cluster name and every process it started, and removes its work directory.
func stopCluster(name, workDir string) error {
	if _, err := os.Stat(workDir); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "simcluster: no cluster %q\n", name)
		return nil
	}
	c, err := simcluster.Attach(name, workDir)
	if err != nil {
		return err
	}
	stopErr := c.Stop()
	if err := os.RemoveAll(workDir); err != nil {
		return err
	}
	if stopErr != nil {
		return stopErr
	}
	fmt.Fprintf(os.Stderr, "simcluster: cluster %q is down\n", name)
	return nil
}
