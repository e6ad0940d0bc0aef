package addons

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// manifestSource applies an add-on's YAML files with server-side apply. Before the first apply it
// keeps each object as it was (or that it did not exist) in the journal; rollback applies those
// back and deletes what the apply created.
type manifestSource struct {
	env    *runbook.Env
	a      *Addon
	m      *Manifests
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

// before is one object as it was before the apply.
type before struct {
	Group     string         `json:"group,omitempty"`
	Version   string         `json:"version"`
	Resource  string         `json:"resource"`
	Namespace string         `json:"namespace,omitempty"`
	Name      string         `json:"name"`
	Object    map[string]any `json:"object,omitempty"` // nil: it did not exist
}

func newManifestSource(env *runbook.Env, a *Addon) (*manifestSource, error) {
	g, err := kube.NewRESTGetter(env.REST, a.Manifests.Namespace)
	if err != nil {
		return nil, err
	}
	mapper, err := g.ToRESTMapper()
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(env.REST)
	if err != nil {
		return nil, err
	}
	return &manifestSource{env: env, a: a, m: a.Manifests, dyn: dyn, mapper: mapper}, nil
}

func (s *manifestSource) key() string { return "manifests/" + s.a.Name }

// files lists the paths' YAML and JSON files, directories walked in name order.
func (s *manifestSource) files() ([]string, error) {
	var out []string
	for _, p := range s.m.Paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, runbook.Invalid(fmt.Errorf("manifests path %s: %w: paths are relative to the directory drydock runs in", p, err))
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				if !d.IsDir() {
					out = append(out, path)
				}
			}
			return nil
		})
		if err != nil {
			return nil, runbook.Invalid(fmt.Errorf("manifests path %s: %w", p, err))
		}
	}
	if len(out) == 0 {
		return nil, runbook.Invalid(fmt.Errorf("manifests paths %s hold no .yaml, .yml or .json file", strings.Join(s.m.Paths, ", ")))
	}
	return out, nil
}

// object is a decoded object with where it lives.
type object struct {
	u   *unstructured.Unstructured
	gvr schema.GroupVersionResource
	ns  string
}

func (o object) String() string {
	n := strings.ToLower(o.u.GetKind()) + "/" + o.u.GetName()
	if o.ns != "" {
		n = o.ns + "/" + n
	}
	return n
}

func (s *manifestSource) objects() ([]object, error) {
	files, err := s.files()
	if err != nil {
		return nil, err
	}
	var out []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, runbook.Invalid(err)
		}
		us, err := decodeManifest(string(b), f)
		if err != nil {
			return nil, runbook.Invalid(err)
		}
		for _, u := range us {
			gvk := u.GroupVersionKind()
			m, err := s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				return nil, runbook.Invalid(fmt.Errorf("%s: %s %s: the cluster does not serve it: %w", f, gvk.GroupVersion(), gvk.Kind, err))
			}
			o := object{u: u, gvr: m.Resource}
			if m.Scope.Name() == meta.RESTScopeNameNamespace {
				o.ns = u.GetNamespace()
				if o.ns == "" {
					o.ns = s.m.Namespace
				}
				if o.ns == "" {
					return nil, runbook.Invalid(fmt.Errorf("%s: %s %s names no namespace: set metadata.namespace, or manifests.namespace", f, gvk.Kind, u.GetName()))
				}
				u.SetNamespace(o.ns)
			}
			out = append(out, o)
		}
	}
	return out, nil
}

func (s *manifestSource) res(gvr schema.GroupVersionResource, ns string) dynamic.ResourceInterface {
	if ns == "" {
		return s.dyn.Resource(gvr)
	}
	return s.dyn.Resource(gvr).Namespace(ns)
}

func (s *manifestSource) plan(ctx context.Context) ([]string, error) {
	objs, err := s.objects()
	if err != nil {
		return nil, err
	}
	var create, update []string
	for _, o := range objs {
		if _, err := s.res(o.gvr, o.ns).Get(ctx, o.u.GetName(), metav1.GetOptions{}); apierrors.IsNotFound(err) {
			create = append(create, o.String())
		} else {
			update = append(update, o.String())
		}
	}
	line := fmt.Sprintf("server-side apply %d object(s) from %s as field manager %s", len(objs), strings.Join(s.m.Paths, ", "), FieldManager)
	if s.m.ForceConflicts {
		line += ", taking over the fields other managers own (forceConflicts)"
	} else {
		line += ", refused if they set a field another manager owns"
	}
	if len(create) > 0 {
		line += "; creates " + strings.Join(create, ", ")
	}
	return []string{line + "; rollback applies the objects as they were and deletes the ones it created"}, nil
}

// upgrade keeps the objects as they are, then applies the files.
func (s *manifestSource) upgrade(ctx context.Context) ([]workload, error) {
	objs, err := s.objects()
	if err != nil {
		return nil, err
	}
	var kept []before
	if !s.env.LoadData(s.key(), &kept) {
		// Fields another manager owns are found before anything is applied.
		if err := s.checkConflicts(ctx, objs); err != nil {
			return nil, err
		}
		for _, o := range objs {
			b := before{Group: o.gvr.Group, Version: o.gvr.Version, Resource: o.gvr.Resource, Namespace: o.ns, Name: o.u.GetName()}
			cur, err := s.res(o.gvr, o.ns).Get(ctx, o.u.GetName(), metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return nil, fmt.Errorf("read %s before applying it: %w", o, err)
			default:
				b.Object = clean(cur).Object
			}
			kept = append(kept, b)
		}
		// Journaled before the first apply, so that rollback knows every object's earlier state.
		if err := s.env.SaveData(ctx, s.key(), kept); err != nil {
			return nil, err
		}
		if err := s.env.Record(ctx, runbook.Change{Kind: "apply", Object: "addon/" + s.a.Name, Data: map[string]string{"addon": s.a.Name, "objects": fmt.Sprint(len(kept))}}); err != nil {
			return nil, err
		}
	}
	for _, o := range objs {
		if _, err := s.res(o.gvr, o.ns).Apply(ctx, o.u.GetName(), o.u, metav1.ApplyOptions{FieldManager: FieldManager, Force: s.m.ForceConflicts}); err != nil {
			if c := conflictsOf(o, err); c != nil {
				return nil, s.refuse([]*ConflictError{c}, "the objects before it were applied, and the step's rollback takes them back")
			}
			return nil, fmt.Errorf("apply %s: %w", o, err)
		}
	}
	s.env.Progress(fmt.Sprintf("%s: %d object(s) applied; waiting for the rollout", s.a.Name, len(objs)), 0, 0)
	var us []*unstructured.Unstructured
	for _, o := range objs {
		us = append(us, o.u)
	}
	return workloadsOf(us, s.m.Namespace), nil
}

// clean drops what the server owns, so that the object can be applied back.
func clean(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := u.DeepCopy()
	for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(c.Object, "status")
	return c
}

// rollback applies the kept objects back, deletes the ones that did not exist, newest first.
func (s *manifestSource) rollback(ctx context.Context) ([]workload, *runbook.Kept, error) {
	var kept []before
	if !s.env.LoadData(s.key(), &kept) {
		return nil, nil, nil
	}
	var back []*unstructured.Unstructured
	for _, b := range slices.Backward(kept) {
		gvr := schema.GroupVersionResource{Group: b.Group, Version: b.Version, Resource: b.Resource}
		r := s.res(gvr, b.Namespace)
		if b.Object == nil {
			if err := r.Delete(ctx, b.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return nil, nil, fmt.Errorf("delete %s %s, which the apply created: %w", b.Resource, b.Name, err)
			}
			continue
		}
		u := &unstructured.Unstructured{Object: b.Object}
		if _, err := r.Apply(ctx, b.Name, u, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
			return nil, nil, fmt.Errorf("apply %s %s as it was: %w", b.Resource, b.Name, err)
		}
		back = append(back, u)
	}
	s.env.Progress(fmt.Sprintf("%s: %d object(s) back as they were", s.a.Name, len(kept)), 0, 0)
	return workloadsOf(back, s.m.Namespace), nil, nil
}

// ConflictError is an object of an add-on's manifests that sets fields another field manager owns
// (server-side apply's conflict): each with the field and the API's words naming the manager.
type ConflictError struct {
	Object    string
	Conflicts []metav1.StatusCause // Type FieldManagerConflict: Field, and Message "conflict with \"hpa\" using apps/v1"
}

func (e *ConflictError) Error() string {
	var parts []string
	for _, c := range e.Conflicts {
		parts = append(parts, c.Field+": "+c.Message)
	}
	return fmt.Sprintf("apply %s: field(s) owned by another field manager: %s", e.Object, strings.Join(parts, "; "))
}

// conflictsOf is err as a ConflictError when server-side apply refused o for fields another
// manager owns; nil otherwise.
func conflictsOf(o object, err error) *ConflictError {
	if !apierrors.IsConflict(err) {
		return nil
	}
	c := &ConflictError{Object: o.String()}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		if d := st.Status().Details; d != nil {
			for _, cause := range d.Causes {
				if cause.Type == metav1.CauseTypeFieldManagerConflict {
					c.Conflicts = append(c.Conflicts, cause)
				}
			}
		}
	}
	if len(c.Conflicts) == 0 {
		return nil // a conflict of another kind (the object changed meanwhile)
	}
	return c
}

// checkConflicts applies the objects as a dry run, without force: the fields another manager owns
// are each reported, and the add-on is refused before anything is applied (unless forceConflicts).
func (s *manifestSource) checkConflicts(ctx context.Context, objs []object) error {
	if s.m.ForceConflicts {
		return nil
	}
	var found []*ConflictError
	for _, o := range objs {
		_, err := s.res(o.gvr, o.ns).Apply(ctx, o.u.GetName(), o.u, metav1.ApplyOptions{FieldManager: FieldManager, DryRun: []string{metav1.DryRunAll}})
		if c := conflictsOf(o, err); c != nil {
			found = append(found, c)
		}
		// Any other refusal is the real apply's to report.
	}
	if len(found) == 0 {
		return nil
	}
	return runbook.Blocked(s.refuse(found, "nothing of the add-on was applied"))
}

// refuse reports each conflict as a finding with its fix, and returns the step's error.
func (s *manifestSource) refuse(found []*ConflictError, applied string) error {
	var errs []error
	for _, c := range found {
		for _, cause := range c.Conflicts {
			s.env.Find(runbook.Finding{Severity: runbook.SeverityError, Object: c.Object,
				Message: fmt.Sprintf("add-on %s sets %s, which another field manager owns (%s): applying it would take the field away", s.a.Name, cause.Field, cause.Message),
				Hint:    fmt.Sprintf("leave %s out of the manifest if that manager (an HPA, a GitOps controller) should keep it; or set manifests.forceConflicts: true on add-on %s to take it over", cause.Field, s.a.Name)})
		}
		errs = append(errs, c)
	}
	return fmt.Errorf("%w: %s; leave those fields out of add-on %s's manifests, or set manifests.forceConflicts: true to take them over", errors.Join(errs...), applied, s.a.Name)
}
