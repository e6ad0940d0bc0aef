package preflight_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	resourceac "k8s.io/client-go/applyconfigurations/resource/v1beta1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"k8s.io/utils/ptr"

	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/preflight"
	"github.com/drydock-dev/drydock/preflight/apis"
	"github.com/drydock-dev/drydock/runbook"
)

var cluster *simcluster.Cluster

func TestMain(m *testing.M) {
	// resource.k8s.io/v1beta1 is deprecated and removed in 1.38: the pinned 1.37 apiserver still
	// serves it when asked, so the tests write through a beta API for real.
	os.Exit(simcluster.Main(m, &cluster, simcluster.Options{PodReadyDelay: time.Second, RuntimeConfig: "resource.k8s.io/v1beta1=true"}))
}

// recorder notes every request a check makes, to prove the checks write nothing.
type recorder struct {
	rt   http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Method+" "+req.URL.Path)
	r.mu.Unlock()
	return r.rt.RoundTrip(req)
}

// readOnlyInput builds an Input whose every request is recorded; the returned func fails the test
// on anything but a read (a SelfSubjectAccessReview is answered, not stored).
func readOnlyInput(t *testing.T, cfg *rest.Config, target string) (*preflight.Input, func()) {
	t.Helper()
	in, rec := recordedInput(t, cfg, target)
	return in, func() {
		t.Helper()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.reqs) == 0 {
			t.Fatal("no requests recorded: the recorder is not in the path")
		}
		for _, r := range rec.reqs {
			if !strings.HasPrefix(r, "GET ") && r != "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews" {
				t.Errorf("a read-only check wrote to the cluster: %s", r)
			}
		}
	}
}

// recordedInput builds an Input whose every request ("GET /api/v1/pods") is recorded.
func recordedInput(t *testing.T, cfg *rest.Config, target string) (*preflight.Input, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { rec.rt = rt; return rec })
	in, err := preflight.NewInput(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := in.Kube.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	in.ServerVersion = v.GitVersion
	in.Server, _ = apis.ParseRelease(v.GitVersion)
	if in.Target, err = apis.ParseRelease(target); err != nil {
		t.Fatal(err)
	}
	return in, rec
}

var fixtures sync.Once

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ns(t *testing.T, name string) {
	t.Helper()
	_, err := cluster.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	must(t, err)
}

// helmSecret stores a release the way Helm v3 does: JSON, gzip, base64, in a Secret of type
// helm.sh/release.v1 (whose data the API base64-encodes once more) or in a ConfigMap.
func helmRelease(t *testing.T, store, namespace, name string, version int, status, manifest string) {
	t.Helper()
	rel := map[string]any{
		"name": name, "namespace": namespace, "version": version,
		"info":     map[string]any{"status": status},
		"chart":    map[string]any{"metadata": map[string]any{"name": name, "version": "1.0.0"}},
		"manifest": manifest,
	}
	js, err := json.Marshal(rel)
	must(t, err)
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = zw.Write(js)
	must(t, zw.Close())
	enc := base64.StdEncoding.EncodeToString(gz.Bytes())
	meta := metav1.ObjectMeta{Namespace: namespace, Name: fmt.Sprintf("sh.helm.release.v1.%s.v%d", name, version),
		Labels: map[string]string{"name": name, "owner": "helm", "status": status, "version": fmt.Sprint(version)}}
	ctx := context.Background()
	if store == "Secret" {
		_, err = cluster.Client.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{ObjectMeta: meta, Type: "helm.sh/release.v1", Data: map[string][]byte{"release": []byte(enc)}}, metav1.CreateOptions{})
	} else {
		_, err = cluster.Client.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"release": enc}}, metav1.CreateOptions{})
	}
	must(t, err)
}

func deploy(t *testing.T, namespace, name string, replicas int32, podAnnotations map[string]string) {
	t.Helper()
	d := simcluster.Deployment(namespace, name, replicas)
	d.Spec.Template.Annotations = podAnnotations
	_, err := cluster.Client.AppsV1().Deployments(namespace).Create(context.Background(), d, metav1.CreateOptions{})
	must(t, err)
}

func pdb(t *testing.T, namespace, name string, app string, minAvailable, maxUnavailable *intstr.IntOrString) {
	t.Helper()
	p := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}, MinAvailable: minAvailable, MaxUnavailable: maxUnavailable}}
	_, err := cluster.Client.PolicyV1().PodDisruptionBudgets(namespace).Create(context.Background(), p, metav1.CreateOptions{})
	must(t, err)
}

func setup(t *testing.T) {
	fixtures.Do(func() { createFixtures(t) })
}

func createFixtures(t *testing.T) {
	ctx := context.Background()
	c := cluster.Client
	_, err := cluster.CreateNode(ctx, "pf-node", simcluster.NodeOptions{})
	must(t, err)

	// --- api-scan ---
	ns(t, "shop")
	deploy(t, "shop", "modern", 1, nil) // negative control: written through apps/v1
	// An Ingress last applied by kubectl from a manifest that still says extensions/v1beta1.
	ing := fmt.Sprintf(`{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"web","namespace":"shop","annotations":{%q:%q}},"spec":{"defaultBackend":{"service":{"name":"web","port":{"number":80}}}}}`,
		corev1.LastAppliedConfigAnnotation, `{"apiVersion":"extensions/v1beta1","kind":"Ingress","metadata":{"name":"web","namespace":"shop"}}`)
	must(t, c.NetworkingV1().RESTClient().Post().AbsPath("/apis/networking.k8s.io/v1/namespaces/shop/ingresses").Body([]byte(ing)).Do(ctx).Error())
	// A DeviceClass server-side applied through resource.k8s.io/v1beta1, removed in 1.38: a real
	// write through a deprecated API, which the apiserver's metric counts too.
	_, err = c.ResourceV1beta1().DeviceClasses().Apply(ctx, resourceac.DeviceClass("gpu").WithLabels(map[string]string{"vendor": "example"}), metav1.ApplyOptions{FieldManager: "gpu-operator", Force: true})
	must(t, err)

	// Helm releases: the latest revision of "web" (a Secret) renders a removed Ingress; its
	// superseded revision 1 had a removed PodDisruptionBudget that must not be reported. "jobs"
	// (a ConfigMap) failed its last upgrade with a removed CronJob.
	helmRelease(t, "Secret", "shop", "web", 1, "superseded", "---\n# Source: web/templates/pdb.yaml\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: old\n")
	helmRelease(t, "Secret", "shop", "web", 2, "deployed", "---\n# Source: web/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n---\n# Source: web/templates/ingress.yaml\napiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata:\n  name: web\n")
	// A cluster-scoped kind in a namespaced release: its finding has no namespace.
	helmRelease(t, "Secret", "shop", "certs", 1, "deployed", "---\n# Source: certs/templates/csr.yaml\napiVersion: certificates.k8s.io/v1beta1\nkind: CertificateSigningRequest\nmetadata:\n  name: csr-1\n")
	// The latest revision failed (fixed, but never deployed); revision 1 is what runs.
	helmRelease(t, "Secret", "shop", "api", 1, "deployed", "---\n# Source: api/templates/pdb.yaml\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: api\n")
	helmRelease(t, "Secret", "shop", "api", 2, "failed", "---\n# Source: api/templates/pdb.yaml\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: api\n")
	helmRelease(t, "ConfigMap", "shop", "jobs", 3, "failed", "---\n# Source: jobs/templates/cron.yaml\napiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: nightly\n  namespace: shop\n")

	// A CRD with a deprecated served version, and a stored version no longer served.
	ext, err := apiextclient.NewForConfig(cluster.Config)
	must(t, err)
	schemaProps := &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &apiextv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}}
	crd := &apiextv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextv1.CustomResourceDefinitionSpec{Group: "example.com", Scope: apiextv1.NamespaceScoped,
			Names: apiextv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Versions: []apiextv1.CustomResourceDefinitionVersion{
				{Name: "v1alpha1", Served: false, Storage: false, Schema: schemaProps},
				{Name: "v1beta1", Served: true, Storage: false, Deprecated: true, DeprecationWarning: ptr.To("example.com/v1beta1 Widget is deprecated; use example.com/v1"), Schema: schemaProps},
				{Name: "v1", Served: true, Storage: true, Schema: schemaProps},
			}}}
	crd, err = ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{})
	must(t, err)
	must(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		crd, err = ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "widgets.example.com", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextv1.Established && cond.Status == apiextv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}))
	crd.Status.StoredVersions = []string{"v1alpha1", "v1"}
	_, err = ext.ApiextensionsV1().CustomResourceDefinitions().UpdateStatus(ctx, crd, metav1.UpdateOptions{})
	must(t, err)
	dyn, err := dynamic.NewForConfig(cluster.Config)
	must(t, err)
	w := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1beta1", "kind": "Widget", "metadata": map[string]any{"name": "w1", "namespace": "shop"}, "spec": map[string]any{"size": 3}}}
	_, err = dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v1beta1", Resource: "widgets"}).Namespace("shop").Create(ctx, w, metav1.CreateOptions{FieldManager: "widget-tool"})
	must(t, err)

	// --- pdb-check ---
	ns(t, "pdbs")
	deploy(t, "pdbs", "trap", 2, nil)
	pdb(t, "pdbs", "trap", "trap", ptr.To(intstr.FromString("100%")), nil)
	deploy(t, "pdbs", "single", 1, nil)
	pdb(t, "pdbs", "single", "single", ptr.To(intstr.FromInt32(1)), nil)
	deploy(t, "pdbs", "frozen", 2, nil)
	pdb(t, "pdbs", "frozen", "frozen", nil, ptr.To(intstr.FromInt32(0)))
	deploy(t, "pdbs", "overlap", 2, nil)
	pdb(t, "pdbs", "overlap-a", "overlap", nil, ptr.To(intstr.FromInt32(1)))
	pdb(t, "pdbs", "overlap-b", "overlap", nil, ptr.To(intstr.FromInt32(1)))
	deploy(t, "pdbs", "unguarded", 3, nil)
	pdb(t, "pdbs", "orphan", "nothing-has-this-label", nil, ptr.To(intstr.FromInt32(1)))
	deploy(t, "pdbs", "sick", 2, map[string]string{"pod-ready.stage.kwok.x-k8s.io/delay": "1h"})
	pdb(t, "pdbs", "sick", "sick", nil, ptr.To(intstr.FromInt32(1)))
	deploy(t, "pdbs", "healthy", 2, nil) // negative control
	pdb(t, "pdbs", "healthy", "healthy", nil, ptr.To(intstr.FromInt32(1)))
	for _, d := range []string{"trap", "single", "frozen", "overlap", "unguarded", "healthy"} {
		must(t, cluster.WaitDeploymentReady(ctx, "pdbs", d, time.Minute))
	}
	// The disruption controller fills in every budget's status.
	must(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := c.PolicyV1().PodDisruptionBudgets("pdbs").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, p := range list.Items {
			if p.Status.ObservedGeneration < p.Generation || (p.Name != "orphan" && p.Status.ExpectedPods == 0) {
				return false, nil
			}
		}
		return true, nil
	}))

	// --- skew-check and health-check ---
	_, err = cluster.CreateNode(ctx, "pf-old", simcluster.NodeOptions{KubeletVersion: "v1.34.2", Unschedulable: true})
	must(t, err)
	_, err = cluster.CreateNode(ctx, "pf-down", simcluster.NodeOptions{Unschedulable: true})
	must(t, err)
	_, err = c.CoreV1().Nodes().Patch(ctx, "pf-down", types.MergePatchType, []byte(`{"metadata":{"annotations":{"drydock.dev/sim-not-ready":"true"}}}`), metav1.PatchOptions{})
	must(t, err)
	_, err = c.CoreV1().Nodes().Patch(ctx, "pf-down", types.StrategicMergePatchType, []byte(`{"status":{"conditions":[{"type":"Ready","status":"False","reason":"KubeletDown"}]}}`), metav1.PatchOptions{}, "status")
	must(t, err)
	_, err = c.CoreV1().Pods("kube-system").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stuck-agent"},
		Spec: corev1.PodSpec{NodeSelector: map[string]string{"no-such-node": "true"}, Containers: []corev1.Container{{Name: "agent", Image: "agent"}}}}, metav1.CreateOptions{})
	must(t, err)
	agg, err := aggregator.NewForConfig(cluster.Config)
	must(t, err)
	_, err = agg.ApiregistrationV1().APIServices().Create(ctx, &apiregv1.APIService{ObjectMeta: metav1.ObjectMeta{Name: "v1beta1.metrics.example.com"},
		Spec: apiregv1.APIServiceSpec{Group: "metrics.example.com", Version: "v1beta1", Service: &apiregv1.ServiceReference{Namespace: "kube-system", Name: "no-such-service"},
			InsecureSkipTLSVerify: true, GroupPriorityMinimum: 100, VersionPriority: 10}}, metav1.CreateOptions{})
	must(t, err)
	_, err = c.CoreV1().Services("shop").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "guard"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "guard"}, Ports: []corev1.ServicePort{{Port: 443}}}}, metav1.CreateOptions{})
	must(t, err)
	_, err = c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "guard"},
		Webhooks: []admissionv1.ValidatingWebhook{{Name: "guard.example.com", ClientConfig: admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{Namespace: "shop", Name: "guard"}},
			Rules:       []admissionv1.RuleWithOperations{{Operations: []admissionv1.OperationType{admissionv1.Create}, Rule: admissionv1.Rule{APIGroups: []string{"nothing.example.com"}, APIVersions: []string{"v1"}, Resources: []string{"things"}}}},
			SideEffects: ptr.To(admissionv1.SideEffectClassNone), AdmissionReviewVersions: []string{"v1"}}}}, metav1.CreateOptions{})
	must(t, err)
	// The availability controller marks the APIService unavailable and the scheduler gives up on the pod.
	must(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		s, err := agg.ApiregistrationV1().APIServices().Get(ctx, "v1beta1.metrics.example.com", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range s.Status.Conditions {
			if cond.Type == apiregv1.Available && cond.Status == apiregv1.ConditionFalse {
				return true, nil
			}
		}
		return false, nil
	}))

	// --- access-check: a user who may read pods and nodes, nothing else ---
	_, err = c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "pf-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get", "list", "watch"}}}}, metav1.CreateOptions{})
	must(t, err)
	_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pf-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "pf-reader"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "ci-reader"}}}, metav1.CreateOptions{})
	must(t, err)
}

type want struct {
	sev     runbook.Severity
	object  string
	source  string
	message string // a substring
}

func run(t *testing.T, target string, checks ...string) []preflight.Finding {
	t.Helper()
	setup(t)
	in, assertReadOnly := readOnlyInput(t, cluster.Config, target)
	rep, err := preflight.Run(context.Background(), in, checks)
	if err != nil {
		t.Fatal(err)
	}
	assertReadOnly()
	return rep.Findings()
}

func expect(t *testing.T, got []preflight.Finding, wants []want) {
	t.Helper()
	for _, w := range wants {
		found := false
		for _, f := range got {
			if f.Severity == w.sev && f.Object == w.object && (w.source == "" || f.Source == w.source) && strings.Contains(f.Message, w.message) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("missing %s %s [%s] %q", w.sev, w.object, w.source, w.message)
		}
	}
	if t.Failed() {
		for _, f := range got {
			t.Logf("got %s %s [%s] %s", f.Severity, f.Object, f.Source, f.Message)
		}
	}
}

func refuse(t *testing.T, got []preflight.Finding, substrings ...string) {
	t.Helper()
	for _, f := range got {
		for _, s := range substrings {
			if strings.Contains(f.Object+" "+f.Message, s) {
				t.Errorf("negative control flagged (%q): %s %s: %s", s, f.Severity, f.Object, f.Message)
			}
		}
	}
}

func TestAPIScanOnCluster(t *testing.T) {
	simcluster.Need(t)
	got := run(t, "v1.38", "api-scan")
	expect(t, got, []want{
		{"error", "Ingress shop/web", "last-applied", "extensions/v1beta1 Ingress is removed in 1.22"},
		{"error", "DeviceClass gpu", "managedFields", `resource.k8s.io/v1beta1 DeviceClass is removed in 1.38 (deprecated in 1.35): last written through it by "gpu-operator"`},
		{"error", "requests to resource.k8s.io/v1beta1 deviceclasses", "metrics", "removed in 1.38"},
		{"error", "Ingress shop/web", "helm", "networking.k8s.io/v1beta1 Ingress is removed in 1.22 (deprecated in 1.19): in Helm release shop/web revision 2 (chart web-1.0.0, deployed), template web/templates/ingress.yaml"},
		{"error", "CronJob shop/nightly", "helm", "in Helm release shop/jobs revision 3 (chart jobs-1.0.0, failed)"},
		{"error", "CertificateSigningRequest csr-1", "helm", "certificates.k8s.io/v1beta1 CertificateSigningRequest is removed in 1.22"},
		{"error", "PodDisruptionBudget shop/api", "helm", "policy/v1beta1 PodDisruptionBudget is removed in 1.25 (deprecated in 1.21): in Helm release shop/api revision 1 (chart api-1.0.0, deployed)"},
		{"error", "CustomResourceDefinition widgets.example.com", "crd", "status.storedVersions still lists v1alpha1, which is no longer served"},
		{"warning", "CustomResourceDefinition widgets.example.com", "crd", "version v1beta1 is deprecated: example.com/v1beta1 Widget is deprecated; use example.com/v1"},
		{"warning", "Widget shop/w1", "managedFields", `example.com/v1beta1 Widget: example.com/v1beta1 Widget is deprecated; use example.com/v1: last written through it by "widget-tool"`},
	})
	refuse(t, got, "shop/modern", "PodDisruptionBudget shop/old", "Endpoints ", "Deployment shop/web")

	// At 1.37 the DeviceClass's API is deprecated, not yet removed.
	got = run(t, "v1.37", "api-scan")
	expect(t, got, []want{{"warning", "DeviceClass gpu", "managedFields", "deprecated since 1.35 and removed in 1.38"}})
	refuse(t, got, "DeviceClass gpu: resource.k8s.io/v1beta1 DeviceClass is removed")
}

// TestAPIScanListsOnlyFlaggedKinds: the scan reads the objects of kinds with a version the target
// deprecates or removes, and of custom kinds with a deprecated or unserved version; a kind that
// never had another version (ConfigMap, Pod, a CRD with one version) cannot show a finding and is
// not listed, which spares a real cluster's apiserver its largest lists.
func TestAPIScanListsOnlyFlaggedKinds(t *testing.T) {
	simcluster.Need(t)
	setup(t)
	ctx := context.Background()
	ext, err := apiextclient.NewForConfig(cluster.Config)
	must(t, err)
	gadgets := &apiextv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "gadgets.example.com"},
		Spec: apiextv1.CustomResourceDefinitionSpec{Group: "example.com", Scope: apiextv1.NamespaceScoped,
			Names: apiextv1.CustomResourceDefinitionNames{Plural: "gadgets", Singular: "gadget", Kind: "Gadget", ListKind: "GadgetList"},
			Versions: []apiextv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &apiextv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}}}}}}
	_, err = ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, gadgets, metav1.CreateOptions{})
	must(t, err)
	t.Cleanup(func() {
		_ = ext.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), "gadgets.example.com", metav1.DeleteOptions{})
	})
	// Listed only once discovery serves it: wait until it does, so that its absence below means
	// the scan chose not to list it.
	must(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		l, err := cluster.Client.Discovery().ServerResourcesForGroupVersion("example.com/v1")
		if err != nil {
			return false, nil //nolint:nilerr // not served yet
		}
		for _, r := range l.APIResources {
			if r.Name == "gadgets" {
				return true, nil
			}
		}
		return false, nil
	}))

	in, rec := recordedInput(t, cluster.Config, "v1.38")
	in.Helm = false // its Secret and ConfigMap lists are Helm's, by label
	rep, err := preflight.Run(ctx, in, []string{"api-scan"})
	must(t, err)
	expect(t, rep.Findings(), []want{
		{"error", "Ingress shop/web", "last-applied", "extensions/v1beta1 Ingress is removed in 1.22"},
		{"warning", "Widget shop/w1", "managedFields", "example.com/v1beta1 Widget is deprecated"},
	})
	rec.mu.Lock()
	listed := sets.New(rec.reqs...)
	rec.mu.Unlock()
	for _, r := range []string{"GET /apis/apps/v1/deployments", "GET /apis/networking.k8s.io/v1/ingresses", "GET /apis/example.com/v1/widgets", "GET /apis/rbac.authorization.k8s.io/v1/roles"} {
		if !listed.Has(r) {
			t.Errorf("not listed: %s", r)
		}
	}
	for _, r := range []string{"GET /api/v1/configmaps", "GET /api/v1/secrets", "GET /api/v1/pods", "GET /api/v1/serviceaccounts", "GET /apis/example.com/v1/gadgets"} {
		if listed.Has(r) {
			t.Errorf("listed a kind that cannot show a finding: %s", r)
		}
	}
}

func TestPDBCheckOnCluster(t *testing.T) {
	simcluster.Need(t)
	got := run(t, "v1.38", "pdb-check")
	expect(t, got, []want{
		{"error", "PodDisruptionBudget pdbs/trap", "", "minAvailable: 100%: no pod of Deployment pdbs/trap can ever be evicted"},
		{"error", "PodDisruptionBudget pdbs/single", "", "minAvailable: 1 on a single pod: no pod of Deployment pdbs/single"},
		{"error", "PodDisruptionBudget pdbs/frozen", "", "maxUnavailable: 0: no pod of Deployment pdbs/frozen"},
		{"error", "PodDisruptionBudgets pdbs/{overlap-a, overlap-b}", "", "pods of Deployment pdbs/overlap are selected by more than one budget"},
		{"warning", "Deployment pdbs/unguarded", "", "3 replicas and no PodDisruptionBudget"},
		{"warning", "PodDisruptionBudget pdbs/orphan", "", "selects no pods"},
		{"warning", "PodDisruptionBudget pdbs/sick", "", "2 of its pods are not Ready and unhealthyPodEvictionPolicy is unset"},
		{"warning", "PodDisruptionBudget pdbs/sick", "", "allows no disruption now (0 healthy, 1 needed)"},
	})
	refuse(t, got, "pdbs/healthy")
}

func TestSkewCheckOnCluster(t *testing.T) {
	simcluster.Need(t)
	got := run(t, "v1.38", "skew-check")
	expect(t, got, []want{
		{"info", "target 1.38", "", "a control-plane upgrade from v1.37.1"},
		{"error", "nodes pf-old (v1.34.2)", "", "1 kubelets would be more than 3 minors older than an apiserver at 1.38"},
	})
	got = run(t, "v1.37", "skew-check")
	expect(t, got, []want{{"info", "target 1.37", "", "the nodes' turn"}})
	refuse(t, got, "pf-old")
	got = run(t, "v1.36", "skew-check")
	expect(t, got, []want{{"error", "target 1.36", "", "older than the apiserver"}})
	for _, tc := range []struct {
		flag   string
		server apis.Release
		err    string
	}{
		{"v1.39", apis.Release{Major: 1, Minor: 37}, "skips a minor release: the cluster is at 1.37, so the next step is 1.38"},
		{"v1.36", apis.Release{Major: 1, Minor: 37}, "older than the cluster (1.37)"},
		{"v1.40", apis.Release{}, "unknown to this drydock"},
		{"banana", apis.Release{}, "is not a Kubernetes version"},
		{"", apis.Release{}, "no target version"},
	} {
		if _, err := preflight.ResolveTarget(tc.flag, tc.server); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ResolveTarget(%s) = %v, want %q", tc.flag, err, tc.err)
		}
	}
	if r, err := preflight.ResolveTarget("", apis.Release{Major: 1, Minor: 37}); err != nil || r.String() != "1.38" {
		t.Errorf("default target = %v, %v; want 1.38", r, err)
	}
}

func TestHealthCheckOnCluster(t *testing.T) {
	simcluster.Need(t)
	got := run(t, "v1.38", "health-check")
	expect(t, got, []want{
		{"error", "Node pf-down", "", "NotReady"},
		{"error", "Pod kube-system/stuck-agent", "", "Pending"},
		{"error", "APIService v1beta1.metrics.example.com", "", "not Available (ServiceNotFound"},
		{"error", "ValidatingWebhookConfiguration guard", "", "webhook guard.example.com calls service shop/guard, which has no ready endpoints"},
	})
	refuse(t, got, "Node pf-node", "Node pf-old")
}

func TestAccessCheckAsAnotherUser(t *testing.T) {
	simcluster.Need(t)
	setup(t)
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "ci-reader"}
	in, assertReadOnly := readOnlyInput(t, cfg, "v1.38")
	rep, err := preflight.Run(context.Background(), in, []string{"access-check", "pdb-check"})
	if err != nil {
		t.Fatal(err)
	}
	assertReadOnly()
	got := rep.Findings()
	expect(t, got, []want{
		{"error", "list poddisruptionbudgets.policy", "", "not allowed to list poddisruptionbudgets.policy: pdb-check reads the budgets"},
		{"error", "get /metrics", "", "not allowed"},
		{"warning", "pdb-check", "", "the check could not finish: list PodDisruptionBudgets"},
	})
	refuse(t, got, "list pods:", "list nodes:")
	for _, f := range preflight.CouldNot(got) {
		if f.Check == "pdb-check" && (f.CouldNotCheck != preflight.CouldNotForbidden || !f.NotAllowed) {
			t.Errorf("a forbidden read is said as %q (not allowed: %v)", f.CouldNotCheck, f.NotAllowed)
		}
	}
}

// TestManifestsJudgedByTheClustersCRDs: with a cluster and --manifests together, the files are
// judged after the cluster's CRDs are read, so a manifest using a deprecated CRD version is found.
func TestManifestsJudgedByTheClustersCRDs(t *testing.T) {
	simcluster.Need(t)
	setup(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "widget.yaml"), []byte("apiVersion: example.com/v1beta1\nkind: Widget\nmetadata: {name: w9, namespace: shop}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, assertReadOnly := readOnlyInput(t, cluster.Config, "v1.38")
	in.Manifests = []string{dir}
	rep, err := preflight.Run(context.Background(), in, []string{"api-scan"})
	if err != nil {
		t.Fatal(err)
	}
	assertReadOnly()
	found := false
	for _, f := range rep.Findings() {
		if f.Source == preflight.SourceManifest && strings.Contains(f.Message, "example.com/v1beta1 Widget is deprecated") {
			found = true
		}
	}
	if !found {
		t.Errorf("the manifest's deprecated CRD version was missed: %+v", rep.Findings())
	}
}

// TestAddonCheckOnCluster: add-ons found on a real cluster from a Helm release installed with
// Helm's SDK (a chart named as cert-manager's, appVersion v1.13.2) and from the images and labels of
// workloads, each judged for the target with the table's range; a workload that is no add-on is not
// reported; only reads.
func TestAddonCheckOnCluster(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	chart := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(chart, "templates"), 0o755))
	must(t, os.WriteFile(filepath.Join(chart, "Chart.yaml"), []byte("apiVersion: v2\nname: cert-manager\nversion: v1.13.2\nappVersion: v1.13.2\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(chart, "templates", "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cert-manager-settings\ndata:\n  a: b\n"), 0o644))
	must(t, simcluster.InstallChart(ctx, cluster.Config, chart, "cert-manager", "addon-cm", "", nil))

	ns(t, "addon-cni")
	ns(t, "addon-metrics")
	labels := map[string]string{"app": "x"}
	podSpec := func(image string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}}}
	}
	_, err := cluster.Client.AppsV1().DaemonSets("addon-cni").Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "cilium"},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: podSpec("quay.io/cilium/cilium:v1.20.2")},
	}, metav1.CreateOptions{})
	must(t, err)
	_, err = cluster.Client.AppsV1().Deployments("addon-metrics").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics", Labels: map[string]string{"app.kubernetes.io/name": "metrics-server", "app.kubernetes.io/version": "0.9.0"}},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: podSpec("mirror.example.com/ms:stable")},
	}, metav1.CreateOptions{})
	must(t, err)
	_, err = cluster.Client.AppsV1().Deployments("addon-metrics").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: podSpec("nginx:1.27")},
	}, metav1.CreateOptions{})
	must(t, err)

	in, assertReadOnly := readOnlyInput(t, cluster.Config, "v1.38")
	rep, err := preflight.Run(ctx, in, []string{"addon-check"})
	if err != nil {
		t.Fatal(err)
	}
	assertReadOnly()
	got := rep.Findings()
	expect(t, got, []want{
		{"warning", "HelmRelease addon-cm/cert-manager", "addon", "cert-manager v1.13.2 is not tested by its vendor on 1.38: it supports Kubernetes 1.21–1.27 (Helm release addon-cm/cert-manager revision 1, chart cert-manager-v1.13.2"},
		{"warning", "DaemonSet addon-cni/cilium", "addon", "Cilium v1.20.2 is not tested by its vendor on 1.38: it supports Kubernetes 1.33–1.36 (image quay.io/cilium/cilium:v1.20.2)"},
		{"info", "Deployment addon-metrics/metrics", "addon", "metrics-server 0.9.0 supports Kubernetes 1.34+, the target 1.38 among them (label app.kubernetes.io/version=0.9.0)"},
	})
	refuse(t, got, "addon-metrics/web", "cert-manager-settings")
	for _, f := range got {
		if f.Addon == nil || f.Addon.DetectedFrom == "" || f.Addon.Verdict == "" {
			t.Errorf("finding without its add-on: %+v", f)
		}
	}
}

// TestConfigCheckOnCluster: configuration the target breaks, read from a real cluster: a control-plane
// static pod's flags (a mirror pod as kubeadm's kubelet makes it), kubeadm's ClusterConfiguration
// (v1beta4, extraArgs as a list), and a kubelet's running configuration through the apiserver's node
// proxy, served by a fake kubelet endpoint on this machine; only reads.
func TestConfigCheckOnCluster(t *testing.T) {
	simcluster.Need(t)
	setup(t)
	ctx := context.Background()
	ip := os.Getenv("DRYDOCK_TEST_NODE_IP")
	if ip == "" {
		ip = hostIP(t)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	must(t, err)
	kubelet := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/configz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"kubeletconfig":{"featureGates":{"SidecarContainers":true,"CPUManagerPolicyOptions":true}}}`))
	}))
	kubelet.Listener = ln
	kubelet.StartTLS()
	t.Cleanup(kubelet.Close)
	port := ln.Addr().(*net.TCPAddr).Port

	_, err = cluster.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cfg-node"}}, metav1.CreateOptions{})
	must(t, err)
	t.Cleanup(func() {
		_ = cluster.Client.CoreV1().Nodes().Delete(context.Background(), "cfg-node", metav1.DeleteOptions{})
	})
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error { // the node controller writes it too
		node, err := cluster.Client.CoreV1().Nodes().Get(ctx, "cfg-node", metav1.GetOptions{})
		if err != nil {
			return err
		}
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
		node.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}}
		node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
		_, err = cluster.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	}))

	_, err = cluster.Client.CoreV1().Pods("kube-system").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-scheduler-cfg-node", Labels: map[string]string{"component": "kube-scheduler", "tier": "control-plane"}},
		Spec: corev1.PodSpec{NodeName: "cfg-node", Containers: []corev1.Container{{Name: "kube-scheduler", Image: "registry.k8s.io/kube-scheduler:v1.37.1",
			Command: []string{"kube-scheduler", "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf", "--feature-gates=StorageNamespaceIndex=false,NoSuchGate=true", "--leader-elect=true"}}}},
	}, metav1.CreateOptions{})
	must(t, err)
	t.Cleanup(func() {
		_ = cluster.Client.CoreV1().Pods("kube-system").Delete(context.Background(), "kube-scheduler-cfg-node", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	})
	_, err = cluster.Client.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kubeadm-config"}, Data: map[string]string{
		"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n  - name: feature-gates\n    value: SidecarContainers=false\n",
	}}, metav1.CreateOptions{})
	must(t, err)
	t.Cleanup(func() {
		_ = cluster.Client.CoreV1().ConfigMaps("kube-system").Delete(context.Background(), "kubeadm-config", metav1.DeleteOptions{})
	})

	// The apiserver finds the node's address in its cache: wait until it proxies to the fake kubelet.
	var proxyErr error
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var body []byte
		body, proxyErr = cluster.Client.CoreV1().RESTClient().Get().Resource("nodes").Name("cfg-node").SubResource("proxy").Suffix("configz").DoRaw(ctx)
		if proxyErr != nil {
			proxyErr = fmt.Errorf("%w: %s", proxyErr, body)
		}
		return proxyErr == nil, nil
	}); err != nil {
		node, _ := cluster.Client.CoreV1().Nodes().Get(ctx, "cfg-node", metav1.GetOptions{})
		t.Fatalf("the apiserver does not proxy to the fake kubelet at %s:%d: %v (last: %v; node status %+v)", ip, port, err, proxyErr, node.Status)
	}
	in, assertReadOnly := readOnlyInput(t, cluster.Config, "v1.37")
	rep, err := preflight.Run(ctx, in, []string{"config-check"})
	if err != nil {
		t.Fatal(err)
	}
	assertReadOnly()
	got := rep.Findings()
	expect(t, got, []want{
		{"error", "Node cfg-node", preflight.SourceConfigz, "kubelet on node cfg-node: feature gate SidecarContainers=true is not a gate of Kubernetes 1.37 (it is removed in 1.37)"},
		{"warning", "Node cfg-node", preflight.SourceConfigz, "kubelet on node cfg-node: feature gate CPUManagerPolicyOptions=true is locked to its default"},
		{"warning", "Pod kube-system/kube-scheduler-cfg-node", preflight.SourceStaticPod, "kube-scheduler: feature gate StorageNamespaceIndex=false is deprecated in 1.37"},
		{"error", "Pod kube-system/kube-scheduler-cfg-node", preflight.SourceStaticPod, "kube-scheduler: feature gate NoSuchGate=true is not a gate of Kubernetes 1.37"},
		{"error", "ConfigMap kube-system/kubeadm-config", preflight.SourceKubeadmConfig, "kube-apiserver: feature gate SidecarContainers=false is not a gate of Kubernetes 1.37"},
	})
}

// hostIP is an address of this machine the apiserver may proxy to: on an interface that is up, not
// loopback or link-local (the apiserver refuses to proxy to those), and one this process can dial.
func hostIP(t *testing.T) string {
	t.Helper()
	ifaces, err := net.Interfaces()
	must(t, err)
	var tried []string
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok || n.IP.To4() == nil || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
				continue
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(n.IP.String(), "0"))
			if err != nil {
				tried = append(tried, n.IP.String()+": "+err.Error())
				continue
			}
			conn, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
			_ = ln.Close()
			if err != nil {
				tried = append(tried, n.IP.String()+": "+err.Error())
				continue
			}
			_ = conn.Close()
			return n.IP.String()
		}
	}
	t.Fatalf("no address of this machine the apiserver may proxy to (tried %v): set DRYDOCK_TEST_NODE_IP", tried)
	return ""
}
