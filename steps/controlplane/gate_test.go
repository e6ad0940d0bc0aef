package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// TestControlPlaneGateChecksEveryAPIServer: two apiservers on one etcd, both at the previous
// minor, behind a shared address — a TCP proxy on loopback, the test's load balancer — that
// answers from the first; each member names its own apiserver's endpoint, and drydock talks to the
// shared address.
//  1. The second apiserver crashes while the first member is upgraded: the gate after the first
//     member stops the run naming the second's address, though the shared address answers ready
//     at the target; the second member is not touched.
//  2. Both running again, a node joins at the new minor during the first member: its kubelet is
//     newer than the oldest apiserver (the second, still at the previous minor), and the step is
//     blocked after the first member, though the shared address answers at the kubelet's minor.
//  3. Without that node the step goes through: the first member's gate accepts the second one
//     minor behind, and the second is upgraded and proven at its own address.
func TestControlPlaneGateChecksEveryAPIServer(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	c, err := simcluster.Start(ctx, simcluster.Options{Previous: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()
	cur, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	prev, err := simcluster.PrevBinDir()
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.StartAPIServer(ctx, prev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateNode(ctx, "cp-node-1", simcluster.NodeOptions{KubeletVersion: simcluster.PreviousVersion}); err != nil {
		t.Fatal(err)
	}
	shared := rest.CopyConfig(c.Config)
	shared.Host = "https://" + balancer(t, strings.TrimPrefix(c.Config.Host, "https://"))
	kube := kubernetes.NewForConfigOrDie(shared)
	hooks := newHooks(t)
	var secondTouched atomic.Bool
	upgradeSecond := func() error { secondTouched.Store(true); return second.Restart(ctx, cur) }
	member := func(name, endpoint string, fn func() error) string {
		return `          - {name: ` + name + `, endpoint: "` + endpoint + `", exec: ` + hooks.exec(fn) + `}` + "\n"
	}
	start := func(members string) (*printer.Recorder, error) {
		rb, err := runbook.Parse("cp.yaml", []byte(`apiVersion: drydock.dev/v1alpha1
kind: Runbook
metadata: {name: cp-ha}
spec:
  targetVersion: `+simcluster.KubernetesVersion+`
  steps:
    - name: control-plane
      type: controlplane
      with:
        readyTimeout: 15s
        members:
`+members), steps.Registry)
		if err != nil {
			t.Fatal(err)
		}
		rec := &printer.Recorder{}
		e := &runbook.Engine{Registry: steps.Registry, Kube: kube, REST: shared, StateDir: t.TempDir(), NoMirror: true, Decider: runbook.AlwaysContinue, Sink: rec}
		_, err = e.Start(ctx, rb)
		return rec, err
	}
	sharedAnswers := func(want string) {
		t.Helper()
		v, err := kube.Discovery().ServerVersion()
		body, rerr := kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || v.GitVersion != want || rerr != nil || string(body) != "ok" {
			t.Fatalf("the shared address should answer ready at %s: %v %v, /readyz %s %v", want, v, err, body, rerr)
		}
	}

	// 1. The second member down behind a healthy shared address.
	rec, err := start(member("cp-a", c.Config.Host, func() error {
		if err := c.UpgradeComponent(ctx, "kube-apiserver", cur); err != nil {
			return err
		}
		return second.Stop(ctx) // the second member crashes meanwhile
	}) + member("cp-b", second.URL, upgradeSecond))
	sharedAnswers(simcluster.KubernetesVersion)
	if err == nil || !strings.Contains(err.Error(), "member cp-a: not whole again") || !strings.Contains(err.Error(), second.URL+" (member cp-b): /version") || secondTouched.Load() {
		t.Fatalf("a second apiserver down after the first member: want the run stopped there, naming it (touched: %v): %v\n%s", secondTouched.Load(), err, rec.Text())
	}

	// 2. A kubelet newer than the oldest apiserver, the shared address at the kubelet's minor.
	if err := second.Restart(ctx, prev); err != nil {
		t.Fatal(err)
	}
	rec, err = start(member("cp-a", c.Config.Host, func() error {
		_, err := c.CreateNode(ctx, "joined-new", simcluster.NodeOptions{KubeletVersion: simcluster.KubernetesVersion})
		return err
	}) + member("cp-b", second.URL, upgradeSecond))
	sharedAnswers(simcluster.KubernetesVersion)
	want := "kubelets newer than the oldest apiserver " + simcluster.PreviousVersion + " at " + second.URL + " (member cp-b): joined-new (" + simcluster.KubernetesVersion + ")"
	if !errors.Is(err, runbook.ErrBlocked) || !strings.Contains(err.Error(), "member cp-a:") || !strings.Contains(err.Error(), want) || secondTouched.Load() {
		t.Fatalf("a kubelet at the new minor while the second apiserver is at the previous: want blocked after cp-a with %q (touched: %v): %v\n%s", want, secondTouched.Load(), err, rec.Text())
	}

	// 3. Whole: the step goes through, the second member proven at its own address.
	if err := c.Client.CoreV1().Nodes().Delete(ctx, "joined-new", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec, err = start(member("cp-a", c.Config.Host, func() error { return nil }) + member("cp-b", second.URL, upgradeSecond))
	if err != nil || !secondTouched.Load() {
		t.Fatalf("the whole control plane: %v (second upgraded: %v)\n%s", err, secondTouched.Load(), rec.Text())
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.Host = second.URL
	if v, err := kubernetes.NewForConfigOrDie(cfg).Discovery().ServerVersion(); err != nil || v.GitVersion != simcluster.KubernetesVersion {
		t.Fatalf("the second apiserver answers %v (%v), want %s", v, err, simcluster.KubernetesVersion)
	}
	if text := rec.Text(); !strings.Contains(text, "member cp-b: at "+simcluster.KubernetesVersion) {
		t.Errorf("no proof of the second member in\n%s", text)
	}
}

// balancer is the test's load balancer: a TCP proxy on loopback that forwards every connection to
// target (host:port). It returns its own address.
func balancer(t *testing.T, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, conn); _ = up.Close() }()
				_, _ = io.Copy(conn, up)
			}()
		}
	}()
	return l.Addr().String()
}

// hooks lets a member's exec run Go code in the test: the command asks through a file and waits
// for the answer, so that the member's "upgrade" can act on the cluster's apiservers.
type hooks struct {
	dir string
	mu  sync.Mutex
	fns map[string]func() error
}

func newHooks(t *testing.T) *hooks {
	h := &hooks{dir: t.TempDir(), fns: map[string]func() error{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			reqs, _ := filepath.Glob(filepath.Join(h.dir, "*.req"))
			for _, req := range reqs {
				name := strings.TrimSuffix(filepath.Base(req), ".req")
				_ = os.Remove(req)
				h.mu.Lock()
				fn := h.fns[name]
				h.mu.Unlock()
				if err := fn(); err != nil {
					_ = os.WriteFile(filepath.Join(h.dir, name+".fail"), []byte(err.Error()), 0o644)
				}
				_ = os.WriteFile(filepath.Join(h.dir, name+".done"), nil, 0o644)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return h
}

// exec is the YAML exec list of a command that runs fn in the test and fails when fn does.
func (h *hooks) exec(fn func() error) string {
	h.mu.Lock()
	name := fmt.Sprintf("h%d", len(h.fns))
	h.fns[name] = fn
	h.mu.Unlock()
	f := filepath.Join(h.dir, name)
	return fmt.Sprintf(`[sh, -c, 'touch %[1]s.req; while [ ! -e %[1]s.done ]; do sleep 0.1; done; if [ -e %[1]s.fail ]; then cat %[1]s.fail >&2; exit 1; fi']`, f)
}
