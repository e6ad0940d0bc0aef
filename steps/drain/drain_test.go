package drain_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
)

var cluster *simcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(simcluster.Main(m, &cluster, simcluster.Options{PodReadyDelay: time.Second, PodDeleteDelay: 500 * time.Millisecond}))
}

var registry = runbook.Registry{drain.Kind}

// scenario is a namespace with its own nodes (labelled scenario=NAME), so tests do not disturb each other.
type scenario struct {
	t     *testing.T
	ctx   context.Context
	ns    string
	nodes []string
	// hook, when set, sees every event of the run with its engine (a person at the screen).
	hook func(*runbook.Engine, runbook.Event)
	// beforePatch, when set, runs before each node patch the run sends (a cordon), with the node's name.
	beforePatch func(node string)
	// refusePatch, when set, answers a node patch the run sends with 403 Forbidden when it returns
	// true (an admission webhook or RBAC refusing it), without sending it.
	refusePatch func(node string) bool
	// stateDir, when set, is the run's state directory (default: a new temporary one).
	stateDir string
}

func newScenario(t *testing.T, nodes int) *scenario {
	t.Helper()
	ctx := context.Background()
	ns := strings.ToLower(strings.NewReplacer("_", "-", "/", "-").Replace(t.Name()))
	if len(ns) > 40 {
		ns = ns[:40]
	}
	s := &scenario{t: t, ctx: ctx, ns: ns}
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= nodes; i++ {
		name := fmt.Sprintf("%s-%d", ns, i)
		if _, err := cluster.CreateNode(ctx, name, simcluster.NodeOptions{Labels: map[string]string{"scenario": ns}}); err != nil {
			t.Fatal(err)
		}
		s.nodes = append(s.nodes, name)
	}
	return s
}

// deploy creates a Deployment whose pods only run on this scenario's nodes.
func (s *scenario) deploy(name string, replicas int32, mutate ...func(*appsv1.Deployment)) {
	s.t.Helper()
	d := simcluster.Deployment(s.ns, name, replicas)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"scenario": s.ns}
	for _, m := range mutate {
		m(d)
	}
	if _, err := cluster.Client.AppsV1().Deployments(s.ns).Create(s.ctx, d, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

// deployOn creates a Deployment whose pods start on the given nodes: the scenario's other nodes are
// cordoned while it becomes Ready, then uncordoned (a cordon found in place stays).
func (s *scenario) deployOn(name string, replicas int32, on ...string) {
	s.t.Helper()
	var held []string
	for _, n := range s.nodes {
		if !slices.Contains(on, n) && !s.node(n).Spec.Unschedulable {
			s.cordon(n, true)
			held = append(held, n)
		}
	}
	s.deploy(name, replicas)
	s.waitReady(name)
	for _, n := range held {
		s.cordon(n, false)
	}
}

func (s *scenario) waitReady(name string) {
	s.t.Helper()
	if err := cluster.WaitDeploymentReady(s.ctx, s.ns, name, time.Minute); err != nil {
		s.t.Fatalf("deployment %s: %v", name, err)
	}
}

func (s *scenario) pdb(name string, selector map[string]string, minAvailable, maxUnavailable *intstr.IntOrString) {
	s.t.Helper()
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: selector},
			MinAvailable: minAvailable, MaxUnavailable: maxUnavailable},
	}
	if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.ns).Create(s.ctx, pdb, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	// Let the disruption controller compute its status.
	if err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && p.Status.ObservedGeneration == p.Generation && p.Status.ExpectedPods > 0, nil
	}); err != nil {
		s.t.Fatalf("budget %s never got a status", name)
	}
}

// nodeWithPods returns a scenario node that runs at least one pod labelled app=name.
func (s *scenario) nodeWithPods(app string) string {
	s.t.Helper()
	pods, err := cluster.Client.CoreV1().Pods(s.ns).List(s.ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil || len(pods.Items) == 0 {
		s.t.Fatalf("no pods of %s: %v", app, err)
	}
	return pods.Items[0].Spec.NodeName
}

func (s *scenario) node(name string) *corev1.Node {
	n, err := cluster.Client.CoreV1().Nodes().Get(s.ctx, name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	return n
}

type recorder = printer.Recorder

// run drains through the engine, as `drydock drain` does.
func (s *scenario) run(with string, timeout string) (*runbook.RunState, *runbook.Engine, *recorder, error) {
	s.t.Helper()
	text := fmt.Sprintf("apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: d}\nspec:\n  targetVersion: v1.37.1\n  state: {namespace: %s}\n  defaults: {timeout: %s}\n  steps:\n    - name: drain\n      type: drain\n      with: %s\n", s.ns, timeout, with)
	rb, err := runbook.Parse("drain.yaml", []byte(text), registry)
	if err != nil {
		s.t.Fatal(err)
	}
	rec := &recorder{}
	var kube kubernetes.Interface = cluster.Client
	if s.beforePatch != nil || s.refusePatch != nil {
		cfg := rest.CopyConfig(cluster.Config)
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTrip(func(r *http.Request) (*http.Response, error) {
				if node, ok := strings.CutPrefix(r.URL.Path, "/api/v1/nodes/"); ok && r.Method == http.MethodPatch {
					if s.beforePatch != nil {
						s.beforePatch(node)
					}
					if s.refusePatch != nil && s.refusePatch(node) {
						body := fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,"message":"nodes \"%s\" is forbidden: denied by the test's admission"}`, node)
						return &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{"Content-Type": {"application/json"}},
							Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
					}
				}
				return rt.RoundTrip(r)
			})
		})
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			s.t.Fatal(err)
		}
		kube = c
	}
	dir := s.stateDir
	if dir == "" {
		dir = s.t.TempDir()
	}
	e := &runbook.Engine{Registry: registry, Sink: rec, Decider: runbook.AlwaysContinue, Kube: kube, StateDir: dir}
	if s.hook != nil {
		e.Sink = runbook.SinkFunc(func(ev runbook.Event) { rec.Emit(ev); s.hook(e, ev) })
	}
	st, err := e.Start(s.ctx, rb)
	return st, e, rec, err
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func ptr(v intstr.IntOrString) *intstr.IntOrString { return &v }

// TestHundredPercentBudgetBlocksBeforeAnythingMoves: the plan names the budget, and the drain
// refuses to start (exit 3) without cordoning the node.
func TestHundredPercentBudgetBlocksBeforeAnythingMoves(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 2)
	s.deploy("web", 4)
	s.waitReady("web")
	s.pdb("web", map[string]string{"app": "web"}, ptr(intstr.FromString("100%")), nil)
	node := s.nodeWithPods("web")

	plan, err := drain.NewPlanner(cluster.Client, drain.Options{}, "").Plan(s.ctx, []string{node})
	if err != nil {
		t.Fatal(err)
	}
	var found *drain.Blocker
	for _, b := range plan.Blockers() {
		if b.Kind == drain.BlockNeverDrains {
			found = &b
			break
		}
	}
	if found == nil || found.PDB != s.ns+"/web" || !strings.Contains(found.Message, "minAvailable: 100%") || !found.Fatal {
		t.Fatalf("plan blockers %+v: want the 100%% budget %s/web named", plan.Blockers(), s.ns)
	}

	_, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s]}", node), "1m")
	if exitcode.For(err) != exitcode.Blocked || !strings.Contains(err.Error(), "blocked before the first node moved") || !strings.Contains(rec.Text(), s.ns+"/web") {
		t.Fatalf("drain: exit %d, %v", exitcode.For(err), err)
	}
	if s.node(node).Spec.Unschedulable {
		t.Fatal("the node was cordoned although the drain was refused before starting")
	}
	if !strings.Contains(rec.Text(), "BLOCK "+node+" pod/") {
		t.Errorf("the blocker should go out in the plan:\n%s", rec.Text())
	}
}

// TestPodsArrivingAfterThePlanAreDrained: a drain of two nodes plans both first; a pod that reaches
// the second node after that (here: while its cordon is on its way), before the second is cordoned,
// is drained with it, not left on a node that will be upgraded.
func TestPodsArrivingAfterThePlanAreDrained(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 3)
	n1, n2, n3 := s.nodes[0], s.nodes[1], s.nodes[2]
	// The late pod runs on n2 (n3 is cordoned then); drained, it goes to n3.
	for _, n := range []string{n2, n3} {
		if _, err := cluster.Client.CoreV1().Nodes().Patch(s.ctx, n, types.MergePatchType, []byte(`{"metadata":{"labels":{"late":"here"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s.cordon(n3, true)
	s.deploy("late", 0, func(d *appsv1.Deployment) { d.Spec.Template.Spec.NodeSelector["late"] = "here" })
	var late *corev1.Pod
	var once sync.Once
	s.beforePatch = func(node string) {
		if node != n2 {
			return
		}
		once.Do(func() {
			if _, err := cluster.Client.AppsV1().Deployments(s.ns).Patch(s.ctx, "late", types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{}); err != nil {
				t.Error(err)
				return
			}
			_ = wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
				pods, err := cluster.Client.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=late"})
				if err != nil || len(pods.Items) != 1 || pods.Items[0].Spec.NodeName != n2 || !simcluster.PodReady(&pods.Items[0]) {
					return false, nil
				}
				late = &pods.Items[0]
				return true, nil
			})
			s.cordon(n3, false)
		})
	}
	_, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s, %s]}", n1, n2), "1m")
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	if late == nil {
		t.Fatalf("the late pod never ran on %s: the test proves nothing", n2)
	}
	p, err := cluster.Client.CoreV1().Pods(s.ns).Get(s.ctx, late.Name, metav1.GetOptions{})
	if err == nil && p.UID == late.UID {
		t.Fatalf("pod %s reached %s after the plan and is still there after its drain:\n%s", late.Name, n2, rec.Text())
	}
	if err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := cluster.Client.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=late"})
		return err == nil && len(pods.Items) == 1 && pods.Items[0].Spec.NodeName == n3, nil
	}); err != nil {
		t.Errorf("the late pod's replacement should run on %s", n3)
	}
	if !strings.Contains(rec.Text(), "arrived after the plan") {
		t.Errorf("the run should say why it planned %s again:\n%s", n2, rec.Text())
	}
}

// TestSeveralNodesAreCordonedFirst: a drain of several nodes cordons them all before the first
// drains (as kubectl drain does), so the pods of the first find a place on a node that stays, not
// on the next one to drain, where they would move twice.
func TestSeveralNodesAreCordonedFirst(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 3)
	n1, n2, n3 := s.nodes[0], s.nodes[1], s.nodes[2]
	s.deployOn("web", 3, n1)
	var early []string
	var mu sync.Mutex
	s.hook = func(_ *runbook.Engine, ev runbook.Event) {
		if c, ok := ev.(*runbook.NodeChanged); ok && c.Node == n1 && c.State == runbook.NodeDraining && !s.node(n2).Spec.Unschedulable {
			mu.Lock()
			early = append(early, n2)
			mu.Unlock()
		}
	}
	_, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s, %s]}", n1, n2), "1m")
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	if len(early) > 0 {
		t.Errorf("%s started draining while %s, drained next, was still schedulable:\n%s", n1, n2, rec.Text())
	}
	pods, err := cluster.Client.CoreV1().Pods(s.ns).List(s.ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != n3 {
			t.Errorf("pod %s runs on %s, want %s (the only node not drained)", p.Name, p.Spec.NodeName, n3)
		}
	}
}

// TestRefusedCordonMovesNothing: one planned node's cordon is refused (403) while the others are
// cordoned beside it: the drain fails naming that node before any pod is evicted, uncordons the
// node it cordoned, and keeps the admin's cordon.
func TestRefusedCordonMovesNothing(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 4)
	n1, n2, n3 := s.nodes[0], s.nodes[1], s.nodes[2]
	s.cordon(n2, true) // the admin's
	s.deployOn("web", 2, n1)
	before, err := cluster.Client.CoreV1().Pods(s.ns).List(s.ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	s.refusePatch = func(node string) bool { return node == n3 }
	_, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s, %s, %s]}", n1, n2, n3), "1m")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("cordon node %q", n3)) || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("want the drain to fail on %s's cordon, got exit %d: %v\n%s", n3, exitcode.For(err), err, rec.Text())
	}
	if strings.Contains(rec.Text(), "evicted") {
		t.Errorf("a pod was evicted although a planned node could not be cordoned:\n%s", rec.Text())
	}
	after, err := cluster.Client.CoreV1().Pods(s.ns).List(s.ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Items) != len(before.Items) {
		t.Errorf("web has %d pods, had %d", len(after.Items), len(before.Items))
	}
	for i := range after.Items {
		if p := after.Items[i]; p.Spec.NodeName != n1 || p.DeletionTimestamp != nil {
			t.Errorf("pod %s on %s (deleting %v), want it left on %s", p.Name, p.Spec.NodeName, p.DeletionTimestamp != nil, n1)
		}
	}
	if n := s.node(n1); n.Spec.Unschedulable || n.Annotations[drain.AnnotationCordonedBy] != "" {
		t.Errorf("%s, cordoned by the run, stayed cordoned (%v) after the refusal", n1, n.Annotations)
	}
	if !s.node(n2).Spec.Unschedulable {
		t.Errorf("the admin's cordon on %s was lifted", n2)
	}
	if s.node(n3).Spec.Unschedulable {
		t.Errorf("%s is cordoned although its cordon was refused", n3)
	}
}

// TestTimeoutReportsWhatIsLeft: a budget that allows no disruption now (one replica elsewhere
// never becomes Ready): the drain waits, times out, names each pod left with its budget and
// numbers, and uncordons the node it cordoned.
func TestTimeoutReportsWhatIsLeft(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 3)
	// Put both web pods on node 0: keep the others cordoned while they are scheduled.
	s.cordon(s.nodes[1], true)
	s.cordon(s.nodes[2], true)
	s.deploy("web", 2, func(d *appsv1.Deployment) { d.Spec.Template.Labels["tier"] = "front" })
	s.waitReady("web")
	s.cordon(s.nodes[1], false)
	s.cordon(s.nodes[2], false)
	s.deploy("slow", 1, func(d *appsv1.Deployment) {
		d.Spec.Template.Labels["tier"] = "front"
		d.Spec.Template.Annotations = map[string]string{"pod-ready.stage.kwok.x-k8s.io/delay": "1h"}
		d.Spec.Template.Spec.NodeSelector["kubernetes.io/hostname"] = s.nodes[2]
	})
	s.pdb("front", map[string]string{"tier": "front"}, ptr(intstr.FromInt32(2)), nil) // 3 pods, 2 healthy: 0 allowed

	start := time.Now()
	st, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s]}", s.nodes[0]), "4s")
	var be *drain.BlockedError
	if !errors.As(err, &be) || exitcode.For(err) != exitcode.Blocked {
		t.Fatalf("want a BlockedError with exit 3, got exit %d: %v\n%s", exitcode.For(err), err, rec.Text())
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("took %v for a 4s timeout", time.Since(start))
	}
	if len(be.Left) != 2 {
		t.Fatalf("left %v, want both web pods", be.Left)
	}
	// Each pod left names its budget, the budget's pod that is not healthy (where, why) and the fix.
	fix := "fix: kubectl patch pdb front -n " + s.ns + ` --type=merge -p '{"spec":{"minAvailable":1}}'`
	for _, l := range be.Left {
		if !strings.Contains(l, "blocked by PDB "+s.ns+"/front: needs 2 healthy, has 2") ||
			!strings.Contains(l, "(on "+s.nodes[2]+") not Ready") || !strings.Contains(l, s.ns+"/slow-") || !strings.Contains(l, fix) {
			t.Errorf("left: %q", l)
		}
	}
	// The same chain went out live, while the drain waited.
	if text := rec.Text(); !strings.Contains(text, "PDB "+s.ns+"/front allows 0 disruption(s): needs 2 healthy of 3, has 2") || !strings.Contains(text, fix) {
		t.Errorf("the chain was not reported while the drain waited:\n%s", text)
	}
	if s.node(s.nodes[0]).Spec.Unschedulable {
		t.Fatal("the node drydock cordoned must be uncordoned after the drain failed")
	}
	if st.Step("drain").Status != runbook.StatusFailed {
		t.Fatalf("step %s", st.Step("drain").Status)
	}
	if !strings.Contains(rec.Text(), "WARNING: pod/") || !strings.Contains(rec.Text(), "allows no disruption right now") {
		t.Errorf("the plan should warn about the budget before starting:\n%s", rec.Text())
	}
}

// TestStallDetectorFailsFast: a budget at zero because a pod of it cannot be scheduled: with
// stallTimeout 3s the drain stops within seconds (not at its 3-minute timeout), blocked (exit 3),
// naming the unschedulable pod and the fix, and uncordons the node.
func TestStallDetectorFailsFast(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 2)
	s.stuckBudget()
	node := s.nodeWithPods("web")

	start := time.Now()
	_, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s], stallTimeout: 3s}", node), "3m")
	var se *drain.StalledError
	if !errors.As(err, &se) || exitcode.For(err) != exitcode.Blocked {
		t.Fatalf("want a StalledError with exit 3, got exit %d: %v\n%s", exitcode.For(err), err, rec.Text())
	}
	if took := time.Since(start); took > 45*time.Second {
		t.Fatalf("the stall was found after %v", took)
	}
	if !strings.Contains(err.Error(), s.ns+"/stuck-") || !strings.Contains(err.Error(), "Pending (not scheduled: Unschedulable") ||
		!strings.Contains(err.Error(), "kubectl patch pdb front -n "+s.ns) {
		t.Fatalf("the error does not explain the stall: %v", err)
	}
	if s.node(node).Spec.Unschedulable {
		t.Fatal("the node drydock cordoned must be uncordoned after the stall")
	}
}

// stuckBudget: web (2 replicas, Ready) and a pod that can never be scheduled, under one budget
// "front" with minAvailable 2 (3 pods, 2 healthy: no disruption allowed).
func (s *scenario) stuckBudget() {
	s.t.Helper()
	s.deploy("web", 2, func(d *appsv1.Deployment) { d.Spec.Template.Labels["tier"] = "front" })
	s.waitReady("web")
	s.deploy("stuck", 1, func(d *appsv1.Deployment) {
		d.Spec.Template.Labels["tier"] = "front"
		d.Spec.Template.Spec.NodeSelector["kubernetes.io/hostname"] = "nowhere"
	})
	s.pdb("front", map[string]string{"tier": "front"}, ptr(intstr.FromInt32(2)), nil) // 3 pods, 2 healthy: 0 allowed
}

func (s *scenario) cordon(node string, on bool) {
	s.t.Helper()
	if err := cluster.SetUnschedulable(s.ctx, node, on); err != nil {
		s.t.Fatal(err)
	}
}

// TestMultipleBudgetsDiagnosed: a pod under two budgets is named in the plan; and the eviction
// API's bare 500 becomes a diagnosis when the drain is attempted anyway.
func TestMultipleBudgetsDiagnosed(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 2)
	s.deploy("api", 2)
	s.waitReady("api")
	s.pdb("api-a", map[string]string{"app": "api"}, nil, ptr(intstr.FromInt32(1)))
	s.pdb("api-b", map[string]string{"app": "api"}, nil, ptr(intstr.FromInt32(1)))
	node := s.nodeWithPods("api")
	plan, err := drain.NewPlanner(cluster.Client, drain.Options{}, "").Plan(s.ctx, []string{node})
	if err != nil {
		t.Fatal(err)
	}
	var np drain.NodePlan = plan.Nodes[0]
	ok := false
	for _, b := range np.Blockers {
		ok = ok || (b.Kind == drain.BlockMultiplePDBs && strings.Contains(b.Message, s.ns+"/api-a, "+s.ns+"/api-b"))
	}
	if !ok {
		t.Fatalf("blockers %+v", np.Blockers)
	}
	// Straight at the eviction API:
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	err = (&drain.Drainer{Client: cluster.Client}).Drain(ctx, np)
	if err == nil || !strings.Contains(err.Error(), "more than one PodDisruptionBudget covers it") || !strings.Contains(err.Error(), "make their selectors disjoint") {
		t.Fatalf("drain error: %v", err)
	}
}

// TestAdminCordonStaysAfterAbortAndRollback: a node an admin cordoned is never uncordoned by
// drydock, neither when its drain is aborted nor on rollback; a node drydock cordoned is.
func TestAdminCordonStaysAfterAbortAndRollback(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 3)
	s.cordon(s.nodes[0], true) // the admin's
	s.cordon(s.nodes[2], true) // test setup: web lands on node 1
	s.deploy("web", 3)
	s.waitReady("web")
	s.cordon(s.nodes[2], false)
	s.deploy("slow", 1, func(d *appsv1.Deployment) {
		d.Spec.Template.Labels["app"] = "web-slow"
		d.Spec.Template.Labels["tier"] = "web"
		d.Spec.Selector.MatchLabels["app"] = "web-slow"
		d.Spec.Template.Annotations = map[string]string{"pod-ready.stage.kwok.x-k8s.io/delay": "1h"}
		d.Spec.Template.Spec.NodeSelector["kubernetes.io/hostname"] = s.nodes[2]
	})
	pods, _ := cluster.Client.CoreV1().Pods(s.ns).List(s.ctx, metav1.ListOptions{LabelSelector: "app=web"})
	for _, p := range pods.Items {
		p.Labels["tier"] = "web"
		if _, err := cluster.Client.CoreV1().Pods(s.ns).Update(s.ctx, &p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s.pdb("web", map[string]string{"tier": "web"}, ptr(intstr.FromInt32(3)), nil) // 4 pods, 3 healthy: 0 allowed now

	// The drain cordons node 1, waits on the budget, and is aborted by its timeout.
	_, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s, %s]}", s.nodes[0], s.nodes[1]), "3s")
	if exitcode.For(err) != exitcode.Blocked || !strings.Contains(rec.Text(), s.nodes[1]+": cordoned") {
		t.Fatalf("exit %d: %v\n%s", exitcode.For(err), err, rec.Text())
	}
	if !s.node(s.nodes[0]).Spec.Unschedulable {
		t.Fatal("the admin's cordon was removed after an aborted drain")
	}
	if s.node(s.nodes[1]).Spec.Unschedulable {
		t.Fatal("the node drydock cordoned stayed cordoned after the abort")
	}
	if err := cluster.Client.AppsV1().Deployments(s.ns).Delete(s.ctx, "slow", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.ns).Delete(s.ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// Now a drain that succeeds, then is rolled back.
	s.pdb("web2", map[string]string{"app": "web"}, nil, ptr(intstr.FromInt32(1)))
	s.waitReady("web")
	st, e, rec, err := s.run(fmt.Sprintf("{nodes: [%s, %s]}", s.nodes[0], s.nodes[1]), "1m")
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	n0, n1 := s.node(s.nodes[0]), s.node(s.nodes[1])
	if !n0.Spec.Unschedulable || !n1.Spec.Unschedulable || n1.Annotations[drain.AnnotationCordonedBy] != st.ID || n0.Annotations[drain.AnnotationCordonedBy] != "" {
		t.Fatalf("after the drain: %s unschedulable=%v %v; %s unschedulable=%v %v", n0.Name, n0.Spec.Unschedulable, n0.Annotations, n1.Name, n1.Spec.Unschedulable, n1.Annotations)
	}
	pods, _ = cluster.Client.CoreV1().Pods(s.ns).List(s.ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		if p.Spec.NodeName == s.nodes[0] || p.Spec.NodeName == s.nodes[1] {
			t.Errorf("pod %s still on drained node %s", p.Name, p.Spec.NodeName)
		}
	}
	if _, err := e.Rollback(s.ctx, st, ""); err != nil {
		t.Fatal(err)
	}
	if !s.node(s.nodes[0]).Spec.Unschedulable {
		t.Fatal("rollback uncordoned the admin's node")
	}
	if s.node(s.nodes[1]).Spec.Unschedulable {
		t.Fatal("rollback must uncordon the node drydock cordoned")
	}
	evs, _ := cluster.Client.CoreV1().Events("default").List(s.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + s.nodes[1]})
	reasons := map[string]bool{}
	for _, ev := range evs.Items {
		reasons[ev.Reason] = true
	}
	if !reasons["Cordoned"] || !reasons["Drained"] || !reasons["Uncordoned"] {
		t.Errorf("events on %s: %v", s.nodes[1], reasons)
	}
}

// TestStatefulSetPodRecreatedWithSameNameIsNotEvictedTwice: the StatefulSet controller recreates
// web-0 under the same name (elsewhere: the node is cordoned); the drain must not evict the new one.
func TestStatefulSetPodRecreatedWithSameNameIsNotEvictedTwice(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 2)
	s.cordon(s.nodes[1], true)
	labels := map[string]string{"app": "db"}
	one := int32(2)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &one, ServiceName: "db", Selector: &metav1.LabelSelector{MatchLabels: labels},
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"scenario": s.ns},
				Containers:   []corev1.Container{{Name: "db", Image: "registry.example/db:1"}},
			}},
		},
	}
	if _, err := cluster.Client.AppsV1().StatefulSets(s.ns).Create(s.ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		st, err := cluster.Client.AppsV1().StatefulSets(s.ns).Get(ctx, "db", metav1.GetOptions{})
		return err == nil && st.Status.ReadyReplicas == 2, nil
	}); err != nil {
		t.Fatal("statefulset never ready")
	}
	s.cordon(s.nodes[1], false)
	before, _ := cluster.Client.CoreV1().Pods(s.ns).Get(s.ctx, "db-0", metav1.GetOptions{})
	st, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s]}", s.nodes[0]), "1m")
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	if strings.Count(rec.Text(), "db-0 evicted") != 1 || strings.Count(rec.Text(), "db-1 evicted") != 1 {
		t.Fatalf("each pod must be evicted exactly once:\n%s", rec.Text())
	}
	if err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(s.ns).Get(ctx, "db-0", metav1.GetOptions{})
		return err == nil && p.UID != before.UID && p.Spec.NodeName == s.nodes[1] && simcluster.PodReady(p), nil
	}); err != nil {
		t.Fatalf("the recreated db-0 should run on %s: %v", s.nodes[1], err)
	}
	_ = st
}

// TestBudgetRelaxRestored: a budget stalled by a pod that cannot be scheduled. With allowBudgetRelax
// drydock relaxes it for the node (minAvailable 2 → 1), the drain finishes, and the budget is back
// at minAvailable 2 without drydock's marks. When the drain is interrupted right after the
// relaxation (Ctrl-C), the budget is restored all the same.
func TestBudgetRelaxRestored(t *testing.T) {
	simcluster.Need(t)
	for _, tc := range []struct {
		name      string
		interrupt bool
	}{{"after the node", false}, {"after an interruption", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScenario(t, 2)
			s.stuckBudget()
			node := s.nodeWithPods("web")
			if tc.interrupt {
				// Ctrl-C as soon as the budget carries drydock's relaxation.
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				s.ctx = ctx
				go func() {
					for ctx.Err() == nil {
						pdb, err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.ns).Get(ctx, "front", metav1.GetOptions{})
						if err == nil && pdb.Labels[drain.LabelRelaxedBy] != "" {
							cancel()
							return
						}
						time.Sleep(20 * time.Millisecond)
					}
				}()
			}

			st, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s], stallTimeout: 2s, allowBudgetRelax: {max: 1, expiry: 10m}}", node), "2m")
			s.ctx = context.Background()
			if tc.interrupt != (err != nil) {
				t.Fatalf("drain: %v (want it interrupted: %v)\n%s", err, tc.interrupt, rec.Text())
			}
			if !strings.Contains(rec.Text(), "relaxed PDB "+s.ns+"/front for node "+node) {
				t.Fatalf("the relaxation was not reported:\n%s", rec.Text())
			}
			pdb, err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.ns).Get(context.Background(), "front", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Spec.MaxUnavailable != nil || pdb.Labels[drain.LabelRelaxedBy] != "" || pdb.Annotations[drain.AnnotationRelaxed] != "" {
				t.Fatalf("budget not restored: spec %+v, labels %v, annotations %v", pdb.Spec, pdb.Labels, pdb.Annotations)
			}
			var relaxed, restored int
			for _, c := range st.Step("drain").Changes {
				switch c.Kind {
				case "budget-relax":
					relaxed++
				case "budget-restored":
					restored++
				}
			}
			if relaxed != 1 || restored != 1 {
				t.Fatalf("journal: %d relaxations, %d restorations; want one of each", relaxed, restored)
			}
			if s.node(node).Spec.Unschedulable == tc.interrupt {
				t.Fatalf("node unschedulable %v after the drain (interrupted %v)", s.node(node).Spec.Unschedulable, tc.interrupt)
			}
		})
	}
}

// TestRelaxApprovedAtTheTerminal: without allowBudgetRelax, and long before any stall timeout, a
// person approves relaxing the budget that holds the drain (the TUI's confirmed key calls
// Engine.ApproveRelax): drydock relaxes it at once, the drain finishes, and the budget is restored.
func TestRelaxApprovedAtTheTerminal(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 2)
	s.stuckBudget()
	node := s.nodeWithPods("web")
	var once sync.Once
	s.hook = func(e *runbook.Engine, ev runbook.Event) {
		if pc, ok := ev.(*runbook.PodChanged); ok && pc.Chain != nil && pc.Chain.Fix != "" {
			once.Do(func() { e.ApproveRelax(pc.Chain.PDB) })
		}
	}
	start := time.Now()
	st, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s], stallTimeout: 10m}", node), "2m")
	if err != nil {
		t.Fatalf("drain: %v\n%s", err, rec.Text())
	}
	if took := time.Since(start); took > time.Minute {
		t.Fatalf("the approved relaxation took %v", took)
	}
	if !strings.Contains(rec.Text(), "relaxed PDB "+s.ns+"/front for node "+node+" (approved at the terminal") {
		t.Fatalf("the approved relaxation was not reported:\n%s", rec.Text())
	}
	pdb, err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.ns).Get(s.ctx, "front", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Labels[drain.LabelRelaxedBy] != "" {
		t.Fatalf("budget not restored: %+v %v", pdb.Spec, pdb.Labels)
	}
	if n := len(st.Step("drain").Changes); n == 0 {
		t.Fatal("the relaxation is not in the journal")
	}
}

// TestDeadlockFoundAndReal: a budget that needs the node the drain takes away (two replicas pinned
// to one node, one disruption allowed) is found by the plan before anything moves, with the budget
// fix; and it is a real deadlock: driven past the plan, the drain stalls on that budget.
func TestDeadlockFoundAndReal(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 2)
	pinned := s.nodes[0]
	s.deploy("pinned", 2, func(d *appsv1.Deployment) { d.Spec.Template.Spec.NodeSelector["kubernetes.io/hostname"] = pinned })
	s.waitReady("pinned")
	s.pdb("pinned", map[string]string{"app": "pinned"}, nil, ptr(intstr.FromInt32(1)))

	plan, err := drain.NewPlanner(cluster.Client, drain.Options{}, "").Plan(s.ctx, []string{pinned})
	if err != nil {
		t.Fatal(err)
	}
	var dl *drain.Blocker
	for _, b := range plan.Blockers() {
		if b.Kind == drain.BlockDeadlock {
			dl = &b
		}
	}
	if dl == nil || !dl.Fatal || !strings.Contains(dl.Message, "PodDisruptionBudget "+s.ns+"/pinned allows 1 disruption(s) at once, but 2 of its 2 pod(s)") ||
		!strings.Contains(dl.Fix, "allow 2 disruption(s)") {
		t.Fatalf("want the deadlock with the budget fix, got %+v", plan.Blockers())
	}
	_, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s]}", pinned), "2m")
	if exitcode.For(err) != exitcode.Blocked || !strings.Contains(rec.Text(), "deadlock: PodDisruptionBudget "+s.ns+"/pinned") {
		t.Fatalf("the run must stop before anything moves (exit 3) naming the deadlock: exit %d %v\n%s", exitcode.For(err), err, rec.Text())
	}
	if s.node(pinned).Spec.Unschedulable {
		t.Fatal("nothing may move: the node was cordoned")
	}

	// Past the plan, straight at the eviction API: the first pod goes, its replacement has nowhere
	// to go, and the budget holds the second for ever; the stall detector says so.
	s.cordon(pinned, true)
	defer s.cordon(pinned, false)
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	err = (&drain.Drainer{Client: cluster.Client, Options: drain.Options{StallTimeout: runbook.Duration{Duration: 3 * time.Second}}}).Drain(ctx, plan.Nodes[0])
	var se *drain.StalledError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), s.ns+"/pinned") {
		t.Fatalf("the drain past a deadlock must stall on the budget, got %v", err)
	}
}

// TestBudgetRelaxLimit: a budget that stalls again after its one allowed relaxation is not relaxed a
// second time: the drain stops with the stall (its cause: allowBudgetRelax.max reached), the budget
// is restored and the node uncordoned. Two web pods on the drained node, whose replacements never
// become Ready (a ReplicaSet whose template changed after its pods started: a Deployment would
// roll them), under one budget with a pod that can never be scheduled.
func TestBudgetRelaxLimit(t *testing.T) {
	simcluster.Need(t)
	s := newScenario(t, 2)
	node, other := s.nodes[0], s.nodes[1]
	s.cordon(other, true) // both web pods start on node
	d := simcluster.Deployment(s.ns, "web", 2)
	d.Spec.Template.Labels["tier"] = "front"
	d.Spec.Template.Spec.NodeSelector = map[string]string{"scenario": s.ns}
	rs := &appsv1.ReplicaSet{ObjectMeta: d.ObjectMeta, Spec: appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, Selector: d.Spec.Selector, Template: d.Spec.Template}}
	if _, err := cluster.Client.AppsV1().ReplicaSets(s.ns).Create(s.ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(s.ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		r, err := cluster.Client.AppsV1().ReplicaSets(s.ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && r.Status.ReadyReplicas == 2, nil
	}); err != nil {
		t.Fatal("web never Ready")
	}
	s.cordon(other, false)
	patch := []byte(`{"spec":{"template":{"metadata":{"annotations":{"pod-ready.stage.kwok.x-k8s.io/delay":"1h"}}}}}`)
	if _, err := cluster.Client.AppsV1().ReplicaSets(s.ns).Patch(s.ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	s.deploy("stuck", 1, func(d *appsv1.Deployment) {
		d.Spec.Template.Labels["tier"] = "front"
		d.Spec.Template.Spec.NodeSelector["kubernetes.io/hostname"] = "nowhere"
	})
	s.pdb("front", map[string]string{"tier": "front"}, ptr(intstr.FromInt32(2)), nil) // 3 pods, 2 healthy: 0 allowed

	st, _, rec, err := s.run(fmt.Sprintf("{nodes: [%s], stallTimeout: 2s, allowBudgetRelax: {max: 1, expiry: 10m}}", node), "2m")
	var se *drain.StalledError
	if !errors.As(err, &se) || !errors.Is(err, drain.ErrRelaxLimit) || exitcode.For(err) != exitcode.Blocked {
		t.Fatalf("want the stall with allowBudgetRelax.max reached (exit 3), got exit %d: %v\n%s", exitcode.For(err), err, rec.Text())
	}
	pdb, err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.ns).Get(s.ctx, "front", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Labels[drain.LabelRelaxedBy] != "" || pdb.Annotations[drain.AnnotationRelaxed] != "" {
		t.Fatalf("budget not restored: spec %+v, labels %v, annotations %v", pdb.Spec, pdb.Labels, pdb.Annotations)
	}
	var relaxed int
	for _, c := range st.Step("drain").Changes {
		if c.Kind == "budget-relax" {
			relaxed++
		}
	}
	if relaxed != 1 {
		t.Fatalf("journal: %d relaxations, want exactly one (max: 1)", relaxed)
	}
	if s.node(node).Spec.Unschedulable {
		t.Fatal("the node drydock cordoned must be uncordoned after the stall")
	}
}
