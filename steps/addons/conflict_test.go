package addons_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/addons"
)

// TestManifestConflictsNamed: a GitOps-like manager applied a Deployment and an HPA-like manager
// owns its spec.replicas (3). The add-on's manifests set replicas 2. Without forceConflicts the step
// is refused before anything is applied (its ConfigMap is not created), naming the field and the
// manager, and the HPA keeps its field; with forceConflicts: true drydock takes the field over.
func TestManifestConflictsNamed(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ns := "addons-conflict"
	if _, err := cluster.CreateNode(ctx, ns, simcluster.NodeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deploy := `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ` + ns + `}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: registry.example/web:1}]}
`
	apply := func(manager string, doc string, force bool) {
		t.Helper()
		j, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cluster.Client.AppsV1().Deployments(ns).Patch(ctx, "web", types.ApplyPatchType, j, metav1.PatchOptions{FieldManager: manager, Force: &force}); err != nil {
			t.Fatalf("apply as %s: %v", manager, err)
		}
	}
	apply("gitops", deploy, false)
	apply("fake-hpa", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: "+ns+"}\nspec: {replicas: 3}\n", true)
	if err := cluster.WaitDeploymentReady(ctx, ns, "web", time.Minute); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(manifest, []byte(deploy+"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config}\ndata: {a: b}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	step := func(force bool) string {
		return fmt.Sprintf(`    - name: addons
      type: addons
      with:
        addons:
          - {name: web, manifests: {paths: [%s], namespace: %s, forceConflicts: %v}}
`, manifest, ns, force)
	}

	e, rec := engine(t)
	_, err := e.Start(ctx, parse(t, ns, step(false)))
	if !errors.Is(err, runbook.ErrBlocked) {
		t.Fatalf("want the add-on refused (blocked), got %v\n%s", err, rec.Text())
	}
	var ce *addons.ConflictError
	if !errors.As(err, &ce) || len(ce.Conflicts) != 1 || ce.Conflicts[0].Field != ".spec.replicas" || !strings.Contains(ce.Conflicts[0].Message, `"fake-hpa"`) {
		t.Fatalf("want one conflict on .spec.replicas with fake-hpa, got %v", err)
	}
	if text := rec.Text(); !strings.Contains(text, "ERROR: "+ns+"/deployment/web: add-on web sets .spec.replicas, which another field manager owns") ||
		!strings.Contains(text, "fake-hpa") || !strings.Contains(text, "forceConflicts: true") {
		t.Fatalf("the conflict was not reported with its manager and fix:\n%s", text)
	}
	d, err := cluster.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 3 || owner(d.ManagedFields, "replicas") != "fake-hpa" {
		t.Fatalf("the HPA lost spec.replicas: %v (%v)", d.Spec.Replicas, err)
	}
	if _, err := cluster.Client.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{}); err == nil {
		t.Fatal("the add-on's ConfigMap was applied although the add-on was refused")
	}

	e, rec = engine(t)
	if _, err := e.Start(ctx, parse(t, ns, step(true))); err != nil {
		t.Fatalf("with forceConflicts: %v\n%s", err, rec.Text())
	}
	d, err = cluster.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 2 || owner(d.ManagedFields, "replicas") != addons.FieldManager {
		t.Fatalf("forceConflicts did not take spec.replicas over: %v (%v)", d.Spec.Replicas, err)
	}
}

// owner is the manager whose managed fields hold spec.<field>.
func owner(mf []metav1.ManagedFieldsEntry, field string) string {
	for _, m := range mf {
		var fields struct {
			Spec map[string]any `json:"f:spec"`
		}
		if m.FieldsV1 != nil && json.Unmarshal(m.FieldsV1.Raw, &fields) == nil {
			if _, ok := fields.Spec["f:"+field]; ok {
				return m.Manager
			}
		}
	}
	return ""
}
