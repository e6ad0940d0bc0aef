package storagemigration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	svmv1 "k8s.io/api/storagemigration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/drydock-dev/drydock/runbook"
)

// Via says who rewrites the objects.
const (
	ViaAuto    = "auto"    // the cluster's StorageVersionMigration API when it is served, drydock otherwise
	ViaAPI     = "api"     // the StorageVersionMigration API, or fail
	ViaDrydock = "drydock" // drydock's own no-op updates
)

// errNoAPI: the cluster does not serve storagemigration.k8s.io/v1.
var errNoAPI = errors.New("the cluster does not serve storagemigration.k8s.io/v1 StorageVersionMigrations (from Kubernetes v1.37, with the migrator in kube-controller-manager)")

// servesSVM says whether the cluster serves storagemigration.k8s.io/v1 storageversionmigrations.
func servesSVM(client kubernetes.Interface) (bool, error) {
	l, err := client.Discovery().ServerResourcesForGroupVersion(svmv1.SchemeGroupVersion.String())
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("discover %s: %w", svmv1.SchemeGroupVersion, err)
	}
	for _, r := range l.APIResources {
		if r.Name == "storageversionmigrations" {
			return true, nil
		}
	}
	return false, nil
}

// svmName is the migration's name for this run and resource: a DNS subdomain, hashed when long.
func svmName(runID, key string) string {
	n := strings.ToLower("drydock-" + runID + "-" + key)
	if len(n) <= 253 {
		return n
	}
	h := sha256.Sum256([]byte(n))
	return n[:240] + "-" + hex.EncodeToString(h[:])[:12]
}

// migrateViaAPI asks the cluster's storage version migrator to rewrite t's objects: a
// StorageVersionMigration for the resource (its name journaled, so a resumed step watches the same
// one rather than starting another), watched until it Succeeded or Failed.
func (s *Step) migrateViaAPI(ctx context.Context, env *runbook.Env, t target) (string, error) {
	svms := env.Kube.StoragemigrationV1().StorageVersionMigrations()
	var name string
	if !env.LoadData("svm/"+t.key(), &name) {
		name = svmName(env.RunID, t.key())
		if err := env.SaveData(ctx, "svm/"+t.key(), name); err != nil {
			return "", err
		}
	}
	m := &svmv1.StorageVersionMigration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "drydock", "drydock.dev/run-id": env.RunID}},
		Spec:       svmv1.StorageVersionMigrationSpec{Resource: metav1.GroupResource{Group: t.gvr.Group, Resource: t.gvr.Resource}},
	}
	if _, err := svms.Create(ctx, m, metav1.CreateOptions{FieldManager: "drydock"}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create StorageVersionMigration %s: %w", name, err)
	}
	env.Progress(fmt.Sprintf("%s: StorageVersionMigration %s created; the cluster's migrator rewrites every object", t.key(), name), 0, 0)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return svms.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return svms.Watch(ctx, o)
		},
	}
	var failed string
	_, err := watchtools.UntilWithSync(ctx, lw, &svmv1.StorageVersionMigration{}, nil, func(ev watch.Event) (bool, error) {
		if ev.Type == watch.Deleted {
			return false, fmt.Errorf("StorageVersionMigration %s was deleted before it finished", name)
		}
		m, ok := ev.Object.(*svmv1.StorageVersionMigration)
		if !ok {
			return false, nil
		}
		if c := meta.FindStatusCondition(m.Status.Conditions, string(svmv1.MigrationFailed)); c != nil && c.Status == metav1.ConditionTrue {
			failed = c.Message
			return true, nil
		}
		c := meta.FindStatusCondition(m.Status.Conditions, string(svmv1.MigrationSucceeded))
		return c != nil && c.Status == metav1.ConditionTrue, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("watch StorageVersionMigration %s: %w", name, err)
	}
	if failed != "" {
		return "", fmt.Errorf("StorageVersionMigration %s failed: %s (kubectl get storageversionmigration %s -o yaml; `via: drydock` rewrites the objects with drydock's own updates instead)", name, failed, name)
	}
	return name, nil
}
