package runbook

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Estimate is a forecast duration: Expected, and the range it should fall in.
type Estimate struct {
	Expected Duration `json:"expected"`
	Low      Duration `json:"low"`
	High     Duration `json:"high"`
}

// Est is an estimate from its three durations.
func Est(expected, low, high time.Duration) Estimate {
	return Estimate{Expected: Duration{expected}, Low: Duration{min(low, expected)}, High: Duration{max(high, expected)}}
}

// Plus is e then o.
func (e Estimate) Plus(o Estimate) Estimate {
	return Est(e.Expected.Duration+o.Expected.Duration, e.Low.Duration+o.Low.Duration, e.High.Duration+o.High.Duration)
}

// Times is e done n times one after another.
func (e Estimate) Times(n int) Estimate {
	k := time.Duration(n)
	return Est(e.Expected.Duration*k, e.Low.Duration*k, e.High.Duration*k)
}

// Longer is e and o side by side: done when the longer is.
func (e Estimate) Longer(o Estimate) Estimate {
	return Est(max(e.Expected.Duration, o.Expected.Duration), max(e.Low.Duration, o.Low.Duration), max(e.High.Duration, o.High.Duration))
}

// then is e then o, where either may never end.
func (e Estimate) then(o Estimate) Estimate {
	if e.Never() || o.Never() {
		return Forever
	}
	return e.Plus(o)
}

// Minus is e less o, never below zero.
func (e Estimate) Minus(o Estimate) Estimate {
	return Est(max(0, e.Expected.Duration-o.Expected.Duration), max(0, e.Low.Duration-o.High.Duration), max(0, e.High.Duration-o.Low.Duration))
}

// Forever is the estimate of what never ends (a drain behind a budget that allows no disruption).
var Forever = Est(math.MaxInt64/4, math.MaxInt64/4, math.MaxInt64/4)

// Never says whether e never ends.
func (e Estimate) Never() bool { return e.Expected.Duration >= math.MaxInt64/4 }

// IsZero: nothing to wait for.
func (e Estimate) IsZero() bool { return e.High.Duration == 0 }

// String is "~3m10s (2m40s–4m)".
func (e Estimate) String() string {
	r := func(d time.Duration) string {
		switch {
		case d >= time.Hour:
			return d.Round(time.Minute).String()
		case d >= time.Minute:
			return d.Round(10 * time.Second).String()
		case d >= 10*time.Second:
			return d.Round(time.Second).String()
		}
		return d.Round(100 * time.Millisecond).String()
	}
	if e.Low == e.High {
		return "~" + r(e.Expected.Duration)
	}
	return fmt.Sprintf("~%s (%s–%s)", r(e.Expected.Duration), r(e.Low.Duration), r(e.High.Duration))
}

// NodeForecast is how long a planned node takes.
type NodeForecast struct {
	// Drain: cordon to its last evicted pod gone.
	Drain Estimate `json:"drain"`
	// Cycle: cordon to uncordoned at the target: the drain, the upgrade action, Ready at the target.
	Cycle Estimate `json:"cycle"`
	// PacedBy is what the drain waits on longest: a budget letting its pods go a few at a time, or
	// the pods' termination.
	PacedBy string `json:"pacedBy,omitempty"`
	// Settle: from the drain's end until the last replacements are Ready.
	Settle Estimate `json:"settle"`
}

// StepForecast is how long a node step takes, and why.
type StepForecast struct {
	Total Estimate `json:"total"`
	// CriticalPath names what paces the step: its longest batches and the budget each waits on.
	CriticalPath []string `json:"criticalPath,omitempty"`
	// Assumed lists what the forecast could not measure on the cluster and took a default for.
	Assumed []string `json:"assumed,omitempty"`
	// PlanCost is what planning took on the cluster as this plan was made: drydock plans each batch
	// again before it moves it, so the forecast counts it per batch.
	PlanCost PlanCost `json:"planCost"`
}

// RunForecast is the whole run's forecast: the node steps' and, for the other steps, how long they
// took in the last finished run of the same runbook on the same cluster.
type RunForecast struct {
	Total Estimate `json:"total"`
	// Steps are the forecasts of each step that has one, by name.
	Steps []NamedEstimate `json:"steps"`
	// Unknown are the steps nothing forecasts (no model, no earlier run): the total leaves them out.
	Unknown []string `json:"unknown,omitempty"`
}

// NamedEstimate is a step's estimate and where it comes from.
type NamedEstimate struct {
	Step     string   `json:"step"`
	Estimate Estimate `json:"estimate"`
	From     string   `json:"from"` // "model" or "run <id>"
}

// PlanCost is what planning costs on the cluster, measured while the plan was made: reading the
// nodes, pods, budgets and volumes (Load), and computing one batch's drain (Batch). A run plans each
// batch again just before it moves it, and each group as it starts, so this is drydock's own share
// of every batch (measured on a loaded cluster it is seconds, on an idle one tens of milliseconds).
type PlanCost struct {
	Load  time.Duration `json:"load"`
	Batch time.Duration `json:"batch"`
}

// perBatchFixed is the rest of drydock's work around a batch: cordon, uncordon, the health gates'
// first verdict (measured at 0.1–0.2 s on the demo fleet, TestRehearsalPredictsTheDemo).
const perBatchFixed = 200 * time.Millisecond

// batch is drydock's own work around a batch: planning it again, and the fixed rest.
func (c PlanCost) batch() Estimate {
	d := c.Load + c.Batch
	return Est(perBatchFixed+d, perBatchFixed/2+d/2, 5*perBatchFixed+3*d)
}

// group is the node groups' work as a group of n batches starts: planning the group again.
func (c PlanCost) group(n int) Estimate {
	d := c.Load + c.Batch*time.Duration(n)
	return Est(d, d/2, 3*d)
}

// around is drydock's own work around batch bi of p: the batch's, and, for a group's first batch,
// planning the group again (its n batches).
func (c PlanCost) around(p *NodePlan, bi int) Estimate {
	e, b := c.batch(), p.Batches[bi]
	if b.Group != "" && (bi == 0 || p.Batches[bi-1].Group != b.Group) {
		n := 0
		for _, o := range p.Batches[bi:] {
			if o.Group != b.Group {
				break
			}
			n++
		}
		e = e.Plus(c.group(n))
	}
	return e
}

// OwnWork is drydock's own work over the plan's batches and groups at cost: what ForecastNodes
// counts for it.
func (c PlanCost) OwnWork(p *NodePlan) time.Duration {
	var d time.Duration
	for bi := range p.Batches {
		d += c.around(p, bi).Expected.Duration
	}
	return d
}

// ForecastNodes fills in a node step's forecast from its nodes' drain forecasts: each node's cycle (the
// drain, then the action until the node is Ready at the target), each batch (its nodes side by
// side, then the wait for the cluster to be healthy: the last replacements' start-up the action has
// not already covered), and the step (its batches one after another, then extra, e.g. the soak).
// action is nil for a step that only drains; assumed says what the forecast could not measure; cost
// is what planning took while this plan was made (drydock's own work per batch and group).
func ForecastNodes(p *NodePlan, action *Estimate, extra Estimate, assumed []string, cost PlanCost) {
	f := &StepForecast{Assumed: assumed, PlanCost: cost}
	act := Estimate{}
	if action != nil {
		act = *action
	}
	never := ""
	type paced struct {
		batch int
		took  Estimate
		why   string
	}
	var batches []paced
	for bi := range p.Batches {
		b := &p.Batches[bi]
		var took, settle Estimate
		why := ""
		for ni := range b.Nodes {
			nf := b.Nodes[ni].Forecast
			if nf == nil {
				continue
			}
			if nf.Drain.Never() {
				if never == "" {
					never = b.Nodes[ni].Node + ": " + nf.PacedBy
				}
				continue
			}
			nf.Cycle = nf.Drain.Plus(act)
			if nf.Cycle.Expected.Duration >= took.Expected.Duration {
				why = b.Nodes[ni].Node + ": " + nf.PacedBy
			}
			took = took.Longer(nf.Cycle)
			settle = settle.Longer(nf.Settle)
		}
		if action != nil {
			took = took.Plus(settle.Minus(act))
		}
		took = took.Plus(cost.around(p, bi))
		b.Forecast = &took
		f.Total = f.Total.Plus(took)
		batches = append(batches, paced{bi, took, why})
	}
	f.Total = f.Total.Plus(extra)
	if never != "" {
		f.Total = Forever
		f.CriticalPath = []string{"never finishes: " + never}
		p.Forecast = f
		return
	}
	sort.SliceStable(batches, func(i, j int) bool { return batches[i].took.Expected.Duration > batches[j].took.Expected.Duration })
	for _, b := range batches[:min(3, len(batches))] {
		var names []string
		for _, n := range p.Batches[b.batch].Nodes {
			names = append(names, n.Node)
		}
		f.CriticalPath = append(f.CriticalPath, fmt.Sprintf("batch %d (%s) %s, paced by %s", b.batch+1, strings.Join(names, ", "), b.took, b.why))
	}
	p.Forecast = f
}

// GroupEstimate is a node group's forecast: its batches one after another.
type GroupEstimate struct {
	Group    string   `json:"group"`
	Estimate Estimate `json:"estimate"`
}

// GroupForecasts are the forecasts of the plan's node groups in the order they run (ForecastNodes
// first); none for a step without groups.
func (p *NodePlan) GroupForecasts() []GroupEstimate {
	var out []GroupEstimate
	for _, b := range p.Batches {
		if b.Group == "" || b.Forecast == nil {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Group != b.Group {
			out = append(out, GroupEstimate{Group: b.Group})
		}
		last := &out[len(out)-1]
		last.Estimate = last.Estimate.then(*b.Forecast)
	}
	return out
}

// ForecastRun is the run's forecast: each node step from its plan (plans, as PlanNodes made them);
// every other step from the last finished run of the same runbook against the same cluster (or context) in this
// machine's journals; the rest unknown, and left out of the total. A pause waits for a person and
// is never counted.
func (e *Engine) ForecastRun(rb *Runbook, plans []NodePlan) *RunForecast {
	byStep := map[string]*NodePlan{}
	for i := range plans {
		byStep[plans[i].Step] = &plans[i]
	}
	var last *RunState
	if runs, err := ListRuns(e.StateDir); err == nil {
		for _, r := range runs { // newest first
			if r.Runbook == rb.Metadata.Name && (r.Cluster == e.Cluster || (r.Context != "" && r.Context == e.Context)) && r.Status == RunSucceeded && !r.DryRun && r.KindOf() == "run" {
				last = r
				break
			}
		}
	}
	f := &RunForecast{}
	for _, spec := range rb.Spec.Steps {
		if p := byStep[spec.Name]; p != nil && p.Forecast != nil {
			f.Steps = append(f.Steps, NamedEstimate{Step: spec.Name, Estimate: p.Forecast.Total, From: "model"})
			f.Total = f.Total.then(p.Forecast.Total)
			continue
		}
		if _, ok := spec.Step.(NodePlanner); ok {
			continue // every node already done
		}
		if spec.Type == "pause" {
			f.Unknown = append(f.Unknown, spec.Name+" (a pause: it waits for a person)")
			continue
		}
		took, ok := last.took(spec.Name)
		if !ok {
			f.Unknown = append(f.Unknown, spec.Name)
			continue
		}
		est := Est(took, took*3/4, took*3/2)
		f.Steps = append(f.Steps, NamedEstimate{Step: spec.Name, Estimate: est, From: "run " + last.ID})
		f.Total = f.Total.then(est)
	}
	return f
}

// took is how long the last attempt of a step took in the run (false when it did not finish).
func (r *RunState) took(step string) (time.Duration, bool) {
	if r == nil {
		return 0, false
	}
	for _, s := range r.Steps {
		if s.Name == step && s.Status == StatusDone && s.Started != nil && s.Finished != nil {
			return s.Finished.Sub(*s.Started), true
		}
	}
	return 0, false
}
