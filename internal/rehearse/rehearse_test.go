package rehearse_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/rehearse"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// recorder is a transport that notes every request's method and path.
type recorder struct {
	mu   sync.Mutex
	seen []string
	next http.RoundTripper
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen = append(r.seen, req.Method+" "+req.URL.Path)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// TestRehearsal: a "live" simulated cluster (three nodes at v1.36.3, a Deployment under a budget,
// a Secret and a ConfigMap) is copied into a second one where the node groups run; the report
// has every node step with its forecast, the budget's lowest availability, and nothing was written
// to the live cluster, nor a Secret or ConfigMap read (every request recorded).
func TestRehearsal(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	live, err := simcluster.Start(ctx, simcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Stop() //nolint:errcheck
	for _, n := range []string{"g-1", "g-2", "g-3"} {
		if _, err := live.CreateNode(ctx, n, simcluster.NodeOptions{KubeletVersion: "v1.36.3", Labels: map[string]string{"group": "g"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := live.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := simcluster.Deployment("shop", "web", 4)
	d.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "T", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "t"}}}}
	if _, err := live.Client.AppsV1().Deployments("shop").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Client.CoreV1().Secrets("shop").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"t": "s3cret"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := intstr.FromInt32(1)
	if _, err := live.Client.PolicyV1().PodDisruptionBudgets("shop").Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := live.WaitDeploymentReady(ctx, "shop", "web", 2*time.Minute); err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	cfg := rest.CopyConfig(live.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { rec.next = rt; return rec }
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := `apiVersion: drydock.dev/v1alpha1
kind: Runbook
metadata: {name: rehearsed}
spec:
  targetVersion: v1.37.1
  steps:
    - name: fleet
      type: nodegroups
      with: {groupBy: group, action: {exec: [never-run-on-the-copy], expectedDuration: 1s}, health: {namespaces: [shop], timeout: 1m}}
`
	rb, err := runbook.Parse("r.yaml", []byte(text), steps.Registry)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := runbook.Parse("r.yaml", []byte(text), steps.Registry)
	rep, err := rehearse.Run(ctx, rehearse.Options{Live: client, LiveREST: cfg, Runbook: rb, Rehearsal: again, Registry: steps.Registry, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("report:\n%s", b)
	if rep.Status != runbook.RunSucceeded || len(rep.Steps) != 1 || rep.Steps[0].Forecast == nil || rep.Steps[0].Took.Duration <= 0 {
		t.Fatalf("report: %+v", rep)
	}
	if len(rep.Blockers) != 1 || !strings.HasPrefix(rep.Blockers[0], "PodDisruptionBudget shop/web held ") {
		t.Errorf("blockers met: %q, want the budget that held the pods evicted after the first (how many depends on timing)", rep.Blockers)
	}
	lowest := false
	for _, a := range rep.Lowest {
		lowest = lowest || (a.Workload == "shop/Deployment/web" && a.Lowest >= 3 && a.Lowest < 4)
	}
	if !lowest {
		t.Errorf("web never below 4 Ready, or below what its budget allows: %+v", rep.Lowest)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range rec.seen {
		if !strings.HasPrefix(s, "GET ") && !(strings.HasPrefix(s, "POST ") && strings.Contains(s, "/selfsubjectaccessreviews")) {
			t.Errorf("the rehearsal wrote to the live cluster: %s", s)
		}
		if strings.Contains(s, "/secrets") || strings.Contains(s, "/configmaps") {
			t.Errorf("the rehearsal read %s", s)
		}
	}
	if len(rec.seen) == 0 {
		t.Fatal("no request recorded: the test proves nothing")
	}
}
