package drain

// The fast tier: the eviction loop's answers to every kind of API error, against a fake clientset
// whose reactors play the apiserver's part. No cluster; the cluster tier (drain_test.go) proves the
// same loop against real budgets.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/drydock-dev/drydock/runbook"
)

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

func fakePod(name string, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "n1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func fakeBudget(allowed int32, policy *policyv1.UnhealthyPodEvictionPolicyType) *policyv1.PodDisruptionBudget {
	one := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Generation: 1},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			UnhealthyPodEvictionPolicy: policy},
		Status: policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 1, DisruptionsAllowed: allowed, DesiredHealthy: 1, CurrentHealthy: 1},
	}
}

// fakeAPI is a fake clientset whose eviction answers come from a script, then acceptance (the
// pod is deleted, after deleteAfter).
type fakeAPI struct {
	*fake.Clientset
	mu          sync.Mutex
	script      []error // answers to the eviction requests, in order; then nil (accepted)
	calls       int
	times       []time.Time
	deleteAfter time.Duration
	deleteWhen  chan struct{} // when set, the accepted pod is deleted only once it is closed
}

func newFakeAPI(objs ...runtime.Object) *fakeAPI {
	// The drained node: a drain stops at once when its node is gone.
	objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	f := &fakeAPI{Clientset: fake.NewClientset(objs...)}
	f.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		f.mu.Lock()
		f.calls++
		f.times = append(f.times, time.Now())
		var err error
		if len(f.script) > 0 {
			err, f.script = f.script[0], f.script[1:]
		}
		f.mu.Unlock()
		if err != nil {
			return true, nil, err
		}
		go func() {
			time.Sleep(f.deleteAfter)
			if f.deleteWhen != nil {
				<-f.deleteWhen
			}
			_ = f.Tracker().Delete(podsGVR, ev.Namespace, ev.Name)
		}()
		return true, ev, nil
	})
	return f
}

func (f *fakeAPI) answers(errs ...error) {
	f.mu.Lock()
	f.script = errs
	f.mu.Unlock()
}

func (f *fakeAPI) evictions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func refOf(p *corev1.Pod, pdbs ...string) PodRef {
	return PodRef{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), PDBs: pdbs}
}

func statusErr(code int32, reason metav1.StatusReason, causes ...metav1.StatusCause) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason,
		Message: fmt.Sprintf("injected %d", code), Details: &metav1.StatusDetails{Causes: causes}}}
}

// TestEvictRetriesTransientErrors: every transient answer an apiserver gives (5xx, the eviction's
// own 504 on a budget update conflict, throttling, a cut connection) is asked again; the drain ends.
func TestEvictRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		errs []error
	}{
		{"500", []error{apierrors.NewInternalError(errors.New("etcd leader changed"))}},
		{"503", []error{apierrors.NewServiceUnavailable("apiserver is shutting down")}},
		{"504 budget update conflict", []error{apierrors.NewTimeoutError("couldn't update PodDisruptionBudget \"web\" due to conflicts", 10)}},
		{"429 throttled", []error{apierrors.NewTooManyRequests("slow down", 0)}},
		{"unexpected EOF", []error{io.ErrUnexpectedEOF}},
		{"connection reset", []error{&netOpError{syscall.ECONNRESET}}},
		{"connection refused", []error{&netOpError{syscall.ECONNREFUSED}}},
		{"several in a row", []error{apierrors.NewInternalError(errors.New("x")), io.EOF, apierrors.NewServiceUnavailable("y")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := fakePod("web-1", true)
			api := newFakeAPI(p)
			api.answers(c.errs...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d := &Drainer{Client: api}
			if err := d.Drain(ctx, NodePlan{Node: "n1", Evict: []PodRef{refOf(p)}}); err != nil {
				t.Fatalf("drain failed on a transient error: %v", err)
			}
			if got, want := api.evictions(), len(c.errs)+1; got != want {
				t.Fatalf("%d eviction requests, want %d", got, want)
			}
		})
	}
}

type netOpError struct{ errno syscall.Errno }

func (e *netOpError) Error() string { return "write tcp 127.0.0.1:1->127.0.0.1:2: " + e.errno.Error() }
func (e *netOpError) Unwrap() error { return e.errno }

// TestEvictHonoursRetryAfter: a throttled eviction is not asked again before the server's Retry-After.
func TestEvictHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	p := fakePod("web-1", true)
	api := newFakeAPI(p)
	api.answers(apierrors.NewTooManyRequests("throttled", 2))
	d := &Drainer{Client: api}
	if err := d.Drain(context.Background(), NodePlan{Node: "n1", Evict: []PodRef{refOf(p)}}); err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.times) != 2 {
		t.Fatalf("%d requests, want 2", len(api.times))
	}
	if gap := api.times[1].Sub(api.times[0]); gap < 2*time.Second {
		t.Fatalf("asked again after %v, before the Retry-After of 2s", gap)
	}
}

// TestEvictRefusalsFailTheDrain: an error that is no transient (403 for another reason, 400) fails
// the drain at once with the pod named.
func TestEvictRefusalsFailTheDrain(t *testing.T) {
	t.Parallel()
	for _, injected := range []error{
		apierrors.NewForbidden(schema.GroupResource{Resource: "pods/eviction"}, "web-1", errors.New("RBAC says no")),
		apierrors.NewBadRequest("bad"),
	} {
		p := fakePod("web-1", true)
		api := newFakeAPI(p)
		api.answers(injected)
		err := (&Drainer{Client: api}).Drain(context.Background(), NodePlan{Node: "n1", Evict: []PodRef{refOf(p)}})
		if err == nil || !errors.Is(err, injected) {
			t.Fatalf("drain: %v, want it to fail with %v", err, injected)
		}
		if api.evictions() != 1 {
			t.Fatalf("%d requests after a refusal, want 1", api.evictions())
		}
	}
}

// TestConflictCountsAsGoneOnlyAfterLooking: a 409 is believed only when a GET by name shows the pod
// gone or replaced (another UID); while the same pod is there it is asked again.
func TestConflictCountsAsGoneOnlyAfterLooking(t *testing.T) {
	t.Parallel()
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "web-1", errors.New("the object has been modified"))

	t.Run("same pod still there", func(t *testing.T) {
		t.Parallel()
		p := fakePod("web-1", true)
		api := newFakeAPI(p)
		api.answers(conflict)
		if err := (&Drainer{Client: api}).Drain(context.Background(), NodePlan{Node: "n1", Evict: []PodRef{refOf(p)}}); err != nil {
			t.Fatal(err)
		}
		if api.evictions() != 2 {
			t.Fatalf("%d requests, want 2: the 409 must be asked again while the pod is there", api.evictions())
		}
	})
	t.Run("replaced by a pod of the same name", func(t *testing.T) {
		t.Parallel()
		old := fakePod("web-0", true)
		api := newFakeAPI(old)
		api.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() != "eviction" {
				return false, nil, nil
			}
			// A StatefulSet's successor took the name: the old pod is gone.
			succ := fakePod("web-0", true)
			succ.UID = "uid-successor"
			_ = api.Tracker().Delete(podsGVR, "ns", "web-0")
			_ = api.Tracker().Add(succ)
			return true, nil, conflict
		})
		if err := (&Drainer{Client: api}).Drain(context.Background(), NodePlan{Node: "n1", Evict: []PodRef{refOf(old)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := api.CoreV1().Pods("ns").Get(context.Background(), "web-0", metav1.GetOptions{}); err != nil {
			t.Fatalf("the successor must not be touched: %v", err)
		}
	})
}

// TestNamespaceTerminating: as kubectl does, a 403 NamespaceTerminating for a pod already being
// deleted means: wait for it to go; for a pod not yet deleted: ask again.
func TestNamespaceTerminating(t *testing.T) {
	t.Parallel()
	terminating := statusErr(http.StatusForbidden, metav1.StatusReasonForbidden, metav1.StatusCause{Type: corev1.NamespaceTerminatingCause})
	p := fakePod("web-1", true)
	api := newFakeAPI(p)
	var once sync.Once
	api.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		handled := false
		once.Do(func() { handled = true })
		if !handled { // second request: the pod is being deleted by the namespace controller now
			now := metav1.Now()
			q := p.DeepCopy()
			q.DeletionTimestamp = &now
			_ = api.Tracker().Update(podsGVR, q, "ns")
			go func() { time.Sleep(300 * time.Millisecond); _ = api.Tracker().Delete(podsGVR, "ns", "web-1") }()
		}
		return true, nil, terminating
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := (&Drainer{Client: api}).Drain(ctx, NodePlan{Node: "n1", Evict: []PodRef{refOf(p)}}); err != nil {
		t.Fatal(err)
	}
	if got := countEvictions(api.Actions()); got != 2 {
		t.Fatalf("%d eviction requests, want 2 (refused while not deleted, then waited for)", got)
	}
}

func countEvictions(actions []k8stesting.Action) int {
	n := 0
	for _, a := range actions {
		if a.GetVerb() == "create" && a.GetSubresource() == "eviction" {
			n++
		}
	}
	return n
}

// TestAlwaysAllowEvictsUnhealthyPodsAtOnce: a budget at zero allowed disruptions with
// unhealthyPodEvictionPolicy AlwaysAllow does not hold its unhealthy pods; with IfHealthyBudget the
// same pod waits on the budget until the node's time runs out, and the report says which budget.
func TestAlwaysAllowEvictsUnhealthyPodsAtOnce(t *testing.T) {
	t.Parallel()
	always, ifHealthy := policyv1.AlwaysAllow, policyv1.IfHealthyBudget
	for _, c := range []struct {
		name    string
		policy  *policyv1.UnhealthyPodEvictionPolicyType
		ready   bool
		drained bool
	}{
		{"AlwaysAllow, unhealthy pod", &always, false, true},
		{"AlwaysAllow, healthy pod", &always, true, false},
		{"IfHealthyBudget, unhealthy pod", &ifHealthy, false, false},
		{"no policy, unhealthy pod", nil, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := fakePod("web-1", c.ready)
			api := newFakeAPI(p, fakeBudget(0, c.policy))
			d := &Drainer{Client: api, Options: Options{NodeTimeout: runbook.Duration{Duration: 1500 * time.Millisecond}}}
			err := d.Drain(context.Background(), NodePlan{Node: "n1", Evict: []PodRef{refOf(p, "ns/web")}})
			if c.drained {
				if err != nil {
					t.Fatalf("drain: %v", err)
				}
				return
			}
			var be *BlockedError
			if !errors.As(err, &be) || !be.ByBudget {
				t.Fatalf("drain: %v, want blocked by the budget", err)
			}
			if api.evictions() != 0 {
				t.Fatalf("%d evictions sent while the budget allowed none", api.evictions())
			}
		})
	}
}

// TestNodeTimeout: nodeTimeout bounds one node's drain; the error names every pod left and why, and
// its cause is the node timeout (not the step's).
func TestNodeTimeout(t *testing.T) {
	t.Parallel()
	a, b := fakePod("web-1", true), fakePod("web-2", true)
	api := newFakeAPI(a, b, fakeBudget(0, nil))
	d := &Drainer{Client: api, Options: Options{NodeTimeout: runbook.Duration{Duration: time.Second}}}
	start := time.Now()
	err := d.Drain(context.Background(), NodePlan{Node: "n1", Evict: []PodRef{refOf(a, "ns/web"), refOf(b, "ns/web")}})
	var be *BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("drain: %v, want a BlockedError", err)
	}
	var nt *NodeTimeoutError
	if !errors.As(be.Cause, &nt) || nt.Node != "n1" {
		t.Fatalf("cause %v, want the node timeout", be.Cause)
	}
	if len(be.Left) != 2 || !be.ByBudget {
		t.Fatalf("left %q (by budget %v), want both pods blocked by the budget", be.Left, be.ByBudget)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("the node timeout of 1s did not stop the drain (took %v)", time.Since(start))
	}
}

// TestDrainSurvivesAnExpiredWatch: the pod watch fails with 410 Gone (the resourceVersion expired,
// as after an apiserver restart or compaction) and then is cut: the drain re-lists and still sees
// the pod go.
func TestDrainSurvivesAnExpiredWatch(t *testing.T) {
	t.Parallel()
	p := fakePod("web-1", true)
	api := newFakeAPI(p)
	// The pod goes only after the second expired watch: the drain cannot finish on the first (on a
	// loaded machine the watch's backoff may outlast a fixed delay).
	api.deleteWhen = make(chan struct{})
	var mu sync.Mutex
	failed := 0
	api.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		mu.Lock()
		defer mu.Unlock()
		if failed < 2 {
			failed++
			if failed == 2 {
				close(api.deleteWhen)
			}
			return true, nil, apierrors.NewResourceExpired("too old resource version")
		}
		return false, nil, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := (&Drainer{Client: api}).Drain(ctx, NodePlan{Node: "n1", Evict: []PodRef{refOf(p)}}); err != nil {
		t.Fatalf("drain across an expired watch: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if failed != 2 {
		t.Fatalf("the watch failed %d times, want 2", failed)
	}
}
