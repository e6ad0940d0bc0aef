package drain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// What drydock puts on a PodDisruptionBudget it relaxed for a drain: the label finds them (the next
// drydock command restores those past their expiry), the annotation says how to restore it.
const (
	LabelRelaxedBy    = "drydock.dev/relaxed-by" // the run that relaxed the budget
	AnnotationRelaxed = "drydock.dev/relaxed"    // JSON: run, expires, what was set, what restores it
)

// BudgetRelax allows drydock to change a PodDisruptionBudget that stalls a drain, for that node only:
// when the stall detector finds the budget at zero (stallTimeout), drydock applies the budget's fix
// (unhealthyPodEvictionPolicy: AlwaysAllow for a pod that is not Ready, else one more allowed
// disruption), records it in the journal and on the budget, and restores the original when the node
// is drained, when the drain fails, on rollback, and after the expiry even if drydock died (the next
// drydock command that reaches the cluster, or `drydock runs --repair`).
type BudgetRelax struct {
	// Max is how many times one budget may be relaxed for one node (default 1): each time allows one
	// more disruption.
	Max int `json:"max,omitempty" jsonschema:"minimum=1"`
	// Expiry: the original is restored this long after the change at the latest (default 30m).
	Expiry runbook.Duration `json:"expiry,omitzero"`
}

func (r *BudgetRelax) max() int {
	if r.Max <= 0 {
		return 1
	}
	return r.Max
}

func (r *BudgetRelax) expiry() time.Duration {
	if r.Expiry.IsZero() {
		return 30 * time.Minute
	}
	return r.Expiry.Duration
}

// relaxRecord is what the annotation and the journal keep of a relaxation.
type relaxRecord struct {
	Run     string         `json:"run"`
	Node    string         `json:"node,omitempty"`
	Expires time.Time      `json:"expires"`
	Count   int            `json:"count"`
	Set     map[string]any `json:"set"`     // the spec fields as drydock set them
	Restore map[string]any `json:"restore"` // the spec fields as they were (null: unset)
	What    string         `json:"what"`
}

func recordOf(pdb *policyv1.PodDisruptionBudget) (relaxRecord, bool) {
	var rec relaxRecord
	s, ok := pdb.Annotations[AnnotationRelaxed]
	if !ok || json.Unmarshal([]byte(s), &rec) != nil {
		return relaxRecord{}, false
	}
	return rec, true
}

// ErrRelaxLimit: the budget was relaxed as many times as allowBudgetRelax.max allows.
var ErrRelaxLimit = errors.New("allowBudgetRelax.max reached")

// relaxBudget applies the fix of pdb for blocked (journal first, then the budget, with the
// resourceVersion it was computed from). A crash between the two leaves a journal entry whose
// budget carries no annotation: restoring it is then a no-op.
func relaxBudget(ctx context.Context, env *runbook.Env, cfg *BudgetRelax, pdb *policyv1.PodDisruptionBudget, r relaxation, node string) (relaxRecord, error) {
	key := pdb.Namespace + "/" + pdb.Name
	rec := relaxRecord{Run: env.RunID, Node: node, Expires: time.Now().Add(cfg.expiry()).UTC().Truncate(time.Second), Count: 1, Set: r.Set, Restore: r.Restore, What: r.What}
	if prev, ok := recordOf(pdb); ok {
		if prev.Run != env.RunID {
			return relaxRecord{}, fmt.Errorf("PDB %s is relaxed by run %s already: leave it to that run (or `drydock runs --repair` after its expiry %s)", key, prev.Run, prev.Expires.Format(time.RFC3339))
		}
		// Relaxed again for the same node: one more disruption, and the original is still what restores it.
		rec.Count, rec.Restore = prev.Count+1, prev.Restore
	}
	if rec.Count > cfg.max() {
		return relaxRecord{}, fmt.Errorf("PDB %s: %w (%d)", key, ErrRelaxLimit, cfg.max())
	}
	b, _ := json.Marshal(rec)
	if err := env.Record(ctx, runbook.Change{Kind: "budget-relax", Object: "pdb/" + key, Data: map[string]string{"record": string(b), "node": node}}); err != nil {
		return relaxRecord{}, err
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": pdb.ResourceVersion, "labels": map[string]string{LabelRelaxedBy: env.RunID},
			"annotations": map[string]string{AnnotationRelaxed: string(b)}},
		"spec": r.Set,
	})
	_, err := env.Kube.PolicyV1().PodDisruptionBudgets(pdb.Namespace).Patch(ctx, pdb.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return relaxRecord{}, fmt.Errorf("relax PDB %s: %w", key, err)
	}
	return rec, nil
}

// RestoreOutcome is what restoring one relaxed budget did.
type RestoreOutcome struct {
	PDB string
	Run string
	// Restored: the budget is as it was; Changed: someone changed the fields drydock had set, so
	// drydock left them and only took its marks off; Gone: the budget was deleted.
	Restored, Changed, Gone bool
	Record                  relaxRecord
}

func (o RestoreOutcome) String() string {
	switch {
	case o.Gone:
		return fmt.Sprintf("PDB %s (relaxed by run %s) is gone: nothing to restore", o.PDB, o.Run)
	case o.Changed:
		return fmt.Sprintf("PDB %s was changed since run %s relaxed it: left as it is now (the relaxation was %s)", o.PDB, o.Run, o.Record.What)
	case o.Restored:
		b, _ := json.Marshal(o.Record.Restore)
		return fmt.Sprintf("PDB %s restored (%s) after run %s relaxed it", o.PDB, b, o.Run)
	}
	return fmt.Sprintf("PDB %s is not relaxed by run %s: nothing to restore", o.PDB, o.Run)
}

// restoreBudget restores budget key relaxed by run (any run when run is ""): the fields drydock set
// go back to what they were, unless someone changed them since; the marks come off. It retries on
// conflicts and transient errors.
func restoreBudget(ctx context.Context, client kubernetes.Interface, key, run string) (RestoreOutcome, error) {
	ns, name, _ := strings.Cut(key, "/")
	out := RestoreOutcome{PDB: key, Run: run}
	err := retry.OnError(retry.DefaultBackoff, func(err error) bool { return apierrors.IsConflict(err) || kube.Transient(err) }, func() error {
		pdb, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out.Gone = true
			return nil
		}
		if err != nil {
			return err
		}
		rec, ok := recordOf(pdb)
		if !ok || (run != "" && rec.Run != run) {
			return nil
		}
		out.Run, out.Record = rec.Run, rec
		meta := map[string]any{"resourceVersion": pdb.ResourceVersion, "labels": map[string]any{LabelRelaxedBy: nil}, "annotations": map[string]any{AnnotationRelaxed: nil}}
		patch := map[string]any{"metadata": meta}
		if same(pdb.Spec, rec.Set) {
			patch["spec"] = rec.Restore
		} else {
			out.Changed = true
		}
		b, _ := json.Marshal(patch)
		_, err = client.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{})
		out.Restored = err == nil && !out.Changed
		return err
	})
	if err != nil {
		return out, fmt.Errorf("restore PDB %s: %w; `drydock runs --repair` tries again after its expiry, or restore it by hand", key, err)
	}
	return out, nil
}

// same says whether spec still has the fields drydock set (compared as JSON).
func same(spec policyv1.PodDisruptionBudgetSpec, set map[string]any) bool {
	b, _ := json.Marshal(spec)
	var now map[string]any
	_ = json.Unmarshal(b, &now)
	b, _ = json.Marshal(set)
	var want map[string]any
	_ = json.Unmarshal(b, &want)
	for k, v := range want {
		if !reflect.DeepEqual(now[k], v) {
			return false
		}
	}
	return true
}

// relaxedNow lists the budgets the step relaxed (journal) for node (any node when "") and has not
// restored yet, oldest first.
func relaxedNow(env *runbook.Env, node string) []string {
	open := map[string]map[string]bool{} // budget → the nodes it was relaxed for
	var order []string
	for _, c := range env.Changes() {
		key := strings.TrimPrefix(c.Object, "pdb/")
		switch c.Kind {
		case "budget-relax":
			if open[key] == nil {
				order = append(order, key)
				open[key] = map[string]bool{}
			}
			open[key][c.Data["node"]] = true
		case "budget-restored":
			delete(open, key)
			order = slices.DeleteFunc(order, func(k string) bool { return k == key })
		}
	}
	var out []string
	for _, k := range order {
		if node == "" || open[k][node] {
			out = append(out, k)
		}
	}
	return out
}

// RestoreBudgets restores every budget the step relaxed for node (every node when "") and has not
// restored: after the node, after a failure, on rollback, and when a step re-enters after a crash.
// Each restoration is journaled.
func RestoreBudgets(ctx context.Context, env *runbook.Env, node string) error {
	var errs []error
	for _, key := range relaxedNow(env, node) {
		out, err := restoreBudget(ctx, env.Kube, key, env.RunID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := env.Record(ctx, runbook.Change{Kind: "budget-restored", Object: "pdb/" + key}); err != nil {
			errs = append(errs, err)
			continue
		}
		env.Logf("info", "%s", out)
	}
	return errors.Join(errs...)
}

// RepairExpired restores the budgets any drydock run relaxed whose expiry has passed (that run died,
// or is still draining past it): the next drydock command that reaches the cluster calls it, and
// `drydock runs --repair`. It returns what it restored, and the relaxations not yet expired; what it
// could not look at or restore is a *RepairError, each item with the command that finishes it.
func RepairExpired(ctx context.Context, client kubernetes.Interface, now time.Time) (restored []RestoreOutcome, pending []RestoreOutcome, err error) {
	list, err := client.PolicyV1().PodDisruptionBudgets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: LabelRelaxedBy})
	if err != nil {
		return nil, nil, &RepairError{Err: err, Findings: []runbook.Finding{unlisted(err)}}
	}
	sort.Slice(list.Items, func(i, j int) bool {
		return list.Items[i].Namespace+"/"+list.Items[i].Name < list.Items[j].Namespace+"/"+list.Items[j].Name
	})
	re := &RepairError{}
	for i := range list.Items {
		pdb := &list.Items[i]
		key := pdb.Namespace + "/" + pdb.Name
		rec, ok := recordOf(pdb)
		if !ok {
			re.add(fmt.Errorf("PDB %s: unreadable annotation %s", key, AnnotationRelaxed), runbook.Finding{Object: "pdb/" + key,
				Message: fmt.Sprintf("carries drydock's label %s=%s but no readable %s annotation: drydock cannot tell what to restore", LabelRelaxedBy, pdb.Labels[LabelRelaxedBy], AnnotationRelaxed),
				Hint: fmt.Sprintf("set its spec as it should be, then take drydock's marks off: kubectl label pdb %s -n %s %s- && kubectl annotate pdb %s -n %s %s-",
					pdb.Name, pdb.Namespace, LabelRelaxedBy, pdb.Name, pdb.Namespace, AnnotationRelaxed)})
			continue
		}
		if now.Before(rec.Expires) {
			pending = append(pending, RestoreOutcome{PDB: key, Run: rec.Run, Record: rec})
			continue
		}
		out, err := restoreBudget(ctx, client, key, rec.Run)
		if err != nil {
			re.add(err, runbook.Finding{Object: "pdb/" + key,
				Message: fmt.Sprintf("relaxed by run %s (%s) and expired at %s, could not be restored: %v", rec.Run, rec.What, rec.Expires.Format(time.RFC3339), err),
				Hint:    restoreCommand(pdb, rec) + " (if its spec still has what drydock set)"})
			continue
		}
		restored = append(restored, out)
	}
	if len(re.Findings) == 0 {
		return restored, pending, nil
	}
	return restored, pending, re
}

// RepairError is what RepairExpired could not do: each a warning finding naming the budget (or
// that the budgets could not be listed) with the command that finishes the repair.
type RepairError struct {
	Findings []runbook.Finding
	Err      error
}

func (e *RepairError) add(err error, f runbook.Finding) {
	f.Severity = runbook.SeverityWarning
	e.Findings = append(e.Findings, f)
	e.Err = errors.Join(e.Err, err)
}

func (e *RepairError) Error() string {
	var parts []string
	for _, f := range e.Findings {
		parts = append(parts, fmt.Sprintf("%s: %s (fix: %s)", f.Object, f.Message, f.Hint))
	}
	return "restore expired budget relaxations: " + strings.Join(parts, "; ")
}

func (e *RepairError) Unwrap() error { return e.Err }

// unlisted is the finding of a list of relaxed budgets that failed (a user who may not list
// PodDisruptionBudgets in every namespace): the expired relaxations were not looked for.
func unlisted(err error) runbook.Finding {
	why := err.Error()
	if apierrors.IsForbidden(err) {
		why = "this user may not list PodDisruptionBudgets in every namespace"
	}
	return runbook.Finding{Severity: runbook.SeverityWarning, Object: "poddisruptionbudgets",
		Message: fmt.Sprintf("budgets drydock relaxed whose expiry has passed were not looked for, so none was restored: %s", why),
		Hint:    fmt.Sprintf("`drydock runs --repair` as a user who may list PodDisruptionBudgets in every namespace restores them (`kubectl get pdb -A -l %s` lists them)", LabelRelaxedBy)}
}

// restoreCommand is the kubectl patch that restores pdb as rec says and takes drydock's marks off.
func restoreCommand(pdb *policyv1.PodDisruptionBudget, rec relaxRecord) string {
	b, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"labels": map[string]any{LabelRelaxedBy: nil}, "annotations": map[string]any{AnnotationRelaxed: nil}},
		"spec":     rec.Restore,
	})
	return fmt.Sprintf("kubectl patch pdb %s -n %s --type=merge -p '%s'", pdb.Name, pdb.Namespace, b)
}

// Expires is when the relaxation ends at the latest.
func (o RestoreOutcome) Expires() time.Time { return o.Record.Expires }
