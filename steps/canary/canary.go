// Package canary is the `canary` step: upgrade one node first, soak, and let a person look.
//
//   - name: canary
//     type: canary
//     with:
//     selector: drydock.dev/group=general     # pick among these (default: every node)
//     action: {exec: [ssh, "{{.Node.Name}}", sudo, kubeadm, upgrade, node]}
//     soak: 10m
//     health: {namespaces: [shop], probeURL: "https://shop.example/healthz"}
//
// The node is the one named, or the one whose drain tests the most: the most budgets and workloads
// its evicted pods belong to, moving no more pods than a typical node (maxEvict), nothing blocking. After the per-node cycle the cluster must be healthy again, then stay healthy for the
// soak. A failed canary is rolled back at once (uncordoned, the rollback action run) and the run
// ends with exit 4. The canary pauses after itself unless the runbook says `pause: none`.
package canary

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
	"github.com/drydock-dev/drydock/steps/rollout"
)

// Kind registers the step.
var Kind = runbook.Kind{
	Name:        "canary",
	Description: "upgrade one node (named, or the one whose drain tests the most budgets and workloads), wait until healthy, soak, then pause for a person",
	Phase:       runbook.PhaseNodes,
	New:         func() runbook.Step { return &Step{} },
}

// Step is the canary step's settings.
type Step struct {
	// Node names the canary (default: the candidate whose drain tests the most budgets and
	// workloads within maxEvict).
	Node string `json:"node,omitempty"`
	// MaxEvict bounds how many pods the chosen canary's drain may move (default: as many as the
	// median candidate moves).
	MaxEvict int `json:"maxEvict,omitempty" jsonschema:"minimum=1"`
	// Selector limits the candidates (default: every node).
	Selector string `json:"selector,omitempty"`
	// Action upgrades the node.
	Action rollout.Action `json:"action"`
	// Soak is how long the cluster must stay healthy after the canary (default 5m).
	Soak runbook.Duration `json:"soak,omitzero"`
	// Health gates.
	Health rollout.Health `json:"health,omitzero"`
	// Drain options.
	Drain drain.Options `json:"drain,omitzero"`
	// KeepCordoned keeps the canary cordoned, and recorded, when it fails or is interrupted: by
	// default a canary whose upgrade action had not started is uncordoned (and drained again on
	// resume), and a failed canary rolled back is uncordoned once Ready at its old version. Resume
	// goes on from it; `drydock rollback` or `drydock uncordon` lets it go. A node an admin had
	// cordoned always stays cordoned.
	KeepCordoned bool `json:"keepCordoned,omitempty"`
}

// Name is the kind.
func (*Step) Name() string { return Kind.Name }

// DefaultPause: a person looks at the canary before the fleet moves.
func (*Step) DefaultPause() string { return runbook.PauseAfter }

// ValidateSettings checks the action and selector.
func (s *Step) ValidateSettings() []runbook.FieldError {
	errs := s.Action.Validate("action")
	if _, err := labels.Parse(s.Selector); err != nil {
		errs = append(errs, runbook.FieldError{Field: "selector", Message: err.Error()})
	}
	if s.Node != "" && s.Selector != "" {
		errs = append(errs, runbook.FieldError{Field: "selector", Message: "give node or selector, not both"})
	}
	errs = append(errs, s.Health.Validate("health")...)
	errs = append(errs, s.Drain.Validate("drain")...)
	return errs
}

func (s *Step) soak() runbook.Duration {
	if s.Soak.IsZero() {
		return runbook.Duration{Duration: 5 * 60e9}
	}
	return s.Soak
}

// Pick chooses the canary node: the named one; else, among the candidates not yet upgraded, the
// one whose drain tests the most: the most distinct PodDisruptionBudgets and workloads its evicted
// pods belong to, with nothing certain blocking it, moving at most maxEvict pods (default: as many as
// the median candidate moves, so the canary is never more disruptive than a typical node). Ties: fewer
// pods to move, then by name. It says why, and what the drain will exercise.
func (s *Step) Pick(ctx context.Context, env *runbook.Env) (string, []string, error) {
	if s.Node != "" {
		return s.Node, []string{"canary node " + s.Node + " (named in the runbook)"}, nil
	}
	names, err := s.candidates(ctx, env)
	if err != nil || len(names) == 0 {
		return "", nil, err
	}
	planner := drain.NewPlanner(env.Kube, s.Drain, "")
	var cands []candidate
	for _, n := range names {
		plan, err := planner.Plan(ctx, []string{n})
		if err != nil {
			return "", nil, err
		}
		cands = append(cands, coverage(n, plan))
	}
	bound, why := s.MaxEvict, "maxEvict"
	if bound == 0 {
		counts := make([]int, len(cands))
		for i, c := range cands {
			counts[i] = c.pods
		}
		sort.Ints(counts)
		bound, why = max(1, counts[len(counts)/2]), "the median candidate's"
	}
	c := best(cands, bound)
	if c.pods == 0 {
		return c.name, []string{fmt.Sprintf("canary node %s: of %d candidates, none whose drain nothing blocks has pods to move within the bound (%d, %s): the canary tests the upgrade action only", c.name, len(cands), bound, why)}, nil
	}
	out := fmt.Sprintf("canary node %s: of %d candidates, its drain tests the most within the bound of %d pod(s) to move (%s): %d pod(s) of %d workload(s) (%s) under %d budget(s) (%s)",
		c.name, len(cands), bound, why, c.pods, len(c.workloads), strings.Join(c.workloads, ", "), len(c.budgets), strings.Join(c.budgets, ", "))
	if len(c.budgets) == 0 {
		out = fmt.Sprintf("canary node %s: of %d candidates, its drain tests the most within the bound of %d pod(s) to move (%s): %d pod(s) of %d workload(s) (%s); no candidate's pods are under a budget",
			c.name, len(cands), bound, why, c.pods, len(c.workloads), strings.Join(c.workloads, ", "))
	}
	if c.blocked {
		out += "; but its drain is blocked"
	}
	return c.name, []string{out}, nil
}

// candidates are the nodes the canary may be: those the selector matches that are behind the target
// and not cordoned, sorted. None, with no error, only when every node it matches is at the target: a
// selector that matches no node, or only nodes an admin cordoned, is an error, since a canary that
// quietly does nothing lets the whole fleet move untested.
func (s *Step) candidates(ctx context.Context, env *runbook.Env) ([]string, error) {
	list, err := env.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: s.Selector})
	if err != nil {
		return nil, fmt.Errorf("canary: list nodes: %w", err)
	}
	if len(list.Items) == 0 {
		if s.Selector == "" {
			return nil, runbook.Invalid(errors.New("canary: the cluster has no nodes"))
		}
		return nil, rollout.NoNodeMatches(ctx, env, "canary: selector", s.Selector)
	}
	var names, cordoned []string
	for i := range list.Items {
		switch n := &list.Items[i]; {
		case rollout.Upgraded(n, env.Target):
		case n.Spec.Unschedulable:
			cordoned = append(cordoned, n.Name)
		default:
			names = append(names, n.Name)
		}
	}
	if len(names) == 0 && len(cordoned) > 0 {
		sort.Strings(cordoned)
		return nil, runbook.Blocked(fmt.Errorf("canary: every node behind %s that it may pick is cordoned (%s): uncordon one (`kubectl uncordon NODE`) or name the canary with node:",
			env.Target, strings.Join(cordoned, ", ")))
	}
	sort.Strings(names)
	return names, nil
}

// candidate is what a candidate node's drain would exercise.
type candidate struct {
	name               string
	pods               int
	workloads, budgets []string
	blocked            bool
}

func coverage(name string, plan *drain.Plan) candidate {
	c := candidate{name: name, pods: len(plan.Nodes[0].Evict), blocked: plan.Fatal()}
	w, b := map[string]bool{}, map[string]bool{}
	for _, p := range plan.Nodes[0].Evict {
		owner := p.Owner
		if owner == "" {
			owner = "Pod/" + p.Name
		}
		w[p.Namespace+"/"+owner] = true
		for _, k := range p.PDBs {
			b[k] = true
		}
	}
	c.workloads, c.budgets = slices.Sorted(maps.Keys(w)), slices.Sorted(maps.Keys(b))
	return c
}

// best is the candidate that tests the most within bound pods to move; unblocked ones first; when
// every candidate moves more than bound, the one that moves fewest.
func best(cands []candidate, bound int) candidate {
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.blocked != b.blocked {
			return !a.blocked
		}
		if (a.pods <= bound) != (b.pods <= bound) {
			return a.pods <= bound
		}
		if a.pods > bound {
			return a.pods < b.pods
		}
		if len(a.budgets) != len(b.budgets) {
			return len(a.budgets) > len(b.budgets)
		}
		if len(a.workloads) != len(b.workloads) {
			return len(a.workloads) > len(b.workloads)
		}
		return a.pods < b.pods
	})
	return cands[0]
}

// Plan says which node and what will happen.
func (s *Step) Plan(ctx context.Context, env *runbook.Env) ([]string, error) {
	node, why, err := s.Pick(ctx, env)
	if err != nil {
		return nil, err
	}
	if node == "" {
		return []string{s.allAtTarget(env)}, nil
	}
	plan, err := drain.NewPlanner(env.Kube, s.Drain, "").Plan(ctx, []string{node})
	if err != nil {
		return nil, err
	}
	out := append(why, drain.DescribePlan(plan)...)
	return append(out, "then: upgrade, wait Ready at "+env.Target+", uncordon, soak "+s.soak().String()), nil
}

// allAtTarget says the one case where the canary has nothing to do.
func (s *Step) allAtTarget(env *runbook.Env) string {
	if s.Selector == "" {
		return "every node is already at " + env.Target + ": no canary needed"
	}
	return "every node the selector " + s.Selector + " matches is already at " + env.Target + ": no canary needed"
}

// PlanNodes is the canary's part of the whole-runbook plan: the node it picks (or picked, in a
// resumed run), drained alone.
func (s *Step) PlanNodes(ctx context.Context, env *runbook.Env) (*runbook.NodePlan, error) {
	node := ""
	for _, c := range env.Changes() {
		if c.Kind == "canary" {
			node = c.Object
		}
	}
	if node == "" {
		var err error
		if node, _, err = s.Pick(ctx, env); err != nil {
			return nil, err
		}
	}
	out := &runbook.NodePlan{}
	if node == "" {
		return out, nil // every candidate is at the target already
	}
	n, err := env.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, runbook.Invalid(fmt.Errorf("canary node %q not found: `kubectl get nodes` lists them", node))
		}
		return nil, fmt.Errorf("canary node %q: %w", node, err)
	}
	if why := rollout.Leave(env, n); why != "" {
		out.Left = []runbook.LeftNode{{Node: node, Reason: why}}
		return out, nil
	}
	pl := drain.PlannerFor(env, s.Drain)
	plan, err := pl.Plan(ctx, []string{node})
	if err != nil {
		return nil, err
	}
	pl.Advance(plan)
	out.Batches = []runbook.NodeBatch{{Nodes: drain.Planned(plan, s.Drain)}}
	act, assumed := s.Action.Forecast()
	soak := s.soak().Duration
	runbook.ForecastNodes(out, &act, runbook.Est(soak, soak, soak), assumed, pl.Cost())
	return out, nil
}

// Run upgrades the canary; a failure rolls it back and ends the run (exit 4).
func (s *Step) Run(ctx context.Context, env *runbook.Env) error {
	if err := rollout.CheckSkew(ctx, env); err != nil {
		return runbook.Blocked(err)
	}
	node := ""
	for _, c := range env.Changes() { // re-entered: the node chosen before
		if c.Kind == "canary" {
			node = c.Object
		}
	}
	if node == "" {
		var why []string
		var err error
		node, why, err = s.Pick(ctx, env)
		if err != nil {
			return err
		}
		if node == "" {
			env.Progress(s.allAtTarget(env), 0, 0)
			return nil
		}
		for _, w := range why {
			env.Progress(w, 0, 0)
		}
		if err := env.Record(ctx, runbook.Change{Kind: "canary", Object: node}); err != nil {
			return err
		}
	}
	gates, err := rollout.NewGates(ctx, env, s.Health)
	if err != nil {
		return err
	}
	defer gates.Stop()

	err = rollout.Cycle(ctx, env, node, s.Action, s.Drain)
	if err == nil {
		err = gates.Gate(ctx, "after the canary "+node, node)
	}
	if err == nil && !env.Done("soaked") {
		if err = gates.Soak(ctx, s.soak().Duration, node); err == nil {
			err = env.MarkDone(ctx, "soaked")
		}
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		// Interrupted (Ctrl-C, the step's timeout): leave it resumable, with nothing cordoned that
		// resume would not drain again.
		return rollout.AfterFailure(ctx, env, err, []string{node}, s.KeepCordoned)
	}
	// The canary failed: undo it now, before anyone builds on it.
	env.Logf("warning", "canary %s failed: %v; rolling it back", node, err)
	if uerr := rollout.UndoFailed(context.WithoutCancel(ctx), env, s.Action, s.Drain, s.Health, s.KeepCordoned); uerr != nil && !errors.Is(uerr, runbook.ErrNothingToUndo) {
		//nolint:errorlint // the failed rollback decides the outcome (exit 1), not what failed the canary
		return fmt.Errorf("canary %s failed (%v), and rolling it back failed too: %w", node, err, uerr)
	}
	if s.KeepCordoned {
		return fmt.Errorf("canary %s failed and was %w, and stays cordoned (keepCordoned: `drydock uncordon %s` lets it go): %w", node, runbook.ErrRolledBack, node, err)
	}
	return fmt.Errorf("canary %s failed and was %w: %w", node, runbook.ErrRolledBack, err)
}

// WillUndo says what Rollback does, node by node, for the preview before a person confirms.
func (s *Step) WillUndo(changes []runbook.Change, target, runID, step string) []string {
	return rollout.DescribeUndo(s.Action, changes, target, runID, step)
}

// WontUndo: see rollout.Action.WontUndo.
func (s *Step) WontUndo() string { return s.Action.WontUndo() }

// Rollback uncordons the canary and runs the rollback action.
func (s *Step) Rollback(ctx context.Context, env *runbook.Env) error {
	return rollout.Undo(ctx, env, s.Action, s.Drain, s.Health)
}

// Access says what the step needs: a drain's permissions and what its health gates watch.
func (s *Step) Access() []runbook.Access {
	return append(drain.AccessFor(s.Drain), rollout.GatesAccess()...)
}
