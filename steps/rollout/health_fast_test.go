package rollout

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/drydock-dev/drydock/runbook"
)

// TestGatesJudgeOnlyTheirNamespaces: a budget at zero in a namespace the gates do not watch (another
// team's drain in progress) does not fail them; one in a watched namespace does.
func TestGatesJudgeOnlyTheirNamespaces(t *testing.T) {
	t.Parallel()
	pdb := func(ns string, allowed int32) *policyv1.PodDisruptionBudget {
		return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed, DesiredHealthy: 1, CurrentHealthy: 1}}
	}
	client := fake.NewClientset(pdb("mine", 1), pdb("theirs", 1))
	g, err := NewGates(context.Background(), &runbook.Env{Kube: client}, Health{Namespaces: []string{"mine"}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	// Both budgets drop to zero after the baseline.
	for _, ns := range []string{"mine", "theirs"} {
		if err := g.pdbs.GetStore().Update(pdb(ns, 0)); err != nil {
			t.Fatal(err)
		}
	}
	problems := strings.Join(g.Problems(context.Background()), "\n")
	if !strings.Contains(problems, "mine/web") || strings.Contains(problems, "theirs/web") {
		t.Fatalf("problems:\n%s\nwant mine/web only", problems)
	}
}

// TestPodProblem: what the pod gate counts against a pod that exists.
func TestPodProblem(t *testing.T) {
	t.Parallel()
	ready := corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}
	waiting := func(init bool, reason string) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodPending}}
		cs := corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
		if init {
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{cs}
		} else {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		}
		return p
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"ready", &corev1.Pod{Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{ready}}}, ""},
		{"succeeded", &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, ""},
		{"not scheduled", &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}, "Pending (not scheduled)"},
		{"crash loop", waiting(false, "CrashLoopBackOff"), "CrashLoopBackOff (container app)"},
		{"image pull", waiting(false, "ImagePullBackOff"), "ImagePullBackOff (container app)"},
		{"init image", waiting(true, "ErrImagePull"), "ErrImagePull (container app)"},
		{"starting", waiting(false, "ContainerCreating"), "not Ready (container app not ready)"},
		{"unschedulable", &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available"}}}}, "Pending (not scheduled: Unschedulable: 0/3 nodes are available)"},
	} {
		if got := podProblem(tc.pod); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
