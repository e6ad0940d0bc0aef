package rehearse

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

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
	// Settle bounds the wait for the copy's workloads to be Ready (default 10m).
	Settle time.Duration
	// StateDir holds this machine's journals: earlier runs forecast the steps no model covers.
	StateDir string
}

// largeCopy is the number of pods above which the copy's control plane gets higher client rates.
const largeCopy = 2000

// Report is what the rehearsal met, and how it compared with the forecast.
type Report struct {
	Forecast *runbook.RunForecast `json:"forecast,omitempty"`
	Steps    []StepResult         `json:"steps"`
	Groups   []GroupResult        `json:"groups,omitempty"` // each node group, in the order they ran
	Status   runbook.RunStatus    `json:"status"`
	Error    string               `json:"error,omitempty"`
	Blockers []Held               `json:"blockers,omitempty"` // what held pods back (a budget at zero, a refusal), and how many
	Pending  []string             `json:"pending,omitempty"`  // pods the run made Pending (not scheduled), each once: the scheduler's last word, how long
	Lowest   []Availability       `json:"lowest,omitempty"`   // the lowest availability each workload the run lowered reached
	// AtLimit are the budgets the run took to zero allowed disruptions that held no pod back here:
	// whether a drain waits for them depends on where the scheduler puts each replacement (two of a
	// budget's pods on the nodes of one batch, or one node), a tie-break of its own in either cluster,
	// so on the cluster one may hold a pod back for a start-up.
	AtLimit []string `json:"atLimit,omitempty"`
	// PendingBefore are the copy's pods not scheduled before the run started (the cluster's own, or
	// what the copy could not place): not the run's doing, so not in Pending.
	PendingBefore []string `json:"pendingBefore,omitempty"`
	Left          []string `json:"left,omitempty"`    // steps not rehearsed, and why
	Copied        string   `json:"copied"`            // what the copy held
	Skipped       []string `json:"skipped,omitempty"` // what the copy changed or left out
	CopyLag       *Lag     `json:"copyLag,omitempty"` // how far behind the copy made the run's new pods Ready
}

// Lag is how much longer the copy took to make the run's new pods Ready than it was told to: each
// pod's creation to Ready, less the start-up it was given (the cluster's, as measured there). A
// copy that cannot keep up (a large cluster rehearsed on a small machine) makes every wave of a drain
// longer than it is on the cluster, and then the rehearsal's durations are upper bounds.
type Lag struct {
	Pods   int              `json:"pods"`
	Median runbook.Duration `json:"median"`
	P90    runbook.Duration `json:"p90"`
}

// Saturated says whether the copy, more than the cluster's start-ups, paced the run: its pods came up
// a median of 2 s or more late (the timestamps it is measured from have whole seconds).
func (l *Lag) Saturated() bool { return l != nil && l.Median.Duration >= 2*time.Second }

// lagOf summarises the lags of the pods seen; nil without any.
func lagOf(lags []time.Duration) *Lag {
	if len(lags) == 0 {
		return nil
	}
	s := slices.Clone(lags)
	slices.Sort(s)
	at := func(q float64) runbook.Duration {
		return runbook.Duration{Duration: max(0, s[min(len(s)-1, int(q*float64(len(s))))]).Round(100 * time.Millisecond)}
	}
	return &Lag{Pods: len(s), Median: at(0.5), P90: at(0.9)}
}

// StepResult is a rehearsed step: its forecast, what it took on the copy, and what that means on
// the cluster.
type StepResult struct {
	Step     string            `json:"step"`
	Forecast *runbook.Estimate `json:"forecast,omitempty"`
	Took     runbook.Duration  `json:"took"`
	// LiveWork is how much longer drydock's own work (planning each batch and group again) takes on
	// the cluster than on the copy, as measured on both; Adjusted is Took plus that: the rehearsal's
	// prediction for the cluster.
	LiveWork runbook.Duration `json:"liveWork"`
	Adjusted runbook.Duration `json:"adjusted"`
}

// GroupResult is a rehearsed node group: its forecast and what it took on the copy.
type GroupResult struct {
	Step     string            `json:"step"`
	Group    string            `json:"group"`
	Forecast *runbook.Estimate `json:"forecast,omitempty"`
	Took     runbook.Duration  `json:"took"`
	Adjusted runbook.Duration  `json:"adjusted"` // Took with drydock's own work as long as on the cluster (StepResult)
}

// Availability is the fewest Ready pods a workload had during the rehearsal, and how many it had
// when the run started.
type Availability struct {
	Workload string `json:"workload"`
	Lowest   int32  `json:"lowest"`
	Desired  int32  `json:"desired"`
	Before   int32  `json:"before"`
}

// Run copies the live cluster into a simulated one, plays the runbook's node steps there with the
// node actions simulated (the node reports the target version after the action's expectedDuration),
// and reports. Nothing is written to the live cluster.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Settle == 0 {
		o.Settle = 10 * time.Minute
	}
	rep := &Report{}
	say := func(format string, args ...any) {
		if o.Sink != nil {
			o.Sink.Emit(runbook.Stamp(&runbook.LogLine{Meta: runbook.Meta{Time: time.Now()}, Stream: "info", Line: "rehearse: " + fmt.Sprintf(format, args...)}))
		}
	}
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
	rep.Copied = fmt.Sprintf("%d nodes, %d namespaces, %d workloads, %d budgets, %d PriorityClasses, %d bound claims", len(state.Nodes), len(state.Namespaces), len(state.Workloads), len(state.Budgets), len(state.PriorityClasses), len(state.Volumes))
	say("read the cluster (%s); forecast %s; starting a simulated cluster", rep.Copied, rep.Forecast.Total)

	so := SimOptions(state, o.SimBin)
	sim, err := simcluster.Start(ctx, so)
	if err != nil {
		return nil, fmt.Errorf("rehearse: start the simulated cluster (--sim-bin DIR gives kwokctl, kwok, etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl): %w", err)
	}
	defer sim.Stop() //nolint:errcheck,contextcheck // best effort, even after ctx ended; the watchdog removes it if this process dies
	say("simulated cluster up; creating the copy and waiting for its workloads to be Ready (at most %s)", o.Settle)
	if err := state.Apply(ctx, sim, o.Settle); err != nil {
		return nil, err
	}
	say("the copy is Ready; running the node steps on it")
	rep.Left = simulate(o.Rehearsal, sim)

	w := newWatcher(sim.Client)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if err := w.start(wctx, &wg); err != nil {
		stop()
		wg.Wait()
		return nil, err
	}
	met := &Met{}
	sink := runbook.MultiSink{met}
	if o.Sink != nil {
		sink = append(sink, o.Sink)
	}
	dir, err := os.MkdirTemp("", "drydock-rehearse-")
	if err != nil {
		stop()
		return nil, err
	}
	defer os.RemoveAll(dir)
	// drydock plays the runbook on the copy at the client rate it has on the cluster: at scale its
	// own requests are part of how long a batch takes.
	cfg := rest.CopyConfig(sim.Config)
	if o.LiveREST != nil {
		cfg.QPS, cfg.Burst, cfg.RateLimiter = o.LiveREST.QPS, o.LiveREST.Burst, nil
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		stop()
		return nil, fmt.Errorf("rehearse: a client of the copy: %w", err)
	}
	e := &runbook.Engine{Registry: o.Registry, Kube: kc, REST: cfg, StateDir: dir, NoMirror: true,
		Decider: runbook.AlwaysContinue, Sink: sink, Cluster: sim.Config.Host}
	st, runErr := e.Start(ctx, o.Rehearsal)
	stop()
	wg.Wait()
	if runErr != nil {
		rep.Error = reportError(runErr)
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
			// The copy's apiserver is local and idle; the cluster's answers at its own pace, and
			// drydock plans every batch again on it. Both were measured (planning the run here, and
			// the plan on the cluster): the difference is added, so that the rehearsal says how long
			// the step takes there.
			r.Adjusted = r.Took
			for i := range plans {
				if plans[i].Step != s.Name || plans[i].Forecast == nil {
					continue
				}
				if copyCost, ok := met.PlanCost(s.Name); ok {
					live := plans[i].Forecast.PlanCost
					r.LiveWork = runbook.Duration{Duration: (live.OwnWork(&plans[i]) - copyCost.OwnWork(&plans[i])).Round(100 * time.Millisecond)}
					r.Adjusted.Duration = max(0, r.Took.Duration+r.LiveWork.Duration)
				}
			}
			rep.Steps = append(rep.Steps, r)
		}
	}
	rep.Blockers = met.Held()
	rep.Groups = met.GroupTook()
	for i := range rep.Groups {
		g := &rep.Groups[i]
		for _, p := range plans {
			if p.Step != g.Step {
				continue
			}
			for _, f := range p.GroupForecasts() {
				if f.Group == g.Group {
					g.Forecast = &f.Estimate
				}
			}
			g.Adjusted = g.Took
			if copyCost, ok := met.PlanCost(p.Step); ok && p.Forecast != nil {
				sub := runbook.NodePlan{}
				for _, b := range p.Batches {
					if b.Group == g.Group {
						sub.Batches = append(sub.Batches, b)
					}
				}
				g.Adjusted.Duration = max(0, g.Took.Duration+(p.Forecast.PlanCost.OwnWork(&sub)-copyCost.OwnWork(&sub)).Round(100*time.Millisecond))
			}
		}
	}
	rep.Pending, rep.PendingBefore, rep.Lowest = w.results()
	rep.AtLimit = w.atLimit(rep.Blockers)
	w.mu.Lock()
	rep.CopyLag = lagOf(w.lags)
	w.mu.Unlock()
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
			// The node reports the target when the action is expected to end: the sleep, less what
			// starting kubectl and its patch take (about 0.3 s).
			wait := max(0, est.Expected.Duration-300*time.Millisecond)
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

// watcher follows the copy through informers (one watch per kind, not a list every moment: a copy
// may hold thousands of pods): pods not scheduled, each workload's Ready pods, and how late the pods
// made since the run started became Ready. What the informers' first lists hold is the copy before
// the run: the baseline a pod Pending or a workload short of Ready is measured against.
type watcher struct {
	client  kubernetes.Interface
	mu      sync.Mutex
	lowest  map[string]*Availability
	pending map[string]*unplaced // pods the run made unscheduled
	before  map[string]bool      // pods unscheduled when the run started
	atZero  map[string]bool      // budgets seen at zero allowed disruptions: true if when the run started
	since   time.Time
	ready   map[types.UID]bool
	lags    []time.Duration
}

func newWatcher(c kubernetes.Interface) *watcher {
	return &watcher{client: c, lowest: map[string]*Availability{}, pending: map[string]*unplaced{}, before: map[string]bool{},
		atZero: map[string]bool{}, ready: map[types.UID]bool{}}
}

// unplaced is a pod the scheduler could not place during the run: its last word, since when, and
// when the pod was placed after all.
type unplaced struct {
	why           string
	since, placed time.Time
}

// start begins watching and returns once every handler has seen the copy as it is (the baseline),
// so that the run starts after it; the informers stop when ctx ends, and wg is done then.
func (w *watcher) start(ctx context.Context, wg *sync.WaitGroup) error {
	f := informers.NewSharedInformerFactory(w.client, 0)
	var synced []cache.InformerSynced
	on := func(inf cache.SharedIndexInformer, see func(o any, initial bool)) error {
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    see,
			UpdateFunc: func(_, o any) { see(o, false) },
		})
		if err != nil {
			return err
		}
		synced = append(synced, reg.HasSynced)
		return nil
	}
	err := errors.Join(
		on(f.Core().V1().Pods().Informer(), func(o any, initial bool) {
			if p, ok := o.(*corev1.Pod); ok {
				w.pod(p, initial)
			}
		}),
		on(f.Apps().V1().Deployments().Informer(), func(o any, initial bool) {
			if d, ok := o.(*appsv1.Deployment); ok && d.Spec.Replicas != nil {
				w.see(d.Namespace+"/Deployment/"+d.Name, d.Status.ReadyReplicas, *d.Spec.Replicas, initial)
			}
		}),
		on(f.Apps().V1().StatefulSets().Informer(), func(o any, initial bool) {
			if s, ok := o.(*appsv1.StatefulSet); ok && s.Spec.Replicas != nil {
				w.see(s.Namespace+"/StatefulSet/"+s.Name, s.Status.ReadyReplicas, *s.Spec.Replicas, initial)
			}
		}),
		on(f.Policy().V1().PodDisruptionBudgets().Informer(), func(o any, initial bool) {
			if b, ok := o.(*policyv1.PodDisruptionBudget); ok && b.Status.ObservedGeneration == b.Generation && b.Status.ExpectedPods > 0 && b.Status.DisruptionsAllowed == 0 {
				key := "PodDisruptionBudget " + b.Namespace + "/" + b.Name
				w.mu.Lock()
				if _, seen := w.atZero[key]; !seen {
					w.atZero[key] = initial
				}
				w.mu.Unlock()
			}
		}))
	if err != nil {
		return fmt.Errorf("rehearse: watch the copy: %w", err)
	}
	f.Start(ctx.Done())
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		f.Shutdown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("rehearse: watch the copy: %w", context.Cause(ctx))
	}
	w.mu.Lock()
	w.since = time.Now()
	w.mu.Unlock()
	return nil
}

// pod notes a pod the scheduler could not place (in the baseline, or left so by the run, with the
// scheduler's last word) and a new pod's start-up.
func (w *watcher) pod(p *corev1.Pod, initial bool) {
	key := p.Namespace + "/" + p.Name
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			w.mu.Lock()
			u := w.pending[key]
			switch {
			case c.Status == corev1.ConditionTrue:
				if u != nil && u.placed.IsZero() {
					u.placed = time.Now()
				}
			case initial:
				w.before[key] = true
			case w.before[key]: // unplaced before the run: not its doing
			case u == nil:
				w.pending[key] = &unplaced{why: c.Message, since: time.Now()}
			default:
				u.why = c.Message
			}
			w.mu.Unlock()
		}
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			w.readyAt(p, c.LastTransitionTime.Time)
		}
	}
}

// readyAt counts the lag of a pod made since the run started with the start-up the copy gave it,
// the first time it is seen Ready.
func (w *watcher) readyAt(p *corev1.Pod, at time.Time) {
	told, err := time.ParseDuration(p.Annotations[readyDelay])
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.since.IsZero() || p.CreationTimestamp.Time.Before(w.since.Truncate(time.Second)) {
		return
	}
	if !w.ready[p.UID] {
		w.ready[p.UID] = true
		w.lags = append(w.lags, at.Sub(p.CreationTimestamp.Time)-told)
	}
}

func (w *watcher) see(key string, ready, desired int32, initial bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.lowest[key]
	if a == nil {
		// a workload first seen after the baseline (made by the run) started from nothing
		a = &Availability{Workload: key, Lowest: ready, Desired: desired}
		if initial {
			a.Before = ready
		}
		w.lowest[key] = a
	}
	a.Lowest = min(a.Lowest, ready)
}

// atLimit are the budgets the run took to zero allowed disruptions (not at zero when it started)
// that held nothing back, sorted.
func (w *watcher) atLimit(held []Held) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for b, before := range w.atZero {
		if !before && !slices.ContainsFunc(held, func(h Held) bool { return h.What == b }) {
			out = append(out, b)
		}
	}
	sort.Strings(out)
	return out
}

// results are the pods the run made Pending (with the scheduler's last word, and whether and when
// they were placed after all), those Pending before
// it, and the workloads whose Ready pods the run took below both what they want and what they had
// when it started, sorted.
func (w *watcher) results() (pending, before []string, low []Availability) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p, u := range w.pending {
		if u.placed.IsZero() {
			pending = append(pending, p+": "+u.why+" (still Pending when the run ended)")
		} else {
			pending = append(pending, fmt.Sprintf("%s: %s (placed after %s)", p, u.why, u.placed.Sub(u.since).Round(time.Second)))
		}
	}
	sort.Strings(pending)
	for p := range w.before {
		before = append(before, p)
	}
	sort.Strings(before)
	for _, a := range w.lowest {
		if a.Lowest < a.Desired && a.Lowest < a.Before {
			low = append(low, *a)
		}
	}
	slices.SortFunc(low, func(a, b Availability) int { return strings.Compare(a.Workload, b.Workload) })
	return pending, before, low
}

// reportError is the rehearsal's error as its report says it. The rehearsal's plan, with each
// blocker, went to the rehearsal's own screen, which is gone when the report is read: a run refused
// by its plan says the blockers themselves.
func reportError(err error) string {
	var blocked *runbook.BlockedPlanError
	if errors.As(err, &blocked) && blocked.Listed {
		return err.Error() + " — they were: " + strings.Join(blocked.Blockers(), "; ")
	}
	return err.Error()
}
