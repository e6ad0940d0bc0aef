package steps_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

var cluster *simcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(simcluster.Main(m, &cluster, simcluster.Options{PodReadyDelay: 1500 * time.Millisecond}))
}

func TestRegistry(t *testing.T) {
	simcluster.Need(t)
	if err := steps.Registry.Check(); err != nil {
		t.Fatal(err)
	}
}

type recorder = printer.Recorder

func start(t *testing.T, steps string) (*runbook.RunState, *recorder, *runbook.Engine, error) {
	t.Helper()
	text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: v1.37.1\n  steps:\n" + steps
	rb, err := runbook.Parse(t.Name()+".yaml", []byte(text), stepsRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	e := &runbook.Engine{Registry: stepsRegistry(), Sink: rec, Decider: runbook.AlwaysContinue, Kube: cluster.Client, REST: cluster.Config,
		StateDir: t.TempDir(), NoMirror: true}
	st, err := e.Start(context.Background(), rb)
	return st, rec, e, err
}

func stepsRegistry() runbook.Registry { return steps.Registry }

func TestExecPerNodeWithTemplatesAndRollback(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	for _, n := range []string{"exec-b", "exec-a", "exec-c"} {
		if _, err := cluster.CreateNode(ctx, n, simcluster.NodeOptions{Labels: map[string]string{"drydock.dev/group": "exec"}}); err != nil {
			t.Fatal(err)
		}
	}
	log := filepath.Join(t.TempDir(), "log")
	st, rec, e, err := start(t, `    - name: per-node
      type: exec
      with:
        nodes: {selector: drydock.dev/group=exec}
        command: [sh, -c, "echo run {{.Node.Name}} {{index .Node.Labels \"drydock.dev/group\"}} {{.TargetVersion}} $DRYDOCK_NODE >> `+log+`"]
        rollback: [sh, -c, "echo undo {{.Node.Name}} >> `+log+`"]
`)
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	got, _ := os.ReadFile(log)
	want := "run exec-a exec v1.37.1 exec-a\nrun exec-b exec v1.37.1 exec-b\nrun exec-c exec v1.37.1 exec-c\n"
	if string(got) != want {
		t.Fatalf("commands ran as\n%s\nwant\n%s", got, want)
	}
	if _, err := e.Rollback(ctx, st, ""); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(log)
	if !strings.HasSuffix(string(got), "undo exec-c\nundo exec-b\nundo exec-a\n") {
		t.Fatalf("rollback must undo newest first:\n%s", got)
	}
}

func TestExecFailureQuotesStderr(t *testing.T) {
	simcluster.Need(t)
	_, _, _, err := start(t, `    - name: fails
      type: exec
      with: {command: [sh, -c, "echo first >&2; echo the real reason >&2; exit 3"]}
`)
	if err == nil || !strings.Contains(err.Error(), "exited with code 3: the real reason") || exitcode.For(err) != exitcode.Failure {
		t.Fatalf("err %v", err)
	}
}

func TestExecSelectorMatchingNothing(t *testing.T) {
	simcluster.Need(t)
	_, _, _, err := start(t, `    - name: none
      type: exec
      with: {nodes: {selector: no-such-label=x}, command: ["true"]}
`)
	if err == nil || !strings.Contains(err.Error(), `no node matches "no-such-label=x"`) {
		t.Fatalf("err %v", err)
	}
}

// TestWaitKubeletVersion: the step waits (by watch) until the node reports the version, then ends.
func TestWaitKubeletVersion(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	if _, err := cluster.CreateNode(ctx, "old-kubelet", simcluster.NodeOptions{
		KubeletVersion: "v1.36.3", Labels: map[string]string{"drydock.dev/group": "wait"}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(2 * time.Second)
		patch := []byte(`{"status":{"nodeInfo":{"kubeletVersion":"v1.37.1"}}}`)
		_, _ = cluster.Client.CoreV1().Nodes().Patch(ctx, "old-kubelet", types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	}()
	begin := time.Now()
	_, rec, _, err := start(t, `    - name: upgraded
      type: wait
      timeout: 1m
      with: {for: kubeletVersion, nodes: drydock.dev/group=wait}
`)
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	if took := time.Since(begin); took < 1500*time.Millisecond {
		t.Fatalf("done after %v, before the kubelet reported the version", took)
	}
	if !strings.Contains(rec.Text(), "old-kubelet (kubelet v1.36.3)") {
		t.Errorf("progress should name the node it waits for:\n%s", rec.Text())
	}
}

func TestWaitTimeoutSaysWhatIsMissing(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	if _, err := cluster.CreateNode(ctx, "stuck-kubelet", simcluster.NodeOptions{
		KubeletVersion: "v1.36.3", Labels: map[string]string{"drydock.dev/group": "stuck"}}); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := start(t, `    - name: upgraded
      type: wait
      timeout: 2s
      with: {for: kubeletVersion, version: v1.37.1, nodes: drydock.dev/group=stuck}
`)
	if err == nil || !strings.Contains(err.Error(), "timed out after 2s") || !strings.Contains(err.Error(), "stuck-kubelet (kubelet v1.36.3)") {
		t.Fatalf("err %v", err)
	}
}

func TestWaitPodsReady(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	if _, err := cluster.CreateNode(ctx, "pods-1", simcluster.NodeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, nsObj("waitpods"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Client.AppsV1().Deployments("waitpods").Create(ctx, simcluster.Deployment("waitpods", "web", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The pods exist, not yet Ready (the simulated kubelet readies them after 1.5s).
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := cluster.Client.CoreV1().Pods("waitpods").List(ctx, metav1.ListOptions{})
		return err == nil && len(pods.Items) == 3, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, rec, _, err := start(t, `    - name: pods
      type: wait
      timeout: 1m
      with: {for: podsReady, namespaces: [waitpods]}
`)
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	pods, _ := cluster.Client.CoreV1().Pods("waitpods").List(ctx, metav1.ListOptions{})
	ready := 0
	for i := range pods.Items {
		if simcluster.PodReady(&pods.Items[i]) {
			ready++
		}
	}
	if ready != 3 || !slices.ContainsFunc(strings.Split(rec.Text(), "\n"), func(l string) bool { return strings.Contains(l, "waiting for waitpods/web-") }) {
		t.Fatalf("%d pods ready; events:\n%s", ready, rec.Text())
	}
}

func nsObj(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// TestPreflightStepsGateTheRun: a check step that finds a budget blocking every drain stops the
// run (exit 3) before the next step, with the finding as an event; failOn: never lets it go on.
// access-check asks about everything the runbook will do.
func TestPreflightStepsGateTheRun(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	c := cluster.Client
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pfgate"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppsV1().Deployments("pfgate").Create(ctx, simcluster.Deployment("pfgate", "db", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := intstr.FromInt32(1)
	if _, err := c.PolicyV1().PodDisruptionBudgets("pfgate").Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The check judges the budget by the pods it covers: wait until the pod exists and the budget's
	// status counts it (under load the check could otherwise run first and see nothing to judge).
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := c.PolicyV1().PodDisruptionBudgets("pfgate").Get(ctx, "db", metav1.GetOptions{})
		return err == nil && p.Status.ObservedGeneration == p.Generation && p.Status.ExpectedPods == 1, nil
	}); err != nil {
		t.Fatal("the budget's status never counted its pod:", err)
	}
	marker := filepath.Join(t.TempDir(), "after")
	_, rec, _, err := start(t, `    - name: budgets
      type: pdb-check
    - name: after
      type: exec
      with: {command: [touch, `+marker+`]}
`)
	if exitcode.For(err) != exitcode.Blocked || !strings.Contains(err.Error(), "PodDisruptionBudget pfgate/db") {
		t.Fatalf("err = %v (exit %d), want exit 3 naming the budget", err, exitcode.For(err))
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the step after a failed check ran")
	}
	if !strings.Contains(rec.Text(), "PodDisruptionBudget pfgate/db") {
		t.Errorf("no finding event:\n%s", rec.Text())
	}

	_, rec, _, err = start(t, `    - name: budgets
      type: pdb-check
      with: {failOn: never}
    - name: access
      type: access-check
    - name: stop-here
      type: exec
      with: {command: [sh, -c, "exit 7"]}
`)
	// The last step fails; what matters is that the checks before it passed.
	if err == nil || !strings.Contains(err.Error(), `step "stop-here"`) {
		t.Fatalf("failOn never: %v\n%s", err, rec.Text())
	}
	if !strings.Contains(rec.Text(), "step access: 0 findings") || !strings.Contains(rec.Text(), "step access: done") {
		t.Errorf("access-check did not pass for the admin:\n%s", rec.Text())
	}
	if !strings.Contains(rec.Text(), "minAvailable: 1 on a single pod") {
		t.Errorf("failOn never still reports the finding:\n%s", rec.Text())
	}
	if strings.Contains(rec.Text(), "not allowed") {
		t.Errorf("the admin was refused something:\n%s", rec.Text())
	}
}

// TestRunbookAccess: what access-check asks about is the engine's lock and journal plus each
// step's needs.
func TestRunbookAccess(t *testing.T) {
	simcluster.Need(t)
	text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: v1.37.1\n  steps:\n" +
		"    - {name: scan, type: api-scan}\n    - {name: d, type: drain, with: {nodes: [n1]}}\n    - {name: d2, type: drain, with: {nodes: [n1], disableEviction: true}}\n"
	rb, err := runbook.Parse("t.yaml", []byte(text), steps.Registry)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range rb.Access() {
		got = append(got, a.String())
	}
	for _, want := range []string{"create leases.coordination.k8s.io in namespace kube-system", "update configmaps in namespace kube-system",
		"list *.*", "get /metrics", "create pods/eviction", "patch nodes", "delete pods"} {
		if !slices.Contains(got, want) {
			t.Errorf("access lacks %q: %v", want, got)
		}
	}
}
