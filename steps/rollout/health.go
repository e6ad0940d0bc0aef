package rollout

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// Health says what "the cluster is healthy" means between nodes, between groups and during a soak.
type Health struct {
	// Namespaces watched for pods that are not Ready or crash-looping and budgets that allow no
	// disruption (default: every namespace).
	Namespaces []string `json:"namespaces,omitempty"`
	// ProbeURL, when set, must answer 2xx.
	ProbeURL string `json:"probeURL,omitempty"`
	// Timeout for the cluster to be healthy again after a node or a group (default 5m).
	Timeout runbook.Duration `json:"timeout,omitzero"`
	// Prometheus gates: PromQL queries that must stay within bounds (an error ratio, a latency).
	Prometheus *PrometheusGates `json:"prometheus,omitempty"`
	// Alertmanager gate: no matching alert may start firing.
	Alertmanager *AlertmanagerGate `json:"alertmanager,omitempty"`
}

// GatesAccess is what the health gates read: they watch pods, budgets and nodes (the Prometheus,
// Alertmanager and probe URLs are outside the cluster's RBAC).
func GatesAccess() []runbook.Access {
	return []runbook.Access{
		{Verb: "list", Resource: "pods", Why: "health gates watch pods for not Ready and crash-looping ones"},
		{Verb: "watch", Resource: "pods", Why: "health gates watch pods for not Ready and crash-looping ones"},
		{Verb: "list", Group: "policy", Resource: "poddisruptionbudgets", Why: "health gates watch budgets that allow no disruption"},
		{Verb: "watch", Group: "policy", Resource: "poddisruptionbudgets", Why: "health gates watch budgets that allow no disruption"},
		{Verb: "list", Resource: "nodes", Why: "health gates watch that upgraded nodes stay Ready"},
		{Verb: "watch", Resource: "nodes", Why: "health gates watch that upgraded nodes stay Ready"},
	}
}

func (h Health) timeout() time.Duration {
	if h.Timeout.IsZero() {
		return 5 * time.Minute
	}
	return h.Timeout.Duration
}

// Gates watches pods and budgets and tells whether the cluster is healthy compared with a baseline
// taken when the step began: pods that were already unhealthy then, and budgets already at zero,
// do not count against it.
type Gates struct {
	env    *runbook.Env
	health Health

	badPods    map[string]bool // unhealthy at baseline
	zeroBudget map[string]bool // no disruptions allowed at baseline

	regs   []handlerReg
	pods   cache.SharedIndexInformer
	pdbs   cache.SharedIndexInformer
	nodes  cache.SharedIndexInformer
	poke   chan struct{}
	cancel context.CancelFunc
	client *http.Client

	prom         *promGates      // nil without Prometheus gates
	alerts       *alertGate      // nil without an Alertmanager gate
	alertsBefore map[string]bool // the matching alerts firing when the step began (fingerprint@start)
}

// NewGates starts the watches and takes the baseline. Call Stop when done.
func NewGates(ctx context.Context, env *runbook.Env, h Health) (*Gates, error) {
	g := &Gates{env: env, health: h, poke: make(chan struct{}, 1), client: &http.Client{Timeout: 5 * time.Second}}
	ctx, g.cancel = context.WithCancel(ctx)
	// The run's watches: the drains of the same step watch the same budgets through them.
	factory := env.Watches().Factory()
	g.pods = factory.Core().V1().Pods().Informer()
	g.pdbs = factory.Policy().V1().PodDisruptionBudgets().Informer()
	g.nodes = factory.Core().V1().Nodes().Informer()
	poke := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { g.wake() },
		UpdateFunc: func(any, any) { g.wake() },
		DeleteFunc: func(any) { g.wake() },
	}
	for _, inf := range []cache.SharedIndexInformer{g.pods, g.pdbs, g.nodes} {
		reg, err := inf.AddEventHandler(poke)
		if err != nil {
			g.Stop()
			return nil, fmt.Errorf("health gates: watch: %w", err)
		}
		g.regs = append(g.regs, handlerReg{inf, reg})
	}
	env.Watches().Start()
	for _, inf := range []cache.SharedIndexInformer{g.pods, g.pdbs, g.nodes} {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			g.Stop()
			return nil, fmt.Errorf("health gates: watch pods, budgets and nodes: %w", ctx.Err())
		}
	}
	// The Prometheus gates answer, and are within bounds, before any node moves: an expression
	// Prometheus refuses or a service already failing is found now, not after the first drain.
	if h.Prometheus != nil {
		p, err := newPromGates(*h.Prometheus)
		if err != nil {
			g.Stop()
			return nil, runbook.Blocked(fmt.Errorf("health gates: %w", err))
		}
		if wrong := p.redNow(ctx); len(wrong) > 0 {
			g.Stop()
			return nil, runbook.Blocked(fmt.Errorf("health gates: before any node moved: %s; fix them (or their bounds) and resume", strings.Join(wrong, "; ")))
		}
		g.prom = p
	}
	if h.Alertmanager != nil {
		g.alerts = &alertGate{cfg: *h.Alertmanager, client: g.client}
	}
	// The baseline is the cluster as it was when the step first began: a resumed step reuses it,
	// so that damage done before a crash is not forgiven.
	var b baseline
	if env.LoadData(baselineKey, &b) {
		g.badPods, g.zeroBudget, g.alertsBefore = set(b.BadPods), set(b.ZeroBudgets), set(b.Alerts)
		return g, nil
	}
	g.Rebase()
	g.alertsBefore = map[string]bool{}
	if g.alerts != nil {
		firing, err := g.alerts.firing(ctx)
		if err != nil {
			g.Stop()
			return nil, runbook.Blocked(fmt.Errorf("health gates: %w", err))
		}
		for _, a := range firing {
			g.alertsBefore[a.key()] = true
		}
	}
	b = baseline{BadPods: keys(g.badPods), ZeroBudgets: keys(g.zeroBudget), Alerts: keys(g.alertsBefore)}
	if err := env.SaveData(ctx, baselineKey, b); err != nil {
		g.Stop()
		return nil, err
	}
	return g, nil
}

const baselineKey = "health-baseline"

// baseline is what the journal keeps of the health gates' baseline.
type baseline struct {
	BadPods     []string `json:"badPods"`          // namespace/name of pods unhealthy then
	ZeroBudgets []string `json:"zeroBudgets"`      // namespace/name of budgets at zero then
	Alerts      []string `json:"alerts,omitempty"` // the matching alerts firing then (fingerprint@start)
}

func set(list []string) map[string]bool {
	m := map[string]bool{}
	for _, k := range list {
		m[k] = true
	}
	return m
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type handlerReg struct {
	inf cache.SharedIndexInformer
	reg cache.ResourceEventHandlerRegistration
}

// Stop stops listening; the run's watches go on for the steps after this one.
func (g *Gates) Stop() {
	g.cancel()
	for _, r := range g.regs {
		_ = r.inf.RemoveEventHandler(r.reg)
	}
	g.regs = nil
}

func (g *Gates) wake() {
	select {
	case g.poke <- struct{}{}:
	default:
	}
}

// Rebase takes the current state as the baseline.
func (g *Gates) Rebase() {
	g.badPods, g.zeroBudget = map[string]bool{}, map[string]bool{}
	for _, obj := range g.pods.GetStore().List() {
		p := obj.(*corev1.Pod)
		if g.watched(p.Namespace) && podProblem(p) != "" {
			g.badPods[p.Namespace+"/"+p.Name] = true
		}
	}
	for _, obj := range g.pdbs.GetStore().List() {
		pdb := obj.(*policyv1.PodDisruptionBudget)
		if g.watched(pdb.Namespace) && pdb.Status.DisruptionsAllowed == 0 {
			g.zeroBudget[pdb.Namespace+"/"+pdb.Name] = true
		}
	}
}

func (g *Gates) watched(ns string) bool {
	return len(g.health.Namespaces) == 0 || slices.Contains(g.health.Namespaces, ns)
}

// podProblem says what is wrong with a running pod, or "".
func podProblem(p *corev1.Pod) string {
	why, _ := kube.PodProblem(p)
	return why
}

// Problems lists what is unhealthy now compared with the baseline; nodes lists nodes that must be Ready.
func (g *Gates) Problems(ctx context.Context, nodes ...string) []string {
	var out []string
	for _, obj := range g.pods.GetStore().List() {
		p := obj.(*corev1.Pod)
		key := p.Namespace + "/" + p.Name
		if !g.watched(p.Namespace) || g.badPods[key] {
			continue
		}
		if why := podProblem(p); why != "" {
			out = append(out, fmt.Sprintf("pod %s is %s", key, why))
		}
	}
	for _, obj := range g.pdbs.GetStore().List() {
		pdb := obj.(*policyv1.PodDisruptionBudget)
		key := pdb.Namespace + "/" + pdb.Name
		if g.watched(pdb.Namespace) && !g.zeroBudget[key] && pdb.Status.DisruptionsAllowed == 0 {
			out = append(out, fmt.Sprintf("PodDisruptionBudget %s allows no disruption (needs %d healthy, has %d)", key, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy))
		}
	}
	for _, name := range nodes {
		obj, ok, _ := g.nodes.GetStore().GetByKey(name)
		if ok && !kube.NodeReady(obj.(*corev1.Node)) {
			out = append(out, fmt.Sprintf("node %s is NotReady", name))
		}
	}
	sort.Strings(out)
	if g.health.ProbeURL != "" {
		if err := g.probe(ctx); err != nil {
			out = append(out, err.Error())
		}
	}
	if g.prom != nil {
		out = append(out, g.prom.problems(ctx)...)
	}
	if g.alerts != nil {
		out = append(out, g.alerts.problems(ctx, g.alertsBefore)...)
	}
	return out
}

// every is how often the gates are re-checked without a change the watches see: the probe and the
// Alertmanager gate every 5s, the Prometheus gates at their interval when it is shorter.
func (g *Gates) every() time.Duration {
	if g.prom != nil && g.prom.interval() < 5*time.Second {
		return g.prom.interval()
	}
	return 5 * time.Second
}

func (g *Gates) probe(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.health.ProbeURL, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", g.health.ProbeURL, err)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", g.health.ProbeURL, err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe %s answered %s", g.health.ProbeURL, resp.Status)
	}
	return nil
}

// WaitHealthy returns when nothing is unhealthy compared with the baseline, re-checking on every
// change the watches see (and every few seconds for the probe), or fails after the timeout naming
// what is still wrong.
func (g *Gates) WaitHealthy(ctx context.Context, what string, nodes ...string) error {
	timeout := g.health.timeout()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(g.every())
	defer tick.Stop()
	reported := ""
	for {
		problems := g.Problems(ctx, nodes...)
		if len(problems) == 0 {
			return nil
		}
		if msg := strings.Join(first(problems, 3), "; "); msg != reported {
			g.env.Progress(fmt.Sprintf("%s: waiting for health: %s", what, msg), 0, 0)
			reported = msg
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w while waiting for health: %s", what, context.Cause(ctx), strings.Join(problems, "; "))
		case <-deadline.C:
			return fmt.Errorf("%s: the cluster was not healthy within %s: %s", what, timeout, strings.Join(problems, "; "))
		case <-g.poke:
		case <-tick.C:
		}
	}
}

// Soak holds for d while the gates stay healthy; the first problem fails it.
func (g *Gates) Soak(ctx context.Context, d time.Duration, nodes ...string) error {
	g.Rebase()
	end := time.NewTimer(d)
	defer end.Stop()
	tick := time.NewTicker(g.every())
	defer tick.Stop()
	start := time.Now()
	g.env.Countdown(fmt.Sprintf("soak: watching health for %s", d), start.Add(d))
	reported := ""
	for {
		if problems := g.Problems(ctx, nodes...); len(problems) > 0 {
			return fmt.Errorf("soak failed after %s: %s", time.Since(start).Round(time.Second), strings.Join(problems, "; "))
		}
		if g.prom != nil {
			// Each gate's value, as the soak goes: the evidence it passes on.
			if st := g.prom.status(); st != reported {
				g.env.Progress(fmt.Sprintf("soak: gates green for %s: %s", time.Since(start).Round(time.Second), st), 0, 0)
				reported = st
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-end.C:
			g.env.Progress("soak: healthy throughout", 0, 0)
			return nil
		case <-g.poke:
		case <-tick.C:
		}
	}
}

func first(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
}
