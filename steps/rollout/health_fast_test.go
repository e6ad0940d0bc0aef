package rollout

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

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

// TestServiceGate: a Service below the ready endpoints it had when the step began fails the gate;
// the same Service whose workload was scaled down since by as much does not.
func TestServiceGate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1"}, Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3)}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}}}
	slice := func(ready int) *discoveryv1.EndpointSlice {
		es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}}}
		for i := range 3 {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.0.0.%d", i)},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(i < ready)}, TargetRef: &corev1.ObjectReference{UID: types.UID(fmt.Sprint("pod-", i))}})
		}
		return es
	}
	var objs []runtime.Object
	for i := range 3 {
		objs = append(objs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprint("web-", i), Labels: map[string]string{"app": "web"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-1", Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}})
	}
	client := fake.NewClientset(append(objs, rs, svc, slice(3))...)
	g, err := NewGates(ctx, &runbook.Env{Kube: client}, Health{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	if b := g.services.base["shop/web"]; b.Ready != 3 || b.Owners["ReplicaSet/web-1"] != 3 {
		t.Fatalf("baseline %+v", b)
	}
	if err := g.services.slices.GetStore().Update(slice(2)); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(g.Problems(ctx), "\n"); !strings.Contains(p, "Service shop/web has 2 ready endpoint(s), 3 before the step") {
		t.Fatalf("problems:\n%s\nwant the Service below its baseline", p)
	}
	// Someone scales the workload down to 2: two ready endpoints is its whole capacity now.
	rs.Spec.Replicas = ptr.To[int32](2)
	if _, err := client.AppsV1().ReplicaSets("shop").Update(ctx, rs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	g.services.ownersAt = time.Time{}
	if p := g.Problems(ctx); len(p) != 0 {
		t.Fatalf("a workload scaled down on purpose counted as damage: %v", p)
	}
}

// TestReadyWithin: a replacement pod not Ready within readyWithin fails WaitHealthy at once (not at
// its timeout), naming the pod.
func TestReadyWithin(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := fake.NewClientset()
	g, err := NewGates(ctx, &runbook.Env{Kube: client}, Health{ReadyWithin: runbook.Duration{Duration: 30 * time.Second}, Timeout: runbook.Duration{Duration: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	g.taken = time.Now().Add(-time.Hour)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-new", CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Minute))},
		Status: corev1.PodStatus{Phase: corev1.PodPending}}
	if err := g.pods.GetStore().Add(pod); err != nil {
		t.Fatal(err)
	}
	err = g.WaitHealthy(ctx, "node n1")
	if err == nil || !strings.Contains(err.Error(), "replacement pod shop/web-new is not Ready") || !strings.Contains(err.Error(), "readyWithin 30s") {
		t.Fatalf("WaitHealthy: %v, want the replacement named at once", err)
	}
}
