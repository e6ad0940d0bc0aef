package rehearse

import (
	"context"
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
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// TestWatcherBaseline: what the copy held before the run is not the run's doing. A pod Pending
// before the run is listed apart, not as one the run made Pending; a pod the run made Pending is
// listed once (the scheduler's last word, and whether it was placed after all), however often the
// scheduler changed its message; a workload short of Ready before the run counts only if the run
// took it lower; a budget the run took to zero allowed disruptions that held nothing back is named
// as at its limit (one at zero before the run is not).
func TestWatcherBaseline(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	unscheduled := func(name, why string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(name)},
			Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: why}}}}
	}
	deploy := func(name string, want, ready int32) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To(want)},
			Status: appsv1.DeploymentStatus{ReadyReplicas: ready}}
	}
	budget := func(name string, allowed int32) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Generation: 1},
			Status: policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 1, ExpectedPods: 3, DisruptionsAllowed: allowed}}
	}
	c := fake.NewClientset(unscheduled("stuck", "0/3 nodes are available"), deploy("stuck", 1, 0), deploy("short", 3, 2), deploy("web", 2, 2), deploy("calm", 2, 2),
		budget("zero", 0), budget("web", 1), budget("db", 1), budget("calm", 1))
	w := newWatcher(c)
	var wg sync.WaitGroup
	if err := w.start(ctx, &wg); err != nil {
		t.Fatal(err)
	}
	// the run: stuck's pod gets new messages (still not the run's); web loses both pods, short one;
	// a new pod goes Pending with two messages and is placed; another stays Pending
	pods := c.CoreV1().Pods("ns")
	for _, step := range []func() error{
		func() error {
			_, err := pods.UpdateStatus(ctx, unscheduled("stuck", "1 node(s) were unschedulable"), metav1.UpdateOptions{})
			return err
		},
		func() error {
			_, err := pods.Create(ctx, unscheduled("web-new", "2 node(s) were unschedulable"), metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := pods.UpdateStatus(ctx, unscheduled("web-new", "3 node(s) were unschedulable"), metav1.UpdateOptions{})
			return err
		},
		func() error {
			p := unscheduled("web-new", "")
			p.Status.Conditions[0].Status = corev1.ConditionTrue
			_, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
			return err
		},
		func() error {
			_, err := pods.Create(ctx, unscheduled("api-new", "no node matches"), metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := c.AppsV1().Deployments("ns").UpdateStatus(ctx, deploy("web", 2, 0), metav1.UpdateOptions{})
			return err
		},
		func() error {
			_, err := c.AppsV1().Deployments("ns").UpdateStatus(ctx, deploy("short", 3, 1), metav1.UpdateOptions{})
			return err
		},
		func() error {
			_, err := c.AppsV1().Deployments("ns").UpdateStatus(ctx, deploy("stuck", 1, 0), metav1.UpdateOptions{})
			return err
		},
		func() error {
			_, err := c.PolicyV1().PodDisruptionBudgets("ns").UpdateStatus(ctx, budget("web", 0), metav1.UpdateOptions{})
			return err
		},
		func() error {
			_, err := c.PolicyV1().PodDisruptionBudgets("ns").UpdateStatus(ctx, budget("db", 0), metav1.UpdateOptions{})
			return err
		},
		func() error {
			_, err := c.PolicyV1().PodDisruptionBudgets("ns").UpdateStatus(ctx, budget("zero", 0), metav1.UpdateOptions{})
			return err
		},
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	var pending, before []string
	var low []Availability
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pending, before, low = w.results()
		if len(pending) == 2 && len(low) == 2 && strings.Contains(pending[1], "placed after") || time.Now().After(deadline) {
			break
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if len(w.atLimit(nil)) == 2 || time.Now().After(deadline) {
			break
		}
	}
	// web held a pod back in the rehearsal: a blocker met, not only at its limit
	limit := w.atLimit([]Held{{What: "PodDisruptionBudget ns/web", Pods: 1}})
	cancel()
	wg.Wait()
	if want := []string{"PodDisruptionBudget ns/db"}; !slices.Equal(limit, want) {
		t.Errorf("at the limit %q, want %q (not zero: at zero before the run; not web: it held a pod back; not calm)", limit, want)
	}
	if want := []string{"ns/api-new: no node matches (still Pending when the run ended)"}; len(pending) != 2 || pending[0] != want[0] ||
		!strings.HasPrefix(pending[1], "ns/web-new: 3 node(s) were unschedulable (placed after ") {
		t.Errorf("pending %q, want %q and web-new once, with its last message, placed", pending, want)
	}
	if !slices.Equal(before, []string{"ns/stuck"}) {
		t.Errorf("pending before the run %q, want [ns/stuck]", before)
	}
	want := []Availability{{Workload: "ns/Deployment/short", Lowest: 1, Desired: 3, Before: 2}, {Workload: "ns/Deployment/web", Lowest: 0, Desired: 2, Before: 2}}
	if !slices.Equal(low, want) {
		t.Errorf("lowest %+v, want %+v (not stuck: 0 of 1 before the run too; not calm)", low, want)
	}
}
