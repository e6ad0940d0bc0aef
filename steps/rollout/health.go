package rollout

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
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
	// SkipServices turns off the Service gate: by default every Service with a selector in the
	// watched namespaces must be back at the ready endpoints (EndpointSlices) it had when the step
	// began, less what its workloads were scaled down by since.
	SkipServices bool `json:"skipServices,omitempty"`
	// ReadyWithin: a pod created after the step began (a replacement) that is not Ready this long
	// after its creation fails the gates at once, instead of at the timeout (default: no bound).
	ReadyWithin runbook.Duration `json:"readyWithin,omitzero"`
}

// GatesAccess is what the health gates read: they watch pods, budgets and nodes (the Prometheus,
// Alertmanager and probe URLs are outside the cluster's RBAC; a credential of theirs kept in a
// Secret adds get on it to the run's access: HTTPConfig.CredentialAccess).
func GatesAccess() []runbook.Access {
	return []runbook.Access{
		{Verb: "list", Resource: "pods", Why: "health gates watch pods for not Ready and crash-looping ones"},
		{Verb: "watch", Resource: "pods", Why: "health gates watch pods for not Ready and crash-looping ones"},
		{Verb: "list", Group: "policy", Resource: "poddisruptionbudgets", Why: "health gates watch budgets that allow no disruption"},
		{Verb: "watch", Group: "policy", Resource: "poddisruptionbudgets", Why: "health gates watch budgets that allow no disruption"},
		{Verb: "list", Resource: "nodes", Why: "health gates watch that upgraded nodes stay Ready"},
		{Verb: "watch", Resource: "nodes", Why: "health gates watch that upgraded nodes stay Ready"},
		{Verb: "list", Resource: "services", Why: "the Service gate compares each Service's ready endpoints with the step's baseline"},
		{Verb: "watch", Resource: "services", Why: "the Service gate compares each Service's ready endpoints with the step's baseline"},
		{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices", Why: "the Service gate counts ready endpoints"},
		{Verb: "watch", Group: "discovery.k8s.io", Resource: "endpointslices", Why: "the Service gate counts ready endpoints"},
		{Verb: "get", Group: "apps", Resource: "replicasets", Why: "the Service gate does not count a workload scaled down on purpose"},
		{Verb: "get", Group: "apps", Resource: "statefulsets", Why: "the Service gate does not count a workload scaled down on purpose"},
		{Verb: "get", Resource: "replicationcontrollers", Why: "the Service gate does not count a workload scaled down on purpose"},
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

	mu         sync.Mutex
	held       map[string]heldState // since when each gate has held its verdict
	told       string               // the gates' values and verdicts last sent
	lastValues string               // "pods=0 unhealthy, error ratio=0.0123"

	prom         *promGates      // nil without Prometheus gates
	services     *serviceGate    // nil with skipServices
	taken        time.Time       // when the baseline was taken: pods created since are replacements
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
	infs := []cache.SharedIndexInformer{g.pods, g.pdbs, g.nodes}
	if !h.SkipServices {
		g.services = &serviceGate{client: env.Kube, services: factory.Core().V1().Services().Informer(),
			slices: factory.Discovery().V1().EndpointSlices().Informer(), pods: g.pods, watched: g.watched}
		infs = append(infs, g.services.services, g.services.slices)
	}
	for _, inf := range infs {
		reg, err := inf.AddEventHandler(poke)
		if err != nil {
			g.Stop()
			return nil, fmt.Errorf("health gates: watch: %w", err)
		}
		g.regs = append(g.regs, handlerReg{inf, reg})
	}
	env.Watches().Start()
	for _, inf := range infs {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			g.Stop()
			return nil, fmt.Errorf("health gates: watch pods, budgets, nodes, Services and EndpointSlices: %w", ctx.Err())
		}
	}
	// The Prometheus gates answer, and are within bounds, before any node moves: an expression
	// Prometheus refuses or a service already failing is found now, not after the first drain.
	if h.Prometheus != nil {
		p, err := newPromGates(*h.Prometheus, env.Kube)
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
		hc, err := httpClient(h.Alertmanager.HTTP, env.Kube)
		if err != nil {
			g.Stop()
			return nil, runbook.Blocked(fmt.Errorf("health gates: alertmanager %s: http: %w", h.Alertmanager.URL, err))
		}
		g.alerts = &alertGate{cfg: *h.Alertmanager, client: hc}
	}
	// The baseline is the cluster as it was when the step first began: a resumed step reuses it,
	// so that damage done before a crash is not forgiven.
	var b baseline
	if env.LoadData(baselineKey, &b) {
		g.badPods, g.zeroBudget, g.alertsBefore, g.taken = set(b.BadPods), set(b.ZeroBudgets), set(b.Alerts), b.Taken
		if g.services != nil {
			g.services.base = b.Services
		}
		if err := g.resumeGate(ctx); err != nil {
			g.Stop()
			return nil, err
		}
		return g, nil
	}
	g.Rebase()
	g.taken = time.Now().UTC().Truncate(time.Second)
	if g.services != nil {
		base, err := g.services.baseline(ctx)
		if err != nil {
			g.Stop()
			return nil, err
		}
		g.services.base = base
	}
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
	b = baseline{BadPods: keys(g.badPods), ZeroBudgets: keys(g.zeroBudget), Alerts: keys(g.alertsBefore), Taken: g.taken}
	if g.services != nil {
		b.Services = g.services.base
	}
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
	// Services are the ready endpoints of each Service then, with its controllers' replicas.
	Services map[string]serviceBase `json:"services,omitempty"`
	Taken    time.Time              `json:"taken,omitzero"`
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

// gateResult is one gate's verdict: its value and, when it fails, what is wrong.
type gateResult struct {
	runbook.GateState
	problems []string // what fails the gate now (for a Prometheus query: once its `for` has passed)
	fatal    []string // what fails it for good: waiting for health does not wait past it
}

// check evaluates every gate compared with the baseline; nodes lists nodes that must be Ready.
func (g *Gates) check(ctx context.Context, nodes ...string) []gateResult {
	pods := gateResult{GateState: runbook.GateState{Name: "pods", Kind: "pods"}}
	for _, obj := range g.pods.GetStore().List() {
		p := obj.(*corev1.Pod)
		key := p.Namespace + "/" + p.Name
		if !g.watched(p.Namespace) || g.badPods[key] {
			continue
		}
		if why := podProblem(p); why != "" {
			pods.problems = append(pods.problems, fmt.Sprintf("pod %s is %s", key, why))
			// A replacement (created since the step began) not Ready within its bound fails at once.
			if bound := g.health.ReadyWithin.Duration; bound > 0 && !g.taken.IsZero() && p.CreationTimestamp.After(g.taken) && time.Since(p.CreationTimestamp.Time) > bound {
				pods.fatal = append(pods.fatal, fmt.Sprintf("replacement pod %s is not Ready %s after its creation (readyWithin %s): %s", key, time.Since(p.CreationTimestamp.Time).Round(time.Second), bound, why))
			}
		}
	}
	pods.Value = fmt.Sprintf("%d unhealthy", len(pods.problems))
	budgets := gateResult{GateState: runbook.GateState{Name: "budgets", Kind: "budgets"}}
	for _, obj := range g.pdbs.GetStore().List() {
		pdb := obj.(*policyv1.PodDisruptionBudget)
		key := pdb.Namespace + "/" + pdb.Name
		if g.watched(pdb.Namespace) && !g.zeroBudget[key] && pdb.Status.DisruptionsAllowed == 0 {
			budgets.problems = append(budgets.problems, fmt.Sprintf("PodDisruptionBudget %s allows no disruption (needs %d healthy, has %d)", key, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy))
		}
	}
	budgets.Value = fmt.Sprintf("%d at zero", len(budgets.problems))
	out := []gateResult{pods, budgets}
	if len(nodes) > 0 {
		nr := gateResult{GateState: runbook.GateState{Name: "nodes", Kind: "nodes"}}
		for _, name := range nodes {
			obj, ok, _ := g.nodes.GetStore().GetByKey(name)
			if ok && !kube.NodeReady(obj.(*corev1.Node)) {
				nr.problems = append(nr.problems, fmt.Sprintf("node %s is NotReady", name))
			}
		}
		nr.Value = fmt.Sprintf("%d of %d Ready", len(nodes)-len(nr.problems), len(nodes))
		out = append(out, nr)
	}
	if g.health.ProbeURL != "" {
		pr := gateResult{GateState: runbook.GateState{Name: "probe", Kind: "probe", Value: "2xx"}}
		if err := g.probe(ctx); err != nil {
			pr.Value, pr.problems = "failing", []string{err.Error()}
		}
		out = append(out, pr)
	}
	if g.services != nil {
		out = append(out, g.services.check(ctx))
	}
	if g.prom != nil {
		out = append(out, g.prom.results(ctx)...)
	}
	if g.alerts != nil {
		al := gateResult{GateState: runbook.GateState{Name: "alerts", Kind: "alertmanager"}}
		al.problems = g.alerts.problems(ctx, g.alertsBefore)
		al.Value = fmt.Sprintf("%d new firing", len(al.problems))
		out = append(out, al)
	}
	for i := range out {
		sort.Strings(out[i].problems)
		if out[i].Kind != "prometheus" {
			out[i].OK = len(out[i].problems) == 0
		}
		if !out[i].OK && out[i].Why == "" {
			out[i].Why = strings.Join(first(out[i].problems, 3), "; ")
		}
	}
	return out
}

// Problems lists what is unhealthy now compared with the baseline; nodes lists nodes that must be Ready.
func (g *Gates) Problems(ctx context.Context, nodes ...string) []string {
	var out []string
	for _, r := range g.judge(ctx, nodes...) {
		out = append(out, r.problems...)
	}
	return out
}

// judge checks the gates, keeps since when each has held its verdict, and tells the run (a
// GatesChanged event) when a value or a verdict changed.
func (g *Gates) judge(ctx context.Context, nodes ...string) []gateResult {
	results := g.check(ctx, nodes...)
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held == nil {
		g.held = map[string]heldState{}
	}
	var states []runbook.GateState
	var print strings.Builder
	var values []string
	for i := range results {
		r := &results[i]
		h, ok := g.held[r.Name]
		if !ok || h.ok != r.OK {
			h = heldState{ok: r.OK, since: now}
			g.held[r.Name] = h
		}
		r.Since = h.since
		states = append(states, r.GateState)
		fmt.Fprintf(&print, "%s=%s/%v/%s;", r.Name, r.Value, r.OK, r.Why)
		values = append(values, r.Name+"="+r.Value)
	}
	g.lastValues = strings.Join(values, ", ")
	if print.String() != g.told {
		g.told = print.String()
		g.env.Emit(&runbook.GatesChanged{Gates: states})
	}
	return results
}

// values says each gate's last value: "pods=0 unhealthy, error ratio=0.0123".
func (g *Gates) values() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastValues
}

type heldState struct {
	ok    bool
	since time.Time
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

// pendingGateKey keeps the gate a step was waiting on (pendingGate), from its start until it passes.
const pendingGateKey = "health-gate-pending"

// pendingGate is the health gate a step started and has not seen pass.
type pendingGate struct {
	What  string   `json:"what,omitempty"`
	Nodes []string `json:"nodes,omitempty"`
}

// Gate is WaitHealthy, journaled: the gate is recorded as started before it waits and cleared when
// it passes. A step re-entered after its process died (or after the gate failed) re-runs that gate
// from the stored baseline before anything else moves (NewGates), instead of going on to the next
// node as though the cluster had been found healthy.
func (g *Gates) Gate(ctx context.Context, what string, nodes ...string) error {
	if err := g.env.SaveData(ctx, pendingGateKey, pendingGate{What: what, Nodes: nodes}); err != nil {
		return err
	}
	if err := g.WaitHealthy(ctx, what, nodes...); err != nil {
		return err
	}
	return g.env.SaveData(ctx, pendingGateKey, pendingGate{})
}

// forgetPendingGate drops the record of a gate that never passed.
func forgetPendingGate(ctx context.Context, env *runbook.Env) error {
	var p pendingGate
	if !env.LoadData(pendingGateKey, &p) || p.What == "" {
		return nil
	}
	return env.SaveData(ctx, pendingGateKey, pendingGate{})
}

// resumeGate re-runs the gate the step's last attempt started and did not see pass, if any.
func (g *Gates) resumeGate(ctx context.Context) error {
	var p pendingGate
	if !g.env.LoadData(pendingGateKey, &p) || p.What == "" {
		return nil
	}
	g.env.Progress(fmt.Sprintf("%s: the health gate had not passed when the run stopped: checking it again, from the step's baseline, before anything moves", p.What), 0, 0)
	return g.Gate(ctx, p.What, p.Nodes...)
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
		var problems, fatal []string
		for _, r := range g.judge(ctx, nodes...) {
			problems, fatal = append(problems, r.problems...), append(fatal, r.fatal...)
		}
		if len(problems) == 0 {
			if reported != "" { // the wait said above ends here: no screen keeps showing it
				g.env.Progress(fmt.Sprintf("%s: healthy: %s", what, g.values()), 0, 0)
			}
			return nil
		}
		if len(fatal) > 0 {
			return fmt.Errorf("%s: %s", what, strings.Join(fatal, "; "))
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
	for {
		if problems := g.Problems(ctx, nodes...); len(problems) > 0 {
			return fmt.Errorf("soak failed after %s: %s", time.Since(start).Round(time.Second), strings.Join(problems, "; "))
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-end.C:
			// The evidence it passes on: every gate green for the whole soak, with its last value.
			g.env.Progress(fmt.Sprintf("soak: every gate green for %s: %s", d, g.values()), 0, 0)
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
