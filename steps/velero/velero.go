// Package velero is the `velero-backup` step: back up with Velero, wait by watch for the backup to
// finish, then prove it restores: restore a sample of namespaces into sandbox namespaces, compare
// what came back with the source, and clean up. The backup is the run's rollback point.
//
//   - name: backup
//     type: velero-backup
//     timeout: 30m
//     with: {includedNamespaces: [shop], restoreCheck: {namespaces: [shop]}}
package velero

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	velerov1 "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/internal/velero"
	"github.com/drydock-dev/drydock/runbook"
)

// Kind registers the step.
var Kind = runbook.Kind{
	Name:        "velero-backup",
	Description: "back up with Velero, then prove the backup restores into sandbox namespaces",
	Phase:       runbook.PhaseBackup,
	New:         func() runbook.Step { return &Step{} },
}

// Step is the velero-backup step's settings.
type Step struct {
	// Namespace Velero runs in (default velero).
	Namespace string `json:"namespace,omitempty"`
	// IncludedNamespaces to back up (default: every namespace).
	IncludedNamespaces []string `json:"includedNamespaces,omitempty"`
	// ExcludedNamespaces to leave out.
	ExcludedNamespaces []string `json:"excludedNamespaces,omitempty"`
	// LabelSelector limits the backup to matching objects.
	LabelSelector string `json:"labelSelector,omitempty"`
	// TTL of the backup (Velero's default when unset: 30 days).
	TTL runbook.Duration `json:"ttl,omitzero"`
	// StorageLocation is the BackupStorageLocation (default: Velero's default).
	StorageLocation string `json:"storageLocation,omitempty"`
	// SnapshotVolumes passes through to the Backup.
	SnapshotVolumes *bool `json:"snapshotVolumes,omitempty"`
	// DefaultVolumesToFsBackup passes through to the Backup.
	DefaultVolumesToFsBackup *bool `json:"defaultVolumesToFsBackup,omitempty"`
	// AllowPartial lets a PartiallyFailed backup pass.
	AllowPartial bool `json:"allowPartial,omitempty"`
	// ReuseMaxAge reuses the newest Completed backup of the same namespaces younger than this,
	// instead of making a new one.
	ReuseMaxAge runbook.Duration `json:"reuseMaxAge,omitzero"`
	// RestoreCheck proves the backup restores (on by default).
	RestoreCheck RestoreCheck `json:"restoreCheck,omitzero"`
}

// RestoreCheck restores a sample of namespaces into sandboxes and compares them with the source.
type RestoreCheck struct {
	// Skip the restore check (not recommended: a backup that never restored is a hope).
	Skip bool `json:"skip,omitempty"`
	// Namespaces to restore (default: the backup's namespaces, up to limit).
	Namespaces []string `json:"namespaces,omitempty"`
	// Limit of namespaces restored when namespaces is not given (default 3).
	Limit int `json:"limit,omitempty" jsonschema:"minimum=1"`
	// RestorePVs restores persistent volumes too (default false: objects only).
	RestorePVs bool `json:"restorePVs,omitempty"`
}

// Name is the kind.
func (*Step) Name() string { return Kind.Name }

// ValidateSettings checks the selector and namespaces.
func (s *Step) ValidateSettings() []runbook.FieldError {
	var errs []runbook.FieldError
	if _, err := labels.Parse(s.LabelSelector); err != nil {
		errs = append(errs, runbook.FieldError{Field: "labelSelector", Message: err.Error(), Hint: "a label selector as in kubectl -l"})
	}
	if len(s.IncludedNamespaces) > 0 {
		for i, ns := range s.RestoreCheck.Namespaces {
			if !slices.Contains(s.IncludedNamespaces, ns) && !slices.Contains(s.IncludedNamespaces, "*") {
				errs = append(errs, runbook.FieldError{Field: fmt.Sprintf("restoreCheck.namespaces[%d]", i),
					Message: fmt.Sprintf("%q is not in includedNamespaces, so it is not in the backup", ns)})
			}
		}
	}
	return errs
}

// Access says what the step needs.
func (s *Step) Access() []runbook.Access {
	ns := s.veleroNS()
	out := []runbook.Access{
		{Verb: "create", Group: "velero.io", Resource: "backups", Namespace: ns, Why: "velero-backup creates the backup"},
		{Verb: "get", Group: "velero.io", Resource: "backups", Namespace: ns, Why: "velero-backup follows a backup an earlier attempt made"},
		{Verb: "list", Group: "velero.io", Resource: "backups", Namespace: ns, Why: "velero-backup waits for the backup (a list and watch by name), and finds one to reuse"},
		{Verb: "watch", Group: "velero.io", Resource: "backups", Namespace: ns, Why: "velero-backup waits for the backup"},
		{Verb: "create", Group: "velero.io", Resource: "restores", Namespace: ns, Why: "velero-backup proves the backup restores"},
		{Verb: "list", Group: "velero.io", Resource: "restores", Namespace: ns, Why: "velero-backup waits for its check restore (a list and watch by name)"},
		{Verb: "watch", Group: "velero.io", Resource: "restores", Namespace: ns, Why: "velero-backup waits for its check restore"},
		{Verb: "delete", Group: "velero.io", Resource: "restores", Namespace: ns, Why: "velero-backup removes its check restore"},
		{Verb: "list", Group: "velero.io", Resource: "backupstoragelocations", Namespace: ns, Why: "velero-backup checks the storage location first"},
		{Verb: "delete", Resource: "namespaces", Why: "velero-backup removes its sandbox namespaces"},
		{Verb: "list", Resource: "namespaces", Why: "velero-backup waits until its sandbox namespaces are gone (a list and watch by name)"},
		{Verb: "watch", Resource: "namespaces", Why: "velero-backup waits until its sandbox namespaces are gone"},
	}
	for _, k := range checkedKinds { // in the backed-up namespaces and their sandboxes, named only at run time
		out = append(out, runbook.Access{Verb: "list", Group: k.group, Resource: k.resource, Why: "velero-backup's restore check compares each namespace's " + k.kind + " objects with its sandbox's"})
	}
	return out
}

func (s *Step) veleroNS() string {
	if s.Namespace == "" {
		return velero.DefaultNamespace
	}
	return s.Namespace
}

// Plan says what the step will do.
func (s *Step) Plan(ctx context.Context, env *runbook.Env) ([]string, error) {
	scope := "every namespace"
	if len(s.IncludedNamespaces) > 0 {
		scope = "namespaces " + strings.Join(s.IncludedNamespaces, ", ")
	}
	out := []string{fmt.Sprintf("back up %s with Velero (namespace %s) as %s", scope, s.veleroNS(), backupName(env.RunID))}
	if s.ReuseMaxAge.Duration > 0 {
		out[0] = fmt.Sprintf("reuse a Completed backup of %s younger than %s, or %s", scope, s.ReuseMaxAge.Duration, out[0])
	}
	if !s.RestoreCheck.Skip {
		out = append(out, "restore a sample into sandbox namespaces (<ns>-drydock-verify-<id>), compare the objects, delete the sandboxes")
	}
	return out, nil
}

func backupName(runID string) string { return "drydock-" + runID }

func shortID(runID string) string {
	if i := strings.LastIndex(runID, "-"); i >= 0 && i+1 < len(runID) {
		return runID[i+1:]
	}
	return runID
}

// SandboxName is where namespace ns is restored for the check.
func SandboxName(ns, runID string) string {
	suffix := "-drydock-verify-" + shortID(runID)
	if len(ns)+len(suffix) > 63 {
		ns = strings.TrimRight(ns[:63-len(suffix)], "-")
	}
	return ns + suffix
}

// Run backs up, waits, and proves the backup restores.
func (s *Step) Run(ctx context.Context, env *runbook.Env) error {
	vc, err := velero.New(env.REST, s.veleroNS())
	if err != nil {
		return err
	}
	if err := vc.Installed(); err != nil {
		return err
	}
	b, err := s.backup(ctx, env, vc)
	if err != nil {
		return err
	}
	if err := env.SetRollbackPoint(ctx, runbook.RollbackPoint{Kind: runbook.RollbackPointVeleroBackup, Namespace: vc.Namespace, Name: b.Name}); err != nil {
		return err
	}
	if s.RestoreCheck.Skip || env.Done("verified") {
		return nil
	}
	if err := s.verify(ctx, env, vc, b); err != nil {
		return err
	}
	return env.MarkDone(ctx, "verified")
}

// storageLocationReady fails before anything is created when the location is unavailable.
func (s *Step) storageLocationReady(ctx context.Context, vc *velero.Client) error {
	locs, err := vc.StorageLocations(ctx)
	if err != nil {
		return fmt.Errorf("list BackupStorageLocations in %s: %w", vc.Namespace, err)
	}
	for _, l := range locs {
		if (s.StorageLocation == "" && l.Spec.Default) || l.Name == s.StorageLocation {
			if l.Status.Phase != velerov1.BackupStorageLocationPhaseAvailable {
				msg := l.Status.Message
				if msg == "" {
					msg = "no message"
				}
				return fmt.Errorf("BackupStorageLocation %s/%s is %s (%s): fix the object store or its credentials, then resume", vc.Namespace, l.Name, velero.Phase(l.Status.Phase), msg)
			}
			return nil
		}
	}
	want := s.StorageLocation
	if want == "" {
		return fmt.Errorf("no default BackupStorageLocation in %s: set storageLocation, or mark one default", vc.Namespace)
	}
	return fmt.Errorf("no BackupStorageLocation %s/%s", vc.Namespace, want)
}

func (s *Step) backup(ctx context.Context, env *runbook.Env, vc *velero.Client) (*velerov1.Backup, error) {
	if s.ReuseMaxAge.Duration > 0 {
		list, err := vc.Backups(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("list backups: %w", err)
		}
		var best *velerov1.Backup
		for i := range list {
			b := &list[i]
			if b.Status.Phase != velerov1.BackupPhaseCompleted || b.Status.CompletionTimestamp == nil ||
				time.Since(b.Status.CompletionTimestamp.Time) > s.ReuseMaxAge.Duration || !velero.Covers(b, s.IncludedNamespaces) {
				continue
			}
			if best == nil || b.Status.CompletionTimestamp.After(best.Status.CompletionTimestamp.Time) {
				best = b
			}
		}
		if best != nil {
			env.Progress(fmt.Sprintf("reusing backup %s, completed %s ago", best.Name, time.Since(best.Status.CompletionTimestamp.Time).Round(time.Second)), 0, 0)
			return best, nil
		}
		env.Progress(fmt.Sprintf("no Completed backup younger than %s: making one", s.ReuseMaxAge.Duration), 0, 0)
	}

	name := backupName(env.RunID)
	b, err := vc.Backup(ctx, name)
	switch {
	case apierrors.IsNotFound(err):
		if err := s.storageLocationReady(ctx, vc); err != nil {
			return nil, err
		}
		spec := velerov1.BackupSpec{IncludedNamespaces: s.IncludedNamespaces, ExcludedNamespaces: s.ExcludedNamespaces,
			StorageLocation: s.StorageLocation, SnapshotVolumes: s.SnapshotVolumes, DefaultVolumesToFsBackup: s.DefaultVolumesToFsBackup,
			TTL: metav1.Duration{Duration: s.TTL.Duration}}
		if s.LabelSelector != "" {
			sel, err := metav1.ParseToLabelSelector(s.LabelSelector)
			if err != nil {
				return nil, err
			}
			spec.LabelSelector = sel
		}
		b, err = vc.CreateBackup(ctx, &velerov1.Backup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: vc.Namespace,
			Labels: map[string]string{velero.LabelRunID: env.RunID}}, Spec: spec})
		if err != nil {
			return nil, fmt.Errorf("create backup %s/%s: %w", vc.Namespace, name, err)
		}
		env.Progress("created backup "+name, 0, 0)
	case err != nil:
		return nil, fmt.Errorf("get backup %s/%s: %w", vc.Namespace, name, err)
	default:
		env.Progress("backup "+name+" exists (an earlier attempt made it): following it", 0, 0)
	}

	lastPhase := ""
	b, err = vc.WaitBackup(ctx, name, func(b *velerov1.Backup) {
		p := b.Status.Progress
		if p != nil && p.TotalItems > 0 {
			env.Progress(fmt.Sprintf("backup %s: %s, %d of %d items", name, velero.Phase(b.Status.Phase), p.ItemsBackedUp, p.TotalItems), p.ItemsBackedUp, p.TotalItems)
		} else if ph := velero.Phase(b.Status.Phase); ph != lastPhase {
			env.Progress(fmt.Sprintf("backup %s: %s", name, ph), 0, 0)
		}
		lastPhase = velero.Phase(b.Status.Phase)
	}, velero.BackupFinished)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, wait.ErrWaitTimeout) {
			return nil, fmt.Errorf("backup %s/%s did not finish: still %s when the step's time ran out (is the Velero server running? kubectl -n %s logs deploy/velero)", vc.Namespace, name, velero.Phase(b.Status.Phase), vc.Namespace)
		}
		return nil, fmt.Errorf("wait for backup %s/%s: %w", vc.Namespace, name, err)
	}
	return b, s.judgeBackup(env, b)
}

func (s *Step) judgeBackup(env *runbook.Env, b *velerov1.Backup) error {
	st := b.Status
	counts := fmt.Sprintf("%d errors, %d warnings", st.Errors, st.Warnings)
	details := fmt.Sprintf("velero backup describe %s --details; velero backup logs %s", b.Name, b.Name)
	switch st.Phase {
	case velerov1.BackupPhaseCompleted:
		items := ""
		if st.Progress != nil {
			items = fmt.Sprintf(", %d items", st.Progress.ItemsBackedUp)
		}
		env.Progress(fmt.Sprintf("backup %s Completed%s", b.Name, items), 0, 0)
		if st.Warnings > 0 {
			env.Find(runbook.Finding{Severity: runbook.SeverityWarning, Object: "Backup " + b.Namespace + "/" + b.Name, Message: fmt.Sprintf("completed with %d warnings", st.Warnings), Hint: details})
		}
		return nil
	case velerov1.BackupPhasePartiallyFailed:
		f := runbook.Finding{Severity: runbook.SeverityError, Object: "Backup " + b.Namespace + "/" + b.Name, Message: "PartiallyFailed (" + counts + ")", Hint: details}
		if s.AllowPartial {
			f.Severity = runbook.SeverityWarning
			f.Message += ": allowed by allowPartial"
			env.Find(f)
			return nil
		}
		env.Find(f)
		return fmt.Errorf("backup %s/%s ended PartiallyFailed (%s): see %s, or set allowPartial: true to accept it", b.Namespace, b.Name, counts, details)
	default:
		why := st.FailureReason
		if len(st.ValidationErrors) > 0 {
			why = strings.Join(append([]string{why}, st.ValidationErrors...), "; ")
			why = strings.TrimPrefix(why, "; ")
		}
		if why == "" {
			why = counts
		}
		return fmt.Errorf("backup %s/%s ended %s: %s (%s)", b.Namespace, b.Name, st.Phase, why, details)
	}
}

// checkedKinds are what the restore check compares: what an application needs to come back.
var checkedKinds = []struct {
	kind, group, resource string
	list                  func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error)
}{
	{"Deployment", "apps", "deployments", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object { return ptrs(l.Items) })
	}},
	{"StatefulSet", "apps", "statefulsets", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object { return ptrs(l.Items) })
	}},
	{"DaemonSet", "apps", "daemonsets", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object { return ptrs(l.Items) })
	}},
	{"CronJob", "batch", "cronjobs", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.BatchV1().CronJobs(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object { return ptrs(l.Items) })
	}},
	{"Service", "", "services", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object { return ptrs(l.Items) })
	}},
	{"ConfigMap", "", "configmaps", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object {
			var out []metav1.Object
			for i := range l.Items {
				if l.Items[i].Name != "kube-root-ca.crt" { // every namespace gets its own
					out = append(out, &l.Items[i])
				}
			}
			return out
		})
	}},
	{"Secret", "", "secrets", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object {
			var out []metav1.Object
			for i := range l.Items {
				if l.Items[i].Type != corev1.SecretTypeServiceAccountToken {
					out = append(out, &l.Items[i])
				}
			}
			return out
		})
	}},
	{"PersistentVolumeClaim", "", "persistentvolumeclaims", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object { return ptrs(l.Items) })
	}},
	{"ServiceAccount", "", "serviceaccounts", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.CoreV1().ServiceAccounts(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object {
			var out []metav1.Object
			for i := range l.Items {
				if l.Items[i].Name != "default" { // every namespace gets its own
					out = append(out, &l.Items[i])
				}
			}
			return out
		})
	}},
	{"Role", "rbac.authorization.k8s.io", "roles", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.RbacV1().Roles(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object { return ptrs(l.Items) })
	}},
	{"RoleBinding", "rbac.authorization.k8s.io", "rolebindings", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.RbacV1().RoleBindings(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object { return ptrs(l.Items) })
	}},
	{"Ingress", "networking.k8s.io", "ingresses", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.NetworkingV1().Ingresses(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object { return ptrs(l.Items) })
	}},
	{"PodDisruptionBudget", "policy", "poddisruptionbudgets", func(ctx context.Context, env *runbook.Env, ns string) ([]metav1.Object, error) {
		l, err := env.Kube.PolicyV1().PodDisruptionBudgets(ns).List(ctx, metav1.ListOptions{})
		return objs(l, err, func() []metav1.Object { return ptrs(l.Items) })
	}},
}

func objs(_ any, err error, f func() []metav1.Object) ([]metav1.Object, error) {
	if err != nil {
		return nil, err
	}
	return f(), nil
}

func ptrs[T any, PT interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = PT(&items[i])
	}
	return out
}

// sample picks the namespaces to restore.
func (s *Step) sample(ctx context.Context, env *runbook.Env, vc *velero.Client, b *velerov1.Backup) ([]string, error) {
	if len(s.RestoreCheck.Namespaces) > 0 {
		return s.RestoreCheck.Namespaces, nil
	}
	limit := s.RestoreCheck.Limit
	if limit == 0 {
		limit = 3
	}
	var candidates []string
	if in := b.Spec.IncludedNamespaces; len(in) > 0 && !slices.Contains(in, "*") {
		candidates = slices.Clone(in)
	} else {
		list, err := env.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, n := range list.Items {
			if !strings.HasPrefix(n.Name, "kube-") && n.Name != vc.Namespace && n.Name != "default" && !strings.Contains(n.Name, "-drydock-verify-") {
				candidates = append(candidates, n.Name)
			}
		}
	}
	var out []string
	for _, ns := range candidates {
		if !slices.Contains(b.Spec.ExcludedNamespaces, ns) {
			out = append(out, ns)
		}
	}
	sort.Strings(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *Step) verify(ctx context.Context, env *runbook.Env, vc *velero.Client, b *velerov1.Backup) error {
	namespaces, err := s.sample(ctx, env, vc, b)
	if err != nil {
		return err
	}
	if len(namespaces) == 0 {
		env.Find(runbook.Finding{Severity: runbook.SeverityWarning, Object: "Backup " + b.Namespace + "/" + b.Name, Message: "no namespace to restore-check", Hint: "set restoreCheck.namespaces"})
		return nil
	}
	mapping := map[string]string{}
	for _, ns := range namespaces {
		mapping[ns] = SandboxName(ns, env.RunID)
	}
	restoreName := backupName(env.RunID) + "-verify"
	// A sandbox left by an interrupted attempt goes first.
	if err := s.cleanup(ctx, env, vc, restoreName, mapping); err != nil {
		return err
	}
	for _, sb := range mapping {
		if err := env.Record(ctx, runbook.Change{Kind: "sandbox", Object: "namespace/" + sb}); err != nil {
			return err
		}
	}
	env.Progress(fmt.Sprintf("restore check: restoring %s from %s into %s", strings.Join(namespaces, ", "), b.Name, strings.Join(sortedValues(mapping), ", ")), 0, 0)
	r, err := vc.CreateRestore(ctx, &velerov1.Restore{ObjectMeta: metav1.ObjectMeta{Name: restoreName, Namespace: vc.Namespace, Labels: map[string]string{velero.LabelRunID: env.RunID}},
		Spec: velerov1.RestoreSpec{BackupName: b.Name, IncludedNamespaces: namespaces, NamespaceMapping: mapping, RestorePVs: &s.RestoreCheck.RestorePVs}})
	if err != nil {
		return fmt.Errorf("create restore %s/%s: %w", vc.Namespace, restoreName, err)
	}
	r, err = vc.WaitRestore(ctx, r.Name, func(r *velerov1.Restore) {
		if p := r.Status.Progress; p != nil && p.TotalItems > 0 {
			env.Progress(fmt.Sprintf("restore %s: %s, %d of %d items", r.Name, velero.Phase(r.Status.Phase), p.ItemsRestored, p.TotalItems), p.ItemsRestored, p.TotalItems)
		}
	}, velero.RestoreFinished)
	if err != nil {
		return fmt.Errorf("restore check: restore %s/%s did not finish (%s): %w", vc.Namespace, restoreName, velero.Phase(r.Status.Phase), err)
	}
	details := fmt.Sprintf("velero restore describe %s --details", r.Name)
	var problems []string
	if r.Status.Warnings > 0 || r.Status.Errors > 0 {
		sev := runbook.SeverityWarning
		if r.Status.Errors > 0 {
			sev = runbook.SeverityError
		}
		env.Find(runbook.Finding{Severity: sev, Object: "Restore " + r.Namespace + "/" + r.Name,
			Message: fmt.Sprintf("%s with %d errors and %d warnings", r.Status.Phase, r.Status.Errors, r.Status.Warnings), Hint: details})
	}
	if r.Status.Phase != velerov1.RestorePhaseCompleted {
		problems = append(problems, fmt.Sprintf("restore %s ended %s (%d errors, %d warnings; %s) %s", r.Name, r.Status.Phase, r.Status.Errors, r.Status.Warnings, details, r.Status.FailureReason))
	}
	// Never trust the phase alone: compare the objects.
	var before time.Time
	if b.Status.StartTimestamp != nil {
		before = b.Status.StartTimestamp.Time
	}
	var sel labels.Selector = labels.Everything()
	if b.Spec.LabelSelector != nil {
		if sel, err = metav1.LabelSelectorAsSelector(b.Spec.LabelSelector); err != nil {
			return err
		}
	}
	for _, ns := range namespaces {
		missing, restored, err := compare(ctx, env, ns, mapping[ns], before, sel)
		if err != nil {
			return err
		}
		env.Progress(fmt.Sprintf("restore check: %s: %d objects back in %s", ns, restored, mapping[ns]), 0, 0)
		if len(missing) > 0 {
			env.Find(runbook.Finding{Severity: runbook.SeverityError, Object: "namespace " + ns, Message: "missing from the restore: " + strings.Join(missing, ", "),
				Hint: "check why Velero left them out (" + details + "); an object labelled velero.io/exclude-from-backup=true is never backed up"})
			problems = append(problems, fmt.Sprintf("%s came back without %s", ns, strings.Join(missing, ", ")))
		}
	}
	if err := s.cleanup(ctx, env, vc, restoreName, mapping); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("restore check of backup %s failed: %s", b.Name, strings.Join(problems, "; "))
	}
	env.Progress(fmt.Sprintf("restore check passed: %s restored and matched, sandboxes deleted", strings.Join(namespaces, ", ")), 0, 0)
	return nil
}

func sortedValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// compare lists the checked kinds in the source (objects that existed when the backup started and
// match its selector) and in the sandbox, and names what the sandbox lacks.
func compare(ctx context.Context, env *runbook.Env, ns, sandbox string, before time.Time, sel labels.Selector) ([]string, int, error) {
	var missing []string
	restored := 0
	for _, k := range checkedKinds {
		src, err := k.list(ctx, env, ns)
		if err != nil {
			return nil, 0, fmt.Errorf("restore check: list %s in %s: %w", k.kind, ns, err)
		}
		got, err := k.list(ctx, env, sandbox)
		if err != nil {
			return nil, 0, fmt.Errorf("restore check: list %s in %s: %w", k.kind, sandbox, err)
		}
		have := map[string]bool{}
		for _, o := range got {
			have[o.GetName()] = true
		}
		restored += len(got)
		for _, o := range src {
			if !before.IsZero() && o.GetCreationTimestamp().After(before) {
				continue // created after the backup started
			}
			if !sel.Matches(labels.Set(o.GetLabels())) {
				continue
			}
			if !have[o.GetName()] {
				missing = append(missing, k.kind+" "+o.GetName())
			}
		}
	}
	sort.Strings(missing)
	return missing, restored, nil
}

// cleanup deletes the check's restore and sandbox namespaces and waits until they are gone.
func (s *Step) cleanup(ctx context.Context, env *runbook.Env, vc *velero.Client, restoreName string, mapping map[string]string) error {
	if err := vc.DeleteRestore(ctx, restoreName, 2*time.Minute); err != nil {
		return fmt.Errorf("restore check: delete restore: %w", err)
	}
	return deleteNamespaces(ctx, env, sortedValues(mapping))
}

func deleteNamespaces(ctx context.Context, env *runbook.Env, names []string) error {
	for _, n := range names {
		err := env.Kube.CoreV1().Namespaces().Delete(ctx, n, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("restore check: delete sandbox namespace %s: %w", n, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for _, n := range names {
		sel := fields.OneTermEqualSelector("metadata.name", n).String()
		lw := cache.NewFilteredListWatchFromClient(env.Kube.CoreV1().RESTClient(), "namespaces", "", func(o *metav1.ListOptions) { o.FieldSelector = sel })
		if err := kube.WaitGone(wctx, lw, &corev1.Namespace{}); err != nil {
			return fmt.Errorf("restore check: sandbox namespace %s is not gone after 3m (kubectl get namespace %s -o yaml shows what holds it): %w", n, n, err)
		}
	}
	return nil
}

// Rollback removes sandbox namespaces an interrupted restore check left behind. The backup itself
// stays: restoring from it is `drydock rollback --restore-backup`, a person's decision.
func (s *Step) Rollback(ctx context.Context, env *runbook.Env) error {
	var names []string
	for _, c := range env.Changes() {
		if c.Kind == "sandbox" {
			names = append(names, strings.TrimPrefix(c.Object, "namespace/"))
		}
	}
	if len(names) == 0 {
		return runbook.ErrNothingToUndo
	}
	if vc, err := velero.New(env.REST, s.veleroNS()); err == nil {
		_ = vc.DeleteRestore(ctx, backupName(env.RunID)+"-verify", time.Minute)
	}
	return deleteNamespaces(ctx, env, names)
}
