package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

var cluster *simcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(simcluster.Main(m, &cluster, simcluster.Options{PodReadyDelay: 500 * time.Millisecond, PodDeleteDelay: 200 * time.Millisecond}))
}

const oldKubelet = "v1.36.3"

// upgradeAction is the simulated upgrade: the "kubelet" of the node reports the target version.
func upgradeAction(t *testing.T) string {
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`[%q, --kubeconfig, %q, patch, node, "{{.Node.Name}}", --subresource=status, -p, '{"status":{"nodeInfo":{"kubeletVersion":"{{.TargetVersion}}"}}}']`,
		filepath.Join(bin, "kubectl"), cluster.Kubeconfig)
}

// breakAction makes the node NotReady for good (kwok stops tending it).
func breakAction(t *testing.T) string {
	bin, _ := simcluster.BinDir()
	k := fmt.Sprintf("%s --kubeconfig %s", filepath.Join(bin, "kubectl"), cluster.Kubeconfig)
	return fmt.Sprintf(`[sh, -c, "%s annotate node {{.Node.Name}} drydock.dev/sim-not-ready=true && %s patch node {{.Node.Name}} --subresource=status -p '{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\",\"reason\":\"Broken\"}]}}'"]`, k, k)
}

// mendAction is breakAction's rollback: kwok tends the node again (Ready at the version it kept);
// it touches marker.
func mendAction(t *testing.T, marker string) string {
	bin, _ := simcluster.BinDir()
	k := fmt.Sprintf("%s --kubeconfig %s", filepath.Join(bin, "kubectl"), cluster.Kubeconfig)
	return fmt.Sprintf(`[sh, -c, "%s annotate node {{.Node.Name}} drydock.dev/sim-not-ready- && touch %s"]`, k, marker)
}

func nodes(t *testing.T, prefix string, n int, labels map[string]string) []string {
	t.Helper()
	var names []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		l := map[string]string{"suite": prefix}
		for k, v := range labels {
			l[k] = v
		}
		if _, err := cluster.CreateNode(context.Background(), name, simcluster.NodeOptions{KubeletVersion: oldKubelet, Labels: l}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

func namespace(t *testing.T, name string) {
	if _, err := cluster.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// workload runs replicas pods on the nodes with label key=value, under a maxUnavailable: 1 budget.
func workload(t *testing.T, ns, name string, replicas int32, selector map[string]string) {
	t.Helper()
	ctx := context.Background()
	d := simcluster.Deployment(ns, name, replicas)
	d.Spec.Template.Spec.NodeSelector = selector
	if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := intstr.FromInt32(1)
	if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WaitDeploymentReady(ctx, ns, name, time.Minute); err != nil {
		t.Fatal(err)
	}
}

type recorder = printer.Recorder

// countPodLists is a client of the cluster that counts the lists of every pod of the cluster (and
// patches grp-beta-2 a second late).
func countPodLists(t *testing.T, n *atomic.Int32) kubernetes.Interface {
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) {
			if q := r.URL.Query(); r.Method == http.MethodGet && r.URL.Path == "/api/v1/pods" && q.Get("watch") != "true" && q.Get("fieldSelector") == "" {
				n.Add(1)
			}
			if r.Method == http.MethodPatch && r.URL.Path == "/api/v1/nodes/grp-beta-2" {
				time.Sleep(time.Second)
			}
			return rt.RoundTrip(r)
		})
	})
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func engine(t *testing.T, d runbook.Decider) (*runbook.Engine, *recorder) {
	rec := &recorder{}
	return &runbook.Engine{Registry: steps.Registry, Sink: rec, Decider: d, Kube: cluster.Client, StateDir: t.TempDir(), NoMirror: true}, rec
}

func parse(t *testing.T, target, body string) *runbook.Runbook {
	t.Helper()
	text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: " + target + "\n  steps:\n" + body
	rb, err := runbook.Parse(t.Name()+".yaml", []byte(text), steps.Registry)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return rb
}

func node(t *testing.T, name string) *corev1.Node {
	n, err := cluster.Client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCanaryPicksUnblockedAndUpgradesIt(t *testing.T) {
	simcluster.Need(t)
	ns := "canary-ok"
	namespace(t, ns)
	names := nodes(t, "cok", 3, nil)
	// Two pods pinned on nodes 1 and 2 (their drains would leave them Pending); node 3 is the only
	// candidate nothing blocks.
	for _, n := range names[:2] {
		workload(t, ns, "on-"+n, 1, map[string]string{"kubernetes.io/hostname": n})
	}
	e, rec := engine(t, runbook.AlwaysContinue)
	rb := parse(t, "v1.37.1", fmt.Sprintf(`    - name: canary
      type: canary
      with:
        selector: suite=cok
        action: {exec: %s}
        soak: 2s
        health: {namespaces: [%s], timeout: 1m}
`, upgradeAction(t), ns))
	st, err := e.Start(context.Background(), rb)
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	if st.Step("canary").Status != runbook.StatusDone || !strings.Contains(rec.Text(), "canary node cok-3: of 3 candidates, none whose drain nothing blocks has pods to move") {
		t.Fatalf("events:\n%s", rec.Text())
	}
	if n := node(t, "cok-3"); n.Status.NodeInfo.KubeletVersion != "v1.37.1" || n.Spec.Unschedulable {
		t.Fatalf("canary node: kubelet %s, unschedulable %v", n.Status.NodeInfo.KubeletVersion, n.Spec.Unschedulable)
	}
	for _, n := range names[:2] {
		if node(t, n).Status.NodeInfo.KubeletVersion != oldKubelet {
			t.Fatalf("%s was upgraded too", n)
		}
	}
	if !strings.Contains(rec.Text(), "paused after the step") {
		t.Errorf("the canary pauses after itself by default:\n%s", rec.Text())
	}
}

// TestCanaryFailureRollsBack: the canary never comes back Ready: the rollout stops, the canary is
// rolled back (uncordoned, the rollback action run), and the run ends with exit 4.
func TestCanaryFailureRollsBack(t *testing.T) {
	simcluster.Need(t)
	ns := "canary-bad"
	namespace(t, ns)
	names := nodes(t, "cbad", 2, nil)
	workload(t, ns, "web", 2, map[string]string{"suite": "cbad"})
	marker := filepath.Join(t.TempDir(), "rolled-back")
	e, rec := engine(t, runbook.AlwaysContinue)
	rb := parse(t, "v1.37.1", fmt.Sprintf(`    - name: canary
      type: canary
      with:
        node: %s
        action: {exec: %s, readyTimeout: 3s, rollback: %s}
        soak: 1s
    - name: never
      type: exec
      with: {command: ["false"]}
`, names[0], breakAction(t), mendAction(t, marker)))
	st, err := e.Start(context.Background(), rb)
	if exitcode.For(err) != exitcode.Aborted {
		t.Fatalf("exit %d (%v), want %d\n%s", exitcode.For(err), err, exitcode.Aborted, rec.Text())
	}
	if !strings.Contains(err.Error(), "did not come back Ready") {
		t.Errorf("err %v", err)
	}
	if st.Status != runbook.RunRolledBack || st.Step("canary").Status != runbook.StatusRolledBack || st.Step("never").Status != runbook.StatusPending {
		t.Fatalf("run %s, canary %s, next %s", st.Status, st.Step("canary").Status, st.Step("never").Status)
	}
	if node(t, names[0]).Spec.Unschedulable {
		t.Fatal("the failed canary must be uncordoned")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the rollback action did not run")
	}
}

func TestKubeletNeverNewerThanAPIServer(t *testing.T) {
	simcluster.Need(t)
	nodes(t, "skew", 1, nil)
	e, _ := engine(t, runbook.AlwaysContinue)
	rb := parse(t, "v1.38.0", fmt.Sprintf("    - {name: canary, type: canary, with: {node: skew-1, action: {exec: %s}}}\n", upgradeAction(t)))
	_, err := e.Start(context.Background(), rb)
	// A check that blocks (exit 3): the runbook is right, the cluster is not ready for it yet.
	if err == nil || !strings.Contains(err.Error(), "upgrade the control plane first") || exitcode.For(err) != exitcode.Blocked {
		t.Fatalf("exit %d: %v", exitcode.For(err), err)
	}
	if node(t, "skew-1").Spec.Unschedulable {
		t.Fatal("nothing may be touched")
	}
}

type change struct {
	at       time.Time
	node     string
	cordoned bool
}

// timeline records every change of spec.unschedulable of the nodes of a suite.
func timeline(t *testing.T, suite string) (func() []change, func()) {
	var mu sync.Mutex
	var events []change
	last := map[string]bool{}
	f := informers.NewSharedInformerFactoryWithOptions(cluster.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = "suite=" + suite
	}))
	inf := f.Core().V1().Nodes().Informer()
	record := func(obj any) {
		n := obj.(*corev1.Node)
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := last[n.Name]; !ok || prev != n.Spec.Unschedulable {
			last[n.Name] = n.Spec.Unschedulable
			events = append(events, change{time.Now(), n.Name, n.Spec.Unschedulable})
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: record, UpdateFunc: func(_, o any) { record(o) }})
	stop := make(chan struct{})
	f.Start(stop)
	f.WaitForCacheSync(stop)
	return func() []change { mu.Lock(); defer mu.Unlock(); return append([]change(nil), events...) },
		func() { close(stop); f.Shutdown() }
}

// TestNodeGroupsOneGroupAtATime: three groups, maxUnavailable 2: from the recorded cordon
// timeline, no more than 2 nodes of a group and no node of another group are ever unschedulable
// at once, and the groups run in the given order.
func TestNodeGroupsOneGroupAtATime(t *testing.T) {
	simcluster.Need(t)
	ns := "groups"
	namespace(t, ns)
	groupOf := map[string]string{}
	for _, g := range []struct {
		name string
		n    int
	}{{"alpha", 3}, {"beta", 4}, {"gamma", 2}} {
		for _, n := range nodes(t, "grp-"+g.name, g.n, map[string]string{"drydock.dev/group": g.name, "suite": "grp"}) {
			groupOf[n] = g.name
		}
		workload(t, ns, "app-"+g.name, int32(2*g.n), map[string]string{"drydock.dev/group": g.name})
	}
	events, stop := timeline(t, "grp")
	defer stop()
	e, rec := engine(t, runbook.AlwaysContinue)
	var lists atomic.Int32
	e.Kube = countPodLists(t, &lists)
	// A batch's nodes are all cordoned before any of them drains, however slow one cordon is: the
	// cordon of grp-beta-2 (the first batch with grp-beta-1) takes a second longer.
	var early atomic.Bool
	e.Sink = runbook.SinkFunc(func(ev runbook.Event) {
		rec.Emit(ev)
		if c, ok := ev.(*runbook.NodeChanged); ok && c.Node == "grp-beta-1" && c.State == runbook.NodeDraining && !node(t, "grp-beta-2").Spec.Unschedulable {
			early.Store(true)
		}
	})
	rb := parse(t, "v1.37.1", fmt.Sprintf(`    - name: fleet
      type: nodegroups
      with:
        groupBy: drydock.dev/group
        selector: suite=grp
        order: [beta, alpha]
        maxUnavailable: 2
        action: {exec: %s}
        health: {namespaces: [%s], timeout: 2m}
`, upgradeAction(t), ns))
	if _, err := e.Start(context.Background(), rb); err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	// The timeline's informer sees the last uncordon (or, if a node stayed cordoned, the checks
	// below say which, after 10s).
	_ = wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		state := map[string]bool{}
		for _, c := range events() {
			state[c.node] = c.cordoned
		}
		for _, on := range state {
			if on {
				return false, nil
			}
		}
		return true, nil
	})
	cordoned := map[string]bool{}
	var order []string
	for _, c := range events() {
		cordoned[c.node] = c.cordoned
		if c.cordoned && (len(order) == 0 || order[len(order)-1] != groupOf[c.node]) {
			order = append(order, groupOf[c.node])
		}
		perGroup := map[string]int{}
		for n, on := range cordoned {
			if on {
				perGroup[groupOf[n]]++
			}
		}
		if len(perGroup) > 1 {
			t.Fatalf("at %s nodes of several groups were unschedulable at once: %v", c.at.Format("15:04:05.000"), perGroup)
		}
		for g, k := range perGroup {
			if k > 2 {
				t.Fatalf("%d nodes of group %s unschedulable at once (maxUnavailable 2)", k, g)
			}
		}
	}
	if strings.Join(order, ",") != "beta,alpha,gamma" {
		t.Fatalf("groups ran in the order %v, want beta, alpha, gamma", order)
	}
	// Every pod of the cluster is read once for the run's plan, once per group (planned again as it
	// starts) and once per batch, not once per node: 1 + 3 + 5 (beta 2+2, alpha 2+1, gamma 2), and
	// the health gates' informer: 10 (19 when each node planned its drain again), one more allowed
	// for a relist of that informer.
	if n := lists.Load(); n > 11 {
		t.Errorf("all pods were listed %d times for 3 groups in 5 batches of 9 nodes: each node planned its drain again", n)
	}
	if early.Load() {
		t.Errorf("grp-beta-1 drained while grp-beta-2, of the same batch, was not cordoned yet: its pods could land there and move twice")
	}
	maxSeen := 0
	cur := map[string]bool{}
	for _, c := range events() {
		cur[c.node] = c.cordoned
		k := 0
		for _, on := range cur {
			if on {
				k++
			}
		}
		maxSeen = max(maxSeen, k)
	}
	if maxSeen != 2 {
		t.Errorf("at most %d node(s) were unschedulable at once: maxUnavailable 2 should be used", maxSeen)
	}
	var left []string
	for n := range groupOf {
		if nd := node(t, n); nd.Status.NodeInfo.KubeletVersion != "v1.37.1" || nd.Spec.Unschedulable {
			left = append(left, n)
		}
	}
	sort.Strings(left)
	if len(left) > 0 {
		t.Fatalf("not upgraded or still cordoned: %v", left)
	}
}

// TestNodeGroupsPauseAfterGroupAndResume: with nobody to answer, the run stops after the first
// group (exit 5); resumed, it goes on with the next group without redoing the first.
func TestNodeGroupsPauseAfterGroupAndResume(t *testing.T) {
	simcluster.Need(t)
	// Health is judged in this test's namespace only: the broken canary node of another test
	// must not hold this rollout up.
	namespace(t, "pg")
	for _, g := range []string{"one", "two"} {
		nodes(t, "pg-"+g, 2, map[string]string{"pool": "pg-" + g, "suite": "pg"})
	}
	e, rec := engine(t, runbook.StopAtPause)
	rb := parse(t, "v1.37.1", fmt.Sprintf(`    - name: fleet
      type: nodegroups
      pause: none
      with:
        groupBy: pool
        selector: suite=pg
        pauseAfterGroup: true
        action: {exec: %s}
        health: {namespaces: [pg], timeout: 1m}
`, upgradeAction(t)))
	st, err := e.Start(context.Background(), rb)
	if exitcode.For(err) != exitcode.Paused || st.Status != runbook.RunPaused {
		t.Fatalf("exit %d, status %s: %v\n%s", exitcode.For(err), st.Status, err, rec.Text())
	}
	if node(t, "pg-one-1").Status.NodeInfo.KubeletVersion != "v1.37.1" || node(t, "pg-two-1").Status.NodeInfo.KubeletVersion != oldKubelet {
		t.Fatal("want the first group upgraded and the second not yet")
	}
	e.Decider = runbook.AlwaysContinue
	if _, err := e.Resume(context.Background(), st); err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	if node(t, "pg-two-2").Status.NodeInfo.KubeletVersion != "v1.37.1" {
		t.Fatal("second group not upgraded")
	}
	if n := strings.Count(rec.Text(), "node pg-one-1: upgrading:"); n != 1 {
		t.Fatalf("pg-one-1 upgraded %d times", n)
	}
	// The resumed session shows the whole run: the first group from the earlier session's log, and
	// a summary counting every node upgraded, not only the second group's.
	var history *runbook.RunHistory
	var summary *runbook.RunSummary
	for _, ev := range rec.Events() {
		switch ev := ev.(type) {
		case *runbook.RunHistory:
			history = ev
		case *runbook.RunSummary:
			summary = ev
		}
	}
	if history == nil || summary == nil {
		t.Fatalf("no run.history (%v) or run.summary (%v) in the resumed session", history != nil, summary != nil)
	}
	upgraded := map[string]bool{}
	for _, n := range history.Nodes {
		upgraded[n.Node] = n.State == runbook.NodeUpgraded
	}
	if !upgraded["pg-one-1"] || !upgraded["pg-one-2"] || upgraded["pg-two-1"] {
		t.Errorf("the resumed session's history: %+v", history)
	}
	count := 0
	for _, g := range summary.Groups {
		count += len(g.Nodes)
	}
	if count != 4 {
		t.Errorf("the resumed session's summary counts %d nodes upgraded, want 4: %+v", count, summary.Groups)
	}
}

// TestHealthBaselineKeptAcrossResume: the health baseline is taken when the step first begins and
// kept in the journal: a pod that broke while the run was paused is not forgiven by the resume.
func TestHealthBaselineKeptAcrossResume(t *testing.T) {
	simcluster.Need(t)
	ns := "baseline"
	namespace(t, ns)
	for _, g := range []string{"one", "two"} {
		nodes(t, "bl-"+g, 1, map[string]string{"pool": "bl-" + g, "suite": "bl"})
	}
	e, rec := engine(t, runbook.StopAtPause)
	rb := parse(t, "v1.37.1", fmt.Sprintf(`    - name: fleet
      type: nodegroups
      pause: none
      with:
        groupBy: pool
        selector: suite=bl
        pauseAfterGroup: true
        action: {exec: %s}
        health: {namespaces: [%s], timeout: 3s}
`, upgradeAction(t), ns))
	st, err := e.Start(context.Background(), rb)
	if exitcode.For(err) != exitcode.Paused {
		t.Fatalf("exit %d: %v\n%s", exitcode.For(err), err, rec.Text())
	}
	// While paused, something breaks: a pod that cannot be scheduled.
	d := simcluster.Deployment(ns, "broken", 1)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"nowhere": "true"}
	if _, err := cluster.Client.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=broken"})
		return err == nil && len(pods.Items) > 0, nil
	}); err != nil {
		t.Fatal("the broken pod never appeared")
	}
	e.Decider = runbook.AlwaysContinue
	_, err = e.Resume(context.Background(), st)
	if err == nil || !strings.Contains(err.Error(), "Pending") {
		t.Fatalf("resume: %v; want the health gate to fail on the pod that broke while paused\n%s", err, rec.Text())
	}
}

// TestCanarySelectorTypoStopsTheRun: a canary selector with a typo matches no node. The run must
// stop as invalid input naming the selector, before any node moves: before, the canary said
// "every candidate node is already at the target: nothing to do" and the node groups step upgraded
// the whole fleet with no canary.
func TestCanarySelectorTypoStopsTheRun(t *testing.T) {
	simcluster.Need(t)
	names := nodes(t, "ctypo", 3, map[string]string{"drydock.dev/pool": "general"})
	e, rec := engine(t, runbook.AlwaysContinue)
	rb := parse(t, "v1.37.1", fmt.Sprintf(`    - name: canary
      type: canary
      with:
        selector: drydock.dev/pol=general,suite=ctypo
        action: {exec: %[1]s}
        soak: 1s
    - name: fleet
      type: nodegroups
      with:
        groupBy: drydock.dev/pool
        selector: suite=ctypo
        action: {exec: %[1]s}
`, upgradeAction(t)))
	_, err := e.Start(context.Background(), rb)
	if !errors.Is(err, runbook.ErrInvalid) || exitcode.For(err) != exitcode.Usage {
		t.Fatalf("run: %v (exit %d), want invalid input\n%s", err, exitcode.For(err), rec.Text())
	}
	if !strings.Contains(err.Error(), `selector "drydock.dev/pol=general,suite=ctypo" matches none of the cluster's`) || !strings.Contains(err.Error(), "drydock.dev/pool=general") {
		t.Errorf("the error does not name the selector and the labels that exist: %v", err)
	}
	if strings.Contains(rec.Text(), "nothing to do") {
		t.Errorf("the run said there was nothing to do:\n%s", rec.Text())
	}
	for _, n := range names {
		if got := node(t, n); got.Status.NodeInfo.KubeletVersion != oldKubelet || got.Spec.Unschedulable {
			t.Errorf("%s moved: kubelet %s, cordoned %v", n, got.Status.NodeInfo.KubeletVersion, got.Spec.Unschedulable)
		}
	}
}

// TestResumeRerunsTheGateItStoppedIn: the run stops while the health gate between two batches waits
// (a pod broke after the first node). Resumed, it must check that gate again, from the step's
// baseline, before the next node is touched: before, it went straight to the next node as though the
// gate had passed. (The run is stopped with its context, as Ctrl-C does; a kill -9 leaves the same
// gate record in the journal, with the run "running" instead of "interrupted".)
func TestResumeRerunsTheGateItStoppedIn(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ns := "gate-resume"
	namespace(t, ns)
	names := nodes(t, "gres", 2, map[string]string{"pool": "gres"})
	rb := parse(t, "v1.37.1", fmt.Sprintf(`    - name: fleet
      type: nodegroups
      pause: none
      with:
        groupBy: pool
        selector: suite=gres
        action: {exec: %s}
        health: {namespaces: [%s], timeout: 2m}
`, upgradeAction(t), ns))
	broken := simcluster.Deployment(ns, "broken", 1)
	broken.Spec.Template.Spec.NodeSelector = map[string]string{"nowhere": "true"}
	rctx, stop := context.WithCancel(ctx)
	e, rec := engine(t, runbook.AlwaysContinue)
	e.Sink = runbook.SinkFunc(func(ev runbook.Event) {
		rec.Emit(ev)
		switch ev := ev.(type) {
		case *runbook.NodeChanged:
			if ev.Node == names[0] && ev.State == runbook.NodeUpgraded { // the first batch is done: break a pod
				if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, broken, metav1.CreateOptions{}); err != nil {
					t.Error(err)
				}
				// The step waits here until the pod exists and its watch has had time to see it.
				_ = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
					pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=broken"})
					return err == nil && len(pods.Items) > 0, nil
				})
				time.Sleep(time.Second)
			}
		case *runbook.StepProgress:
			if strings.Contains(ev.Message, "waiting for health") {
				stop()
			}
		}
	})
	st, err := e.Start(rctx, rb)
	if !st.Status.Resumable() || node(t, names[1]).Spec.Unschedulable {
		t.Fatalf("stopped in the gate: %s, %v\n%s", st.Status, err, rec.Text())
	}

	e2, rec2 := engine(t, runbook.AlwaysContinue)
	e2.StateDir = e.StateDir
	rechecked := make(chan struct{})
	var once sync.Once
	var movedEarly atomic.Bool
	e2.Sink = runbook.SinkFunc(func(ev runbook.Event) {
		rec2.Emit(ev)
		if p, ok := ev.(*runbook.StepProgress); ok && strings.Contains(p.Message, "the health gate had not passed when the run stopped") {
			once.Do(func() { close(rechecked) })
		}
		if c, ok := ev.(*runbook.NodeChanged); ok && c.Node == names[1] && c.State == runbook.NodeDraining {
			select {
			case <-rechecked:
			default:
				movedEarly.Store(true)
			}
		}
	})
	go func() {
		select { // the gate is checked again and holds: then the pod is mended
		case <-rechecked:
			time.Sleep(time.Second)
			if n, err := cluster.Client.CoreV1().Nodes().Get(ctx, names[1], metav1.GetOptions{}); err == nil && n.Spec.Unschedulable {
				movedEarly.Store(true)
			}
			_ = cluster.Client.AppsV1().Deployments(ns).Delete(ctx, "broken", metav1.DeleteOptions{})
		case <-time.After(time.Minute):
		}
	}()
	if _, err := e2.Resume(ctx, st); err != nil {
		t.Fatalf("resume: %v\n%s", err, rec2.Text())
	}
	select {
	case <-rechecked:
	default:
		t.Fatalf("resume did not check the gate it stopped in again:\n%s", rec2.Text())
	}
	if movedEarly.Load() {
		t.Fatalf("resume moved %s before the gate passed:\n%s", names[1], rec2.Text())
	}
	if node(t, names[1]).Status.NodeInfo.KubeletVersion != "v1.37.1" {
		t.Fatalf("%s not upgraded after the gate passed:\n%s", names[1], rec2.Text())
	}
}

// TestRollbackDrainsBeforeItsCommand: rolling an upgraded node back goes through the upgrade's
// cycle: the node is cordoned and drained under its budget before the rollback command runs (the
// command itself records what it found), comes back Ready at the version it had, is uncordoned,
// and no budget is broken at any time. Before, the command ran on the live node, pods and all.
func TestRollbackDrainsBeforeItsCommand(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ns := "undo-drain"
	namespace(t, ns)
	names := nodes(t, "undo", 2, nil)
	workload(t, ns, "web", 4, map[string]string{"suite": "undo"})
	budgets := cluster.WatchBudgets()
	defer budgets.Stop()
	seen := filepath.Join(t.TempDir(), "seen")
	bin, _ := simcluster.BinDir()
	k := fmt.Sprintf("%s --kubeconfig %s", filepath.Join(bin, "kubectl"), cluster.Kubeconfig)
	// The rollback command writes what it finds (the node's cordon, the workload's pods on it),
	// then sets the kubelet back.
	rollback := fmt.Sprintf(`[sh, -c, "%[1]s get node {{.Node.Name}} -o jsonpath={.spec.unschedulable} > %[2]s; echo >> %[2]s; %[1]s get pods -n %[3]s --field-selector spec.nodeName={{.Node.Name}} --no-headers 2>/dev/null | grep -c . >> %[2]s; %[1]s patch node {{.Node.Name}} --subresource=status -p '{\"status\":{\"nodeInfo\":{\"kubeletVersion\":\"%[4]s\"}}}'"]`,
		k, seen, ns, oldKubelet)
	e, rec := engine(t, runbook.StopAtPause)
	rb := parse(t, "v1.37.1", fmt.Sprintf(`    - name: canary
      type: canary
      with:
        node: %s
        action: {exec: %s, rollback: %s}
        soak: 1s
        health: {namespaces: [%s], timeout: 1m}
`, names[0], upgradeAction(t), rollback, ns))
	st, err := e.Start(ctx, rb)
	if exitcode.For(err) != exitcode.Paused {
		t.Fatalf("run: %v\n%s", err, rec.Text())
	}
	// The canary's drain moved every web pod to the other node: send two back, one at a time (the
	// scheduler spreads their replacements), so that the rollback has pods to drain.
	for range 2 {
		pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + names[1]})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("pods on %s: %v", names[1], err)
		}
		if err := cluster.Client.CoreV1().Pods(ns).Delete(ctx, pods.Items[0].Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if err := cluster.WaitDeploymentReady(ctx, ns, "web", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + names[0]})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("the upgraded node has no pods to drain (%v): the test proves nothing", err)
	}
	budgets.Arm(ns)
	if _, err := e.Rollback(ctx, st, ""); err != nil {
		t.Fatalf("rollback: %v\n%s", err, rec.Text())
	}
	found, _ := os.ReadFile(seen)
	if got := strings.Fields(string(found)); len(got) != 2 || got[0] != "true" || got[1] != "0" {
		t.Errorf("the rollback command found the node cordoned=%v with pods=%v; want cordoned and drained\n%s", got, got, rec.Text())
	}
	n := node(t, names[0])
	if n.Spec.Unschedulable || n.Status.NodeInfo.KubeletVersion != oldKubelet {
		t.Errorf("after rollback: cordoned %v, kubelet %s; want uncordoned at %s", n.Spec.Unschedulable, n.Status.NodeInfo.KubeletVersion, oldKubelet)
	}
	if err := budgets.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if b := budgets.Broken(); len(b) > 0 {
		t.Errorf("budgets broken during the rollback: %v", b)
	}
	if !strings.Contains(rec.Text(), "after rolling back node "+names[0]) && !strings.Contains(rec.Text(), "rolled back to "+oldKubelet) {
		t.Errorf("the rollback did not report the node back at %s:\n%s", oldKubelet, rec.Text())
	}
}
