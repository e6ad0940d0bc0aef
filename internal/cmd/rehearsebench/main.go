// Command rehearsebench (make bench-rehearse) measures `drydock rehearse` at scale: a simulated
// "live" cluster of -nodes nodes in -groups node groups and -pods pods (Deployments of -replicas pods,
// each under a budget allowing 10% of its pods at once), then the rehearsal of a node-groups runbook
// on it, timed from the command's start to its report (the copy, the simulated cluster it starts,
// the run on it). Issue 17's target: 500 nodes and 15,000 pods in under ten minutes on 2 cores.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/drydock-dev/drydock/internal/peakrss"
	"github.com/drydock-dev/drydock/internal/simcluster"
)

func main() {
	nodes := flag.Int("nodes", 500, "nodes of the live cluster")
	groups := flag.Int("groups", 5, "node groups (label drydock.dev/group)")
	pods := flag.Int("pods", 15000, "pods of the live cluster (Deployments of -replicas)")
	replicas := flag.Int("replicas", 50, "replicas per Deployment")
	maxUnavailable := flag.String("max-unavailable", "50%", "the runbook's nodegroups maxUnavailable")
	action := flag.Duration("action", 5*time.Second, "the node action's expectedDuration")
	drydock := flag.String("drydock", "bin/drydock", "the drydock binary")
	flag.IntVar(&podsPerSecond, "pods-per-second", 60, "the pace at which the live cluster's pods are made")
	flag.Parse()
	if err := run(*nodes, *groups, *pods, *replicas, *maxUnavailable, *action, *drydock); err != nil {
		fmt.Fprintln(os.Stderr, "rehearsebench:", err)
		os.Exit(1)
	}
}

var podsPerSecond int

func run(nodes, groups, pods, replicas int, maxUnavailable string, action time.Duration, drydock string) error {
	ctx := context.Background()
	drydock, _ = filepath.Abs(drydock)
	bin, err := simcluster.BinDir()
	if err != nil {
		return err
	}
	start := time.Now()
	live, err := simcluster.Start(ctx, simcluster.Options{APIQPS: 500, PodWorkers: 32, NoPodEvents: true})
	if err != nil {
		return err
	}
	defer live.Stop()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range nodes {
		g.Go(func() error {
			group := fmt.Sprintf("g%d", i%groups+1)
			_, err := live.CreateNode(gctx, fmt.Sprintf("%s-%03d", group, i/groups+1), simcluster.NodeOptions{
				KubeletVersion: simcluster.PreviousVersion, Labels: map[string]string{"drydock.dev/group": group}})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	workloads := pods / replicas
	tenth := intstr.FromString("10%")
	// Made at about the pace the simulated kubelets start pods: all at once, the pods would wait for
	// them minutes, and that wait is what the rehearsal would measure as each workload's start-up.
	pace := time.Duration(float64(time.Second) * float64(replicas) / float64(podsPerSecond))
	for i := range workloads {
		if i > 0 {
			time.Sleep(pace)
		}
		ns := fmt.Sprintf("team-%d", i%10)
		if i < 10 {
			if _, err := live.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				return err
			}
		}
		name := fmt.Sprintf("app-%03d", i)
		d := simcluster.Deployment(ns, name, int32(replicas))
		d.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}
		if _, err := live.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := live.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &tenth, Selector: d.Spec.Selector}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 30*time.Minute, true, func(ctx context.Context) (bool, error) {
		ds, err := live.Client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // busy: ask again
		}
		ready := 0
		for _, d := range ds.Items {
			ready += int(d.Status.ReadyReplicas)
		}
		return ready >= workloads*replicas, nil
	}); err != nil {
		return fmt.Errorf("the live cluster's pods did not become Ready: %w", err)
	}
	fmt.Printf("live cluster: %d nodes in %d groups, %d Deployments of %d pods (%d pods) under budgets of 10%%, ready in %s\n",
		nodes, groups, workloads, replicas, workloads*replicas, time.Since(start).Round(time.Second))

	dir, err := os.MkdirTemp("", "rehearsebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rb := filepath.Join(dir, "upgrade.yaml")
	text := fmt.Sprintf(`apiVersion: drydock.dev/v1alpha1
kind: Runbook
metadata: {name: rehearsebench}
spec:
  targetVersion: %s
  steps:
    - name: fleet
      type: nodegroups
      with:
        groupBy: drydock.dev/group
        maxUnavailable: %q
        action: {exec: [upgrade-node], expectedDuration: %s}
        health: {timeout: 10m}
`, simcluster.KubernetesVersion, maxUnavailable, action)
	if err := os.WriteFile(rb, []byte(text), 0o644); err != nil {
		return err
	}
	cmd, peak := peakrss.Command(drydock, "rehearse", rb, "-o", "json", "--kubeconfig", live.Kubeconfig, "--sim-bin", bin, "--state-dir", filepath.Join(dir, "state"))
	cmd.Stderr = os.Stderr
	began := time.Now()
	out, err := cmd.Output()
	took := time.Since(began)
	if err != nil {
		return fmt.Errorf("drydock rehearse: %w\n%s", err, out)
	}
	rss, _ := peak()
	var rep struct {
		Forecast struct {
			Total struct {
				Expected string `json:"expected"`
			} `json:"total"`
		} `json:"forecast"`
		Steps []struct {
			Step string `json:"step"`
			Took string `json:"took"`
		} `json:"steps"`
		Status   string            `json:"status"`
		Copied   string            `json:"copied"`
		Blockers []json.RawMessage `json:"blockers"`
		Pending  []string          `json:"pending"`
		CopyLag  *struct {
			Median string `json:"median"`
			P90    string `json:"p90"`
		} `json:"copyLag"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return fmt.Errorf("drydock rehearse -o json: %w", err)
	}
	fmt.Printf("rehearsal: %s; copied %s; forecast %s", rep.Status, rep.Copied, rep.Forecast.Total.Expected)
	for _, s := range rep.Steps {
		fmt.Printf("; %s took %s on the copy", s.Step, s.Took)
	}
	fmt.Printf("; %d budgets held pods back; %d pods went Pending", len(rep.Blockers), len(rep.Pending))
	if rep.CopyLag != nil {
		fmt.Printf("; the copy made new pods Ready a median %s (p90 %s) later than told", rep.CopyLag.Median, rep.CopyLag.P90)
	}
	fmt.Println()
	fmt.Printf("drydock rehearse took %s in all (target < 10m), drydock's peak memory %d MiB\n", took.Round(time.Second), rss>>20)
	if took > 10*time.Minute || rep.Status != "succeeded" {
		fmt.Println("TARGET MISSED")
	}
	return nil
}
