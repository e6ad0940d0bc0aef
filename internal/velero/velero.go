// Package velero talks to Velero's API (velero.io/v1) with Velero's own types. Velero ships no
// typed clientset, so this is a REST client built from Velero's scheme: typed objects, watches by
// name, and the few operations drydock needs. Nothing here starts or configures Velero.
package velero

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	velerov1 "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/drydock-dev/drydock/internal/kube"
)

// DefaultNamespace is where Velero usually runs.
const DefaultNamespace = "velero"

// LabelRunID marks what drydock created for a run.
const LabelRunID = "drydock.dev/run-id"

var (
	scheme         = runtime.NewScheme()
	parameterCodec = runtime.NewParameterCodec(scheme)
)

func init() {
	if err := velerov1.AddToScheme(scheme); err != nil {
		panic(err)
	}
}

// ErrNotInstalled is returned when the cluster has no velero.io/v1 API.
var ErrNotInstalled = errors.New("Velero is not installed: the cluster serves no velero.io/v1 API (install Velero, or leave the velero-backup step out)")

// Client reads and writes Velero objects in one namespace.
type Client struct {
	rest      rest.Interface
	disco     discovery.DiscoveryInterface
	Namespace string
}

// New builds a client for Velero's namespace.
func New(cfg *rest.Config, namespace string) (*Client, error) {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &velerov1.SchemeGroupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	d, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{rest: rc, disco: d, Namespace: namespace}, nil
}

// Installed returns ErrNotInstalled when Velero's API is not there.
func (c *Client) Installed() error {
	_, err := c.disco.ServerResourcesForGroupVersion(velerov1.SchemeGroupVersion.String())
	if apierrors.IsNotFound(err) {
		return ErrNotInstalled
	}
	return err
}

func (c *Client) get(ctx context.Context, resource, name string, into runtime.Object) error {
	return c.rest.Get().Namespace(c.Namespace).Resource(resource).Name(name).Do(ctx).Into(into)
}

func (c *Client) list(ctx context.Context, resource string, opts metav1.ListOptions, into runtime.Object) error {
	return c.rest.Get().Namespace(c.Namespace).Resource(resource).VersionedParams(&opts, parameterCodec).Do(ctx).Into(into)
}

func (c *Client) create(ctx context.Context, resource string, obj, into runtime.Object) error {
	return c.rest.Post().Namespace(c.Namespace).Resource(resource).Body(obj).Do(ctx).Into(into)
}

// Backup gets a backup.
func (c *Client) Backup(ctx context.Context, name string) (*velerov1.Backup, error) {
	b := &velerov1.Backup{}
	return b, c.get(ctx, "backups", name, b)
}

// Backups lists backups (selector may be "").
func (c *Client) Backups(ctx context.Context, selector string) ([]velerov1.Backup, error) {
	l := &velerov1.BackupList{}
	return l.Items, c.list(ctx, "backups", metav1.ListOptions{LabelSelector: selector}, l)
}

// CreateBackup creates a backup.
func (c *Client) CreateBackup(ctx context.Context, b *velerov1.Backup) (*velerov1.Backup, error) {
	out := &velerov1.Backup{}
	return out, c.create(ctx, "backups", b, out)
}

// Restore gets a restore.
func (c *Client) Restore(ctx context.Context, name string) (*velerov1.Restore, error) {
	r := &velerov1.Restore{}
	return r, c.get(ctx, "restores", name, r)
}

// CreateRestore creates a restore.
func (c *Client) CreateRestore(ctx context.Context, r *velerov1.Restore) (*velerov1.Restore, error) {
	out := &velerov1.Restore{}
	return out, c.create(ctx, "restores", r, out)
}

// DeleteRestore deletes a restore. Velero's server removes its finalizer and its data in object
// storage; wait says how long to wait for it to be gone.
func (c *Client) DeleteRestore(ctx context.Context, name string, wait time.Duration) error {
	err := c.rest.Delete().Namespace(c.Namespace).Resource("restores").Name(name).Do(ctx).Error()
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := kube.WaitGone(wctx, c.listWatch("restores", name, func() runtime.Object { return &velerov1.RestoreList{} }), &velerov1.Restore{}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("restore %s/%s is still there after %s: is the Velero server running? (it removes the restore's finalizer)", c.Namespace, name, wait)
	}
	return nil
}

// DeleteBackup asks Velero to delete a backup and its data, with a DeleteBackupRequest (a plain
// delete would come back from object storage with the next backup sync).
func (c *Client) DeleteBackup(ctx context.Context, name string) error {
	req := &velerov1.DeleteBackupRequest{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: c.Namespace,
		Labels: map[string]string{velerov1.BackupNameLabel: name}}, Spec: velerov1.DeleteBackupRequestSpec{BackupName: name}}
	return c.create(ctx, "deletebackuprequests", req, &velerov1.DeleteBackupRequest{})
}

// StorageLocations lists the BackupStorageLocations.
func (c *Client) StorageLocations(ctx context.Context) ([]velerov1.BackupStorageLocation, error) {
	l := &velerov1.BackupStorageLocationList{}
	return l.Items, c.list(ctx, "backupstoragelocations", metav1.ListOptions{}, l)
}

// StorageLocation gets one BackupStorageLocation.
func (c *Client) StorageLocation(ctx context.Context, name string) (*velerov1.BackupStorageLocation, error) {
	l := &velerov1.BackupStorageLocation{}
	return l, c.get(ctx, "backupstoragelocations", name, l)
}

// listWatch lists and watches one object of resource by name.
func (c *Client) listWatch(resource, name string, newList func() runtime.Object) *cache.ListWatch {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			l := newList()
			return l, c.rest.Get().Namespace(c.Namespace).Resource(resource).VersionedParams(&o, parameterCodec).Do(ctx).Into(l)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			o.Watch = true
			return c.rest.Get().Namespace(c.Namespace).Resource(resource).VersionedParams(&o, parameterCodec).Watch(ctx)
		},
	}
}

// watchOne watches one object by name until cond holds, and returns it; on ctx's end it returns
// the last state seen with the error.
func watchOne[T runtime.Object](ctx context.Context, c *Client, resource, name string, newList func() runtime.Object, obj T, cond func(T) bool) (T, error) {
	lw := c.listWatch(resource, name, newList)
	last := obj
	ev, err := watchtools.UntilWithSync(ctx, lw, obj, nil, func(e watch.Event) (bool, error) {
		if e.Type == watch.Deleted {
			return false, fmt.Errorf("%s %s/%s was deleted", resource, c.Namespace, name)
		}
		if o, ok := e.Object.(T); ok {
			last = o
			return cond(o), nil
		}
		return false, nil
	})
	if err != nil {
		return last, err
	}
	return ev.Object.(T), nil
}

// WaitBackup watches a backup until done(b) holds; each change goes to seen.
func (c *Client) WaitBackup(ctx context.Context, name string, seen func(*velerov1.Backup), done func(*velerov1.Backup) bool) (*velerov1.Backup, error) {
	return watchOne(ctx, c, "backups", name, func() runtime.Object { return &velerov1.BackupList{} }, &velerov1.Backup{},
		func(b *velerov1.Backup) bool { seen(b); return done(b) })
}

// WaitRestore watches a restore until done(r) holds; each change goes to seen.
func (c *Client) WaitRestore(ctx context.Context, name string, seen func(*velerov1.Restore), done func(*velerov1.Restore) bool) (*velerov1.Restore, error) {
	return watchOne(ctx, c, "restores", name, func() runtime.Object { return &velerov1.RestoreList{} }, &velerov1.Restore{},
		func(r *velerov1.Restore) bool { seen(r); return done(r) })
}

// Covers says whether backup b holds every one of namespaces: included (explicitly, or by an empty
// or "*" include list) and not excluded. No namespaces means every namespace, which only an
// all-namespaces backup covers.
func Covers(b *velerov1.Backup, namespaces []string) bool {
	in := b.Spec.IncludedNamespaces
	all := len(in) == 0 || slices.Contains(in, "*")
	if len(namespaces) == 0 {
		return all && len(b.Spec.ExcludedNamespaces) == 0
	}
	for _, ns := range namespaces {
		if (!all && !slices.Contains(in, ns)) || slices.Contains(b.Spec.ExcludedNamespaces, ns) {
			return false
		}
	}
	return true
}

// BackupFinished says whether a backup reached a terminal phase. Unknown phases (Velero 1.18 added
// Queued and ReadyToStart) count as still running.
func BackupFinished(b *velerov1.Backup) bool {
	switch b.Status.Phase {
	case velerov1.BackupPhaseCompleted, velerov1.BackupPhasePartiallyFailed, velerov1.BackupPhaseFailed, velerov1.BackupPhaseFailedValidation:
		return true
	}
	return false
}

// RestoreFinished says whether a restore reached a terminal phase.
func RestoreFinished(r *velerov1.Restore) bool {
	switch r.Status.Phase {
	case velerov1.RestorePhaseCompleted, velerov1.RestorePhasePartiallyFailed, velerov1.RestorePhaseFailed, velerov1.RestorePhaseFailedValidation:
		return true
	}
	return false
}

// Phase names a phase, "" as "New (not picked up by the Velero server yet)".
func Phase[P ~string](p P) string {
	if p == "" {
		return "New (not picked up by the Velero server yet)"
	}
	return string(p)
}
