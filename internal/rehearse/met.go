package rehearse

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/drydock-dev/drydock/runbook"
)

// Met is a sink that keeps, from a run's events, what the run met: what held pods back (a budget at
// zero, a refusal) and when each node group started and each step ended. The rehearsal reads the
// run on the copy with it; a comparison with the real run reads that run's events the same way.
type Met struct {
	mu       sync.Mutex
	held     map[string]map[string]*hold // a budget ("PodDisruptionBudget ns/name") or a reason -> its pods
	holding  map[string]*hold            // a pod held back now -> its hold
	groups   []groupSpan                 // in the order they started
	groupOf  map[string]string           // step/node -> its group
	stepEnds map[string]time.Time
	costs    map[string]runbook.PlanCost // each node step's planning cost, as the run planned it
}

// hold is how long one pod was held back: from its first refusal to its eviction.
type hold struct {
	from time.Time
	took time.Duration
}

type groupSpan struct {
	step, group string
	start       time.Time
}

// Emit records ev.
func (m *Met) Emit(ev runbook.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch e := ev.(type) {
	case *runbook.PodChanged:
		at := runbook.EventTime(e)
		if h := m.holding[e.Pod]; h != nil && e.State != runbook.PodBlocked {
			h.took = at.Sub(h.from) // evicted (or given up on): held until now
			delete(m.holding, e.Pod)
		}
		if e.State != runbook.PodBlocked {
			return
		}
		what := e.Reason
		if e.PDB != "" {
			what = "PodDisruptionBudget " + e.PDB
		}
		if m.held == nil {
			m.held, m.holding = map[string]map[string]*hold{}, map[string]*hold{}
		}
		if m.held[what] == nil {
			m.held[what] = map[string]*hold{}
		}
		if m.held[what][e.Pod] == nil {
			h := &hold{from: at}
			m.held[what][e.Pod], m.holding[e.Pod] = h, h
		}
	case *runbook.NodeChanged:
		step := runbook.MetaOf(e).Step
		if e.Group != "" { // a node step says each node's group as it lists them, waiting
			if m.groupOf == nil {
				m.groupOf = map[string]string{}
			}
			m.groupOf[step+"/"+e.Node] = e.Group
		}
		group := m.groupOf[step+"/"+e.Node]
		if e.State != runbook.NodeCordoned || group == "" {
			return
		}
		for _, g := range m.groups {
			if g.step == step && g.group == group {
				return
			}
		}
		m.groups = append(m.groups, groupSpan{step: step, group: group, start: runbook.EventTime(e)})
	case *runbook.RunPlanned:
		for _, p := range e.Steps {
			if p.Forecast != nil {
				if m.costs == nil {
					m.costs = map[string]runbook.PlanCost{}
				}
				m.costs[p.Step] = p.Forecast.PlanCost
			}
		}
	case *runbook.StepFinished:
		m.end(runbook.MetaOf(e).Step, runbook.EventTime(e))
	case *runbook.StepFailed:
		m.end(runbook.MetaOf(e).Step, runbook.EventTime(e))
	}
}

func (m *Met) end(step string, at time.Time) {
	if m.stepEnds == nil {
		m.stepEnds = map[string]time.Time{}
	}
	m.stepEnds[step] = at
}

// PlanCost is what planning cost in the run, for a node step.
func (m *Met) PlanCost(step string) (runbook.PlanCost, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.costs[step]
	return c, ok
}

// Held is what held pods back: a budget at zero ("PodDisruptionBudget ns/name") or a refusal's
// reason, how many pods it held, and the longest a pod waited (how many, and how long, depend on
// timing; what held them should not).
type Held struct {
	What    string           `json:"what"`
	Pods    int              `json:"pods"`
	Longest runbook.Duration `json:"longest"`
}

// String says it as the report does.
func (h Held) String() string {
	return fmt.Sprintf("%s held %d pod(s) back, the longest %s", h.What, h.Pods, h.Longest)
}

// Held are what held pods back, sorted. A pod still held when the run ended counts until its last
// refusal was seen.
func (m *Met) Held() []Held {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Held
	for what, pods := range m.held {
		h := Held{What: what, Pods: len(pods)}
		for _, p := range pods {
			h.Longest.Duration = max(h.Longest.Duration, p.took.Round(100*time.Millisecond))
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].What < out[j].What })
	return out
}

// Holders are what held a pod back for at least min, sorted: what a rehearsal and the real run
// should both meet. A shorter hold is a race between an eviction and the last replacement becoming
// Ready, which either run may or may not lose.
func Holders(held []Held, min time.Duration) []string {
	var out []string
	for _, h := range held {
		if h.Longest.Duration >= min {
			out = append(out, h.What)
		}
	}
	return out
}

// GroupTook is how long each node group took, in the order they ran: from its first node cordoned
// to the next group's first (its last batch's health wait included), the step's last group to the
// step's end.
func (m *Met) GroupTook() []GroupResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []GroupResult
	for i, g := range m.groups {
		end, ok := m.stepEnds[g.step]
		if i+1 < len(m.groups) && m.groups[i+1].step == g.step {
			end, ok = m.groups[i+1].start, true
		}
		r := GroupResult{Step: g.step, Group: g.group}
		if ok {
			r.Took = runbook.Duration{Duration: end.Sub(g.start).Round(100 * time.Millisecond)}
		}
		out = append(out, r)
	}
	return out
}
