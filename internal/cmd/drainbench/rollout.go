package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// counter counts the API requests drydock sends, by verb.
type counter struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	byVrb map[string]int
	total atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	verb := r.Method
	if r.Method == http.MethodPost {
		verb = "POST " + r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		if strings.Contains(r.URL.Path, "/pods/") {
			verb = "POST pods/" + verb[5:]
		}
	}
	if r.URL.Query().Get("watch") == "true" {
		verb = "WATCH"
	} else if r.Method == http.MethodGet && !strings.Contains(r.URL.Path[strings.LastIndex(r.URL.Path, "/"):], "-") && r.URL.Query().Has("limit") {
		verb = "LIST"
	}
	c.mu.Lock()
	c.byVrb[verb]++
	c.mu.Unlock()
	c.total.Add(1)
	return c.rt.RoundTrip(r)
}

// rolloutBench rolls nodegroups of nodes×podsPerNode and returns drydock's request count.
func rolloutBench(ctx context.Context, c *simcluster.Cluster, name string, nodes, podsPerNode, groupSize int) (int64, map[string]int, time.Duration, error) {
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		return 0, nil, 0, err
	}
	groups := (nodes + groupSize - 1) / groupSize
	var wg sync.WaitGroup
	errs := make(chan error, nodes)
	sem := make(chan struct{}, 10)
	for i := 0; i < nodes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			g := fmt.Sprintf("g%02d", i/groupSize)
			_, err := c.CreateNode(ctx, fmt.Sprintf("%s-%s-%02d", name, g, i), simcluster.NodeOptions{KubeletVersion: "v1.36.3",
				Labels: map[string]string{"bench": name, "pool": g}, Pods: "110"})
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, nil, 0, err
	}
	for g := 0; g < groups; g++ {
		pool := fmt.Sprintf("g%02d", g)
		d := simcluster.Deployment(name, "app-"+pool, int32(podsPerNode*groupSize))
		d.Spec.Template.Spec.NodeSelector = map[string]string{"bench": name, "pool": pool}
		if _, err := c.Client.AppsV1().Deployments(name).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			return 0, nil, 0, err
		}
		tenPct := intstr.FromString("10%")
		if _, err := c.Client.PolicyV1().PodDisruptionBudgets(name).Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "app-" + pool},
			Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &tenPct, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app-" + pool}}},
		}, metav1.CreateOptions{}); err != nil {
			return 0, nil, 0, err
		}
	}
	for g := 0; g < groups; g++ {
		if err := c.WaitDeploymentReady(ctx, name, fmt.Sprintf("app-g%02d", g), 5*time.Minute); err != nil {
			return 0, nil, 0, err
		}
	}

	cfg := rest.CopyConfig(c.Config)
	cnt := &counter{byVrb: map[string]int{}}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { cnt.rt = rt; return cnt })
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, nil, 0, err
	}
	bin, _ := simcluster.BinDir()
	text := fmt.Sprintf(`apiVersion: drydock.dev/v1alpha1
kind: Runbook
metadata: {name: %s}
spec:
  targetVersion: v1.37.1
  state: {namespace: %s}
  steps:
    - name: fleet
      type: nodegroups
      pause: none
      timeout: 60m
      with:
        groupBy: pool
        selector: bench=%s
        maxUnavailable: 5
        action: {exec: [%q, --kubeconfig, %q, patch, node, "{{.Node.Name}}", --subresource=status, -p, '{"status":{"nodeInfo":{"kubeletVersion":"{{.TargetVersion}}"}}}']}
        health: {namespaces: [%s], timeout: 10m}
`, name, name, name, filepath.Join(bin, "kubectl"), c.Kubeconfig, name)
	rb, err := runbook.Parse(name+".yaml", []byte(text), steps.Registry)
	if err != nil {
		return 0, nil, 0, err
	}
	e := &runbook.Engine{Registry: steps.Registry, Decider: runbook.AlwaysContinue, Kube: client, REST: cfg, StateDir: filepath.Join("/tmp", "drainbench-"+name), NoMirror: true}
	start := time.Now()
	if _, err := e.Start(ctx, rb); err != nil {
		return 0, nil, 0, err
	}
	return cnt.total.Load(), cnt.byVrb, time.Since(start), nil
}

func runRolloutBench(ctx context.Context, c *simcluster.Cluster) error {
	type size struct{ nodes, pods int }
	sizes := []size{{10, 30}, {50, 30}}
	fmt.Printf("\nnodegroups rollout: groups of 10 nodes, maxUnavailable 5, 30 pods per node, budgets maxUnavailable 10%%\n")
	var per []float64
	for i, s := range sizes {
		total, verbs, took, err := rolloutBench(ctx, c, fmt.Sprintf("roll%d", i), s.nodes, s.pods, 10)
		if err != nil {
			return err
		}
		objects := s.nodes + s.nodes*s.pods
		var vs []string
		for v, n := range verbs {
			vs = append(vs, fmt.Sprintf("%s %d", v, n))
		}
		sort.Strings(vs)
		per = append(per, float64(total)/float64(objects))
		fmt.Printf("  %3d nodes, %4d pods: %6d API requests (%.2f per node+pod; %s) in %.0fs\n", s.nodes, s.nodes*s.pods, total, per[i], strings.Join(vs, ", "), took.Seconds())
	}
	fmt.Printf("requests per node+pod, large/small: %.2f (linear growth: about 1)\n", per[1]/per[0])
	return nil
}
