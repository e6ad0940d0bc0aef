package drain

// The fast tier of the drain forecast: a budget's pods go in waves paced by the start-up measured on
// the workload's running pods; pods no budget guards go at once; a preStop sleep counts; a forecast
// past maxNodeDrainTime is flagged before anything moves.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// started makes a pod that took d from creation to Ready.
func started(d time.Duration) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		p.CreationTimestamp = metav1.NewTime(created)
		p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(created.Add(d))
	}
}

func preStopSleep(seconds int64) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: seconds}}}
	}
}

func unguarded(p *corev1.Pod) { p.Labels = map[string]string{"app": "other"} }

func TestForecastDrain(t *testing.T) {
	t.Parallel()
	sec, lag := time.Second, budgetLag.Expected.Duration
	for _, c := range []struct {
		name       string
		objs       []runtime.Object
		limit      string
		want       time.Duration // the expected drain
		paced      string
		flagged    bool
		assumesDef bool
	}{
		{"three pods of a budget allowing one: three waves, two waits for a replacement",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), budget(1, 4),
				planPod("db-0", "n1", started(10*sec)), planPod("db-1", "n1", started(10*sec)), planPod("db-2", "n1", started(10*sec)), planPod("db-3", "n2", started(10*sec))},
			"", 2*(10*sec+lag) + sec, "PodDisruptionBudget db/db: 3 pod(s) in 3 wave(s) of 1", false, false},
		{"a pod Ready again long after it started (a restart) is not a start-up",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), budget(1, 4),
				planPod("db-0", "n1", started(2*sec)), planPod("db-1", "n1", started(2*sec)), planPod("db-2", "n1", started(2*sec)), planPod("db-3", "n2", started(10*time.Minute))},
			"", 2*(2*sec+lag) + sec, "3 wave(s) of 1", false, false},
		{"a budget allowing two: two waves",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), budget(2, 4),
				planPod("db-0", "n1", started(4*sec)), planPod("db-1", "n1", started(4*sec)), planPod("db-2", "n1", started(4*sec)), planPod("db-3", "n2", started(4*sec))},
			"", (4*sec + lag) + sec, "2 wave(s) of 2", false, false},
		{"no budget: all at once, a preStop sleep counts",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"),
				planPod("web-0", "n1", unguarded, preStopSleep(15)), planPod("web-1", "n1", unguarded)},
			"", 16 * sec, "pod termination", false, false},
		{"over maxNodeDrainTime: flagged",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), budget(1, 4),
				planPod("db-0", "n1", started(2*time.Minute)), planPod("db-1", "n1", started(2*time.Minute)), planPod("db-2", "n1", started(2*time.Minute)), planPod("db-3", "n2", started(2*time.Minute))},
			"3m", 2*(2*time.Minute+lag) + sec, "3 wave(s) of 1", true, false},
		{"within eks's 15 minutes: not flagged",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), budget(1, 4),
				planPod("db-0", "n1", started(2*time.Minute)), planPod("db-1", "n1", started(2*time.Minute)), planPod("db-2", "n1", started(2*time.Minute)), planPod("db-3", "n2", started(2*time.Minute))},
			"eks", 2*(2*time.Minute+lag) + sec, "3 wave(s) of 1", false, false},
		{"no Ready pod to measure: the default, said",
			[]runtime.Object{planNode("n1", "a"), planNode("n2", "a"), budget(1, 2),
				planPod("db-0", "n1", func(p *corev1.Pod) { p.Status.Conditions = nil }), planPod("db-1", "n1", func(p *corev1.Pod) { p.Status.Conditions = nil })},
			"", 30*sec + lag + sec, "start-up not measured", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			client := fake.NewClientset(c.objs...)
			plan, err := NewPlanner(client, Options{MaxNodeDrainTime: c.limit}, "").Plan(context.Background(), []string{"n1"})
			if err != nil {
				t.Fatal(err)
			}
			f := plan.Nodes[0].Forecast
			if f == nil {
				t.Fatal("no forecast")
			}
			if got := f.Drain.Expected.Duration; got != c.want {
				t.Errorf("drain forecast %s, want %s (%s)", got, c.want, f.PacedBy)
			}
			if f.Drain.Low.Duration > f.Drain.Expected.Duration || f.Drain.High.Duration < f.Drain.Expected.Duration {
				t.Errorf("range %s does not hold the expected value", f.Drain)
			}
			if !strings.Contains(f.PacedBy, c.paced) {
				t.Errorf("paced by %q, want it to say %q", f.PacedBy, c.paced)
			}
			var slow []string
			for _, b := range plan.Blockers() {
				if b.Kind == BlockSlow {
					slow = append(slow, b.String())
					if b.Fatal {
						t.Errorf("a forecast is a warning, not a certain blocker: %s", b)
					}
				}
			}
			if (len(slow) > 0) != c.flagged {
				t.Errorf("flagged %v, want flagged=%v", slow, c.flagged)
			}
			if writes := writeActions(client); len(writes) > 0 {
				t.Fatalf("planning wrote: %v", writes)
			}
		})
	}
}

func TestMaxNodeDrainTimeValidates(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{"": true, "eks": true, "aks": true, "gke": true, "20m": true, "1h30m": true, "EKS": false, "15": false, "-5m": false} {
		errs := Options{MaxNodeDrainTime: in}.Validate("drain")
		if (len(errs) == 0) != ok {
			t.Errorf("maxNodeDrainTime %q: errors %v, want ok=%v", in, errs, ok)
		}
		if len(errs) > 0 && !strings.Contains(fmt.Sprint(errs), "eks, aks, gke") {
			t.Errorf("the error does not say what is allowed: %v", errs)
		}
	}
}
