package drain

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/runbook"
)

// TestStalledWhenEveryPodIsHealthy: a budget at zero with every pod healthy and nothing granted
// (maxUnavailable: 0, set or tightened during the drain) is a stall once stallTimeout has passed;
// not before, and not while an eviction it granted is still counted as healthy.
func TestStalledWhenEveryPodIsHealthy(t *testing.T) {
	t.Parallel()
	now := time.Now()
	after := 3 * time.Second
	for _, tc := range []struct {
		name  string
		chain runbook.BudgetChain
		since time.Duration
		want  bool
	}{
		{"zero, all healthy, past stallTimeout", runbook.BudgetChain{DesiredHealthy: 3, CurrentHealthy: 3, ExpectedPods: 3}, 4 * time.Second, true},
		{"zero, all healthy, not yet", runbook.BudgetChain{DesiredHealthy: 3, CurrentHealthy: 3, ExpectedPods: 3}, 2 * time.Second, false},
		{"an eviction granted, not counted yet", runbook.BudgetChain{DesiredHealthy: 2, CurrentHealthy: 3, ExpectedPods: 3}, 4 * time.Second, false},
		{"allows one", runbook.BudgetChain{DesiredHealthy: 2, CurrentHealthy: 3, ExpectedPods: 3, DisruptionsAllowed: 1}, 4 * time.Second, false},
		{"a replacement starting", runbook.BudgetChain{DesiredHealthy: 3, CurrentHealthy: 2, ExpectedPods: 3,
			Unhealthy: []runbook.UnhealthyPod{{Pod: "ns/web-new", Reason: "not Ready", Since: now.Add(-time.Second)}}}, 4 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := stalled(&tc.chain, now.Add(-tc.since), now, after); got != tc.want {
				t.Fatalf("stalled: %v, want %v", got, tc.want)
			}
		})
	}
}

// TestHeldBy: the finalizers of a pod whose deletion is due are named; not before its grace period
// is over, and not for a pod without any.
func TestHeldBy(t *testing.T) {
	t.Parallel()
	now := time.Now()
	past, future := metav1.NewTime(now.Add(-time.Second)), metav1.NewTime(now.Add(time.Minute))
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"due, two finalizers", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &past, Finalizers: []string{"a.example/x", "b.example/y"}}}, "held by finalizer(s) a.example/x, b.example/y"},
		{"grace period not over", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &future, Finalizers: []string{"a.example/x"}}}, ""},
		{"no finalizer", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &past}}, ""},
		{"not deleted", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Finalizers: []string{"a.example/x"}}}, ""},
	} {
		if got := heldBy(tc.pod, now); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRecordFailureSendsNothingMore: the journal write before the second eviction fails: that
// eviction and the third are never sent, and the drain ends with the RecordError, by node.
func TestRecordFailureSendsNothingMore(t *testing.T) {
	t.Parallel()
	for _, conc := range []int{1, 3} {
		a, b, c := fakePod("web-a", true), fakePod("web-b", true), fakePod("web-c", true)
		api := newFakeAPI(a, b, c)
		var mu sync.Mutex
		recorded := 0
		full := errors.New("journal: write /state/runs/x: no space left on device")
		d := &Drainer{Client: api, Options: Options{Concurrency: conc}, Record: func(context.Context, PodRef) error {
			mu.Lock()
			defer mu.Unlock()
			if recorded == 1 {
				return full
			}
			recorded++
			return nil
		}}
		err := d.Drain(context.Background(), NodePlan{Node: "n1", Evict: []PodRef{refOf(a), refOf(b), refOf(c)}})
		var re *RecordError
		if !errors.As(err, &re) || !errors.Is(err, full) || re.Node != "n1" {
			t.Fatalf("concurrency %d: want a RecordError of n1 wrapping the write's, got %v", conc, err)
		}
		if n := api.evictions(); n != 1 {
			t.Fatalf("concurrency %d: %d evictions sent, want only the one recorded", conc, n)
		}
	}
}

// TestNodeDeletedStopsTheDrain: the node is deleted while its pod waits on a budget at zero: the
// drain ends at once with a NodeDeletedError, not after the pod is collected.
func TestNodeDeletedStopsTheDrain(t *testing.T) {
	t.Parallel()
	a := fakePod("web-a", true)
	api := newFakeAPI(a, fakeBudget(0, nil))
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = api.CoreV1().Nodes().Delete(context.Background(), "n1", metav1.DeleteOptions{})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := (&Drainer{Client: api}).Drain(ctx, NodePlan{Node: "n1", Evict: []PodRef{refOf(a, "ns/web")}})
	var nd *NodeDeletedError
	if !errors.As(err, &nd) || nd.Left != 1 {
		t.Fatalf("want a NodeDeletedError with one pod left, got %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the drain ended %v after it began", took)
	}
}
