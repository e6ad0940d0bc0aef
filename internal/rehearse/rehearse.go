package rehearse

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/canary"
	"github.com/drydock-dev/drydock/steps/drain"
	"github.com/drydock-dev/drydock/steps/nodegroups"
	"github.com/drydock-dev/drydock/steps/rollout"
)

// Options are a rehearsal's inputs.
type Options struct {
	// Live is the cluster to copy (read only); LiveREST its config, LiveName its API server URL.
	Live     kubernetes.Interface
	LiveREST *rest.Config
	// Runbook is the runbook to rehearse; Rehearsal is the same file parsed again, which Run changes
	// (its node steps' actions simulated, the other steps left out).
	Runbook, Rehearsal *runbook.Runbook
	Registry           runbook.Registry
	// SimBin holds the simulated cluster's binaries ("": simcluster.BinDir()).
	SimBin string
	// Sink sees the rehearsal's events (the run on the copy).
	Sink runbook.Sink
	// Settle bounds the wait for the copy's workloads to be Ready (default 5m).
	Settle time.Duration
	// StateDir holds this machine's journals: earlier runs forecast the steps no model covers.
	StateDir string
}

// Report is what the rehearsal met, and how it compared with the forecast.
type Report struct {
	Forecast *runbook.RunForecast `json:"forecast,omitempty"`
	Steps    []StepResult         `json:"steps"`
	Status   runbook.RunStatus    `json:"status"`
	Error    string               `json:"error,omitempty"`
	Blockers []string             `json:"blockers,omitempty"` // what held pods back (a budget at zero, a refusal), and how many
	Pending  []string             `json:"pending,omitempty"`  // pods that went Pending (not scheduled)
	Lowest   []Availability       `json:"lowest,omitempty"`   // the lowest availability each workload reached
	Left     []string             `json:"left,omitempty"`     // steps not rehearsed, and why
	Copied   string               `json:"copied"`             // what the copy held
	Skipped  []string             `json:"skipped,omitempty"`  // what the copy changed or left out
}

// StepResult is a rehearsed step: its forecast and what it took on the copy.
type StepResult struct {
	Step     string            `json:"step"`
	Forecast *runbook.Estimate `json:"forecast,omitempty"`
	Took     runbook.Duration  `json:"took"`
}

// Availability is the fewest Ready pods a workload had during the rehearsal.
type Availability struct {
	Workload string `json:"workload"`
	Lowest   int32  `json:"lowest"`
	Desired  int32  `json:"desired"`
}

// Run copies the live cluster into a simulated one, plays the runbook's node steps there with the
// node actions simulated (the node reports the target version after the action's expectedDuration),
// and reports. Nothing is written to the live cluster.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Settle == 0 {
		o.Settle = 5 * time.Minute
	}
	rep := &Report{}
	live := &runbook.Engine{Registry: o.Registry, Kube: o.Live, REST: o.LiveREST, StateDir: o.StateDir}
	if o.LiveREST != nil {
		live.Cluster = o.LiveREST.Host
	}
	plans, err := live.PlanNodes(ctx, o.Runbook, nil)
	if err != nil && len(plans) == 0 {
		return nil, fmt.Errorf("rehearse: plan on the live cluster: %w", err)
	}
	rep.Forecast = live.ForecastRun(o.Runbook, plans)
	state, err := Capture(ctx, o.Live)
	if err != nil {
		return nil, err
	}
	rep.Skipped = state.Skipped
	rep.Copied = fmt.Sprintf("%d nodes, %d namespaces, %d workloads, %d budgets, %d PriorityClasses", len(state.Nodes), len(state.Namespaces), len(state.Workloads), len(state.Budgets), len(state.PriorityClasses))

	sim, err := simcluster.Start(ctx, simcluster.Options{BinDir: o.SimBin})
	if err != nil {
		return nil, fmt.Errorf("rehearse: start the simulated cluster (--sim-bin DIR gives kwokctl, kwok, etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl): %w", err)
	}
	defer sim.Stop() //nolint:errcheck,contextcheck // best effort, even after ctx ended; the watchdog removes it if this process dies
	if err := state.Apply(ctx, sim, o.Settle); err != nil {
		return nil, err
	}
	rep.Left = simulate(o.Rehearsal, sim)

	w := &watcher{client: sim.Client, lowest: map[string]*Availability{}, pending: map[string]bool{}}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(wctx) }()
	held := map[string]map[string]bool{} // what held pods back (a budget, or the reason) -> the pods
	var mu sync.Mutex
	sink := runbook.SinkFunc(func(ev runbook.Event) {
		if pc, ok := ev.(*runbook.PodChanged); ok && pc.State == runbook.PodBlocked {
			what := pc.Reason
			if pc.PDB != "" {
				what = "PodDisruptionBudget " + pc.PDB
			}
			mu.Lock()
			if held[what] == nil {
				held[what] = map[string]bool{}
			}
			held[what][pc.Pod] = true
			mu.Unlock()
		}
		if o.Sink != nil {
			o.Sink.Emit(ev)
		}
	})
	dir, err := os.MkdirTemp("", "drydock-rehearse-")
	if err != nil {
		stop()
		return nil, err
	}
	defer os.RemoveAll(dir)
	e := &runbook.Engine{Registry: o.Registry, Kube: sim.Client, REST: sim.Config, StateDir: dir, NoMirror: true,
		Decider: runbook.AlwaysContinue, Sink: sink, Cluster: sim.Config.Host}
	st, runErr := e.Start(ctx, o.Rehearsal)
	stop()
	wg.Wait()
	if runErr != nil {
		rep.Error = runErr.Error()
	}
	if st != nil {
		rep.Status = st.Status
		for _, s := range st.Steps {
			r := StepResult{Step: s.Name}
			if s.Started != nil && s.Finished != nil {
				r.Took = runbook.Duration{Duration: s.Finished.Sub(*s.Started).Round(100 * time.Millisecond)}
			}
			for _, f := range rep.Forecast.Steps {
				if f.Step == s.Name {
					r.Forecast = &f.Estimate
				}
			}
			rep.Steps = append(rep.Steps, r)
		}
	}
	for what, pods := range held {
		rep.Blockers = append(rep.Blockers, fmt.Sprintf("%s held %d pod(s) back for a while", what, len(pods)))
	}
	sort.Strings(rep.Blockers)
	rep.Pending, rep.Lowest = w.results()
	return rep, nil
}

// simulate keeps the runbook's node steps only, their actions replaced by the simulated kubelet
// reporting the target version after the action's expectedDuration, the gates that read the world
// outside the cluster (Prometheus, Alertmanager, a probe URL) left out, and no pause; it returns the
// steps left out.
func simulate(rb *runbook.Runbook, sim *simcluster.Cluster) []string {
	var kept []runbook.StepSpec
	var left []string
	for _, s := range rb.Spec.Steps {
		var action *rollout.Action
		var health *rollout.Health
		switch st := s.Step.(type) {
		case *canary.Step:
			action, health = &st.Action, &st.Health
		case *nodegroups.Step:
			action, health = &st.Action, &st.Health
		case *drain.Step:
		default:
			left = append(left, fmt.Sprintf("%s (%s): not a node step", s.Name, s.Type))
			continue
		}
		if action != nil {
			est, _ := action.Forecast() // expectedDuration, or what the forecast assumes
			wait := est.Expected.Duration
			patch := `{"status":{"nodeInfo":{"kubeletVersion":"{{.TargetVersion}}"}}}`
			*action = rollout.Action{Exec: []string{"sh", "-c", fmt.Sprintf("sleep %.1f && %s --kubeconfig %s patch node {{.Node.Name}} --subresource=status -p '%s' >/dev/null",
				wait.Seconds(), sim.Bin("kubectl"), sim.Kubeconfig, patch)}, ReadyTimeout: action.ReadyTimeout, ExpectedDuration: action.ExpectedDuration}
		}
		if health != nil {
			health.Prometheus, health.Alertmanager, health.ProbeURL = nil, nil, ""
		}
		s.Pause = runbook.PauseNone
		kept = append(kept, s)
	}
	rb.Spec.Steps = kept
	return left
}

// watcher samples the copy: pods not scheduled, and each workload's Ready pods.
type watcher struct {
	client  kubernetes.Interface
	mu      sync.Mutex
	lowest  map[string]*Availability
	pending map[string]bool
}

func (w *watcher) run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		w.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *watcher) sample(ctx context.Context) {
	pods, err := w.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err == nil {
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					w.mu.Lock()
					w.pending[p.Namespace+"/"+p.Name+": "+c.Message] = true
					w.mu.Unlock()
				}
			}
		}
	}
	see := func(key string, ready, desired int32) {
		w.mu.Lock()
		defer w.mu.Unlock()
		a := w.lowest[key]
		if a == nil {
			a = &Availability{Workload: key, Lowest: ready, Desired: desired}
			w.lowest[key] = a
		}
		a.Lowest = min(a.Lowest, ready)
	}
	if ds, err := w.client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{ResourceVersion: "0"}); err == nil {
		for _, d := range ds.Items {
			if d.Spec.Replicas != nil {
				see(d.Namespace+"/Deployment/"+d.Name, d.Status.ReadyReplicas, *d.Spec.Replicas)
			}
		}
	}
	if ss, err := w.client.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{ResourceVersion: "0"}); err == nil {
		for _, s := range ss.Items {
			if s.Spec.Replicas != nil {
				see(s.Namespace+"/StatefulSet/"+s.Name, s.Status.ReadyReplicas, *s.Spec.Replicas)
			}
		}
	}
}

// results are the pods that went Pending and the workloads that ever had fewer Ready pods than
// desired, sorted.
func (w *watcher) results() ([]string, []Availability) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var pending []string
	for p := range w.pending {
		pending = append(pending, p)
	}
	sort.Strings(pending)
	var low []Availability
	for _, a := range w.lowest {
		if a.Lowest < a.Desired {
			low = append(low, *a)
		}
	}
	slices.SortFunc(low, func(a, b Availability) int { return strings.Compare(a.Workload, b.Workload) })
	return pending, low
}
