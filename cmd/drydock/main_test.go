package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/drydock-dev/drydock/internal/exitcode"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

var cluster *simcluster.Cluster

func TestMain(m *testing.M) {
	code := simcluster.Main(m, &cluster, simcluster.Options{})
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	binErr    error
)

// drydockBinary builds the real binary once for the tests that run it as a process.
func drydockBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "drydock-bin-")
		if binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "drydock"), ".").CombinedOutput()
		if err != nil {
			binErr = &buildError{err, string(out)}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "drydock")
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

var veleroOpts = simcluster.VeleroOptions{}

// TestInterruptsSecondSignalExits: the first SIGTERM cancels the context, the second calls exit
// with 130 at once (fast tier: signals to this test process).
func TestInterruptsSecondSignalExits(t *testing.T) {
	var errOut bytes.Buffer
	exited := make(chan exitcode.Code, 1)
	ctx, stop := interrupts(genericiooptions.IOStreams{ErrOut: &syncWriter{w: &errOut}}, func(c exitcode.Code) { exited <- c })
	defer stop()
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the first signal did not cancel the context")
	}
	if !errors.Is(context.Cause(ctx), context.Canceled) {
		t.Fatalf("cause %v, want it to be a cancellation", context.Cause(ctx))
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case c := <-exited:
		if c != exitcode.Interrupted {
			t.Fatalf("exit %d, want %d", c, exitcode.Interrupted)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second signal did not exit")
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// fullBudget creates in namespace ns a one-replica Deployment "db" whose pod nodeSelector pins, under
// a minAvailable: 100% budget "db", and waits until it runs: a certain blocker for a drain of its node.
// It returns a function that creates the budget again (after a test deleted it).
func fullBudget(t *testing.T, ns string, nodeSelector map[string]string) (recreate func()) {
	t.Helper()
	ctx := context.Background()
	d := simcluster.Deployment(ns, "db", 1)
	d.Spec.Template.Spec.NodeSelector = nodeSelector
	if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	all := intstr.FromString("100%")
	create := func() {
		t.Helper()
		if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
			Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &all, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create()
	if err := cluster.WaitDeploymentReady(ctx, ns, "db", time.Minute); err != nil {
		t.Fatal(err)
	}
	return create
}
