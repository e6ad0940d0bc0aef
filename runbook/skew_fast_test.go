package runbook

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
)

// TestSkewAtStepBoundary: before each step that moves versions the skew policy is checked again; a
// kubelet newer than the apiserver (or more than three minors behind) blocks the step before it
// runs, naming the node; steps that move nothing are not held up, nor is an apiserver without a
// version (said in a log line).
func TestSkewAtStepBoundary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, server, kubelet, phase string
		want                         string // "" runs the step
	}{
		{"within policy", "v1.36.3", "v1.36.3", "nodes", ""},
		{"three behind", "v1.37.1", "v1.34.0", "addons", ""},
		{"kubelet newer", "v1.36.3", "v1.37.1", "nodes", "skew check: kubelets newer than the apiserver v1.36.3: n1 (v1.37.1)"},
		{"four behind", "v1.37.1", "v1.33.4", "controlplane", "kubelets more than 3 minors behind the apiserver v1.37.1: n1 (v1.33.4)"},
		{"a step that moves nothing", "v1.36.3", "v1.37.1", "any", ""},
		{"no version", "v0.0.0-master+$Format:%H$", "v1.37.1", "nodes", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var runs atomic.Int32
			phase := map[string]Phase{"nodes": PhaseNodes, "addons": PhaseAddons, "controlplane": PhaseControlPlane, "any": PhaseAny}[tc.phase]
			reg := Registry{{Name: "moves", Phase: phase, New: func() Step {
				return &scripted{fakeSettings: fakeSettings{kind: "moves"}, runs: &runs, rollbacks: &[]string{}}
			}}}
			rb, err := Parse("t.yaml", []byte(header+"  steps:\n    - {name: s, type: moves}\n"), reg)
			if err != nil {
				t.Fatal(err)
			}
			client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: tc.kubelet}}})
			client.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: tc.server}
			authorizer(client, "")
			e := &Engine{Registry: reg, Decider: AlwaysContinue, Kube: client, StateDir: t.TempDir(), Sink: sinkFunc(func(Event) {})}
			_, err = e.Start(context.Background(), rb)
			switch {
			case tc.want == "":
				if err != nil || runs.Load() != 1 {
					t.Errorf("err %v, runs %d; want the step run", err, runs.Load())
				}
			case err == nil || !errors.Is(err, ErrBlocked) || !strings.Contains(err.Error(), tc.want) || runs.Load() != 0:
				t.Errorf("err %v, runs %d; want blocked before the step runs: %q", err, runs.Load(), tc.want)
			}
		})
	}
}
