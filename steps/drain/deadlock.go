package drain

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drydock-dev/drydock/runbook"
)

// deadlocks finds the budgets a drain of nodeNames (together) could never get past. A budget lets
// some of its pods be disrupted at once; an evicted pod whose replacement has nowhere to go stays
// Pending and holds one of those disruptions until the drained nodes come back, which they do only
// after the drain ends. When more of a budget's pods in the drain have nowhere to go than the budget
// allows, the eviction of the next one is refused for ever: the drain waits until its timeout.
func (pl *Planner) deadlocks(ctx context.Context, nodeNames []string, evicted []corev1.Pod, capacity []Blocker, moves map[types.UID]string) []Blocker {
	type tally struct {
		pods, stranded int
		why            string
		nodes          map[string]bool
	}
	by := map[string]*tally{}
	for i := range evicted {
		p := &evicted[i]
		budgets := pl.pdbsOf(p)
		if len(budgets) != 1 {
			continue // none; or several, which the eviction API refuses anyway (their own blocker)
		}
		t := by[budgets[0]]
		if t == nil {
			t = &tally{nodes: map[string]bool{}}
			by[budgets[0]] = t
		}
		t.pods++
		t.nodes[p.Spec.NodeName] = true
		if node, ok := moves[p.UID]; ok && node == "" {
			t.stranded++
			if t.why == "" {
				for _, b := range capacity {
					if b.Pod == ref(p).String() {
						t.why = b.Message
					}
				}
			}
		}
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Blocker
	for _, key := range keys {
		t := by[key]
		allow := Allowance(pl.pdb(key))
		if allow <= 0 || t.stranded <= allow {
			continue // a budget that never allows a disruption is its own blocker (pdb-never-drains)
		}
		// The node that waits for ever: the last of the drain's nodes holding a pod of the budget.
		var holding []string
		for _, n := range nodeNames {
			if t.nodes[n] {
				holding = append(holding, n)
			}
		}
		b := Blocker{Kind: BlockDeadlock, Node: holding[len(holding)-1], PDB: key, Fatal: true,
			Message: fmt.Sprintf("deadlock: PodDisruptionBudget %s allows %d disruption(s) at once, but %d of its %d pod(s) on %s would have nowhere to go while %s drained (%s): they stay Pending, the budget never recovers, and the eviction of the next one is refused until the drain times out",
				key, allow, t.stranded, t.pods, strings.Join(holding, ", "), plural(len(nodeNames), "that node is", "these nodes are"), t.why),
			Fix: strings.Join(pl.deadlockFixes(ctx, nodeNames, key, allow, t.stranded), "; or ")}
		out = append(out, b)
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Allowance is how many of a budget's pods may be down at once when all of them are healthy: what
// it lets a drain evict before a replacement must be Ready (from the status the disruption controller
// keeps; from maxUnavailable as a number when the status is not filled yet; -1 when unknown).
func Allowance(pdb *policyv1.PodDisruptionBudget) int {
	if pdb == nil {
		return -1
	}
	if pdb.Status.ExpectedPods > 0 || pdb.Status.ObservedGeneration > 0 {
		return int(pdb.Status.ExpectedPods - pdb.Status.DesiredHealthy)
	}
	if mu := pdb.Spec.MaxUnavailable; mu != nil && mu.Type == 0 {
		return mu.IntValue()
	}
	return -1
}

// deadlockFixes are the smallest changes that let the drain of nodeNames past the budget key, first
// the one that changes least: fewer nodes at once, one more node like them, a budget that allows
// what the drain needs.
func (pl *Planner) deadlockFixes(ctx context.Context, nodeNames []string, key string, allow, stranded int) []string {
	var fixes []string
	stuck := func(nodes []string, extra *corev1.Node) bool {
		sub := NewPlanner(pl.Client, pl.Options, pl.RunID)
		sub.Snapshot, sub.noFixes = pl.Snapshot, true
		if extra != nil {
			sub.Snapshot = pl.with(extra)
		}
		plan, err := sub.Plan(ctx, nodes)
		if err != nil {
			return true
		}
		for _, b := range plan.Blockers() {
			if b.Kind == BlockDeadlock && b.PDB == key {
				return true
			}
		}
		return false
	}
	if pl.noFixes {
		return nil
	}
	for n := len(nodeNames) - 1; n >= 1; n-- {
		if !stuck(nodeNames[:n], nil) {
			fixes = append(fixes, fmt.Sprintf("drain at most %d of these nodes at once (maxUnavailable: %d)", n, n))
			break
		}
	}
	if node := pl.node(nodeNames[0]); node != nil {
		extra := node.DeepCopy()
		extra.Name = node.Name + "-extra"
		extra.Spec.Unschedulable = false
		extra.Spec.Taints = nil
		for _, t := range node.Spec.Taints {
			if t.Key != corev1.TaintNodeUnschedulable {
				extra.Spec.Taints = append(extra.Spec.Taints, t)
			}
		}
		if _, ok := extra.Labels[corev1.LabelHostname]; ok {
			extra.Labels = maps(extra.Labels, corev1.LabelHostname, extra.Name)
		}
		if !stuck(nodeNames, extra) {
			fixes = append(fixes, fmt.Sprintf("add one more node like %s (same labels, taints and size) before the upgrade", node.Name))
		}
	}
	fixes = append(fixes, fmt.Sprintf("let PodDisruptionBudget %s allow %d disruption(s) during the drain (maxUnavailable: %d, or allowBudgetRelax), or give its pods somewhere else to go", key, stranded, stranded))
	return fixes
}

// maps is labels with key set to value, the original left as it was.
func maps(labels map[string]string, key, value string) map[string]string {
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		out[k] = v
	}
	out[key] = value
	return out
}

// with is the snapshot with one more (empty) node.
func (s *Snapshot) with(node *corev1.Node) *Snapshot {
	c := *s
	c.nodes = append(append([]corev1.Node(nil), s.nodes...), *node)
	return &c
}

// Advance moves the snapshot past a planned batch as the run leaves the cluster after it: each
// evicted pod where the plan placed its replacement, the batch's nodes upgraded and schedulable
// again (an admin's cordon kept), and the pods that had nowhere to go placed now that they are back.
// The next plan made with the snapshot judges the next batch against that.
func (pl *Planner) Advance(plan *Plan) {
	if pl.Snapshot == nil || plan == nil || plan.moves == nil {
		return
	}
	if pl.moved == nil {
		pl.moved = map[types.UID]bool{}
	}
	var pending []corev1.Pod
	for i := range pl.pods {
		p := &pl.pods[i]
		node, ok := plan.moves[p.UID]
		if !ok {
			continue
		}
		p.Spec.NodeName = node
		pl.moved[p.UID] = true
		if node == "" {
			pending = append(pending, *p)
		}
	}
	for _, np := range plan.Nodes {
		n := pl.node(np.Node)
		if n == nil || (np.AlreadyCordoned && n.Annotations[AnnotationCordonedBy] != pl.RunID) {
			continue // an admin's cordon stays
		}
		n.Spec.Unschedulable = false
		taints := n.Spec.Taints[:0:0]
		for _, t := range n.Spec.Taints {
			if t.Key != corev1.TaintNodeUnschedulable {
				taints = append(taints, t)
			}
		}
		n.Spec.Taints = taints
	}
	if len(pending) == 0 {
		return
	}
	_, moves := pl.capacity(pending, map[string]bool{})
	for i := range pl.pods {
		if node, ok := moves[pl.pods[i].UID]; ok {
			pl.pods[i].Spec.NodeName = node
		}
	}
}

// PlannerFor is the planner of a node step: in the whole-runbook plan it shares the snapshot every
// node step plans on, played forward by the batches of the steps before it.
func PlannerFor(env *runbook.Env, opts Options) *Planner {
	pl := NewPlanner(env.Kube, opts, env.RunID)
	if env.Planning != nil {
		s, ok := env.Planning["drain.snapshot"].(*Snapshot)
		if !ok {
			s = &Snapshot{}
			env.Planning["drain.snapshot"] = s
		}
		pl.Snapshot = s
	}
	return pl
}
