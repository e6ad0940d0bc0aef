// Package nodegroups is the `nodegroups` step: upgrade the nodes group by group, one group at a
// time, at most maxUnavailable nodes of a group at once, checking health between nodes and groups.
//
//   - name: fleet
//     type: nodegroups
//     with:
//     groupBy: eks                 # eks | gke | aks | role | any label key
//     order: [system, general]     # these first, in this order; the rest after, sorted
//     maxUnavailable: 2            # or "25%" of the group
//     pauseAfterGroup: true
//     action: {waitForVersion: true}
//
// Nodes already at the target version are skipped, so a resumed run picks up where it stopped.
package nodegroups

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
	"github.com/drydock-dev/drydock/steps/rollout"
)

// Kind registers the step.
var Kind = runbook.Kind{
	Name:        "nodegroups",
	Description: "upgrade node groups one at a time, maxUnavailable nodes of a group at once, health checked between nodes and groups",
	Phase:       runbook.PhaseNodes,
	New:         func() runbook.Step { return &Step{} },
}

// Presets name the group labels of the managed platforms.
var Presets = map[string]string{
	"eks":  "eks.amazonaws.com/nodegroup",
	"gke":  "cloud.google.com/gke-nodepool",
	"aks":  "kubernetes.azure.com/agentpool",
	"role": "node-role.kubernetes.io/*", // the group is the role: node-role.kubernetes.io/<role>
}

// Step is the nodegroups step's settings.
type Step struct {
	// GroupBy is a preset (eks, gke, aks, role) or a node label key; nodes without it are left alone.
	GroupBy string `json:"groupBy"`
	// Order lists groups to do first, in this order; the others follow, sorted by name.
	Order []string `json:"order,omitempty"`
	// Selector limits the nodes considered.
	Selector string `json:"selector,omitempty"`
	// MaxUnavailable nodes of a group upgraded at once: a count or a percentage of the group (default 1).
	MaxUnavailable runbook.IntOrPercent `json:"maxUnavailable,omitzero"`
	// PauseAfterGroup asks a person after each group.
	PauseAfterGroup bool `json:"pauseAfterGroup,omitempty"`
	// Action upgrades a node.
	Action rollout.Action `json:"action"`
	// Health gates between nodes and groups.
	Health rollout.Health `json:"health,omitzero"`
	// Drain options.
	Drain drain.Options `json:"drain,omitzero"`
	// KeepCordoned keeps the nodes of the failed or interrupted batch that this step cordoned
	// cordoned, and recorded, instead of uncordoning those whose upgrade action had not started (and
	// draining them again on resume). Resume goes on from them; `drydock rollback` or `drydock
	// uncordon` lets them go. A node whose action started always stays cordoned; a node an admin
	// had cordoned always stays cordoned.
	KeepCordoned bool `json:"keepCordoned,omitempty"`
}

// Name is the kind.
func (*Step) Name() string { return Kind.Name }

// ValidateSettings checks the settings.
func (s *Step) ValidateSettings() []runbook.FieldError {
	errs := s.Action.Validate("action")
	if strings.TrimSpace(s.GroupBy) == "" {
		errs = append(errs, runbook.FieldError{Field: "groupBy", Message: "needs a preset (eks, gke, aks, role) or a node label key"})
	}
	if _, err := labels.Parse(s.Selector); err != nil {
		errs = append(errs, runbook.FieldError{Field: "selector", Message: err.Error()})
	}
	seen := map[string]bool{}
	for i, g := range s.Order {
		if seen[g] {
			errs = append(errs, runbook.FieldError{Field: fmt.Sprintf("order[%d]", i), Message: fmt.Sprintf("group %q listed twice", g)})
		}
		seen[g] = true
	}
	errs = append(errs, s.Health.Validate("health")...)
	errs = append(errs, s.Drain.Validate("drain")...)
	return errs
}

// Group is a node group.
type Group struct {
	Name  string
	Nodes []string
}

func (s *Step) labelKey() string {
	if k, ok := Presets[s.GroupBy]; ok {
		return k
	}
	return s.GroupBy
}

func (s *Step) groupOf(n *corev1.Node) (string, bool) {
	key := s.labelKey()
	if prefix, ok := strings.CutSuffix(key, "*"); ok {
		var roles []string
		for k := range n.Labels {
			if r, ok := strings.CutPrefix(k, prefix); ok && r != "" {
				roles = append(roles, r)
			}
		}
		if len(roles) == 0 {
			return "", false
		}
		sort.Strings(roles)
		return strings.Join(roles, ","), true
	}
	g, ok := n.Labels[key]
	return g, ok && g != ""
}

// Groups resolves the groups in the order they will run.
func (s *Step) Groups(ctx context.Context, env *runbook.Env) ([]Group, []string, error) {
	list, err := env.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: s.Selector})
	if err != nil {
		return nil, nil, fmt.Errorf("list nodes: %w", err)
	}
	if len(list.Items) == 0 && s.Selector != "" {
		return nil, nil, rollout.NoNodeMatches(ctx, env, "nodegroups: selector", s.Selector)
	}
	byGroup := map[string][]string{}
	var ungrouped []string
	for i := range list.Items {
		n := &list.Items[i]
		if g, ok := s.groupOf(n); ok {
			byGroup[g] = append(byGroup[g], n.Name)
		} else {
			ungrouped = append(ungrouped, n.Name)
		}
	}
	var groups []Group
	all := slices.Sorted(maps.Keys(byGroup))
	for _, g := range s.Order {
		nodes, ok := byGroup[g]
		if !ok {
			return nil, nil, runbook.Invalid(fmt.Errorf("nodegroups: group %q in order has no nodes (label %s): fix the name; the groups are %s",
				g, s.labelKey(), strings.Join(all, ", ")))
		}
		sort.Strings(nodes)
		groups = append(groups, Group{g, nodes})
		delete(byGroup, g)
	}
	var rest []string
	for g := range byGroup {
		rest = append(rest, g)
	}
	sort.Strings(rest)
	for _, g := range rest {
		nodes := byGroup[g]
		sort.Strings(nodes)
		groups = append(groups, Group{g, nodes})
	}
	if len(groups) == 0 {
		return nil, nil, runbook.Invalid(fmt.Errorf("nodegroups: no node%s has the label %s: fix groupBy; the nodes' labels are %s",
			s.selected(), s.labelKey(), rollout.LabelSummary(list.Items, 12)))
	}
	sort.Strings(ungrouped)
	return groups, ungrouped, nil
}

func (s *Step) selected() string {
	if s.Selector == "" {
		return ""
	}
	return " that the selector " + s.Selector + " matches"
}

func (s *Step) maxUnavailable(n int) int {
	if s.MaxUnavailable.IsZero() {
		return 1
	}
	return min(s.MaxUnavailable.Scaled(n), n)
}

// Plan lists the groups, their nodes and the batch size.
func (s *Step) Plan(ctx context.Context, env *runbook.Env) ([]string, error) {
	groups, ungrouped, err := s.Groups(ctx, env)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, g := range groups {
		out = append(out, fmt.Sprintf("group %d/%d %s: %d node(s), %d at a time: %s", i+1, len(groups), g.Name, len(g.Nodes), s.maxUnavailable(len(g.Nodes)), strings.Join(g.Nodes, ", ")))
	}
	if len(ungrouped) > 0 {
		out = append(out, fmt.Sprintf("not in any group (left alone): %s", strings.Join(ungrouped, ", ")))
	}
	return out, nil
}

// PlanNodes is the node groups' part of the whole-runbook plan: every group in order, in batches of
// maxUnavailable, each batch planned as drained together against the cluster as it is. Nodes
// already at the target, or upgraded by an earlier step, are left.
func (s *Step) PlanNodes(ctx context.Context, env *runbook.Env) (*runbook.NodePlan, error) {
	groups, _, err := s.Groups(ctx, env)
	if err != nil {
		return nil, err
	}
	out, err := s.planGroups(ctx, env, groups)
	if err != nil {
		return nil, err
	}
	act, assumed := s.Action.Forecast()
	if s.PauseAfterGroup && len(groups) > 1 {
		assumed = append(assumed, "the pause after each group waits for a person: not counted")
	}
	runbook.ForecastNodes(out, &act, runbook.Estimate{}, assumed, drain.PlannerFor(env, s.Drain).Cost()) // the snapshot planGroups used
	return out, nil
}

func (s *Step) planGroups(ctx context.Context, env *runbook.Env, groups []Group) (*runbook.NodePlan, error) {
	list, err := env.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: s.Selector})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	byName := map[string]*corev1.Node{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	planner := drain.PlannerFor(env, s.Drain) // shared with the steps before it in the whole-runbook plan, played forward
	out := &runbook.NodePlan{}
	for _, g := range groups {
		var pending []string
		for _, name := range g.Nodes {
			n := byName[name]
			if n == nil {
				continue // gone since the groups were read
			}
			if why := rollout.Leave(env, n); why != "" {
				out.Left = append(out.Left, runbook.LeftNode{Node: name, Reason: why})
				continue
			}
			pending = append(pending, name)
		}
		batch := s.maxUnavailable(len(g.Nodes))
		for len(pending) > 0 {
			n, plan, err := fit(ctx, planner, pending[:min(batch, len(pending))])
			if err != nil {
				return nil, err
			}
			pending = pending[n:]
			planner.Advance(plan)
			out.Batches = append(out.Batches, runbook.NodeBatch{Group: g.Name, Nodes: drain.Planned(plan, s.Drain)})
		}
	}
	return out, nil
}

// replan plans a group again just before it starts, since the cluster has changed since the run
// began: a certain blocker stops the step before the group's first node moves, unless the runbook
// lets the step proceed (then each node is refused when it gets there, if still blocked).
func (s *Step) replan(ctx context.Context, env *runbook.Env, g Group) error {
	plan, err := s.planGroups(ctx, env, []Group{g})
	if err != nil {
		return err
	}
	certain := plan.Certain()
	for _, f := range certain {
		env.Find(f)
	}
	if len(certain) == 0 || env.Spec.OnBlocked == runbook.OnBlockedProceed {
		return nil
	}
	var parts []string
	for _, f := range certain {
		parts = append(parts, f.Object+": "+f.Message)
	}
	return runbook.Blocked(fmt.Errorf("blocked before its first node moved (planned again as it starts): %s", strings.Join(parts, "; ")))
}

// Run upgrades the groups in order.
func (s *Step) Run(ctx context.Context, env *runbook.Env) error {
	if err := rollout.CheckSkew(ctx, env); err != nil {
		return runbook.Blocked(err)
	}
	groups, _, err := s.Groups(ctx, env)
	if err != nil {
		return err
	}
	gates, err := rollout.NewGates(ctx, env, s.Health)
	if err != nil {
		return err
	}
	defer gates.Stop()
	todo, total, err := s.announce(ctx, env, groups)
	if err != nil {
		return err
	}
	done := 0
	for gi, g := range groups {
		if env.Done("group/" + g.Name) {
			done += len(todo[gi].Nodes)
			continue
		}
		if err := s.replan(ctx, env, g); err != nil {
			return fmt.Errorf("group %s: %w", g.Name, err)
		}
		batch := s.maxUnavailable(len(g.Nodes))
		env.Progress(fmt.Sprintf("group %s (%d/%d): %d node(s), %d at a time", g.Name, gi+1, len(groups), len(todo[gi].Nodes), batch), done, total)
		if err := s.runGroup(ctx, env, gates, todo[gi], batch, &done, total); err != nil {
			return fmt.Errorf("group %s: %w", g.Name, err)
		}
		if err := gates.Gate(ctx, "after group "+g.Name); err != nil {
			return err
		}
		if err := env.MarkDone(ctx, "group/"+g.Name); err != nil {
			return err
		}
		if s.PauseAfterGroup && gi < len(groups)-1 {
			if err := env.Pause(ctx, "group/"+g.Name, fmt.Sprintf("group %s is done; next: %s", g.Name, groups[gi+1].Name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// announce reports each node of the groups as waiting, or skipped with why when the step leaves it
// alone (upgraded by an earlier step such as the canary, or at the target already), and returns the
// groups with only the nodes the step will do (a node left alone takes no slot of a batch) and how
// many those are, nodes done in an earlier attempt of this step included.
func (s *Step) announce(ctx context.Context, env *runbook.Env, groups []Group) ([]Group, int, error) {
	list, err := env.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: s.Selector})
	if err != nil {
		return nil, 0, fmt.Errorf("list nodes: %w", err)
	}
	why := map[string]string{}
	for i := range list.Items {
		if n := &list.Items[i]; !env.Done("upgraded/" + n.Name) {
			why[n.Name] = rollout.Leave(env, n)
		}
	}
	todo := make([]Group, len(groups))
	total := 0
	for i, g := range groups {
		todo[i].Name = g.Name
		for _, n := range g.Nodes {
			switch {
			case why[n] != "":
				env.Emit(&runbook.NodeChanged{Node: n, Group: g.Name, State: runbook.NodeSkipped, Detail: why[n]})
				continue
			case !env.Done("upgraded/" + n):
				env.NodeInGroup(n, g.Name, runbook.NodeWaiting)
			}
			todo[i].Nodes = append(todo[i].Nodes, n)
			total++
		}
	}
	return todo, total, nil
}

// runGroup upgrades a group's nodes in batches of at most batch nodes at once; the next batch
// starts only when the cluster is healthy again.
func (s *Step) runGroup(ctx context.Context, env *runbook.Env, gates *rollout.Gates, g Group, batch int, done *int, total int) error {
	var pending []string
	for _, node := range g.Nodes {
		if env.Done("upgraded/" + node) {
			*done++
		} else {
			pending = append(pending, node)
		}
	}
	for len(pending) > 0 {
		n, plan, err := s.batchThatFits(ctx, env, pending[:min(batch, len(pending))])
		if err != nil {
			return err
		}
		nodes := pending[:n]
		pending = pending[n:]
		planned, err := s.cordonBatch(ctx, env, plan)
		if err != nil {
			return rollout.AfterFailure(ctx, env, err, nodes, s.KeepCordoned)
		}
		bctx, cancel := context.WithCancelCause(ctx)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var first error
		for _, node := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				skipped, err := rollout.CyclePlanned(bctx, env, node, planned[node], s.Action, s.Drain)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel(err)
					return
				}
				mu.Lock()
				*done++
				d := *done
				mu.Unlock()
				what := "upgraded"
				if skipped {
					what = "already at " + env.Target + ": skipped"
				}
				env.Progress(fmt.Sprintf("group %s: node %s %s", g.Name, node, what), d, total)
			}()
		}
		wg.Wait()
		cancel(nil)
		if first == nil && ctx.Err() != nil {
			first = context.Cause(ctx)
		}
		if first != nil {
			return rollout.AfterFailure(ctx, env, first, nodes, s.KeepCordoned)
		}
		if len(pending) > 0 {
			if err := gates.Gate(ctx, fmt.Sprintf("group %s after %s", g.Name, strings.Join(nodes, ", "))); err != nil {
				return err
			}
		}
		if err := env.PauseIfRequested(ctx, "after/"+strings.Join(nodes, ","), fmt.Sprintf("paused at your request after %s (group %s)", strings.Join(nodes, ", "), g.Name)); err != nil {
			return err
		}
	}
	return nil
}

// cordonBatch refuses the batch when a blocker is certain, then cordons its nodes before any of
// them drains (as kubectl drain does with several nodes): a pod evicted from one would otherwise find
// a place on another not yet cordoned and move twice. It returns the plans of the nodes it cordoned
// (refused already); the others (at the target already, or drained in an earlier attempt) are
// decided by their own cycle.
func (s *Step) cordonBatch(ctx context.Context, env *runbook.Env, plan *drain.Plan) (map[string]*drain.NodePlan, error) {
	todo := &drain.Plan{}
	for _, np := range plan.Nodes {
		if env.Done("upgraded/"+np.Node) || env.Done("drained/"+np.Node) {
			continue
		}
		var n *corev1.Node
		if err := kube.Retry(ctx, nil, func(ctx context.Context) error {
			var err error
			n, err = env.Kube.CoreV1().Nodes().Get(ctx, np.Node, metav1.GetOptions{})
			return err
		}); err != nil {
			return nil, fmt.Errorf("node %q: %w", np.Node, err)
		}
		if !rollout.Upgraded(n, env.Target) {
			todo.Nodes = append(todo.Nodes, np)
		}
	}
	if err := drain.Refuse(env, todo, s.Drain); err != nil {
		return nil, err
	}
	planned := map[string]*drain.NodePlan{}
	var nodes []string
	for i := range todo.Nodes {
		planned[todo.Nodes[i].Node] = &todo.Nodes[i]
		nodes = append(nodes, todo.Nodes[i].Node)
	}
	return planned, drain.CordonAll(ctx, env, nodes)
}

// batchThatFits is how many of nodes (a prefix, at least one) the run drains at once now: the drain
// of the candidates is planned together and the batch shrinks until the evicted pods fit on the
// nodes that stay (draining every node a workload may run on at once would leave its replacements
// Pending and its budget stuck at zero). Its plan is each node's drain: the nodes start at once, right
// after it.
func (s *Step) batchThatFits(ctx context.Context, env *runbook.Env, nodes []string) (int, *drain.Plan, error) {
	n, plan, err := fit(ctx, drain.NewPlanner(env.Kube, s.Drain, env.RunID), nodes)
	if err == nil && n < len(nodes) {
		env.Progress(fmt.Sprintf("%d nodes at once would leave pods with nowhere to go: draining %d", len(nodes), n), 0, 0)
	}
	return n, plan, err
}

// fit is the longest prefix of nodes, down to one node, whose drain leaves every pod a place to go
// (no capacity blocker), with its plan: the run drains its batches so, and the plan plans them so.
func fit(ctx context.Context, planner *drain.Planner, nodes []string) (int, *drain.Plan, error) {
	for n := len(nodes); ; n-- {
		plan, err := planner.Plan(ctx, nodes[:n])
		if err != nil {
			return 0, nil, err
		}
		fits := true
		for _, b := range plan.Blockers() {
			if b.Kind == drain.BlockCapacity {
				fits = false
				break
			}
		}
		if fits || n == 1 {
			return n, plan, nil
		}
	}
}

// WillUndo says what Rollback does, node by node, for the preview before a person confirms.
func (s *Step) WillUndo(changes []runbook.Change, target, runID, step string) []string {
	return rollout.DescribeUndo(s.Action, changes, target, runID, step)
}

// WontUndo: see rollout.Action.WontUndo.
func (s *Step) WontUndo() string { return s.Action.WontUndo() }

// Rollback uncordons what the step cordoned and runs the rollback action per upgraded node.
func (s *Step) Rollback(ctx context.Context, env *runbook.Env) error {
	return rollout.Undo(ctx, env, s.Action, s.Drain, s.Health)
}

// Access says what the step needs: a drain's permissions and what its health gates watch.
func (s *Step) Access() []runbook.Access {
	return append(drain.AccessFor(s.Drain), rollout.GatesAccess()...)
}
