package drain

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drydock-dev/drydock/runbook"
)

// The drain forecast. A node's drain ends when its last evicted pod is gone. Pods no budget guards
// all go at once and take their termination (preStop hook, then the signal; at most the grace
// period). A budget lets its pods go a few at a time (its allowance with every pod healthy): the next
// wave is evicted when the replacements of the last one are Ready, which takes what the workload's
// pods took on this cluster from creation to Ready (measured on the pods running now), plus the
// disruption controller's update of the budget.

// budgetLag is how long after a replacement is Ready the budget allows the next eviction: the
// disruption controller's recount and the watch that tells drydock.
var budgetLag = runbook.Est(300*time.Millisecond, 100*time.Millisecond, 2*time.Second)

// unmeasured is the start-up of a workload with no Ready pod to measure.
var unmeasured = runbook.Est(30*time.Second, 5*time.Second, 2*time.Minute)

// workload is the key of a pod's controller, which makes its replacements.
func workload(p *corev1.Pod) string {
	if c := metav1.GetControllerOf(p); c != nil {
		return p.Namespace + "/" + strings.ToLower(c.Kind) + "/" + c.Name
	}
	return p.Namespace + "/pod/" + p.Name
}

// Startup is how long a workload's pods took from creation to Ready, measured on its pods that are
// Ready now (the condition's time: to the second).
type Startup struct {
	Estimate runbook.Estimate
	Measured int // pods measured; 0: the default
}

// startups measures every workload once per snapshot.
func (pl *Planner) startups() map[string]Startup {
	if pl.measured != nil {
		return pl.measured
	}
	took := map[string][]time.Duration{}
	for i := range pl.pods {
		p := &pl.pods[i]
		if pl.moved[p.UID] {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
				if d := c.LastTransitionTime.Sub(p.CreationTimestamp.Time); d >= 0 && !p.CreationTimestamp.IsZero() {
					took[workload(p)] = append(took[workload(p)], d)
				}
			}
		}
	}
	pl.measured = map[string]Startup{}
	for k, ds := range took {
		slices.Sort(ds)
		// Both times are kept to the second: a pod Ready in 2.3 s reads 2 s or 3 s, and the mean
		// of many reads is the true time. A pod that became Ready again much later (a restart, a
		// failed probe) is not a start-up: beyond three times the median, it is left out.
		median, sum, n := ds[len(ds)/2], time.Duration(0), 0
		for _, d := range ds {
			if d <= 3*median+time.Second {
				sum += d
				n++
			}
		}
		pl.measured[k] = Startup{Estimate: runbook.Est(sum/time.Duration(n), ds[0], ds[n-1]+time.Second), Measured: n}
	}
	return pl.measured
}

// startup is a workload's start-up, measured or the default.
func (pl *Planner) startup(p *corev1.Pod) (runbook.Estimate, bool) {
	if s, ok := pl.startups()[workload(p)]; ok {
		return s.Estimate, true
	}
	return unmeasured, false
}

// termination is how long an evicted pod takes to be gone: its preStop hook's sleep if it has one,
// then about a second; never more than the grace period.
func (pl *Planner) termination(p *corev1.Pod) runbook.Estimate {
	grace := 30 * time.Second
	if p.Spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*p.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	if g := pl.Options.GracePeriodSeconds; g != nil && *g >= 0 {
		grace = time.Duration(*g) * time.Second
	}
	var pre time.Duration
	for _, c := range p.Spec.Containers {
		pre = max(pre, preStop(c.Lifecycle))
	}
	return runbook.Est(min(pre+time.Second, grace), min(pre, grace), grace)
}

// preStop is the sleep a preStop hook takes: the sleep action, or an exec of sleep N.
func preStop(l *corev1.Lifecycle) time.Duration {
	if l == nil || l.PreStop == nil {
		return 0
	}
	if s := l.PreStop.Sleep; s != nil {
		return time.Duration(s.Seconds) * time.Second
	}
	if e := l.PreStop.Exec; e != nil {
		words := strings.Fields(strings.Join(e.Command, " "))
		for i, w := range words {
			if strings.HasSuffix(w, "sleep") && i+1 < len(words) {
				if n, err := strconv.ParseFloat(strings.Trim(words[i+1], `"';`), 64); err == nil && n > 0 {
					return time.Duration(n * float64(time.Second))
				}
			}
		}
	}
	return 0
}

// forecast is the drain forecast of the nodes planned together: a budget's waves are shared by
// every node of the batch holding its pods.
func (pl *Planner) forecast(plan *Plan, evicted []corev1.Pod, moves map[types.UID]string) {
	type wave struct {
		pods  int
		term  runbook.Estimate
		start runbook.Estimate
		why   string
	}
	byBudget := map[string]*wave{}
	nodeBudgets := map[string]map[string]bool{}
	free := map[string]runbook.Estimate{}   // by node: the pods no budget guards
	settle := map[string]runbook.Estimate{} // by node: its last replacements' start-up after the pod is gone
	for i := range evicted {
		p := &evicted[i]
		node := p.Spec.NodeName
		if nodeBudgets[node] == nil {
			nodeBudgets[node] = map[string]bool{}
		}
		term := pl.termination(p)
		budgets := pl.pdbsOf(p)
		s, measured := pl.startup(p)
		if moves[p.UID] != "" {
			settle[node] = settle[node].Longer(s.Minus(term))
		}
		if len(budgets) != 1 || moves[p.UID] == "" {
			// No budget (or a pod whose replacement stays Pending: its own blocker): it goes at once.
			free[node] = free[node].Longer(term)
			continue
		}
		w := byBudget[budgets[0]]
		if w == nil {
			w = &wave{}
			byBudget[budgets[0]] = w
		}
		w.pods++
		w.term = w.term.Longer(term)
		w.start = w.start.Longer(s)
		if !measured {
			w.why = " (start-up not measured: no Ready pod of " + workload(p) + ")"
		}
		nodeBudgets[node][budgets[0]] = true
	}
	for i := range plan.Nodes {
		np := &plan.Nodes[i]
		f := &runbook.NodeForecast{Drain: free[np.Node], PacedBy: "pod termination"}
		if len(np.Evict) == 0 {
			f.PacedBy = "nothing to evict"
		}
		for key := range nodeBudgets[np.Node] {
			w := byBudget[key]
			allow := Allowance(pl.pdb(key))
			if allow <= 0 {
				f.PacedBy = "never: PodDisruptionBudget " + key + " allows no disruption"
				f.Drain = runbook.Forever
				break
			}
			waves := (w.pods + allow - 1) / allow
			d := w.start.Plus(budgetLag).Times(waves - 1).Plus(w.term)
			if pdb := pl.pdb(key); pdb != nil && int(pdb.Status.DisruptionsAllowed) < allow {
				d = d.Plus(w.start) // not every pod is healthy now: the first wave waits for one
			}
			if d.Expected.Duration > f.Drain.Expected.Duration {
				f.PacedBy = fmt.Sprintf("PodDisruptionBudget %s: %d pod(s) in %d wave(s) of %d, each waiting for replacements Ready in %s%s",
					key, w.pods, waves, allow, w.start, w.why)
			}
			f.Drain = f.Drain.Longer(d)
		}
		f.Cycle, f.Settle = f.Drain, settle[np.Node]
		np.Forecast = f
		if limit, why, _ := pl.Options.drainLimit(); limit > 0 && f.Drain.Expected.Duration > limit {
			took := "~" + f.Drain.Expected.Round(time.Second).String()
			if f.Drain.Never() {
				took = "for ever"
			}
			np.Blockers = append(np.Blockers, Blocker{Kind: BlockSlow, Node: np.Node,
				Message: fmt.Sprintf("the drain of %s should take %s (%s), longer than %s allows (%s: %s)", np.Node, took, f.PacedBy, limit, pl.Options.MaxNodeDrainTime, why),
				Fix:     "let the budget that paces it allow more at once, or drain this node before the platform's upgrade does"})
		}
	}
}
