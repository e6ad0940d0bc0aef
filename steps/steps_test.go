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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

var cluster *simcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(simcluster.Main(m, &cluster, simcluster.Options{PodReadyDelay: 1500 * time.Millisecond}))
}

func TestRegistry(t *testing.T) {
	if err := steps.Registry.Check(); err != nil {
		t.Fatal(err)
	}
}

type recorder = runbook.Recorder

func start(t *testing.T, steps string) (*runbook.RunState, *recorder, *runbook.Engine, error) {
	t.Helper()
	text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: v1.37.1\n  steps:\n" + steps
	rb, err := runbook.Parse(t.Name()+".yaml", []byte(text), stepsRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	e := &runbook.Engine{Registry: stepsRegistry(), Sink: rec, Decider: runbook.AlwaysContinue, Kube: cluster.Client,
		StateDir: t.TempDir(), NoMirror: true}
	st, err := e.Start(context.Background(), rb)
	return st, rec, e, err
}

func stepsRegistry() runbook.Registry { return steps.Registry }

func TestExecPerNodeWithTemplatesAndRollback(t *testing.T) {
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
	_, _, _, err := start(t, `    - name: fails
      type: exec
      with: {command: [sh, -c, "echo first >&2; echo the real reason >&2; exit 3"]}
`)
	if err == nil || !strings.Contains(err.Error(), "exited with code 3: the real reason") || exitcode.For(err) != exitcode.Failure {
		t.Fatalf("err %v", err)
	}
}

func TestExecSelectorMatchingNothing(t *testing.T) {
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
	time.Sleep(300 * time.Millisecond) // let the pods exist, not yet Ready (1.5s delay)
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
