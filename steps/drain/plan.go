// Package drain moves every pod off nodes without breaking a PodDisruptionBudget, and explains itself
// when it cannot. It is the `drain` step kind, the engine of `drydock drain`, and what the canary and
// node-group steps use per node.
//
// Pod selection reuses k8s.io/kubectl/pkg/drain's filters (DaemonSet, mirror, emptyDir, unmanaged);
// the eviction loop is drydock's own: kubectl's retries a refused eviction every 5 s, GETs each pod
// every second to see it gone, and says nothing about which budget blocks it. Here a refused eviction
// waits on a watch of the budget's status, deletions are seen on a watch of the node's pods, and a
// blocked pod is reported with its budget and numbers.
package drain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
	kubedrain "k8s.io/kubectl/pkg/drain"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/preflight"
	"github.com/drydock-dev/drydock/runbook"
)

// Options say how to drain.
type Options struct {
	// DeleteEmptyDirData allows evicting pods with emptyDir volumes (their data is lost).
	DeleteEmptyDirData bool `json:"deleteEmptyDirData,omitempty"`
	// Force allows evicting pods that no controller will recreate.
	Force bool `json:"force,omitempty"`
	// AllowLocalVolumes allows evicting pods bound to local PersistentVolumes on the node.
	AllowLocalVolumes bool `json:"allowLocalVolumes,omitempty"`
	// DisableEviction deletes pods instead of evicting them: PodDisruptionBudgets are NOT honoured.
	DisableEviction bool `json:"disableEviction,omitempty"`
	// Concurrency is how many evictions per node are in flight at once (default 10).
	Concurrency int `json:"concurrency,omitempty" jsonschema:"minimum=1"`
	// PriorityOrder: "lowest-first" (default) evicts low-priority pods first; "none" keeps list order.
	PriorityOrder string `json:"priorityOrder,omitempty" jsonschema:"enum=lowest-first,enum=none"`
	// GracePeriodSeconds overrides the pods' termination grace period (default: theirs).
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty"`
	// NodeTimeout bounds the drain of one node (default: only the step's timeout).
	NodeTimeout runbook.Duration `json:"nodeTimeout,omitzero"`
	// StallTimeout fails a drain early, with the budget's chain as the reason, when a budget it waits
	// on has allowed no disruption this long and pods of the budget are not healthy for as long (not
	// replacements still starting): waiting longer would not help (default 10m).
	StallTimeout runbook.Duration `json:"stallTimeout,omitzero"`
	// AllowBudgetRelax lets drydock relax a budget that stalls the drain, for that node only, and
	// restore it afterwards (see BudgetRelax); without it a stall fails the drain with the fix.
	AllowBudgetRelax *BudgetRelax `json:"allowBudgetRelax,omitempty"`
	// MaxNodeDrainTime flags in the plan, before anything moves, a node whose forecast drain takes
	// longer: the time your platform gives a node's drain before it fails the upgrade. A duration, or
	// the platform: eks (15m), aks (30m), gke (1h).
	MaxNodeDrainTime string `json:"maxNodeDrainTime,omitempty" jsonschema:"pattern=^(eks|aks|gke|([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"`
	// DisableServiceGuard lets a pod leave even when it is the last ready endpoint of a Service.
	// By default (the Service guard) such a pod waits until another endpoint of the Service has
	// been ready for endpointSettle; a Deployment's only pod behind a Service is replaced first by
	// a rollout restart, and any other only pod behind a Service blocks the plan.
	DisableServiceGuard bool `json:"disableServiceGuard,omitempty"`
	// EndpointSettle is how long a new endpoint must have been ready before the Service guard
	// counts it: the time kube-proxy needs to route to it on every node (default 5s).
	EndpointSettle runbook.Duration `json:"endpointSettle,omitzero"`
}

// DrainLimits are the platforms' bounds on one node's drain during a managed upgrade.
var DrainLimits = map[string]struct {
	Limit time.Duration
	Why   string
}{
	// https://docs.aws.amazon.com/eks/latest/userguide/managed-node-update-behavior.html: "If the
	// pods don't leave the node within 15 minutes ... the upgrade fails with a PodEvictionFailure".
	"eks": {15 * time.Minute, "EKS fails a managed node group's update when a node's pods have not left within 15 minutes (PodEvictionFailure)"},
	// https://learn.microsoft.com/azure/aks/upgrade-cluster: drainTimeoutInMinutes, default 30.
	"aks": {30 * time.Minute, "AKS fails the upgrade when a node's drain passes drainTimeoutInMinutes (default 30)"},
	// https://cloud.google.com/kubernetes-engine/docs/concepts/node-pool-upgrade-strategies: GKE
	// respects PodDisruptionBudgets for up to 60 minutes, then deletes the pods anyway.
	"gke": {time.Hour, "GKE respects PodDisruptionBudgets for at most 60 minutes of a node's upgrade, then deletes the pods"},
}

// drainLimit is MaxNodeDrainTime as a duration and what it stands for (0: none).
func (o Options) drainLimit() (time.Duration, string, error) {
	if o.MaxNodeDrainTime == "" {
		return 0, "", nil
	}
	if l, ok := DrainLimits[o.MaxNodeDrainTime]; ok {
		return l.Limit, l.Why, nil
	}
	d, err := time.ParseDuration(o.MaxNodeDrainTime)
	if err != nil || d <= 0 {
		return 0, "", fmt.Errorf("%q is neither a platform (eks, aks, gke) nor a duration such as 20m", o.MaxNodeDrainTime)
	}
	return d, "maxNodeDrainTime", nil
}

// Validate checks the options that the schema cannot.
func (o Options) Validate(prefix string) []runbook.FieldError {
	if _, _, err := o.drainLimit(); err != nil {
		return []runbook.FieldError{{Field: strings.TrimPrefix(prefix+".maxNodeDrainTime", "."), Message: err.Error()}}
	}
	return nil
}

// stallTimeout is StallTimeout or its default.
func (o Options) stallTimeout() time.Duration {
	if o.StallTimeout.IsZero() {
		return 10 * time.Minute
	}
	return o.StallTimeout.Duration
}

// PodRef names a pod.
type PodRef struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	UID       string   `json:"uid,omitempty"`
	Owner     string   `json:"owner,omitempty"` // Kind/name of the controller
	Priority  int32    `json:"priority"`
	PDBs      []string `json:"pdbs,omitempty"` // namespace/name of the budgets that cover it
	// Services it is a ready endpoint of (namespace/name) when planned, unless the Service guard is off.
	Services []string `json:"services,omitempty"`
	// Surge: the Deployment (name, in the pod's namespace) drydock restarts before the pod leaves,
	// so that a replacement is Ready first: the pod is the only ready endpoint of a Service.
	Surge string `json:"surge,omitempty"`
}

func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

// SkippedPod is a pod the drain leaves alone, and why.
type SkippedPod struct {
	Pod    PodRef `json:"pod"`
	Reason string `json:"reason"`
}

// BlockerKind classifies what stops a drain.
type BlockerKind string

const (
	BlockNeverDrains   BlockerKind = "pdb-never-drains"   // minAvailable 100%, ≥ replicas, maxUnavailable 0
	BlockNoDisruptions BlockerKind = "pdb-no-disruptions" // disruptionsAllowed is 0 right now
	BlockMultiplePDBs  BlockerKind = "multiple-pdbs"      // the eviction API answers 500
	BlockUnhealthy     BlockerKind = "unhealthy-guarded"  // unhealthy pod, IfHealthyBudget policy
	BlockEmptyDir      BlockerKind = "emptydir"           // needs --delete-emptydir-data
	BlockLocalVolume   BlockerKind = "local-volume"       // needs --allow-local-volumes
	BlockNoController  BlockerKind = "no-controller"      // needs --force
	BlockCapacity      BlockerKind = "capacity"           // does not fit on the nodes that stay
	BlockDeadlock      BlockerKind = "deadlock"           // a budget whose replacements cannot be placed never recovers
	BlockSlow          BlockerKind = "slow"               // the forecast drain is longer than maxNodeDrainTime
	BlockLastEndpoint  BlockerKind = "last-endpoint"      // the only ready endpoint of a Service, nothing to surge
	BlockOther         BlockerKind = "other"
)

// Blocker is something that stops, or will slow, the drain; found before anything is touched.
type Blocker struct {
	Kind    BlockerKind `json:"kind"`
	Node    string      `json:"node"`
	Pod     string      `json:"pod,omitempty"`
	PDB     string      `json:"pdb,omitempty"`
	Message string      `json:"message"`
	Fix     string      `json:"fix,omitempty"`
	// Fatal blockers stop the drain for sure; the others (no disruptions right now) may clear.
	Fatal bool `json:"fatal"`
}

func (b Blocker) String() string {
	s := b.Message
	if b.Fix != "" {
		s += " (fix: " + b.Fix + ")"
	}
	return s
}

// NodePlan is what draining one node involves.
type NodePlan struct {
	Node            string       `json:"node"`
	AlreadyCordoned bool         `json:"alreadyCordoned"`
	Evict           []PodRef     `json:"evict"`
	Skip            []SkippedPod `json:"skip"`
	Blockers        []Blocker    `json:"blockers"`
	// Forecast is how long the drain should take (forecast.go).
	Forecast *runbook.NodeForecast `json:"forecast,omitempty"`
}

// Plan is the drain of a set of nodes, computed without changing anything.
type Plan struct {
	Nodes []NodePlan `json:"nodes"`

	moves map[types.UID]string // where each evicted pod's replacement goes ("": Pending), for Advance
}

// Blockers returns every blocker of every node.
func (p *Plan) Blockers() []Blocker {
	var all []Blocker
	for _, n := range p.Nodes {
		all = append(all, n.Blockers...)
	}
	return all
}

// Fatal says whether some blocker stops the drain for sure.
func (p *Plan) Fatal() bool {
	for _, b := range p.Blockers() {
		if b.Fatal {
			return true
		}
	}
	return false
}

// Planner computes drain plans from one consistent read of the cluster.
type Planner struct {
	Client  kubernetes.Interface
	Options Options
	// RunID, when planning a run that is under way: the nodes that run cordoned count as
	// schedulable for capacity (the run lets them go before it drains the next nodes).
	RunID string
	// Snapshot is the cluster as the planner judges it, read on first use; planners that share one
	// (the steps of a whole-runbook plan) see each other's batches played forward (Advance).
	*Snapshot

	noFixes bool // a plan made to try a fix: it does not look for fixes of its own
}

// NewPlanner plans drains through client under opts. runID names the run under way whose
// cordoned nodes count as schedulable ("" when none: a plan before a run, a standalone drain).
func NewPlanner(client kubernetes.Interface, opts Options, runID string) *Planner {
	return &Planner{Client: client, Options: opts, RunID: runID}
}

// Snapshot is one consistent read of what a drain plan judges (nodes, pods, budgets, volumes), which
// Advance moves past each planned batch as the run would leave the cluster.
type Snapshot struct {
	pdbs  []policyv1.PodDisruptionBudget
	nodes []corev1.Node
	pods  []corev1.Pod
	pvs   map[string]*corev1.PersistentVolume
	// slices: the EndpointSlices by namespace, for the Service guard (nil: not read, or the guard is off)
	slices map[string][]any
	moved  map[types.UID]bool // pods Advance moved to another node: replacements of pods the filters let go
	// measured: each workload's start-up, creation to Ready, measured once (forecast.go)
	measured map[string]Startup
	// What planning cost: the reads (once), and the batches planned (not counting the plans the
	// deadlock detector makes inside one), for the forecast of drydock's own work (Cost).
	loadTook, planTook time.Duration
	plans, depth       int
}

// Cost is what planning cost on this snapshot so far: its reads, and one batch's plan on average.
func (s *Snapshot) Cost() runbook.PlanCost {
	if s == nil {
		return runbook.PlanCost{}
	}
	c := runbook.PlanCost{Load: s.loadTook}
	if s.plans > 0 {
		c.Batch = s.planTook / time.Duration(s.plans)
	}
	return c
}

// load reads nodes, pods, budgets and volumes once.
func (pl *Planner) load(ctx context.Context) error {
	if pl.Snapshot == nil {
		pl.Snapshot = &Snapshot{}
	}
	if pl.nodes != nil {
		return nil
	}
	start := time.Now()
	defer func() { pl.loadTook = time.Since(start) }()
	nodes, err := pl.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	pods, err := pl.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	pdbs, err := pl.Client.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list PodDisruptionBudgets: %w", err)
	}
	pvs, err := pl.Client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list PersistentVolumes: %w", err)
	}
	pl.nodes, pl.pods, pl.pdbs = nodes.Items, pods.Items, pdbs.Items
	pl.pvs = map[string]*corev1.PersistentVolume{}
	for i := range pvs.Items {
		pv := &pvs.Items[i]
		if pv.Spec.ClaimRef != nil {
			pl.pvs[pv.Spec.ClaimRef.Namespace+"/"+pv.Spec.ClaimRef.Name] = pv
		}
	}
	return nil
}

// Plan computes the drain of nodes (all drained together: capacity counts none of them).
func (pl *Planner) Plan(ctx context.Context, nodeNames []string) (*Plan, error) {
	if err := pl.load(ctx); err != nil {
		return nil, err
	}
	if err := pl.loadEndpoints(ctx); err != nil {
		return nil, err
	}
	if pl.depth == 0 {
		start := time.Now()
		defer func() { pl.planTook += time.Since(start); pl.plans++ }()
	}
	pl.depth++
	defer func() { pl.depth-- }()
	draining := map[string]bool{}
	for _, n := range nodeNames {
		draining[n] = true
	}
	plan := &Plan{}
	var allEvicted []corev1.Pod
	for _, name := range nodeNames {
		node := pl.node(name)
		if node == nil {
			return nil, fmt.Errorf("node %q not found", name)
		}
		np, evicted, err := pl.planNode(ctx, node)
		if err != nil {
			return nil, err
		}
		allEvicted = append(allEvicted, evicted...)
		plan.Nodes = append(plan.Nodes, np)
	}
	blockers, moves := pl.capacity(allEvicted, draining)
	blockers = append(blockers, pl.deadlocks(ctx, nodeNames, allEvicted, blockers, moves)...)
	for _, b := range blockers {
		for i := range plan.Nodes {
			if plan.Nodes[i].Node == b.Node {
				plan.Nodes[i].Blockers = append(plan.Nodes[i].Blockers, b)
			}
		}
	}
	plan.moves = moves
	pl.forecast(plan, allEvicted, moves)
	return plan, nil
}

func (pl *Planner) node(name string) *corev1.Node {
	for i := range pl.nodes {
		if pl.nodes[i].Name == name {
			return &pl.nodes[i]
		}
	}
	return nil
}

func ref(p *corev1.Pod) PodRef {
	r := PodRef{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), Priority: corev1helpers.PodPriority(p)}
	if c := metav1.GetControllerOf(p); c != nil {
		r.Owner = c.Kind + "/" + c.Name
	}
	return r
}

func (pl *Planner) planNode(ctx context.Context, node *corev1.Node) (NodePlan, []corev1.Pod, error) {
	np := NodePlan{Node: node.Name, AlreadyCordoned: node.Spec.Unschedulable, Evict: []PodRef{}, Skip: []SkippedPod{}, Blockers: []Blocker{}}
	var onNode []corev1.Pod
	for _, p := range pl.pods {
		if p.Spec.NodeName == node.Name {
			onNode = append(onNode, p)
		}
	}
	// kubectl's filters decide DaemonSet, mirror, emptyDir and unmanaged pods; ours add completed
	// pods (skipped: nothing to move) and pods on local PersistentVolumes.
	h := &kubedrain.Helper{Ctx: ctx, Client: pl.Client, Force: pl.Options.Force, IgnoreAllDaemonSets: true,
		DeleteEmptyDirData: pl.Options.DeleteEmptyDirData, GracePeriodSeconds: -1,
		AdditionalFilters: []kubedrain.PodFilter{completedFilter}}
	if !pl.Options.AllowLocalVolumes {
		h.AdditionalFilters = append(h.AdditionalFilters, pl.localVolumeFilter)
	}
	list, errs := h.GetPodsForDeletion(node.Name)
	if list == nil {
		return np, nil, fmt.Errorf("list pods on node %q: %v", node.Name, errs)
	}
	deletable := map[string]bool{}
	for _, p := range list.Pods() {
		deletable[p.Namespace+"/"+p.Name] = true
	}
	var evicted []corev1.Pod
	for i := range onNode {
		p := &onNode[i]
		r := ref(p)
		if deletable[r.String()] || pl.moved[p.UID] {
			r.PDBs = pl.pdbsOf(p)
			np.Blockers = append(np.Blockers, pl.guardPlan(ctx, node.Name, p, &r)...)
			np.Evict = append(np.Evict, r)
			evicted = append(evicted, *p)
			np.Blockers = append(np.Blockers, pl.pdbBlockers(node.Name, p, r.PDBs)...)
			continue
		}
		if reason, skip := skipped(p); skip {
			np.Skip = append(np.Skip, SkippedPod{Pod: r, Reason: reason})
			continue
		}
		np.Blockers = append(np.Blockers, pl.refused(node.Name, p, r, errs))
	}
	sortPods(np.Evict, pl.Options.PriorityOrder)
	return np, evicted, nil
}

// skipped says why kubectl's filters left a pod where it is without refusing the drain, from the
// pod's own fields (the filters' results carry no pod): DaemonSet pods, mirror pods, completed pods.
func skipped(p *corev1.Pod) (string, bool) {
	switch c := metav1.GetControllerOf(p); {
	case p.Annotations[corev1.MirrorPodAnnotationKey] != "":
		return "mirror (static) pod: the kubelet owns it", true
	case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		return "completed: nothing to move", true
	case c != nil && c.Kind == "DaemonSet":
		return "DaemonSet pod: it stays on the node by design (its DaemonSet runs one on every node)", true
	}
	return "", false
}

// refused is the blocker of a pod kubectl's filters (or drydock's local-volume filter) refused,
// found by the same rules the filters apply, in their order, read from the pod and the options.
// errs (kubectl's own words) are shown only when none of those rules explains the refusal.
func (pl *Planner) refused(node string, p *corev1.Pod, r PodRef, errs []error) Blocker {
	b := Blocker{Node: node, Pod: r.String(), Fatal: true, Kind: BlockOther}
	switch {
	case hasEmptyDir(p) && !pl.Options.DeleteEmptyDirData:
		b.Kind, b.Message, b.Fix = BlockEmptyDir, fmt.Sprintf("%s has emptyDir volumes: their data is lost when it moves", r), "--delete-emptydir-data (deleteEmptyDirData: true) if that data may go"
	case metav1.GetControllerOf(p) == nil && !pl.Options.Force:
		b.Kind, b.Message, b.Fix = BlockNoController, fmt.Sprintf("%s has no controller: nothing recreates it if it is evicted", r), "--force (force: true) to evict it anyway"
	default:
		if pv, claim := pl.localVolume(p); pv != nil && !pl.Options.AllowLocalVolumes {
			b.Message = fmt.Sprintf("%s uses the local PersistentVolume %s (claim %s): it cannot start on another node", r, pv.Name, claim)
			b.Kind, b.Fix = BlockLocalVolume, "move the data first, or --allow-local-volumes (allowLocalVolumes: true): the pod cannot start elsewhere"
			break
		}
		b.Message = fmt.Sprintf("%s: kubectl's drain filters refused it: %v", r, errors.Join(errs...))
		b.Fix = "look at the pod and its controller (kubectl describe pod -n " + r.Namespace + " " + r.Name + ")"
	}
	return b
}

func hasEmptyDir(p *corev1.Pod) bool {
	for _, v := range p.Spec.Volumes {
		if v.EmptyDir != nil {
			return true
		}
	}
	return false
}

func completedFilter(p corev1.Pod) kubedrain.PodDeleteStatus {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return kubedrain.MakePodDeleteStatusSkip()
	}
	return kubedrain.MakePodDeleteStatusOkay()
}

// localVolumeFilter refuses pods whose claims are bound to local PersistentVolumes: such a pod
// cannot start anywhere else. (kubectl drain does not look.)
func (pl *Planner) localVolumeFilter(p corev1.Pod) kubedrain.PodDeleteStatus {
	if pv, claim := pl.localVolume(&p); pv != nil {
		return kubedrain.MakePodDeleteStatusWithError(fmt.Sprintf("uses the local PersistentVolume %s (claim %s)", pv.Name, claim))
	}
	return kubedrain.MakePodDeleteStatusOkay()
}

// localVolume is the first local (or hostPath) PersistentVolume a pod's claims are bound to.
func (pl *Planner) localVolume(p *corev1.Pod) (*corev1.PersistentVolume, string) {
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		pv := pl.pvs[p.Namespace+"/"+v.PersistentVolumeClaim.ClaimName]
		if pv != nil && (pv.Spec.Local != nil || pv.Spec.HostPath != nil) {
			return pv, v.PersistentVolumeClaim.ClaimName
		}
	}
	return nil, ""
}

func (pl *Planner) pdbsOf(p *corev1.Pod) []string {
	var names []string
	for i := range pl.pdbs {
		pdb := &pl.pdbs[i]
		if pdb.Namespace != p.Namespace || pdb.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		names = append(names, pdb.Namespace+"/"+pdb.Name)
	}
	sort.Strings(names)
	return names
}

func (pl *Planner) pdb(key string) *policyv1.PodDisruptionBudget {
	for i := range pl.pdbs {
		if pl.pdbs[i].Namespace+"/"+pl.pdbs[i].Name == key {
			return &pl.pdbs[i]
		}
	}
	return nil
}

// pdbBlockers diagnoses the budgets over one pod.
func (pl *Planner) pdbBlockers(node string, p *corev1.Pod, keys []string) []Blocker {
	r := ref(p).String()
	if len(keys) > 1 {
		return []Blocker{{Kind: BlockMultiplePDBs, Node: node, Pod: r, PDB: strings.Join(keys, ", "), Fatal: true,
			Message: fmt.Sprintf("%s is covered by %d PodDisruptionBudgets (%s): the eviction API refuses such a pod (500)", r, len(keys), strings.Join(keys, ", ")),
			Fix:     "make the budgets' selectors disjoint so each pod has one budget"}}
	}
	var out []Blocker
	for _, key := range keys {
		pdb := pl.pdb(key)
		if never, why := preflight.NeverDrains(pdb, pdb.Status.ExpectedPods); never {
			out = append(out, Blocker{Kind: BlockNeverDrains, Node: node, Pod: r, PDB: key, Fatal: true,
				Message: fmt.Sprintf("%s is guarded by PodDisruptionBudget %s, %s: no eviction can ever pass it", r, key, why),
				Fix:     "allow at least one disruption: e.g. maxUnavailable: 1, or minAvailable below the replica count"})
			continue
		}
		if !kube.PodReady(p) && (pdb.Spec.UnhealthyPodEvictionPolicy == nil || *pdb.Spec.UnhealthyPodEvictionPolicy == policyv1.IfHealthyBudget) &&
			pdb.Status.CurrentHealthy < pdb.Status.DesiredHealthy {
			b := Blocker{Kind: BlockUnhealthy, Node: node, Pod: r, PDB: key, Fatal: true,
				Message: fmt.Sprintf("%s is not Ready and PodDisruptionBudget %s (unhealthyPodEvictionPolicy IfHealthyBudget) is below its budget (%d healthy, needs %d): the unhealthy pod cannot be evicted",
					r, key, pdb.Status.CurrentHealthy, pdb.Status.DesiredHealthy),
				Fix: "set unhealthyPodEvictionPolicy: AlwaysAllow on the budget, or fix the unhealthy pods"}
			if pl.Options.AllowBudgetRelax != nil {
				// Not certain: the stall detector relaxes the budget for this node (AlwaysAllow) and restores it after.
				b.Fatal = false
				b.Message += fmt.Sprintf("; allowBudgetRelax: drydock sets AlwaysAllow for this node after stallTimeout (%s) and restores the budget after", pl.Options.stallTimeout())
			}
			out = append(out, b)
			continue
		}
		if pdb.Status.DisruptionsAllowed == 0 {
			out = append(out, Blocker{Kind: BlockNoDisruptions, Node: node, Pod: r, PDB: key,
				Message: fmt.Sprintf("PodDisruptionBudget %s allows no disruption right now (needs %d healthy, has %d): %s waits until replacements are Ready",
					key, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy, r)})
		}
	}
	return out
}

func sortPods(pods []PodRef, order string) {
	if order == "none" {
		return
	}
	sort.SliceStable(pods, func(i, j int) bool { return pods[i].Priority < pods[j].Priority })
}

// capacity checks that the evicted pods can be placed on the nodes that stay schedulable, as the
// scheduler would have to place them: nodeSelector, required node affinity, NoSchedule/NoExecute
// taints, the node affinity of their bound PersistentVolumes (a zonal disk), required pod
// anti-affinity (both ways), topology spread with whenUnsatisfiable: DoNotSchedule, and room for
// their requests (largest first, each on the node with the fewest pods that takes it, as the
// scheduler's spreading would). A pod that fits nowhere would stay Pending: a blocker.
//
// moves says where each evicted pod's replacement would go, by the evicted pod's UID ("": nowhere,
// it stays Pending).
func (pl *Planner) capacity(evicted []corev1.Pod, draining map[string]bool) (blockers []Blocker, moves map[types.UID]string) {
	moves = map[types.UID]string{}
	type room struct {
		node      *corev1.Node
		free      corev1.ResourceList
		pods      int64
		returning bool // cordoned by this run, which lets it go first: its unschedulable taint goes too
	}
	leaving := map[types.UID]bool{}
	for i := range evicted {
		leaving[evicted[i].UID] = true
	}
	// The pods each node will hold: those that stay, then the ones placed by this simulation; and
	// every pod each node has now (one pass over the pods, not one per node).
	podsOn, hasNow := map[string][]*corev1.Pod{}, map[string][]*corev1.Pod{}
	for j := range pl.pods {
		p := &pl.pods[j]
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		hasNow[p.Spec.NodeName] = append(hasNow[p.Spec.NodeName], p)
		if !leaving[p.UID] {
			podsOn[p.Spec.NodeName] = append(podsOn[p.Spec.NodeName], p)
		}
	}
	var rooms []*room
	for i := range pl.nodes {
		n := &pl.nodes[i]
		returning := pl.RunID != "" && n.Annotations[AnnotationCordonedBy] == pl.RunID
		if draining[n.Name] || (n.Spec.Unschedulable && !returning) || !kube.NodeReady(n) {
			continue
		}
		free := n.Status.Allocatable.DeepCopy()
		podsLeft := n.Status.Allocatable.Pods().Value()
		for _, p := range hasNow[n.Name] {
			subtract(free, resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{}))
			podsLeft--
		}
		rooms = append(rooms, &room{node: n, free: free, pods: podsLeft, returning: returning})
	}
	sort.SliceStable(evicted, func(i, j int) bool {
		ri := resourcehelper.PodRequests(&evicted[i], resourcehelper.PodResourcesOptions{})
		rj := resourcehelper.PodRequests(&evicted[j], resourcehelper.PodResourcesOptions{})
		return ri.Cpu().Cmp(*rj.Cpu()) > 0
	})
	logger := klog.Background()
	for i := range evicted {
		p := &evicted[i]
		req := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
		affinity := nodeaffinity.GetRequiredNodeAffinity(p)
		var placed *room
		var eligible, volumeOK, antiOK, spreadOK int
		var spreadWhy, antiWhy string
		// As the scheduler spreads (least allocated, default pod spreading): the emptiest node first.
		sort.SliceStable(rooms, func(i, j int) bool { return len(podsOn[rooms[i].node.Name]) < len(podsOn[rooms[j].node.Name]) })
		for _, r := range rooms {
			if ok, _ := affinity.Match(r.node); !ok {
				continue
			}
			if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logger, r.node.Spec.Taints, p.Spec.Tolerations, func(t *corev1.Taint) bool {
				// The node controller's mirror of a cordon: gone with the cordon (returning), or going
				// (the cordon is lifted: the controller takes the taint away moments later, and the
				// plan of the next batch or group may come first).
				if t.Key == corev1.TaintNodeUnschedulable && (r.returning || !r.node.Spec.Unschedulable) {
					return false
				}
				return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
			}, false); untolerated {
				continue
			}
			eligible++
			if !pl.volumesReach(p, r.node) {
				continue
			}
			volumeOK++
			if why := pl.antiAffinityConflict(p, r.node, podsOn); why != "" {
				antiWhy = why
				continue
			}
			antiOK++
			if why := pl.spreadViolation(p, r.node, podsOn); why != "" {
				spreadWhy = why
				continue
			}
			spreadOK++
			if r.pods < 1 || !fits(req, r.free) {
				continue
			}
			subtract(r.free, req)
			r.pods--
			placed = r
			break
		}
		if placed != nil {
			podsOn[placed.node.Name] = append(podsOn[placed.node.Name], p)
			moves[p.UID] = placed.node.Name
			continue
		}
		moves[p.UID] = ""
		var why, fix string
		switch {
		case eligible == 0:
			why, fix = "no node that stays schedulable matches its nodeSelector, required node affinity and tolerations", "add or uncordon nodes that can take it, or drain fewer nodes at once"
		case volumeOK == 0:
			why, fix = "its PersistentVolume can only be used on nodes (node affinity, e.g. a zonal disk) that are all being drained", "keep a node of the volume's zone schedulable: drain fewer nodes of that zone at once"
		case antiOK == 0:
			why, fix = "its required pod anti-affinity leaves no node that stays schedulable ("+antiWhy+")", "add a node in another topology domain, drain fewer nodes at once, or relax the anti-affinity to preferred"
		case spreadOK == 0:
			why, fix = "its topology spread constraint (whenUnsatisfiable: DoNotSchedule) allows no node that stays schedulable ("+spreadWhy+")", "drain fewer nodes of that domain at once, raise maxSkew, or use whenUnsatisfiable: ScheduleAnyway"
		default:
			why, fix = fmt.Sprintf("no node that stays schedulable has room for its requests (cpu %s, memory %s)", req.Cpu(), req.Memory()), "add or uncordon nodes that can take it, or drain fewer nodes at once"
		}
		blockers = append(blockers, Blocker{Kind: BlockCapacity, Node: p.Spec.NodeName, Pod: ref(p).String(), Fatal: true,
			Message: fmt.Sprintf("%s would stay Pending: %s", ref(p), why), Fix: fix})
	}
	return blockers, moves
}

// volumesReach says whether every PersistentVolume the pod's claims are bound to may be used on node.
func (pl *Planner) volumesReach(p *corev1.Pod, node *corev1.Node) bool {
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		pv := pl.pvs[p.Namespace+"/"+v.PersistentVolumeClaim.ClaimName]
		if pv == nil || pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
			continue
		}
		if ok, err := nodeaffinity.NewLazyErrorNodeSelector(pv.Spec.NodeAffinity.Required).Match(node); err != nil || !ok {
			return false
		}
	}
	return true
}

// termMatches says whether pod q is selected by an affinity term written in namespace ns.
func termMatches(term corev1.PodAffinityTerm, ns string, q *corev1.Pod) bool {
	switch {
	case len(term.Namespaces) > 0:
		if !slices.Contains(term.Namespaces, q.Namespace) {
			return false
		}
	case term.NamespaceSelector != nil && len(term.NamespaceSelector.MatchLabels) == 0 && len(term.NamespaceSelector.MatchExpressions) == 0:
		// {}: every namespace
	default:
		if q.Namespace != ns {
			return false
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
	return err == nil && !sel.Empty() && sel.Matches(labels.Set(q.Labels))
}

// antiAffinityConflict says why p may not run on node under required pod anti-affinity: a pod it
// must avoid runs in node's topology domain, or a pod there must avoid p ("" when none).
func (pl *Planner) antiAffinityConflict(p *corev1.Pod, node *corev1.Node, podsOn map[string][]*corev1.Pod) string {
	sameDomain := func(key string, other string) bool {
		v, ok := node.Labels[key]
		if !ok {
			return false
		}
		n := pl.node(other)
		return n != nil && n.Labels[key] == v
	}
	var mine []corev1.PodAffinityTerm
	if a := p.Spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		mine = a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	for nodeName, pods := range podsOn {
		for _, q := range pods {
			if q.UID == p.UID {
				continue
			}
			for _, term := range mine {
				if sameDomain(term.TopologyKey, nodeName) && termMatches(term, p.Namespace, q) {
					return fmt.Sprintf("%s/%s already runs where %s is %q", q.Namespace, q.Name, term.TopologyKey, node.Labels[term.TopologyKey])
				}
			}
			if a := q.Spec.Affinity; a != nil && a.PodAntiAffinity != nil {
				for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
					if sameDomain(term.TopologyKey, nodeName) && termMatches(term, q.Namespace, p) {
						return fmt.Sprintf("%s/%s, which must avoid it, runs where %s is %q", q.Namespace, q.Name, term.TopologyKey, node.Labels[term.TopologyKey])
					}
				}
			}
		}
	}
	return ""
}

// spreadViolation says why p on node would break one of its DoNotSchedule topology spread
// constraints ("" when none). As the scheduler does, the domains are those of every node that
// matches the pod's node affinity and has the key, cordoned ones included: a drained zone keeps
// counting, with its pods gone.
func (pl *Planner) spreadViolation(p *corev1.Pod, node *corev1.Node, podsOn map[string][]*corev1.Pod) string {
	affinity := nodeaffinity.GetRequiredNodeAffinity(p)
	for _, c := range p.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != corev1.DoNotSchedule {
			continue
		}
		target, ok := node.Labels[c.TopologyKey]
		if !ok {
			return fmt.Sprintf("the node has no %s label", c.TopologyKey)
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			continue
		}
		counts := map[string]int{}
		for i := range pl.nodes {
			n := &pl.nodes[i]
			v, has := n.Labels[c.TopologyKey]
			if !has {
				continue
			}
			if ok, _ := affinity.Match(n); !ok {
				continue
			}
			if _, seen := counts[v]; !seen {
				counts[v] = 0
			}
			for _, q := range podsOn[n.Name] {
				if q.Namespace == p.Namespace && q.UID != p.UID && sel.Matches(labels.Set(q.Labels)) {
					counts[v]++
				}
			}
		}
		least := -1
		for _, n := range counts {
			if least < 0 || n < least {
				least = n
			}
		}
		if skew := counts[target] + 1 - max(least, 0); skew > int(c.MaxSkew) {
			return fmt.Sprintf("%s %q would hold %d matching pods against %d in the emptiest domain, over maxSkew %d", c.TopologyKey, target, counts[target]+1, least, c.MaxSkew)
		}
	}
	return ""
}

func fits(req, free corev1.ResourceList) bool {
	for name, q := range req {
		f, ok := free[name]
		if !ok {
			if q.IsZero() {
				continue
			}
			return false
		}
		if q.Cmp(f) > 0 {
			return false
		}
	}
	return true
}

func subtract(free, req corev1.ResourceList) {
	for name, q := range req {
		if f, ok := free[name]; ok {
			f.Sub(q)
			free[name] = f
		} else {
			neg := resource.Quantity{}
			neg.Sub(q)
			free[name] = neg
		}
	}
}
