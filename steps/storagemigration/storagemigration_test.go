package storagemigration_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

var cluster *simcluster.Cluster

func TestMain(m *testing.M) { os.Exit(simcluster.Main(m, &cluster, simcluster.Options{})) }

// TestStorageMigration: a CRD whose storage version moved from v1 to v2 lists both in
// status.storedVersions; the step rewrites every object (two pages) at v2 and trims
// storedVersions to [v2], reporting the count; run again, it has nothing to do.
func TestStorageMigration(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ext, err := apiextclient.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	schemaProps := &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &apiextv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr(true)}}
	crd := &apiextv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextv1.CustomResourceDefinitionSpec{Group: "example.com", Scope: apiextv1.NamespaceScoped,
			Names: apiextv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Versions: []apiextv1.CustomResourceDefinitionVersion{
				{Name: "v1", Served: true, Storage: true, Schema: schemaProps},
				{Name: "v2", Served: true, Storage: false, Schema: schemaProps},
			}},
	}
	crds := ext.ApiextensionsV1().CustomResourceDefinitions()
	if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	dyn := dynamic.NewForConfigOrDie(cluster.Config)
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := dyn.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal("the CRD is not served:", err)
	}
	for i := range 3 {
		w := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Widget",
			"metadata": map[string]any{"name": fmt.Sprintf("w%d", i), "namespace": "default"}, "spec": map[string]any{"size": i}}}
		if _, err := dyn.Resource(gvr).Namespace("default").Create(ctx, w, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The storage version moves to v2: etcd still holds the three objects at v1.
	cur, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Versions[0].Storage, cur.Spec.Versions[1].Storage = false, true
	if _, err := crds.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
		return err == nil && strings.Join(c.Status.StoredVersions, ",") == "v1,v2", nil
	}); err != nil {
		t.Fatal("storedVersions never listed v1 and v2:", err)
	}

	run := func(with ...string) string {
		t.Helper()
		settings := "{pageSize: 2, via: drydock}"
		if len(with) > 0 {
			settings = with[0]
		}
		rb, err := runbook.Parse("m.yaml", []byte("apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: m}\nspec:\n  targetVersion: "+simcluster.KubernetesVersion+
			"\n  steps:\n    - {name: migrate, type: storage-migration, with: "+settings+"}\n"), steps.Registry)
		if err != nil {
			t.Fatal(err)
		}
		rec := &printer.Recorder{}
		e := &runbook.Engine{Registry: steps.Registry, Kube: cluster.Client, REST: cluster.Config, StateDir: t.TempDir(), NoMirror: true, Decider: runbook.AlwaysContinue, Sink: rec}
		if _, err := e.Start(ctx, rb); err != nil {
			t.Fatalf("%v\n%s", err, rec.Text())
		}
		return rec.Text()
	}
	out := run()
	if !strings.Contains(out, "widgets.example.com: 3 object(s) rewritten at v2; storedVersions now [v2]") || !strings.Contains(out, "widgets.example.com: 2 object(s) rewritten") {
		t.Errorf("the step's report:\n%s", out)
	}
	c, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
	if err != nil || strings.Join(c.Status.StoredVersions, ",") != "v2" {
		t.Fatalf("storedVersions %v (%v), want [v2]", c.Status.StoredVersions, err)
	}
	if out := run("{via: drydock}"); !strings.Contains(out, "nothing is stored at an older version") {
		t.Errorf("run again:\n%s", out)
	}
	// A built-in resource named, the CRDs left alone.
	if _, err := cluster.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "m1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := run("{resources: [configmaps], skipCRDs: true, via: drydock}"); !regexp.MustCompile(`configmaps: \d+ object\(s\) rewritten at v1`).MatchString(out) || strings.Contains(out, "widgets") {
		t.Errorf("resources: [configmaps], skipCRDs:\n%s", out)
	}
	if _, err := runbook.Parse("m.yaml", []byte("apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: m}\nspec:\n  targetVersion: v1.37.1\n  steps:\n    - {name: migrate, type: storage-migration, with: {pageSize: 0}}\n"), steps.Registry); err == nil {
		t.Error("pageSize 0 must be refused (minimum 1)")
	}
}

func ptr[T any](v T) *T { return &v }

// TestStorageMigrationThroughTheAPI: on a cluster that serves storagemigration.k8s.io/v1 (v1.37) the
// step leaves the rewriting to the cluster's own migrator (kube-controller-manager): one
// StorageVersionMigration per resource, watched until it succeeded; then storedVersions is trimmed.
// By default (via: auto) the API is chosen; the objects read back at the new storage version.
func TestStorageMigrationThroughTheAPI(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ext, err := apiextclient.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds := ext.ApiextensionsV1().CustomResourceDefinitions()
	name := storedAtV1(t, ext, "gadgets", 4)
	rb, err := runbook.Parse("m.yaml", []byte("apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: m}\nspec:\n  targetVersion: "+simcluster.KubernetesVersion+
		"\n  steps:\n    - {name: migrate, type: storage-migration, timeout: 3m}\n"), steps.Registry)
	if err != nil {
		t.Fatal(err)
	}
	rec := &printer.Recorder{}
	e := &runbook.Engine{Registry: steps.Registry, Kube: cluster.Client, REST: cluster.Config, StateDir: t.TempDir(), NoMirror: true, Decider: runbook.AlwaysContinue, Sink: rec}
	st, err := e.Start(ctx, rb)
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	out := rec.Text()
	svm := "drydock-" + st.ID + "-gadgets.example.com"
	if !strings.Contains(out, "gadgets.example.com: rewritten at v2 by StorageVersionMigration "+svm+"; storedVersions now [v2]") {
		t.Errorf("the step's report:\n%s", out)
	}
	m, err := cluster.Client.StoragemigrationV1().StorageVersionMigrations().Get(ctx, svm, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the StorageVersionMigration: %v", err)
	}
	if c := apimeta.FindStatusCondition(m.Status.Conditions, "Succeeded"); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("the StorageVersionMigration's conditions: %+v", m.Status.Conditions)
	}
	c, err := crds.Get(ctx, name, metav1.GetOptions{})
	if err != nil || strings.Join(c.Status.StoredVersions, ",") != "v2" {
		t.Errorf("storedVersions %v (%v), want [v2]", c.Status.StoredVersions, err)
	}
}

// storedAtV1 makes a CRD <plural>.example.com with n objects stored at v1, then moves its storage
// version to v2 (status.storedVersions lists both); it returns the CRD's name.
func storedAtV1(t *testing.T, ext apiextclient.Interface, plural string, n int) string {
	t.Helper()
	ctx := context.Background()
	schemaProps := &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &apiextv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr(true)}}
	kind := strings.ToUpper(plural[:1]) + strings.TrimSuffix(plural[1:], "s")
	crd := &apiextv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + ".example.com"},
		Spec: apiextv1.CustomResourceDefinitionSpec{Group: "example.com", Scope: apiextv1.NamespaceScoped,
			Names: apiextv1.CustomResourceDefinitionNames{Plural: plural, Singular: strings.TrimSuffix(plural, "s"), Kind: kind, ListKind: kind + "List"},
			Versions: []apiextv1.CustomResourceDefinitionVersion{
				{Name: "v1", Served: true, Storage: true, Schema: schemaProps},
				{Name: "v2", Served: true, Storage: false, Schema: schemaProps},
			}},
	}
	crds := ext.ApiextensionsV1().CustomResourceDefinitions()
	if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: plural}
	dyn := dynamic.NewForConfigOrDie(cluster.Config)
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := dyn.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal("the CRD is not served:", err)
	}
	for i := range n {
		w := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": kind,
			"metadata": map[string]any{"name": fmt.Sprintf("o%d", i), "namespace": "default"}, "spec": map[string]any{"size": i}}}
		if _, err := dyn.Resource(gvr).Namespace("default").Create(ctx, w, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Versions[0].Storage, cur.Spec.Versions[1].Storage = false, true
	if _, err := crds.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		c, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
		return err == nil && strings.Join(c.Status.StoredVersions, ",") == "v1,v2", nil
	}); err != nil {
		t.Fatal("storedVersions never listed v1 and v2:", err)
	}
	return crd.Name
}
