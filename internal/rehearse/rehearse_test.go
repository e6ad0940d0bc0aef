package rehearse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
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

// startLive starts a simulated cluster to stand for the live one, stopped when the test ends.
func startLive(t *testing.T) *simcluster.Cluster {
	t.Helper()
	live, err := simcluster.Start(context.Background(), simcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Stop() })
	return live
}

// recording is a client of live whose every request rec notes.
func recording(t *testing.T, live *simcluster.Cluster) (*recorder, *rest.Config, kubernetes.Interface) {
	t.Helper()
	rec := &recorder{}
	cfg := rest.CopyConfig(live.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { rec.next = rt; return rec }
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rec, cfg, client
}

// TestRehearsal: a "live" simulated cluster (three nodes at v1.36.3, a Deployment under a budget,
// a Secret and a ConfigMap) is copied into a second one where the node groups run; the report
// has every node step with its forecast, the budget's lowest availability, and nothing was written
// to the live cluster, nor a Secret or ConfigMap read (every request recorded).
func TestRehearsal(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	live := startLive(t)
	for n, g := range map[string]string{"g-1": "a", "g-2": "a", "g-3": "b"} {
		if _, err := live.CreateNode(ctx, n, simcluster.NodeOptions{KubeletVersion: "v1.36.3", Labels: map[string]string{"group": g}}); err != nil {
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

	rec, cfg, client := recording(t, live)
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
	// Each group, in order, with its forecast; together they are the step.
	if len(rep.Groups) != 2 || rep.Groups[0].Group != "a" || rep.Groups[1].Group != "b" {
		t.Fatalf("groups: %+v", rep.Groups)
	}
	var sum time.Duration
	for _, g := range rep.Groups {
		if g.Forecast == nil || g.Took.Duration <= 0 {
			t.Errorf("group %s: %+v", g.Group, g)
		}
		sum += g.Took.Duration
	}
	if step := rep.Steps[0].Took.Duration; sum > step || sum < step*3/4 {
		t.Errorf("the groups took %s together, the step %s", sum, step)
	}
	if len(rep.Blockers) != 1 || rep.Blockers[0].What != "PodDisruptionBudget shop/web" || rep.Blockers[0].Pods < 1 {
		t.Errorf("blockers met: %q, want the budget that held the pods evicted after the first (how many depends on timing)", rep.Blockers)
	}
	// The copy made the replacements Ready about when it was told to (an idle copy of a few pods).
	if l := rep.CopyLag; l == nil || l.Pods < 1 || l.Saturated() {
		t.Errorf("the copy's lag: %+v, want the replacements counted and on time", l)
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

// TestCopyKeepsVolumesWhereTheyAre: a StatefulSet whose three claims are bound to volumes that can
// only be used on one node (a zonal disk's node affinity; the scheduler would otherwise spread the
// replicas) is copied with its claims bound to volumes with the same affinity: in the copy too every
// replica runs on that node, and no request read a Secret or wrote to the live cluster.
func TestCopyKeepsVolumesWhereTheyAre(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	live := startLive(t)
	for _, n := range []string{"v-1", "v-2", "v-3"} {
		if _, err := live.CreateNode(ctx, n, simcluster.NodeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := live.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	none := ""
	size := corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
	rwo := []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	for i := range 3 {
		claim := fmt.Sprintf("data-db-%d", i)
		pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-" + claim}, Spec: corev1.PersistentVolumeSpec{Capacity: size, AccessModes: rwo,
			ClaimRef: &corev1.ObjectReference{Namespace: "shop", Name: claim}, PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{"v-3"}}}}}}},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "disk.example", VolumeHandle: "vol-" + claim,
				NodePublishSecretRef: &corev1.SecretReference{Namespace: "shop", Name: "disk-creds"}}}}}
		if _, err := live.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: claim}, Spec: corev1.PersistentVolumeClaimSpec{AccessModes: rwo,
			VolumeName: pv.Name, StorageClassName: &none, Resources: corev1.VolumeResourceRequirements{Requests: size}}}
		if _, err := live.Client.CoreV1().PersistentVolumeClaims("shop").Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	replicas := int32(3)
	labels := map[string]string{"app": "db"}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: appsv1.StatefulSetSpec{Replicas: &replicas, ServiceName: "db",
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:16",
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}}},
		VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{AccessModes: rwo,
			StorageClassName: &none, Resources: corev1.VolumeResourceRequirements{Requests: size}}}}}}
	if _, err := live.Client.AppsV1().StatefulSets("shop").Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	onV3 := func(c kubernetes.Interface) error {
		return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			pods, err := c.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=db"})
			if err != nil || len(pods.Items) != 3 {
				return false, nil //nolint:nilerr // not yet
			}
			for _, p := range pods.Items {
				if p.Spec.NodeName != "v-3" || !simcluster.PodReady(&p) {
					return false, nil
				}
			}
			return true, nil
		})
	}
	if err := onV3(live.Client); err != nil {
		t.Fatalf("live: the replicas are not all Ready on v-3: %v", err)
	}

	rec, _, client := recording(t, live)
	state, err := rehearse.Capture(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := simcluster.Start(ctx, rehearse.SimOptions(state, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop() //nolint:errcheck
	if err := state.Apply(ctx, sim, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := onV3(sim.Client); err != nil {
		pods, _ := sim.Client.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
		for _, p := range pods.Items {
			t.Logf("copy: %s on %q, conditions %+v", p.Name, p.Spec.NodeName, p.Status.Conditions)
		}
		t.Fatalf("copy: the replicas are not all Ready on v-3 (the volumes' node affinity was lost): %v", err)
	}
	pvs, err := sim.Client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, pv := range pvs.Items {
		if pv.Spec.CSI == nil || pv.Spec.CSI.NodePublishSecretRef != nil || pv.Spec.CSI.VolumeHandle != pv.Name {
			t.Errorf("copied volume %s keeps the cluster's source: %+v", pv.Name, pv.Spec.PersistentVolumeSource)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range rec.seen {
		if !strings.HasPrefix(s, "GET ") || strings.Contains(s, "/secrets") || strings.Contains(s, "/configmaps") {
			t.Errorf("capture: %s", s)
		}
	}
}
