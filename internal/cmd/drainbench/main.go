// Command drainbench (make bench) drains the same scenario with `drydock drain` and with
// `kubectl drain` (the kubectl of the pinned Kubernetes version), side by side in one run on one
// simulated cluster, and prints ratios: the machine is shared, so absolute times mean little.
//
// Scenario: a node holding k pods of one Deployment guarded by a PodDisruptionBudget with
// maxUnavailable: 1, and an empty node to take them; pods take D to become Ready. Each eviction
// must wait for the previous replacement to be Ready, so no drain can beat about k·D: the lower
// bound the ratios are against.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"

	"github.com/drydock-dev/drydock/internal/faults"
	"github.com/drydock-dev/drydock/internal/simcluster"
)

func main() {
	klog.SetLogger(logr.Discard()) // client-go's noise after the first cluster is stopped
	k := flag.Int("pods", 8, "pods on the drained node (k)")
	delay := flag.Duration("ready-delay", 2*time.Second, "time a pod takes to become Ready (D)")
	reps := flag.Int("reps", 3, "repetitions per tool")
	drydock := flag.String("drydock", "bin/drydock", "the drydock binary")
	rolloutOnly := flag.Bool("rollout-only", false, "only the nodegroups rollout request count")
	faultRate := flag.Float64("fault-rate", 0.05, "share of drydock's requests that get an injected transient fault in the faulted runs")
	drainOnly := flag.Bool("drain-only", false, "only the drain comparison (clean, faulted, kubectl), not the rollout")
	faultSeeds := flag.String("fault-seeds", "21-60", "then the fault tier (steps/rollout) over these seeds, beyond make test's 1-20 (\"\" skips it)")
	flag.Parse()
	if err := run(*k, *delay, *reps, *drydock, *rolloutOnly, *drainOnly, *faultRate); err != nil {
		fmt.Fprintf(os.Stderr, "drainbench: %v\n", err)
		os.Exit(1)
	}
	if *faultSeeds != "" && !*rolloutOnly && !*drainOnly {
		if err := faultTier(*faultSeeds); err != nil {
			fmt.Fprintf(os.Stderr, "drainbench: %v\n", err)
			os.Exit(1)
		}
	}
}

func run(k int, delay time.Duration, reps int, drydock string, rolloutOnly, drainOnly bool, faultRate float64) error {
	ctx := context.Background()
	bin, err := simcluster.BinDir()
	if err != nil {
		return err
	}
	kubectl := filepath.Join(bin, "kubectl")
	drydock, _ = filepath.Abs(drydock)
	c, err := simcluster.Start(ctx, simcluster.Options{PodReadyDelay: delay, PodDeleteDelay: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer c.Stop()
	stateDir, err := os.MkdirTemp("", "drainbench-state-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)

	var proxies []*faults.Proxy
	tools := map[string]func(node string) *exec.Cmd{
		"drydock": func(node string) *exec.Cmd {
			return exec.Command(drydock, "drain", node, "--kubeconfig", c.Kubeconfig, "--state-dir", stateDir, "--no-mirror", "--timeout", "10m")
		},
		"kubectl": func(node string) *exec.Cmd {
			return exec.Command(kubectl, "drain", node, "--kubeconfig", c.Kubeconfig, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "10m")
		},
	}
	// The same drydock drain through a proxy that answers faultRate of its requests with a transient
	// fault (5xx, the eviction's 504, 429 with Retry-After, a reset or lost connection, a cut watch).
	var injected []*faults.Injector
	tools["drydock-faults"] = func(node string) *exec.Cmd {
		in := faults.New(faults.Config{Seed: uint64(len(injected) + 1), Rate: faultRate,
			Kinds: []faults.Kind{faults.Status500, faults.Status503, faults.Status504, faults.Throttled429, faults.ResetBefore, faults.LostAnswer, faults.CutWatch}})
		injected = append(injected, in)
		proxy, err := faults.StartProxy(c.Config, in)
		if err != nil {
			panic(err)
		}
		proxies = append(proxies, proxy)
		return exec.Command(drydock, "drain", node, "--kubeconfig", proxy.Kubeconfig, "--state-dir", stateDir, "--no-mirror", "--timeout", "10m")
	}
	defer func() {
		for _, p := range proxies {
			p.Stop()
		}
	}()
	if rolloutOnly {
		return rolloutCluster(ctx)
	}
	times := map[string][]time.Duration{}
	var forecasts []time.Duration
	var rehearsed time.Duration
	var rehearsalMet []string
	fmt.Printf("drain of a node with k=%d pods, PDB maxUnavailable: 1, pod readiness delay D=%s, %d repetitions each\n", k, delay, reps)
	for r := 0; r < reps; r++ {
		for _, tool := range []string{"drydock", "drydock-faults", "kubectl"} {
			name := fmt.Sprintf("%s-%d", tool, r)
			src, err := scenario(ctx, c, name, k)
			if err != nil {
				return err
			}
			if tool == "drydock" {
				// What drydock forecast for this drain, read from its plan before it starts.
				f, err := forecastOf(drydock, c.Kubeconfig, src)
				if err != nil {
					return err
				}
				forecasts = append(forecasts, f)
				if r == 0 {
					// What a rehearsal on a simulated copy of this cluster says, once (it takes a minute).
					if rehearsed, rehearsalMet, err = rehearsalOf(drydock, c.Kubeconfig, bin, src); err != nil {
						return err
					}
				}
			}
			cmd := tools[tool](src)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(start)
			if err != nil {
				return fmt.Errorf("%s drain: %w\n%s", tool, err, out)
			}
			times[tool] = append(times[tool], took)
			fmt.Printf("  %-8s rep %d: %6.2fs\n", tool, r+1, took.Seconds())
			if err := cleanup(ctx, c, name); err != nil {
				return err
			}
		}
	}
	lower := time.Duration(k) * delay
	dd, kc, df := median(times["drydock"]), median(times["kubectl"]), median(times["drydock-faults"])
	var faultsSeen []string
	for _, in := range injected {
		faultsSeen = append(faultsSeen, in.String())
	}
	fmt.Printf("\nmedians: drydock %.2fs, drydock with %.0f%% injected faults %.2fs, kubectl %.2fs, lower bound k·D %.2fs\n", dd.Seconds(), 100*faultRate, df.Seconds(), kc.Seconds(), lower.Seconds())
	fmt.Printf("faults injected per faulted run: %s\n", strings.Join(faultsSeen, "; "))
	fmt.Printf("drydock/lower-bound         %.2f   (target <= 1.15)\n", ratio(dd, lower))
	fmt.Printf("drydock+faults/lower-bound  %.2f\n", ratio(df, lower))
	fmt.Printf("drydock+faults/drydock      %.2f   (target <= 1.3)\n", ratio(df, dd))
	fmt.Printf("kubectl/lower-bound         %.2f\n", ratio(kc, lower))
	fmt.Printf("kubectl/drydock             %.2f   (target >= 2)\n", ratio(kc, dd))
	fc := median(forecasts)
	fmt.Printf("drydock/its forecast        %.2f   (forecast %.2fs; target within 0.75..1.25)\n", ratio(dd, fc), fc.Seconds())
	fmt.Printf("drydock/its rehearsal       %.2f   (rehearsal %.2fs; target within 0.75..1.25)\n", ratio(dd, rehearsed), rehearsed.Seconds())
	budget := "PodDisruptionBudget drydock-0/app" // the rehearsed drain is the first drydock one
	fmt.Printf("blockers the rehearsal met: %s (the real drain waits on %s for every pod after the first)\n", strings.Join(rehearsalMet, "; "), budget)
	metBudget := len(rehearsalMet) == 1 && strings.HasPrefix(rehearsalMet[0], budget+" ")
	if ratio(dd, lower) > 1.15 || ratio(kc, dd) < 2 || ratio(df, dd) > 1.3 || ratio(dd, fc) < 0.75 || ratio(dd, fc) > 1.25 ||
		ratio(dd, rehearsed) < 0.75 || ratio(dd, rehearsed) > 1.25 || !metBudget {
		fmt.Println("TARGET MISSED")
	}
	c.Stop()
	if drainOnly {
		return nil
	}
	return rolloutCluster(ctx)
}

// rolloutCluster runs the request-count benchmark on a cluster of its own (quick pods: it measures
// requests, not time).
func rolloutCluster(ctx context.Context) error {
	c, err := simcluster.Start(ctx, simcluster.Options{PodReadyDelay: 300 * time.Millisecond, PodDeleteDelay: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer c.Stop() //nolint:contextcheck // stopping the cluster must not depend on a context that ended
	return runRolloutBench(ctx, c)
}

func ratio(a, b time.Duration) float64 { return a.Seconds() / b.Seconds() }

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// scenario makes a namespace and two nodes, with k ready pods on the first; it returns that node.
func scenario(ctx context.Context, c *simcluster.Cluster, name string, k int) (string, error) {
	src, dst := name+"-src", name+"-dst"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	labels := map[string]string{"bench": name}
	if _, err := c.CreateNode(ctx, src, simcluster.NodeOptions{Labels: labels}); err != nil {
		return "", err
	}
	if _, err := c.CreateNode(ctx, dst, simcluster.NodeOptions{Labels: labels, Unschedulable: true}); err != nil {
		return "", err
	}
	d := simcluster.Deployment(name, "app", int32(k))
	d.Spec.Template.Spec.NodeSelector = labels
	if _, err := c.Client.AppsV1().Deployments(name).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	if err := c.WaitDeploymentReady(ctx, name, "app", 2*time.Minute); err != nil {
		return "", err
	}
	one := intstr.FromInt32(1)
	if _, err := c.Client.PolicyV1().PodDisruptionBudgets(name).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: name},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}}},
	}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := c.Client.PolicyV1().PodDisruptionBudgets(name).Get(ctx, "app", metav1.GetOptions{})
		return err == nil && p.Status.ObservedGeneration == p.Generation && p.Status.DisruptionsAllowed == 1, nil
	}); err != nil {
		return "", fmt.Errorf("budget never ready: %w", err)
	}
	err := c.SetUnschedulable(ctx, dst, false)
	return src, err
}

func cleanup(ctx context.Context, c *simcluster.Cluster, name string) error {
	for _, n := range []string{name + "-src", name + "-dst"} {
		if err := c.Client.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			return err
		}
	}
	err := c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// rehearsalOf rehearses draining node on a simulated copy of the cluster (`drydock rehearse` of a
// runbook with one drain step): what the drain took there, and the blockers it met.
func rehearsalOf(drydock, kubeconfig, simBin, node string) (time.Duration, []string, error) {
	dir, err := os.MkdirTemp("", "drainbench-rehearse-")
	if err != nil {
		return 0, nil, err
	}
	defer os.RemoveAll(dir)
	rb := filepath.Join(dir, "drain.yaml")
	text := fmt.Sprintf(`apiVersion: drydock.dev/v1alpha1
kind: Runbook
metadata: {name: drainbench}
spec:
  targetVersion: %s
  steps:
    - {name: drain, type: drain, with: {nodes: [%s]}}
`, simcluster.KubernetesVersion, node)
	if err := os.WriteFile(rb, []byte(text), 0o644); err != nil {
		return 0, nil, err
	}
	out, err := exec.Command(drydock, "rehearse", rb, "-o", "json", "--kubeconfig", kubeconfig, "--sim-bin", simBin, "--state-dir", filepath.Join(dir, "state")).Output()
	if err != nil {
		return 0, nil, fmt.Errorf("drydock rehearse: %w\n%s", err, out)
	}
	var rep struct {
		Steps []struct {
			Took string `json:"took"`
		} `json:"steps"`
		Blockers []struct {
			What    string `json:"what"`
			Pods    int    `json:"pods"`
			Longest string `json:"longest"`
		} `json:"blockers"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return 0, nil, fmt.Errorf("drydock rehearse -o json: %w", err)
	}
	if len(rep.Steps) != 1 {
		return 0, nil, fmt.Errorf("drydock rehearse -o json: no step in %s", out)
	}
	took, err := time.ParseDuration(rep.Steps[0].Took)
	var met []string
	for _, b := range rep.Blockers {
		met = append(met, fmt.Sprintf("%s (%d pods, the longest %s)", b.What, b.Pods, b.Longest))
	}
	return took, met, err
}

// forecastOf is the drain forecast `drydock drain NODE --dry-run -o json` gives for node.
func forecastOf(drydock, kubeconfig, node string) (time.Duration, error) {
	out, err := exec.Command(drydock, "drain", node, "--dry-run", "-o", "json", "--kubeconfig", kubeconfig).Output()
	if err != nil {
		return 0, fmt.Errorf("drydock drain --dry-run: %w\n%s", err, out)
	}
	var plan struct {
		Nodes []struct {
			Forecast *struct {
				Drain struct {
					Expected string `json:"expected"`
				} `json:"drain"`
			} `json:"forecast"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(out, &plan); err != nil {
		return 0, fmt.Errorf("drydock drain --dry-run -o json: %w", err)
	}
	if len(plan.Nodes) != 1 || plan.Nodes[0].Forecast == nil {
		return 0, fmt.Errorf("drydock drain --dry-run -o json: no forecast in %s", out)
	}
	return time.ParseDuration(plan.Nodes[0].Forecast.Drain.Expected)
}
