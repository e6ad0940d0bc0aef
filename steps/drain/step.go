package drain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"golang.org/x/sync/errgroup"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// Kind registers the step.
var Kind = runbook.Kind{
	Name:        "drain",
	Description: "cordon and drain nodes without breaking a PodDisruptionBudget; blockers are found before anything moves",
	Phase:       runbook.PhaseNodes,
	New:         func() runbook.Step { return &Step{} },
}

// Annotations drydock puts on a node while it holds it.
const (
	AnnotationRunID      = "drydock.dev/run-id"
	AnnotationCordonedBy = "drydock.dev/cordoned-by" // the run that cordoned it: only that run uncordons it
)

// Step is the drain step's settings.
type Step struct {
	// Nodes to drain, by name.
	Nodes []string `json:"nodes,omitempty"`
	// Selector picks the nodes to drain by label, as in kubectl -l.
	Selector string `json:"selector,omitempty"`
	Options
	// KeepCordoned leaves the nodes drydock cordoned cordoned when the drain fails or is aborted
	// (by default they are uncordoned; a node an admin had cordoned always stays cordoned).
	KeepCordoned bool `json:"keepCordoned,omitempty"`
}

// Name is the kind.
func (*Step) Name() string { return Kind.Name }

// ValidateSettings checks that nodes are named one way and the selector parses.
func (s *Step) ValidateSettings() []runbook.FieldError {
	var errs []runbook.FieldError
	if len(s.Nodes) == 0 && s.Selector == "" {
		errs = append(errs, runbook.FieldError{Message: "name the nodes to drain: nodes: [..] or selector: ..."})
	}
	if len(s.Nodes) > 0 && s.Selector != "" {
		errs = append(errs, runbook.FieldError{Field: "selector", Message: "give nodes or selector, not both"})
	}
	if _, err := labels.Parse(s.Selector); err != nil {
		errs = append(errs, runbook.FieldError{Field: "selector", Message: err.Error()})
	}
	return append(errs, s.Options.Validate("")...)
}

// ResolveNodes returns the node names the step drains, sorted.
func (s *Step) ResolveNodes(ctx context.Context, c kubernetes.Interface) ([]string, error) {
	if len(s.Nodes) > 0 {
		names := append([]string(nil), s.Nodes...)
		for _, n := range names {
			if _, err := c.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{}); err != nil {
				if apierrors.IsNotFound(err) {
					return nil, runbook.Invalid(fmt.Errorf("node %q not found: `kubectl get nodes` lists them", n))
				}
				return nil, err
			}
		}
		return names, nil
	}
	list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: s.Selector})
	if err != nil {
		return nil, fmt.Errorf("list nodes %q: %w", s.Selector, err)
	}
	if len(list.Items) == 0 {
		return nil, runbook.Invalid(fmt.Errorf("no node matches %q", s.Selector))
	}
	var names []string
	for _, n := range list.Items {
		names = append(names, n.Name)
	}
	sort.Strings(names)
	return names, nil
}

// Plan describes the drain without changing anything.
func (s *Step) Plan(ctx context.Context, env *runbook.Env) ([]string, error) {
	nodes, err := s.ResolveNodes(ctx, env.Kube)
	if err != nil {
		return nil, err
	}
	plan, err := NewPlanner(env.Kube, s.Options, "").Plan(ctx, nodes)
	if err != nil {
		return nil, err
	}
	return DescribePlan(plan), nil
}

// DescribePlan renders a plan as lines.
func DescribePlan(plan *Plan) []string {
	var out []string
	for _, n := range plan.Nodes {
		cordon := "cordon"
		if n.AlreadyCordoned {
			cordon = "already cordoned (stays cordoned)"
		}
		blocked := map[string]bool{} // a pod with a certain blocker is listed once, under BLOCK
		for _, b := range n.Blockers {
			if b.Fatal && b.Pod != "" {
				blocked[b.Pod] = true
			}
		}
		evict := 0
		for _, p := range n.Evict {
			if !blocked[p.String()] {
				evict++
			}
		}
		out = append(out, fmt.Sprintf("node %s: %s, evict %d pod(s), skip %d", n.Node, cordon, evict, len(n.Skip)))
		if f := n.Forecast; f != nil && !f.Drain.Never() && evict > 0 {
			out = append(out, fmt.Sprintf("  forecast: the drain takes %s, paced by %s", f.Drain, f.PacedBy))
		}
		for _, p := range n.Evict {
			if blocked[p.String()] {
				continue
			}
			pdb := ""
			if len(p.PDBs) > 0 {
				pdb = " [PDB " + strings.Join(p.PDBs, ", ") + "]"
			}
			if len(p.Services) > 0 {
				pdb += " [Service " + strings.Join(p.Services, ", ") + "]"
			}
			out = append(out, fmt.Sprintf("  evict %s (%s, priority %d)%s", p, p.Owner, p.Priority, pdb))
			if p.Surge != "" {
				out = append(out, fmt.Sprintf("        first restart Deployment %s/%s (rollout restart): it is a Service's only ready endpoint, and goes once a replacement is ready elsewhere", p.Namespace, p.Surge))
			}
		}
		for _, sk := range n.Skip {
			out = append(out, fmt.Sprintf("  skip  %s: %s", sk.Pod, sk.Reason))
		}
		for _, b := range n.Blockers {
			level := "WAIT "
			if b.Fatal {
				level = "BLOCK"
			}
			out = append(out, fmt.Sprintf("  %s %s", level, b))
		}
	}
	return out
}

// Run plans, refuses to start when a blocker is certain, then drains node after node.
func (s *Step) Run(ctx context.Context, env *runbook.Env) error {
	nodes, err := s.ResolveNodes(ctx, env.Kube)
	if err != nil {
		return err
	}
	var todo []string
	for _, n := range nodes {
		if env.Done("drained/" + n) {
			// Drained in an earlier attempt: done only while it is still cordoned. Someone (or a
			// cleanup that did not finish) made it schedulable again: pods may be back, so drain again.
			node, err := getNode(ctx, env, n)
			if err != nil {
				return err
			}
			if node == nil || node.Spec.Unschedulable {
				continue
			}
			env.Node(n, runbook.NodeWaiting, "was drained, but is schedulable again: draining it again")
			if err := env.Unmark(ctx, "drained/"+n); err != nil {
				return err
			}
		}
		todo = append(todo, n)
	}
	if len(todo) == 0 {
		return nil
	}
	plan, err := NewPlanner(env.Kube, s.Options, "").Plan(ctx, todo)
	if err != nil {
		return err
	}
	if err := Refuse(env, plan, s.Options); err != nil {
		return err
	}
	fail := func(err error) error {
		cordoned := s.cordoned(env)
		if !s.KeepCordoned {
			err = LetGoAfter(ctx, env, err, cordoned)
		}
		tellUnrecorded(env, err, cordoned, s.KeepCordoned)
		if ErrBlocked(err) {
			return runbook.Blocked(err)
		}
		return err
	}
	// Every node is cordoned before the first drains, as kubectl drain does: a pod evicted from one
	// would otherwise find a place on the next and move twice. The plan made them room together.
	var planned []string
	for _, np := range plan.Nodes {
		planned = append(planned, np.Node)
	}
	if err := CordonAll(ctx, env, planned); err != nil {
		return fail(err)
	}
	for _, np := range plan.Nodes {
		var deleted *NodeDeletedError
		if err := DrainPlanned(ctx, env, np, s.Options); errors.As(err, &deleted) {
			continue // said by DrainPlanned: the node is gone, the others still drain
		} else if err != nil {
			return fail(err)
		}
		if err := env.PauseIfRequested(ctx, "after/"+np.Node, "paused at your request after node "+np.Node); err != nil {
			return err
		}
	}
	return nil
}

// Refuse reports a plan's blockers as findings, before anything is touched, and returns the error
// that stops the drain when one is certain (exit 3). With disableEviction budgets are not asked, so
// nothing is refused.
func Refuse(env *runbook.Env, plan *Plan, opts Options) error {
	var fatal, nodes []string
	for _, np := range plan.Nodes {
		nodes = append(nodes, np.Node)
	}
	for _, b := range plan.Blockers() {
		f := blockerFinding(b, opts)
		if f.Severity == runbook.SeverityError {
			fatal = append(fatal, b.String())
		}
		env.Find(f)
	}
	if len(fatal) > 0 {
		return runbook.Blocked(fmt.Errorf("drain %s: blocked before anything moved: %s", strings.Join(nodes, ", "), strings.Join(fatal, "; ")))
	}
	return nil
}

// blockerFinding is a blocker as a finding: a fatal blocker is an error (certain: the drain cannot
// finish) unless --disable-eviction deletes past it; the rest are warnings (they may clear).
func blockerFinding(b Blocker, opts Options) runbook.Finding {
	sev := runbook.SeverityWarning
	if b.Fatal && !opts.DisableEviction {
		sev = runbook.SeverityError
	}
	obj := "node/" + b.Node
	if b.Pod != "" {
		obj = "pod/" + b.Pod
	}
	return runbook.Finding{Severity: sev, Object: obj, Message: b.Message, Hint: b.Fix}
}

// Planned turns a drain plan into the nodes of the whole-runbook plan, with the same blockers, by
// the same rule, as Refuse.
func Planned(plan *Plan, opts Options) []runbook.PlannedNode {
	var out []runbook.PlannedNode
	for _, np := range plan.Nodes {
		pn := runbook.PlannedNode{Node: np.Node, Evict: len(np.Evict), Skip: len(np.Skip), AlreadyCordoned: np.AlreadyCordoned, Forecast: np.Forecast}
		for _, b := range np.Blockers {
			pn.Blockers = append(pn.Blockers, blockerFinding(b, opts))
		}
		out = append(out, pn)
	}
	return out
}

// PlanNodes is the drain step's part of the whole-runbook plan: its nodes, drained as one batch;
// in a resumed run, those drained already are left.
func (s *Step) PlanNodes(ctx context.Context, env *runbook.Env) (*runbook.NodePlan, error) {
	nodes, err := s.ResolveNodes(ctx, env.Kube)
	if err != nil {
		return nil, err
	}
	out := &runbook.NodePlan{}
	var pending []string
	for _, n := range nodes {
		if env.Done("drained/" + n) {
			out.Left = append(out.Left, runbook.LeftNode{Node: n, Reason: "drained earlier in this run"})
		} else {
			pending = append(pending, n)
		}
	}
	if len(pending) == 0 {
		return out, nil
	}
	pl := PlannerFor(env, s.Options)
	plan, err := pl.Plan(ctx, pending)
	if err != nil {
		return nil, err
	}
	pl.Advance(plan)
	out.Batches = []runbook.NodeBatch{{Nodes: Planned(plan, s.Options)}}
	runbook.ForecastNodes(out, nil, runbook.Estimate{}, nil, pl.Cost())
	return out, nil
}

// DrainPlanned is the drain sequence of one planned node, the same for drain, canary and
// nodegroups: cordon (journaled first), evict what the plan says, record the Drained event, then
// the drained/<node> checkpoint.
func DrainPlanned(ctx context.Context, env *runbook.Env, np NodePlan, opts Options) error {
	// Budgets relaxed for this node before a crash go back first; a stall relaxes them again.
	if err := RestoreBudgets(ctx, env, np.Node); err != nil {
		return err
	}
	if err := Cordon(ctx, env, np.Node); err != nil {
		return err
	}
	np, err := replanLate(ctx, env, np, opts)
	if err != nil {
		return err
	}
	total := len(np.Evict)
	d := &Drainer{Client: env.Kube, Options: opts, Watches: env.Watches(), Progress: PodReporter(env, np.Node, total)}
	// A budget is relaxed for this node when allowBudgetRelax lets the stall detector do it, or when
	// a person approves it at the terminal (then with allowBudgetRelax's limits, or the defaults).
	cfg := opts.AllowBudgetRelax
	if cfg == nil {
		cfg = &BudgetRelax{}
	}
	d.autoRelax, d.approved = opts.AllowBudgetRelax != nil, env.RelaxApproved
	d.relax = func(ctx context.Context, pdb *policyv1.PodDisruptionBudget, blocked *corev1.Pod, how string) error {
		key := pdb.Namespace + "/" + pdb.Name
		r, ok := relaxFor(pdb, blocked)
		if !ok {
			err := fmt.Errorf("PDB %s: no change to the budget alone lets the drain go on", key)
			env.Logf("warning", "not relaxed (%s): %v", how, err)
			return err
		}
		rec, err := relaxBudget(ctx, env, cfg, pdb, r, np.Node)
		if err != nil {
			env.Logf("warning", "not relaxed (%s): %v", how, err)
			return err
		}
		env.Logf("warning", "relaxed PDB %s for node %s (%s, %d of %d): %s; restored when the node is drained, at the latest at %s",
			key, np.Node, how, rec.Count, cfg.max(), r.What, rec.Expires.Local().Format(time.TimeOnly))
		return nil
	}
	// Each eviction is journaled before it is sent (the pods sent so far): a journal that cannot be
	// written stops the drain before the next eviction.
	var sent []string
	d.Record = func(ctx context.Context, p PodRef) error {
		sent = append(sent, p.String())
		return env.SaveData(ctx, "evicted/"+np.Node, sent)
	}
	env.Node(np.Node, runbook.NodeDraining, fmt.Sprintf("evicting %d pod(s)", total))
	err = d.Drain(ctx, np)
	// The budgets relaxed for this node go back as they were, whatever the drain's outcome.
	if rerr := restoreAfter(ctx, env, np.Node); rerr != nil {
		err = errors.Join(err, rerr)
	}
	var deleted *NodeDeletedError
	if errors.As(err, &deleted) {
		env.Node(np.Node, runbook.NodeDeleted, fmt.Sprintf("deleted while drydock drained it, %d of %d pod(s) still on it: not evicted; the cluster removes them", deleted.Left, total))
	}
	if err != nil {
		return err
	}
	nodeEvent(ctx, env, np.Node, "Drained", fmt.Sprintf("drydock run %s drained the node (%d pods moved)", env.RunID, total))
	return env.MarkDone(ctx, "drained/"+np.Node)
}

// replanLate plans the node's drain again when pods reached it after the plan was made and before
// its cordon (the replacement of a pod drained from a node before it, a scale-up): the plan only
// knows the pods that were there, and a pod it does not know would stay on the node through its
// upgrade. The node is cordoned now, so no more arrive; one list of the node's pods checks.
func replanLate(ctx context.Context, env *runbook.Env, np NodePlan, opts Options) (NodePlan, error) {
	var pods *corev1.PodList
	if err := kube.Retry(ctx, nil, func(ctx context.Context) error {
		var err error
		pods, err = env.Kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + np.Node})
		return err
	}); err != nil {
		return np, fmt.Errorf("drain node %q: list its pods after the cordon: %w", np.Node, err)
	}
	known := map[string]bool{}
	for _, p := range np.Evict {
		known[p.UID] = true
	}
	for _, s := range np.Skip {
		known[s.Pod.UID] = true
	}
	for _, b := range np.Blockers {
		known[b.Pod] = true
	}
	var late []string
	for _, p := range pods.Items {
		if p.Spec.NodeName == np.Node && !known[string(p.UID)] && !known[p.Namespace+"/"+p.Name] {
			late = append(late, p.Namespace+"/"+p.Name)
		}
	}
	if len(late) == 0 {
		return np, nil
	}
	sort.Strings(late)
	env.Logf("info", "node %s: %d pod(s) arrived after the plan (%s): planning its drain again", np.Node, len(late), strings.Join(late, ", "))
	plan, err := NewPlanner(env.Kube, opts, env.RunID).Plan(ctx, []string{np.Node})
	if err != nil {
		return np, fmt.Errorf("drain node %q: plan again: %w", np.Node, err)
	}
	if err := Refuse(env, plan, opts); err != nil {
		return np, err
	}
	return plan.Nodes[0], nil
}

// restoreAfter restores the budgets relaxed for node within CleanupTimeout, even when ctx is over
// (a failed or interrupted drain); with the lock lost it touches nothing (the journal and the
// budget's expiry bring them back).
func restoreAfter(ctx context.Context, env *runbook.Env, node string) error {
	if len(relaxedNow(env, node)) == 0 || runbook.LockLost(ctx) {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
	defer cancel()
	return RestoreBudgets(cctx, env, node)
}

// PodReporter sends the Drainer's progress on node's pods as events, counting the pods gone. The
// Drainer reports from its eviction goroutines, so the count is kept under a lock.
func PodReporter(env *runbook.Env, node string, total int) func(PodRef, PodUpdate) {
	var mu sync.Mutex
	done := 0
	return func(p PodRef, u PodUpdate) {
		mu.Lock()
		defer mu.Unlock()
		if u.State == runbook.PodGone {
			done++
		}
		env.Emit(&runbook.PodChanged{Node: node, Pod: p.String(), State: u.State, Reason: u.Reason, PDB: u.PDB, Done: done, Total: total, Chain: u.Chain})
	}
}

// Cordon marks a node unschedulable and records that this run did it, unless it already was
// (then someone else cordoned it, and drydock will never uncordon it).
func Cordon(ctx context.Context, env *runbook.Env, node string) error {
	n, err := getNode(ctx, env, node)
	if err != nil {
		return fmt.Errorf("cordon node %q: %w", node, err)
	}
	if n == nil {
		return fmt.Errorf("cordon node %q: it was deleted", node)
	}
	if n.Spec.Unschedulable {
		if n.Annotations[AnnotationCordonedBy] == env.RunID {
			return nil // this run cordoned it before a crash; the change is recorded
		}
		env.Node(node, runbook.NodeCordoned, "already cordoned by someone else: it will stay cordoned")
		return nil
	}
	if err := env.Record(ctx, runbook.Change{Kind: "cordon", Object: "node/" + node}); err != nil {
		return err
	}
	patch := map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{AnnotationCordonedBy: env.RunID, AnnotationRunID: env.RunID}},
		"spec":     map[string]any{"unschedulable": true},
	}
	b, _ := json.Marshal(patch)
	if err := patchNode(ctx, env, node, b); err != nil {
		return fmt.Errorf("cordon node %q: %w", node, err)
	}
	nodeEvent(ctx, env, node, "Cordoned", fmt.Sprintf("drydock run %s cordoned the node", env.RunID))
	env.Node(node, runbook.NodeCordoned, "")
	return nil
}

// CordonAll cordons nodes (Cordon each, eight at a time) before any of them drains.
func CordonAll(ctx context.Context, env *runbook.Env, nodes []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, node := range nodes {
		g.Go(func() error { return Cordon(gctx, env, node) })
	}
	return g.Wait()
}

// Uncordon undoes Cordon: only if this run cordoned the node.
func Uncordon(ctx context.Context, env *runbook.Env, node string) error {
	n, err := getNode(ctx, env, node)
	if err != nil {
		return fmt.Errorf("uncordon node %q: %w", node, err)
	}
	if n == nil || n.Annotations[AnnotationCordonedBy] != env.RunID {
		return nil // not ours (anymore): leave it as it is
	}
	patch := `{"metadata":{"annotations":{"` + AnnotationCordonedBy + `":null,"` + AnnotationRunID + `":null}},"spec":{"unschedulable":false}}`
	if err := patchNode(ctx, env, node, []byte(patch)); err != nil {
		return fmt.Errorf("uncordon node %q: %w", node, err)
	}
	nodeEvent(ctx, env, node, "Uncordoned", fmt.Sprintf("drydock run %s uncordoned the node", env.RunID))
	env.Node(node, runbook.NodeUncordoned, "")
	return nil
}

// cordoned lists the nodes this step recorded cordoning, oldest first.
func (s *Step) cordoned(env *runbook.Env) []string {
	var nodes []string
	for _, c := range env.Changes() {
		if c.Kind == "cordon" {
			nodes = append(nodes, strings.TrimPrefix(c.Object, "node/"))
		}
	}
	return nodes
}

func (s *Step) uncordonMine(ctx context.Context, env *runbook.Env) error {
	var errs []error
	for _, n := range s.cordoned(env) {
		errs = append(errs, LetGo(ctx, env, n))
	}
	return errors.Join(errs...)
}

// CleanupTimeout bounds the cleanup after a failure or an interruption (uncordoning): with the API
// unreachable, drydock says what it could not undo and how, instead of hanging.
const CleanupTimeout = time.Minute

// LetGo is the failure rule for a node drydock cordoned: the journal first forgets that the node was
// drained, then the node is uncordoned (only if this run cordoned it). A crash between the two
// leaves the node cordoned by this run and not marked drained: resume drains it again. So a node is
// never schedulable while the journal says it is drained.
func LetGo(ctx context.Context, env *runbook.Env, node string) error {
	if err := env.Unmark(ctx, "drained/"+node); err != nil {
		return err
	}
	return Uncordon(ctx, env, node)
}

// LetGoAfter applies LetGo to nodes after err ended a step (a failure, a timeout, Ctrl-C), within
// CleanupTimeout even when ctx is over. What it could not undo is added to err with the command
// that undoes it; err keeps its type.
func LetGoAfter(ctx context.Context, env *runbook.Env, err error, nodes []string) error {
	if len(nodes) == 0 {
		return err
	}
	if runbook.LockLost(ctx) {
		// Another process may own the cluster now: touch nothing. The nodes stay cordoned and the
		// journal says so; the run that holds the lock, or this one resumed, decides.
		return &CleanupError{Err: err, Nodes: nodes, Cause: context.Cause(ctx)}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
	defer cancel()
	var left []string
	var why []error
	for _, n := range nodes {
		if uerr := LetGo(cctx, env, n); uerr != nil {
			left = append(left, n)
			why = append(why, uerr)
		}
	}
	if len(left) == 0 {
		return err
	}
	return &CleanupError{Err: err, Nodes: left, Cause: errors.Join(why...)}
}

// tellUnrecorded says, node by node, what the failure rule did after a journal write the drain
// needed before its next eviction failed (a full disk): the drain stopped before that eviction;
// each node drydock cordoned was uncordoned, or stays cordoned (keepCordoned, or the uncordon
// failed) as the journal records.
func tellUnrecorded(env *runbook.Env, err error, cordoned []string, keep bool) {
	var re *RecordError
	if !errors.As(err, &re) {
		return
	}
	var ce *CleanupError
	left := cordoned
	if !keep {
		left = nil
		if errors.As(err, &ce) {
			left = ce.Nodes
		}
	}
	for _, n := range cordoned {
		f := runbook.Finding{Severity: runbook.SeverityError, Object: "node/" + n}
		switch {
		case slices.Contains(left, n) && keep:
			f.Message = fmt.Sprintf("stays cordoned (keepCordoned), as the journal records: the drain of %s stopped before evicting %s: %v", re.Node, re.Pod, re.Err)
			f.Hint = fmt.Sprintf("free space for the journal, then `drydock drain %s` finishes it, or `drydock uncordon %s` lets it go", n, n)
		case slices.Contains(left, n):
			f.Message = fmt.Sprintf("stays cordoned: the drain of %s stopped before evicting %s (%v), and the uncordon failed", re.Node, re.Pod, re.Err)
			f.Hint = fmt.Sprintf("`drydock uncordon %s`", n)
		default:
			f.Severity = runbook.SeverityWarning
			f.Message = fmt.Sprintf("uncordoned (the failure rule): the drain of %s stopped before evicting %s: %v", re.Node, re.Pod, re.Err)
			f.Hint = fmt.Sprintf("free space for the journal, then `drydock drain %s` again", n)
		}
		env.Find(f)
	}
}

// CleanupError is a step's error after which some nodes could not be uncordoned.
type CleanupError struct {
	Err   error
	Nodes []string
	Cause error
}

func (e *CleanupError) Error() string {
	return fmt.Sprintf("%v; node(s) %s stay cordoned (%v): `drydock uncordon %s` undoes it",
		e.Err, strings.Join(e.Nodes, ", "), e.Cause, strings.Join(e.Nodes, " "))
}

func (e *CleanupError) Unwrap() error { return e.Err }

// getNode reads a node, retrying transient errors; a deleted node is nil.
func getNode(ctx context.Context, env *runbook.Env, name string) (*corev1.Node, error) {
	var n *corev1.Node
	err := kube.Retry(ctx, nil, func(ctx context.Context) error {
		var err error
		n, err = env.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get node %q: %w", name, err)
	}
	return n, nil
}

// patchNode applies a merge patch to a node, retrying transient errors.
func patchNode(ctx context.Context, env *runbook.Env, name string, patch []byte) error {
	return kube.Retry(ctx, nil, func(ctx context.Context) error {
		_, err := env.Kube.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
}

// Rollback restores the budgets this step relaxed and uncordons the nodes it cordoned; never one
// an admin had cordoned.
func (s *Step) Rollback(ctx context.Context, env *runbook.Env) error {
	mine := false
	for _, c := range env.Changes() {
		mine = mine || c.Kind == "cordon" || c.Kind == "budget-relax"
	}
	if !mine {
		return runbook.ErrNothingToUndo
	}
	return errors.Join(RestoreBudgets(ctx, env, ""), s.uncordonMine(ctx, env))
}

// nodeEvent records a Kubernetes Event on the node (best effort: a refused event stops nothing).
func nodeEvent(ctx context.Context, env *runbook.Env, node, reason, msg string) {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: node + ".drydock.", Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: node, UID: types.UID(node), APIVersion: "v1"},
		Reason:         reason,
		Message:        msg,
		Source:         corev1.EventSource{Component: "drydock"},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
		Type:           corev1.EventTypeNormal,
	}
	if _, err := env.Kube.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		env.Logf("warning", "record event %s on node %s: %v", reason, node, err)
	}
}

// AccessFor lists the permissions a drain with these options needs.
func AccessFor(o Options) []runbook.Access {
	out := []runbook.Access{
		{Verb: "get", Resource: "nodes", Why: "drain reads a node before it cordons or uncordons it"},
		{Verb: "list", Resource: "nodes", Why: "drain finds the nodes and where evicted pods can go"},
		{Verb: "watch", Resource: "nodes", Why: "drain follows the nodes"},
		{Verb: "patch", Resource: "nodes", Why: "drain cordons and uncordons"},
		{Verb: "get", Resource: "pods", Why: "drain looks a pod up before it believes a conflict means it is gone"},
		{Verb: "list", Resource: "pods", Why: "drain plans which pods move"},
		{Verb: "watch", Resource: "pods", Why: "drain waits for evicted pods to go"},
		{Verb: "list", Resource: "persistentvolumes", Why: "drain finds pods on local or zonal volumes"},
		{Verb: "list", Group: "policy", Resource: "poddisruptionbudgets", Why: "drain explains what blocks"},
		{Verb: "watch", Group: "policy", Resource: "poddisruptionbudgets", Why: "drain waits on budgets instead of retrying blindly"},
		{Verb: "get", Group: "apps", Resource: "daemonsets", Why: "drain leaves DaemonSet pods alone (kubectl's filter reads their DaemonSet)"},
		{Verb: "create", Resource: "events", Namespace: metav1.NamespaceDefault, Why: "drain records events on the nodes"},
	}
	if !o.DisableServiceGuard {
		out = append(out,
			runbook.Access{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices", Why: "the Service guard finds the Services each pod serves"},
			runbook.Access{Verb: "watch", Group: "discovery.k8s.io", Resource: "endpointslices", Why: "the Service guard waits for another ready endpoint before a Service's last one leaves"},
			runbook.Access{Verb: "get", Group: "apps", Resource: "replicasets", Why: "the Service guard finds the Deployment of a Service's only pod"},
			runbook.Access{Verb: "get", Group: "apps", Resource: "deployments", Why: "the Service guard checks that a Deployment surges before it restarts it"},
			runbook.Access{Verb: "patch", Group: "apps", Resource: "deployments", Why: "the Service guard restarts (rollout restart) the Deployment of a Service's only pod, so that a replacement is Ready first"})
	}
	if o.AllowBudgetRelax != nil {
		out = append(out,
			runbook.Access{Verb: "get", Group: "policy", Resource: "poddisruptionbudgets", Why: "allowBudgetRelax reads a budget before it restores it"},
			runbook.Access{Verb: "patch", Group: "policy", Resource: "poddisruptionbudgets", Why: "allowBudgetRelax relaxes a stalled budget for one node, then restores it"})
	}
	if o.DisableEviction {
		return append(out, runbook.Access{Verb: "delete", Resource: "pods", Why: "disableEviction deletes pods"})
	}
	return append(out, runbook.Access{Verb: "create", Resource: "pods", Subresource: "eviction", Why: "drain evicts pods"})
}

// Access says what the step needs.
func (s *Step) Access() []runbook.Access { return AccessFor(s.Options) }
