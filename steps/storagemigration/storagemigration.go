// Package storagemigration is the storage-migration step: after the control plane is upgraded, the
// objects etcd still holds at an older version are rewritten at the storage version (a no-op update
// of every object, page by page, as kube-storage-version-migrator does), and each CRD's
// status.storedVersions is trimmed to its storage version, so that a later release may drop the
// old version. Where the cluster serves the StorageVersionMigration API (storagemigration.k8s.io/v1,
// from v1.37) the cluster's own migrator does the rewriting, one StorageVersionMigration per resource;
// otherwise drydock does. Progress is checkpointed per resource and per page: a resumed step goes on.
package storagemigration

import (
	"context"
	"errors"
	"fmt"
	"slices"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/drydock-dev/drydock/runbook"
)

// Kind registers the step.
var Kind = runbook.Kind{
	Name:        "storage-migration",
	Description: "rewrite objects stored at an older version at the storage version (CRDs with old storedVersions, and the resources named), then trim each CRD's storedVersions",
	Phase:       runbook.PhaseAny,
	New:         func() runbook.Step { return &Step{} },
}

// Step is the storage-migration step's settings.
type Step struct {
	// Resources are built-in or custom resources to rewrite besides the CRDs that need it, as
	// resource.group (e.g. "flowschemas.flowcontrol.apiserver.k8s.io", "configmaps").
	Resources []string `json:"resources,omitempty"`
	// SkipCRDs leaves the CRDs alone (by default every CRD whose status.storedVersions lists a
	// version other than its storage version is migrated and trimmed).
	SkipCRDs bool `json:"skipCRDs,omitempty"`
	// PageSize of drydock's own lists (default 500).
	PageSize int64 `json:"pageSize,omitempty" jsonschema:"minimum=1,maximum=10000"`
	// Via says who rewrites the objects: auto (the default) the cluster's StorageVersionMigration API
	// where it is served (storagemigration.k8s.io/v1, Kubernetes v1.37 on, with the migrator in
	// kube-controller-manager), drydock itself otherwise; api insists on the API (fails without it);
	// drydock never uses it.
	Via string `json:"via,omitempty" jsonschema:"enum=auto,enum=api,enum=drydock"`
}

// useAPI decides, once per run of the step, whether the StorageVersionMigration API rewrites.
func (s *Step) useAPI(env *runbook.Env) (bool, error) {
	if s.Via == ViaDrydock {
		return false, nil
	}
	ok, err := servesSVM(env.Kube)
	if err != nil {
		return false, err
	}
	if !ok && s.Via == ViaAPI {
		return false, runbook.Blocked(fmt.Errorf("storage-migration: via: api, but %w: remove via, or set via: drydock", errNoAPI))
	}
	return ok, nil
}

// Name is the kind.
func (*Step) Name() string { return Kind.Name }

// target is one resource to migrate; crd is set for a CRD whose storedVersions are trimmed after.
type target struct {
	gvr schema.GroupVersionResource
	crd string
}

func (t target) key() string {
	if t.gvr.Group == "" {
		return t.gvr.Resource
	}
	return t.gvr.Resource + "." + t.gvr.Group
}

// targets are the named resources and the CRDs that need it, in that order.
func (s *Step) targets(ctx context.Context, env *runbook.Env, ext apiextclient.Interface) ([]target, error) {
	var out []target
	var lists []*metav1.APIResourceList
	if len(s.Resources) > 0 {
		var err error
		if lists, err = env.Kube.Discovery().ServerPreferredResources(); err != nil && lists == nil {
			return nil, fmt.Errorf("discover the resources: %w", err)
		}
	}
	for _, r := range s.Resources {
		gr := schema.ParseGroupResource(r)
		found := false
		for _, l := range lists {
			gv, _ := schema.ParseGroupVersion(l.GroupVersion)
			if gv.Group != gr.Group {
				continue
			}
			for _, res := range l.APIResources {
				if res.Name == gr.Resource && slices.Contains(res.Verbs, "update") && slices.Contains(res.Verbs, "list") {
					out = append(out, target{gvr: gv.WithResource(res.Name)})
					found = true
				}
			}
		}
		if !found {
			return nil, runbook.Invalid(fmt.Errorf("resource %q is not served with list and update: write it as resource.group, e.g. flowschemas.flowcontrol.apiserver.k8s.io", r))
		}
	}
	if s.SkipCRDs {
		return out, nil
	}
	crds, err := ext.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list CustomResourceDefinitions: %w", err)
	}
	for _, crd := range crds.Items {
		storage := storageVersion(&crd)
		if storage == "" || (len(crd.Status.StoredVersions) == 1 && crd.Status.StoredVersions[0] == storage) {
			continue
		}
		out = append(out, target{gvr: schema.GroupVersionResource{Group: crd.Spec.Group, Version: storage, Resource: crd.Spec.Names.Plural}, crd: crd.Name})
	}
	return out, nil
}

func storageVersion(crd *apiextv1.CustomResourceDefinition) string {
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			return v.Name
		}
	}
	return ""
}

// Plan lists what will be rewritten.
func (s *Step) Plan(ctx context.Context, env *runbook.Env) ([]string, error) {
	ext, err := apiextclient.NewForConfig(env.REST)
	if err != nil {
		return nil, err
	}
	ts, err := s.targets(ctx, env, ext)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return []string{"nothing is stored at an older version"}, nil
	}
	var out []string
	api, err := s.useAPI(env)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		line := "rewrite every " + t.key() + " at " + t.gvr.Version
		if api {
			line += " through a StorageVersionMigration (the cluster's migrator)"
		} else {
			line += " with drydock's own no-op updates, page by page"
		}
		if t.crd != "" {
			line += ", then trim the CRD's storedVersions to " + t.gvr.Version
		}
		out = append(out, line)
	}
	return out, nil
}

// Run rewrites each resource page by page, then trims the CRD's storedVersions.
func (s *Step) Run(ctx context.Context, env *runbook.Env) error {
	if env.REST == nil {
		return errors.New("storage-migration: needs a cluster")
	}
	ext, err := apiextclient.NewForConfig(env.REST)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(env.REST)
	if err != nil {
		return err
	}
	ts, err := s.targets(ctx, env, ext)
	if err != nil {
		return err
	}
	if len(ts) == 0 {
		env.Progress("nothing is stored at an older version", 0, 0)
		return nil
	}
	api, err := s.useAPI(env)
	if err != nil {
		return err
	}
	for i, t := range ts {
		if env.Done("migrated/" + t.key()) {
			continue
		}
		var done string
		if api {
			name, err := s.migrateViaAPI(ctx, env, t)
			if err != nil {
				return fmt.Errorf("migrate %s: %w", t.key(), err)
			}
			done = fmt.Sprintf("%s: rewritten at %s by StorageVersionMigration %s", t.key(), t.gvr.Version, name)
		} else {
			n, err := s.migrate(ctx, env, dyn, t)
			if err != nil {
				return fmt.Errorf("migrate %s: %w", t.key(), err)
			}
			done = fmt.Sprintf("%s: %d object(s) rewritten at %s", t.key(), n, t.gvr.Version)
		}
		if t.crd != "" {
			if err := trim(ctx, ext, t.crd, t.gvr.Version); err != nil {
				return fmt.Errorf("trim the storedVersions of CRD %s: %w", t.crd, err)
			}
		}
		if err := env.MarkDone(ctx, "migrated/"+t.key()); err != nil {
			return err
		}
		msg := done
		if t.crd != "" {
			msg += "; storedVersions now [" + t.gvr.Version + "]"
		}
		env.Progress(msg, i+1, len(ts))
	}
	return nil
}

// page is what the journal keeps of a resource in progress: where its list continues.
type page struct {
	Continue string `json:"continue"`
	Done     int    `json:"done"`
}

// migrate rewrites every object of t with a no-op update, page by page; a conflict means someone
// wrote it meanwhile (so it is stored at the storage version already), a NotFound that it is gone.
func (s *Step) migrate(ctx context.Context, env *runbook.Env, dyn dynamic.Interface, t target) (int, error) {
	size := s.PageSize
	if size == 0 {
		size = 500
	}
	var at page
	env.LoadData("page/"+t.key(), &at)
	res := dyn.Resource(t.gvr)
	for {
		list, err := res.List(ctx, metav1.ListOptions{Limit: size, Continue: at.Continue})
		if apierrors.IsResourceExpired(err) {
			at.Continue = "" // the continue token expired: start the list again (rewriting twice is harmless)
			continue
		}
		if err != nil {
			return at.Done, err
		}
		for i := range list.Items {
			if err := rewrite(ctx, res, &list.Items[i]); err != nil {
				return at.Done, err
			}
			at.Done++
		}
		at.Continue = list.GetContinue()
		if err := env.SaveData(ctx, "page/"+t.key(), at); err != nil {
			return at.Done, err
		}
		env.Progress(fmt.Sprintf("%s: %d object(s) rewritten", t.key(), at.Done), 0, 0)
		if at.Continue == "" {
			return at.Done, nil
		}
	}
}

func rewrite(ctx context.Context, res dynamic.NamespaceableResourceInterface, o *unstructured.Unstructured) error {
	var ri dynamic.ResourceInterface = res
	if ns := o.GetNamespace(); ns != "" {
		ri = res.Namespace(ns)
	}
	_, err := ri.Update(ctx, o, metav1.UpdateOptions{FieldManager: "drydock-storage-migration"})
	switch {
	case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return nil // rewritten; gone; or written by someone since (stored at the new version)
	}
	return fmt.Errorf("%s/%s: %w", o.GetNamespace(), o.GetName(), err)
}

// trim sets the CRD's status.storedVersions to the storage version alone.
func trim(ctx context.Context, ext apiextclient.Interface, name, storage string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		crd.Status.StoredVersions = []string{storage}
		_, err = ext.ApiextensionsV1().CustomResourceDefinitions().UpdateStatus(ctx, crd, metav1.UpdateOptions{})
		return err
	})
}

// Access: list and update what is migrated, update CRD status.
func (s *Step) Access() []runbook.Access {
	out := []runbook.Access{
		{Verb: "list", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions", Why: "storage-migration finds the CRDs with old stored versions"},
		{Verb: "update", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions", Subresource: "status", Why: "storage-migration trims storedVersions"},
	}
	for _, r := range s.Resources {
		gr := schema.ParseGroupResource(r)
		out = append(out,
			runbook.Access{Verb: "list", Group: gr.Group, Resource: gr.Resource, Why: "storage-migration reads every " + r},
			runbook.Access{Verb: "update", Group: gr.Group, Resource: gr.Resource, Why: "storage-migration rewrites every " + r})
	}
	if s.Via != ViaDrydock {
		out = append(out,
			runbook.Access{Verb: "create", Group: "storagemigration.k8s.io", Resource: "storageversionmigrations", Why: "storage-migration asks the cluster's migrator to rewrite each resource"},
			runbook.Access{Verb: "watch", Group: "storagemigration.k8s.io", Resource: "storageversionmigrations", Why: "storage-migration waits until each migration has succeeded"})
	}
	if !s.SkipCRDs {
		out = append(out,
			runbook.Access{Verb: "list", Group: "*", Resource: "*", Why: "storage-migration reads the objects of the CRDs it migrates (which they are is known at run time)"},
			runbook.Access{Verb: "update", Group: "*", Resource: "*", Why: "storage-migration rewrites the objects of the CRDs it migrates"})
	}
	return out
}
