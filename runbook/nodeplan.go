package runbook

import (
	"context"
	"fmt"
	"strings"
)

// NodePlanner is a node step (drain, canary, nodegroups) that can say before the run starts every
// node it will drain, in order and by batch, and what would block each: its part of the
// whole-runbook plan. It reads the cluster as it is and changes nothing.
type NodePlanner interface {
	PlanNodes(ctx context.Context, env *Env) (*NodePlan, error)
}

// NodePlan is a node step's part of the whole-runbook plan.
type NodePlan struct {
	Step string `json:"step"`
	Kind string `json:"kind"`
	// Batches in the order they will run; the nodes of a batch are drained together.
	Batches []NodeBatch `json:"batches"`
	// Left are the nodes the step will not drain, and why (already at the target, upgraded by an
	// earlier step).
	Left []LeftNode `json:"left,omitempty"`
	// Proceed: the runbook lets the step start despite a certain blocker (onBlocked: proceed); the
	// step still refuses a node whose blocker has not cleared when it gets there.
	Proceed bool `json:"proceed,omitempty"`
	// Forecast is how long the step should take, from durations measured on the cluster.
	Forecast *StepForecast `json:"forecast,omitempty"`
}

// NodeBatch is nodes drained together.
type NodeBatch struct {
	Group string        `json:"group,omitempty"`
	Nodes []PlannedNode `json:"nodes"`
	// Forecast: the batch's nodes side by side, then the wait for the cluster to be healthy again.
	Forecast *Estimate `json:"forecast,omitempty"`
}

// PlannedNode is one node of the plan.
type PlannedNode struct {
	Node            string `json:"node"`
	Evict           int    `json:"evict"`
	Skip            int    `json:"skip"`
	AlreadyCordoned bool   `json:"alreadyCordoned,omitempty"`
	// Blockers: an error is certain (the drain cannot finish until it is fixed: a budget that never
	// allows an eviction, pods that cannot move); a warning may clear by itself (a budget at zero now).
	Blockers []Finding `json:"blockers,omitempty"`
	// Forecast is how long the node should take.
	Forecast *NodeForecast `json:"forecast,omitempty"`
}

// LeftNode is a node a step leaves alone.
type LeftNode struct {
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// Certain lists the certain blockers of the plan, each as "node: message".
func (p *NodePlan) Certain() []Finding {
	var out []Finding
	for _, b := range p.Batches {
		for _, n := range b.Nodes {
			for _, f := range n.Blockers {
				if f.Severity == SeverityError {
					out = append(out, f)
				}
			}
		}
	}
	return out
}

// Nodes lists the nodes the plan drains, in order.
func (p *NodePlan) Nodes() []string {
	var out []string
	for _, b := range p.Batches {
		for _, n := range b.Nodes {
			out = append(out, n.Node)
		}
	}
	return out
}

// BlockedPlanError is a run refused before its first node moved: a node step's plan has a certain
// blocker and the runbook does not let that step proceed.
type BlockedPlanError struct {
	Plans []NodePlan
	// Listed: the plan, with every blocker and its fix, was already shown (the run.planned event);
	// the error then counts them instead of saying them again.
	Listed bool
	// Drain: the run is a drydock drain, which has no runbook to mark onBlocked: proceed.
	Drain bool
}

func (e *BlockedPlanError) Error() string {
	hint := "; fix these, or set onBlocked: proceed on the step to start anyway"
	if e.Drain {
		hint = ""
	}
	if e.Listed {
		n := 0
		for _, p := range e.Plans {
			if !p.Proceed {
				n += len(p.Certain())
			}
		}
		if e.Drain {
			return fmt.Sprintf("blocked before anything moved: %d certain blocker(s), each listed above (BLOCK) with its fix; nothing was cordoned", n)
		}
		return fmt.Sprintf("blocked before the first node moved: %d certain blocker(s), each listed above (BLOCK) with its fix%s", n, strings.TrimPrefix(hint, "; fix these"))
	}
	return fmt.Sprintf("blocked before the first node moved: %s%s", strings.Join(e.Blockers(), "; "), hint)
}

// Blockers says each certain blocker of the steps that may not proceed, with its fix.
func (e *BlockedPlanError) Blockers() []string {
	var parts []string
	for _, p := range e.Plans {
		if p.Proceed {
			continue
		}
		for _, f := range p.Certain() {
			s := fmt.Sprintf("step %q: %s: %s", p.Step, f.Object, f.Message)
			if f.Hint != "" {
				s += " (fix: " + f.Hint + ")"
			}
			parts = append(parts, s)
		}
	}
	return parts
}

// Is makes a BlockedPlanError a blocked outcome (exit 3).
func (e *BlockedPlanError) Is(target error) bool { return target == ErrBlocked }

// PlanNodes is the whole-runbook plan: every node step of rb not yet done in st (nil: a new run),
// planned against the cluster as it is, in runbook order. A node an earlier step will upgrade is
// left to it. It returns the plans and, when a certain blocker stands in a step that may not
// proceed, a *BlockedPlanError.
func (e *Engine) PlanNodes(ctx context.Context, rb *Runbook, st *RunState) ([]NodePlan, error) {
	watches := NewWatches(e.Kube)
	defer watches.Shutdown()
	before := map[string]string{}
	shared := map[string]any{}
	var plans []NodePlan
	runID := "plan"
	if st != nil && st.ID != "" {
		runID = st.ID // a run under way: the nodes it cordoned are its own, not an admin's
	}
	blocked := false
	for i, spec := range rb.Spec.Steps {
		np, ok := spec.Step.(NodePlanner)
		if !ok {
			continue
		}
		var state *StepState
		if st != nil && i < len(st.Steps) {
			state = &st.Steps[i]
			if state.Status == StatusDone || state.Status == StatusSkipped {
				continue
			}
		}
		env := &Env{RunID: runID, Spec: spec, Runbook: rb, Target: rb.Spec.TargetVersion, Kube: e.Kube, REST: e.REST, DryRun: true,
			emit: func(Event) {}, index: i, watches: watches, PlannedBefore: before, Planning: shared, planState: state}
		p, err := np.PlanNodes(ctx, env)
		if err != nil {
			return plans, fmt.Errorf("plan step %q: %w", spec.Name, err)
		}
		p.Step, p.Kind, p.Proceed = spec.Name, spec.Type, spec.OnBlocked == OnBlockedProceed
		for _, n := range p.Nodes() {
			if _, ok := before[n]; !ok {
				before[n] = spec.Name
			}
		}
		if len(p.Certain()) > 0 && !p.Proceed {
			blocked = true
		}
		plans = append(plans, *p)
	}
	if blocked {
		return plans, &BlockedPlanError{Plans: plans}
	}
	return plans, nil
}

// What onBlocked says.
const (
	OnBlockedStop    = "stop"
	OnBlockedProceed = "proceed"
)
