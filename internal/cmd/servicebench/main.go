// Command servicebench (make bench) counts the requests lost while a real node is drained, by
// `drydock drain` and by `kubectl drain` (the pinned Kubernetes version's), side by side on one
// simulated cluster with two real nodes (internal/simcluster's AddRealNode): the same fresh
// scenario each time, a load generator sending 50 requests a second through the Service's
// ClusterIP from the nodes' network for the whole drain and a few seconds either side.
//
// Scenarios, each two webserver replicas both on the drained node behind a Service:
//
//	a  a budget (maxUnavailable: 1) and a 2s preStop
//	b  a budget and no preStop
//	c  no budget (every replica on the node)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/drydock-dev/drydock/internal/loadgen"
	"github.com/drydock-dev/drydock/internal/simcluster"
)

type scenario struct {
	name    string
	what    string
	budget  bool
	preStop time.Duration
}

var scenarios = []scenario{
	{"a", "budget + 2s preStop", true, 2 * time.Second},
	{"b", "budget, no preStop", true, 0},
	{"c", "no budget, every replica on the node", false, 2 * time.Second},
}

type result struct {
	scenario, tool string
	sum            loadgen.Summary
	took           time.Duration
}

func main() {
	drydock := flag.String("drydock", "bin/drydock", "the drydock binary")
	reps := flag.Int("reps", 1, "repetitions per scenario and tool")
	flag.Parse()
	if err := run(*drydock, *reps); err != nil {
		fmt.Fprintf(os.Stderr, "servicebench: %v\n", err)
		os.Exit(1)
	}
}

func run(drydock string, reps int) error {
	if err := simcluster.RealNodesSupported(); err != nil {
		return err
	}
	ctx := context.Background()
	c, err := simcluster.Start(ctx, simcluster.Options{})
	if err != nil {
		return err
	}
	defer c.Stop()
	for _, n := range []string{"real-1", "real-2"} {
		if _, err := c.AddRealNode(ctx, n, simcluster.RealNodeOptions{}); err != nil {
			return err
		}
	}
	bin, err := simcluster.BinDir()
	if err != nil {
		return err
	}
	state, err := os.MkdirTemp("", "servicebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	tools := map[string]func() *exec.Cmd{
		"drydock drain": func() *exec.Cmd {
			return exec.Command(drydock, "drain", "real-1", "--kubeconfig", c.Kubeconfig, "--state-dir", state, "--no-mirror", "--timeout", "5m")
		},
		"kubectl drain": func() *exec.Cmd {
			return exec.Command(filepath.Join(bin, "kubectl"), "drain", "real-1", "--kubeconfig", c.Kubeconfig, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "5m")
		},
	}
	var results []result
	i := 0
	for _, sc := range scenarios {
		for r := 0; r < reps; r++ {
			for _, tool := range []string{"drydock drain", "kubectl drain"} {
				i++
				res, err := once(ctx, c, sc, fmt.Sprintf("bench-%d", i), tool, tools[tool])
				if err != nil {
					return fmt.Errorf("scenario %s, %s: %w", sc.name, tool, err)
				}
				fmt.Fprintf(os.Stderr, "servicebench: %s %-13s sent %d failed %d\n", sc.name, tool, res.sum.Sent, res.sum.Failed)
				results = append(results, res)
			}
		}
	}
	report(results)
	return nil
}

// once sets the scenario up in a namespace of its own, drains real-1 under load, and puts the
// cluster back (real-1 schedulable, the namespace gone).
func once(ctx context.Context, c *simcluster.Cluster, sc scenario, ns, tool string, drain func() *exec.Cmd) (result, error) {
	svcIP, err := setUp(ctx, c, sc, ns)
	if err != nil {
		return result{}, err
	}
	load, err := c.StartLoad(ctx, svcIP, 50, 50*600)
	if err != nil {
		return result{}, err
	}
	time.Sleep(3 * time.Second)
	start := time.Now()
	out, derr := drain().CombinedOutput()
	took := time.Since(start)
	time.Sleep(3 * time.Second)
	sum, err := load.Stop()
	if derr != nil {
		return result{}, fmt.Errorf("%w\n%s", derr, out)
	}
	if err != nil {
		return result{}, err
	}
	if err := c.SetUnschedulable(ctx, "real-1", false); err != nil {
		return result{}, err
	}
	if err := c.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		return result{}, err
	}
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	return result{scenario: sc.name, tool: tool, sum: sum, took: took}, err
}

// setUp makes the scenario's workload with both replicas on real-1 (real-2 cordoned meanwhile)
// and returns its Service's ClusterIP.
func setUp(ctx context.Context, c *simcluster.Cluster, sc scenario, ns string) (string, error) {
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	if err := c.SetUnschedulable(ctx, "real-2", true); err != nil {
		return "", err
	}
	d := simcluster.WebDeployment(ns, "web", 2, simcluster.WebOptions{PreStop: sc.preStop})
	if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	svc, err := c.Client.CoreV1().Services(ns).Create(ctx, simcluster.WebService(ns, "web"), metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	if sc.budget {
		one := intstr.FromInt32(1)
		pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: d.Spec.Selector}}
		if _, err := c.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
			return "", err
		}
	}
	if err := c.WaitDeploymentReady(ctx, ns, "web", 2*time.Minute); err != nil {
		return "", fmt.Errorf("%w\n%s", err, c.RealNodeReport(ctx, ns))
	}
	return svc.Spec.ClusterIP, c.SetUnschedulable(ctx, "real-2", false)
}

// report prints one row per scenario and tool: the runs added up (each run's failures listed),
// the merged p99, the slowest drain.
func report(results []result) {
	fmt.Println("\nRequests lost while draining a real node (50 requests/s through the Service's ClusterIP):")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\ttool\truns\tsent\tfailed\tfailed per run\tp99\tslowest drain\tfailures")
	for _, sc := range scenarios {
		for _, tool := range []string{"drydock drain", "kubectl drain"} {
			var sum loadgen.Summary
			var per, errs []string
			var slowest time.Duration
			kinds := map[string]int{}
			for _, r := range results {
				if r.scenario != sc.name || r.tool != tool {
					continue
				}
				sum.Sent += r.sum.Sent
				sum.Failed += r.sum.Failed
				sum.Latency.Merge(&r.sum.Latency)
				per = append(per, fmt.Sprint(r.sum.Failed))
				slowest = max(slowest, r.took)
				for k, v := range r.sum.Errors {
					kinds[k] += v
				}
			}
			for k, v := range kinds {
				errs = append(errs, fmt.Sprintf("%d %s", v, k))
			}
			sort.Strings(errs)
			fmt.Fprintf(w, "%s (%s)\t%s\t%d\t%d\t%d\t%s\t%v\t%v\t%s\n", sc.name, sc.what, tool, len(per), sum.Sent, sum.Failed,
				strings.Join(per, " "), sum.Latency.Quantile(0.99).Round(time.Millisecond), slowest.Round(100*time.Millisecond), strings.Join(errs, ", "))
		}
	}
	_ = w.Flush()
}
