package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

// TestServiceGateOnCluster: a Service whose only pod has no controller. The canary drains its node
// with force: the pod is gone and nothing brings it back. Every pod that exists is healthy, so only
// the Service gate sees the damage (0 ready endpoints, 1 before the step): the canary is rolled back
// naming the Service. With skipServices the same canary passes. (Both turn the drain's Service
// guard off; with it on, the canary is refused before anything moves, naming the Service.)
func TestServiceGateOnCluster(t *testing.T) {
	simcluster.Need(t)
	for _, tc := range []struct {
		name, health, drain string
		want                string
	}{
		{"gated", "{timeout: 5s}", "{force: true, disableServiceGuard: true}", "Service svcgate-gated/solo has 0 ready endpoint(s), 1 before the step"},
		{"skipped", "{timeout: 5s, skipServices: true}", "{force: true, disableServiceGuard: true}", ""},
		{"guarded", "{timeout: 5s}", "{force: true}", "svcgate-guarded/solo is the only ready endpoint of Service svcgate-guarded/solo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := "svcgate-" + tc.name
			namespace(t, ns)
			names := nodes(t, ns, 2, nil) // the second one can take the pod: no capacity blocker
			ctx := context.Background()
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "solo", Labels: map[string]string{"app": "solo"}},
				Spec: corev1.PodSpec{NodeName: names[0], Containers: []corev1.Container{{Name: "app", Image: "solo"}},
					Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists}}}}
			if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "solo"},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "solo"}, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
			if _, err := cluster.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			// The EndpointSlice controller publishes the pod once it is Ready.
			if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				list, err := cluster.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=solo"})
				if err != nil {
					return false, err
				}
				for _, es := range list.Items {
					for _, ep := range es.Endpoints {
						if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
							return true, nil
						}
					}
				}
				return false, nil
			}); err != nil {
				t.Fatalf("the Service never had a ready endpoint: %v", err)
			}
			e, rec := engine(t, runbook.AlwaysContinue)
			rb := parse(t, "v1.37.1", fmt.Sprintf(`    - name: canary
      type: canary
      with:
        node: %s
        action: {exec: %s}
        drain: %s
        soak: 1s
        health: %s
`, names[0], upgradeAction(t), tc.drain, tc.health))
			st, err := e.Start(ctx, rb)
			if tc.want == "" {
				if err != nil || st.Step("canary").Status != runbook.StatusDone {
					t.Fatalf("%v\n%s", err, rec.Text())
				}
				return
			}
			if tc.name == "guarded" {
				if exitcode.For(err) != exitcode.Blocked || !strings.Contains(rec.Text(), tc.want) {
					t.Fatalf("exit %d: %v; want the canary blocked before anything moved, naming %q\n%s", exitcode.For(err), err, tc.want, rec.Text())
				}
				if n, err := cluster.Client.CoreV1().Nodes().Get(ctx, names[0], metav1.GetOptions{}); err != nil || n.Spec.Unschedulable {
					t.Fatalf("node %s after the blocked canary: %v (cordoned: %v)", names[0], err, n != nil && n.Spec.Unschedulable)
				}
				return
			}
			if exitcode.For(err) != exitcode.Aborted || !errors.Is(err, runbook.ErrRolledBack) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("exit %d: %v; want a rolled-back canary naming %q\n%s", exitcode.For(err), err, tc.want, rec.Text())
			}
		})
	}
}
