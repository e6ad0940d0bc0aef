package drain

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/drydock-dev/drydock/runbook"
)

// TestRelaxFor: the smallest budget change that lets a pod it holds go, and the patch undoing it.
// It is the budget's: every pod it holds, Ready or not, gets the same one (the pane, the terminal's
// proposal and what the stall detector applies agree).
func TestRelaxFor(t *testing.T) {
	t.Parallel()
	always := policyv1.AlwaysAllow
	pdb := func(minA, maxU *intstr.IntOrString, policy *policyv1.UnhealthyPodEvictionPolicyType) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec:   policyv1.PodDisruptionBudgetSpec{MinAvailable: minA, MaxUnavailable: maxU, UnhealthyPodEvictionPolicy: policy},
			Status: policyv1.PodDisruptionBudgetStatus{ExpectedPods: 4, DesiredHealthy: 3, CurrentHealthy: 3}}
	}
	// below: one healthy short of its budget (a pod of it not Ready).
	below := func(p *policyv1.PodDisruptionBudget) *policyv1.PodDisruptionBudget {
		p.Status.CurrentHealthy = p.Status.DesiredHealthy - 1
		return p
	}
	i := func(n int) *intstr.IntOrString { v := intstr.FromInt(n); return &v }
	s := func(v string) *intstr.IntOrString { x := intstr.FromString(v); return &x }
	for _, tc := range []struct {
		name      string
		pdb       *policyv1.PodDisruptionBudget
		fix, undo string
		noFix     bool
	}{
		{"minAvailable number", pdb(i(3), nil, nil), `{"spec":{"minAvailable":2}}`, `{"spec":{"minAvailable":3}}`, false},
		{"minAvailable percent", pdb(s("75%"), nil, nil), `{"spec":{"minAvailable":2}}`, `{"spec":{"minAvailable":"75%"}}`, false},
		{"maxUnavailable zero", pdb(nil, i(0), nil), `{"spec":{"maxUnavailable":1}}`, `{"spec":{"maxUnavailable":0}}`, false},
		{"maxUnavailable percent", pdb(nil, s("25%"), nil), `{"spec":{"maxUnavailable":2}}`, `{"spec":{"maxUnavailable":"25%"}}`, false},
		{"below its budget", below(pdb(i(3), nil, nil)), `{"spec":{"unhealthyPodEvictionPolicy":"AlwaysAllow"}}`, `{"spec":{"unhealthyPodEvictionPolicy":null}}`, false},
		{"below its budget, maxUnavailable", below(pdb(nil, i(1), nil)), `{"spec":{"unhealthyPodEvictionPolicy":"AlwaysAllow"}}`, `{"spec":{"unhealthyPodEvictionPolicy":null}}`, false},
		{"below, already AlwaysAllow", below(pdb(i(3), nil, &always)), `{"spec":{"minAvailable":1}}`, `{"spec":{"minAvailable":3}}`, false},
		{"below, AlwaysAllow, maxUnavailable", below(pdb(nil, i(1), &always)), `{"spec":{"maxUnavailable":3}}`, `{"spec":{"maxUnavailable":1}}`, false},
		{"minAvailable zero", pdb(i(0), nil, nil), "", "", true},
	} {
		for _, blocked := range []*corev1.Pod{fakePod("a", true), fakePod("b", false), nil} {
			r, ok := relaxFor(tc.pdb, blocked)
			if ok == tc.noFix {
				t.Errorf("%s: fix found %v, want %v", tc.name, ok, !tc.noFix)
				continue
			}
			if !ok {
				continue
			}
			fix, undo := r.command(tc.pdb, r.Set), r.command(tc.pdb, r.Restore)
			if want := "kubectl patch pdb web -n shop --type=merge -p '" + tc.fix + "'"; fix != want {
				t.Errorf("%s: fix %s\nwant %s", tc.name, fix, want)
			}
			if want := "kubectl patch pdb web -n shop --type=merge -p '" + tc.undo + "'"; undo != want {
				t.Errorf("%s: undo %s\nwant %s", tc.name, undo, want)
			}
		}
	}
}

// TestChainOffersAFixPastOrdinaryWaits: a budget at zero only for what passes by itself in a drain
// (an eviction granted and not counted yet, a pod terminating, a replacement made since the drain
// began and starting for less than startupGrace) is explained without a fix; a stuck pod, one older
// than the drain, or a replacement starting for longer gets the fix.
func TestChainOffersAFixPastOrdinaryWaits(t *testing.T) {
	t.Parallel()
	began := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	now := began.Add(5 * time.Minute)
	budget := func(current int32) *policyv1.PodDisruptionBudget {
		b := fakeBudget(0, nil)
		b.Status.ExpectedPods, b.Status.DesiredHealthy, b.Status.CurrentHealthy = 3, 2, current
		two := intstr.FromInt32(2)
		b.Spec.MinAvailable = &two
		return b
	}
	notReady := func(name string, created time.Time) corev1.Pod {
		p := fakePod(name, false)
		p.CreationTimestamp = metav1.NewTime(created)
		return *p
	}
	terminating := func() corev1.Pod {
		p := fakePod("web-old", true)
		p.DeletionTimestamp = &metav1.Time{Time: now.Add(-3 * time.Second)}
		return *p
	}
	stuck := func() corev1.Pod {
		p := notReady("web-stuck", now.Add(-2*time.Second))
		p.Spec.NodeName = ""
		p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available"}}}
		return p
	}
	for _, tc := range []struct {
		name    string
		current int32
		pods    []corev1.Pod
		fix     bool
	}{
		{"an eviction granted, not counted yet", 3, nil, false},
		{"a pod terminating", 2, []corev1.Pod{terminating()}, false},
		{"a replacement starting for 8s", 2, []corev1.Pod{notReady("web-new", now.Add(-8*time.Second))}, false},
		{"a replacement starting for 2m", 2, []corev1.Pod{notReady("web-new", now.Add(-2*time.Minute))}, true},
		{"a pod not Ready from before the drain", 2, []corev1.Pod{notReady("web-slow", began.Add(-time.Second))}, true},
		{"a replacement that cannot be scheduled", 2, []corev1.Pod{stuck()}, true},
		{"at its limit, every pod healthy", 2, nil, true},
	} {
		c := explain(budget(tc.current), tc.pods, fakePod("web-a", true), began, now)
		if (c.Fix != "") != tc.fix {
			t.Errorf("%s: fix %q, want one: %v", tc.name, c.Fix, tc.fix)
		}
	}
}

// TestStuckChain: a pod whose budget is at zero because another of its pods cannot be scheduled is
// reported blocked with the chain (that pod, why, the fix); the chain is reported again when it
// changes; and the stall detector stops the drain with that diagnosis long before its timeout.
func TestStuckChain(t *testing.T) {
	t.Parallel()
	pending := func() *corev1.Pod {
		p := fakePod("web-b", false)
		p.Spec.NodeName = ""
		p.CreationTimestamp = metav1.NewTime(time.Now().Add(-time.Hour))
		p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available: 3 Insufficient cpu."}}}
		return p
	}
	for _, tc := range []struct {
		name  string
		stall time.Duration
	}{{"live chain", time.Minute}, {"stall", 2 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := fakePod("web-a", true)
			budget := fakeBudget(0, nil)
			budget.Status.ExpectedPods = 2
			api := newFakeAPI(a, pending(), budget)
			var mu sync.Mutex
			var chains []*runbook.BudgetChain
			changed := make(chan struct{}, 10)
			d := &Drainer{Client: api, Options: Options{StallTimeout: runbook.Duration{Duration: tc.stall}}, Progress: func(_ PodRef, u PodUpdate) {
				if u.State == runbook.PodBlocked && u.Chain != nil {
					mu.Lock()
					chains = append(chains, u.Chain)
					mu.Unlock()
					changed <- struct{}{}
				}
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- d.Drain(ctx, NodePlan{Node: "n1", Evict: []PodRef{refOf(a, "ns/web")}}) }()
			select {
			case <-changed:
			case err := <-done:
				t.Fatalf("drain ended before it reported the chain: %v", err)
			}
			mu.Lock()
			c := chains[0]
			mu.Unlock()
			text := strings.Join(c.Lines(), "\n")
			for _, want := range []string{"ns/web-b (not scheduled): Pending (not scheduled: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.)",
				`fix: kubectl patch pdb web -n ns --type=merge -p '{"spec":{"minAvailable":0}}'`, `undo afterwards: kubectl patch pdb web -n ns --type=merge -p '{"spec":{"minAvailable":1}}'`} {
				if !strings.Contains(text, want) {
					t.Fatalf("chain:\n%s\nwant %q", text, want)
				}
			}
			if len(c.Unhealthy) != 1 || !c.Unhealthy[0].Stuck {
				t.Fatalf("unhealthy: %+v, want web-b stuck", c.Unhealthy)
			}
			if tc.name == "live chain" {
				// web-b is scheduled and crash-loops now: the chain is told again.
				p := pending()
				p.Spec.NodeName = "n2"
				p.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "app",
					State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}}
				if _, err := api.CoreV1().Pods("ns").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				select {
				case <-changed:
				case <-time.After(20 * time.Second):
					t.Fatal("the changed chain was not reported")
				}
				mu.Lock()
				text = strings.Join(chains[len(chains)-1].Lines(), "\n")
				mu.Unlock()
				if !strings.Contains(text, "ns/web-b (on n2): CrashLoopBackOff (container app)") {
					t.Fatalf("new chain:\n%s", text)
				}
				cancel()
				<-done
				return
			}
			err := <-done
			var se *StalledError
			if !errors.As(err, &se) || !ErrBlocked(err) {
				t.Fatalf("drain: %v, want a StalledError blocked by the budget", err)
			}
			if !strings.Contains(err.Error(), "ns/web-b (not scheduled) Pending") || !strings.Contains(err.Error(), "kubectl patch pdb web") {
				t.Fatalf("error does not carry the chain: %v", err)
			}
			if api.evictions() != 0 {
				t.Fatalf("%d evictions sent past a budget at zero", api.evictions())
			}
		})
	}
}

// TestExplainersShareTheBudgetsPods: the drains of a batch (one explainer each) ask at once why the
// same budget refuses: its pods are listed once for all of them, and again only when the list is
// older than a drain's interval.
func TestExplainersShareTheBudgetsPods(t *testing.T) {
	t.Parallel()
	budget := fakeBudget(0, nil)
	api := fake.NewClientset(fakePod("web-a", true), fakePod("web-b", false), budget)
	var lists atomic.Int32
	api.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		time.Sleep(50 * time.Millisecond) // the others ask while it is under way
		return false, nil, nil
	})
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	if err := store.Add(budget); err != nil {
		t.Fatal(err)
	}
	bud := &budgets{store: store}
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := newExplainer(api, bud, time.Minute)
			for range 3 {
				if c := x.chain(ctx, "ns/web", nil); c == nil || len(c.Unhealthy) != 1 || c.Unhealthy[0].Pod != "ns/web-b" {
					t.Errorf("chain %+v: want web-b not Ready", c)
				}
			}
		}()
	}
	wg.Wait()
	if n := lists.Load(); n != 1 {
		t.Fatalf("20 drains listed the budget's pods %d times, want once", n)
	}
	// A drain whose interval has passed lists them again.
	time.Sleep(10 * time.Millisecond)
	newExplainer(api, bud, 5*time.Millisecond).chain(ctx, "ns/web", nil)
	if n := lists.Load(); n != 2 {
		t.Fatalf("listed %d times, want a second list once the interval passed", n)
	}
}
