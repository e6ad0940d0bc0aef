package preflight

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// NeverDrains says whether a budget can never allow an eviction, and why: maxUnavailable 0 or 0%,
// minAvailable 100%, or minAvailable at or above the pods it protects (pods: the budget's
// status.expectedPods, or a count of its pods when the status is not there yet). The drain plan
// uses it too.
func NeverDrains(pdb *policyv1.PodDisruptionBudget, pods int32) (bool, string) {
	if mu := pdb.Spec.MaxUnavailable; mu != nil {
		if (mu.Type == intstr.Int && mu.IntVal == 0) || (mu.Type == intstr.String && strings.TrimSpace(mu.StrVal) == "0%") {
			return true, fmt.Sprintf("maxUnavailable: %s", mu.String())
		}
	}
	if ma := pdb.Spec.MinAvailable; ma != nil {
		if ma.Type == intstr.String && strings.TrimSpace(ma.StrVal) == "100%" {
			return true, "minAvailable: 100%"
		}
		if ma.Type == intstr.Int && pods > 0 && ma.IntVal >= pods {
			if pods == 1 {
				return true, fmt.Sprintf("minAvailable: %d on a single pod", ma.IntVal)
			}
			return true, fmt.Sprintf("minAvailable: %d with %d pods", ma.IntVal, pods)
		}
	}
	return false, ""
}

// cluster is what the PDB and health checks read, listed once.
type workloads struct {
	pods   []corev1.Pod
	pdbs   []policyv1.PodDisruptionBudget
	owners map[string]string // "ns/ReplicaSet name" -> "Deployment ns/name"
	deps   []workload
}

type workload struct {
	kind, namespace, name string
	replicas              int32
	selector              labels.Set // the pod template's labels
}

func (w workload) String() string { return w.kind + " " + w.namespace + "/" + w.name }

func listWorkloads(ctx context.Context, in *Input) (*workloads, error) {
	w := &workloads{owners: map[string]string{}}
	pods, err := in.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	w.pods = pods.Items
	pdbs, err := in.Kube.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list PodDisruptionBudgets: %w", err)
	}
	w.pdbs = pdbs.Items
	rss, err := in.Kube.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list ReplicaSets: %w", err)
	}
	for _, rs := range rss.Items {
		if c := metav1.GetControllerOf(&rs); c != nil && c.Kind == "Deployment" {
			w.owners[rs.Namespace+"/"+rs.Name] = "Deployment " + rs.Namespace + "/" + c.Name
		}
	}
	deps, err := in.Kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Deployments: %w", err)
	}
	for _, d := range deps.Items {
		w.deps = append(w.deps, workload{"Deployment", d.Namespace, d.Name, ptrOr(d.Spec.Replicas, 1), d.Spec.Template.Labels})
	}
	sts, err := in.Kube.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list StatefulSets: %w", err)
	}
	for _, s := range sts.Items {
		w.deps = append(w.deps, workload{"StatefulSet", s.Namespace, s.Name, ptrOr(s.Spec.Replicas, 1), s.Spec.Template.Labels})
	}
	return w, nil
}

func ptrOr(p *int32, d int32) int32 {
	if p == nil {
		return d
	}
	return *p
}

// workloadOf names the controller of a pod: its Deployment, StatefulSet, ..., or the pod itself.
func (w *workloads) workloadOf(p *corev1.Pod) string {
	c := metav1.GetControllerOf(p)
	if c == nil {
		return "Pod " + p.Namespace + "/" + p.Name
	}
	if c.Kind == "ReplicaSet" {
		if d, ok := w.owners[p.Namespace+"/"+c.Name]; ok {
			return d
		}
	}
	return c.Kind + " " + p.Namespace + "/" + c.Name
}

func active(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// selected returns the active pods a budget selects.
func (w *workloads) selected(pdb *policyv1.PodDisruptionBudget) ([]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	if pdb.Spec.Selector == nil {
		return nil, nil // policy/v1: a budget without a selector selects nothing (an empty one selects all)
	}
	for i := range w.pods {
		p := &w.pods[i]
		if p.Namespace == pdb.Namespace && active(p) && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out, nil
}

func names(set map[string]bool) string {
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	if len(out) > 3 {
		return strings.Join(out[:3], ", ") + fmt.Sprintf(" and %d more", len(out)-3)
	}
	return strings.Join(out, ", ")
}

func checkPDBs(ctx context.Context, in *Input) ([]Finding, error) {
	w, err := listWorkloads(ctx, in)
	if err != nil {
		return nil, err
	}
	var out []Finding
	coveredBy := map[string][]string{} // pod ns/name -> budgets
	podByKey := map[string]*corev1.Pod{}
	for i := range w.pdbs {
		pdb := &w.pdbs[i]
		pods, err := w.selected(pdb)
		if err != nil {
			out = append(out, Finding{Severity: runbook.SeverityError, ObjectRef: Ref("PodDisruptionBudget", pdb.Namespace, pdb.Name), Message: "its selector is invalid: " + err.Error(), Fix: "fix spec.selector"})
			continue
		}
		owners, unhealthy := map[string]bool{}, 0
		for _, p := range pods {
			owners[w.workloadOf(p)] = true
			key := p.Namespace + "/" + p.Name
			coveredBy[key] = append(coveredBy[key], pdb.Name)
			podByKey[key] = p
			if !kube.PodReady(p) {
				unhealthy++
			}
		}
		if len(pods) == 0 {
			out = append(out, Finding{Severity: runbook.SeverityWarning, ObjectRef: Ref("PodDisruptionBudget", pdb.Namespace, pdb.Name),
				Message: "selects no pods: it protects nothing",
				Fix:     "fix spec.selector to match the workload's pod labels, or delete the budget"})
			continue
		}
		expected := pdb.Status.ExpectedPods
		if expected == 0 {
			expected = int32(len(pods))
		}
		if never, why := NeverDrains(pdb, expected); never {
			out = append(out, Finding{Severity: runbook.SeverityError, ObjectRef: Ref("PodDisruptionBudget", pdb.Namespace, pdb.Name),
				Message: fmt.Sprintf("%s: no pod of %s can ever be evicted, so every drain of their nodes blocks forever", why, names(owners)),
				Fix:     "allow one disruption: set maxUnavailable: 1 (or minAvailable below the replica count), or scale the workload up"})
		} else if pdb.Status.ObservedGeneration > 0 && pdb.Status.DisruptionsAllowed == 0 {
			out = append(out, Finding{Severity: runbook.SeverityWarning, ObjectRef: Ref("PodDisruptionBudget", pdb.Namespace, pdb.Name),
				Message: fmt.Sprintf("allows no disruption now (%d healthy, %d needed): drains of %s wait until more pods are Ready", pdb.Status.CurrentHealthy, pdb.Status.DesiredHealthy, names(owners)),
				Fix:     "find out why the pods are not Ready (kubectl describe) before the upgrade starts"})
		}
		if unhealthy > 0 && pdb.Spec.UnhealthyPodEvictionPolicy == nil {
			out = append(out, Finding{Severity: runbook.SeverityWarning, ObjectRef: Ref("PodDisruptionBudget", pdb.Namespace, pdb.Name),
				Message: fmt.Sprintf("%d of its pods are not Ready and unhealthyPodEvictionPolicy is unset: a pod that never becomes Ready blocks the drain of its node", unhealthy),
				Fix:     "set spec.unhealthyPodEvictionPolicy: AlwaysAllow"})
		}
	}
	// Pods under more than one budget: the eviction API refuses them.
	groups := map[string]map[string]bool{}
	for key, pdbs := range coveredBy {
		if len(pdbs) < 2 {
			continue
		}
		sort.Strings(pdbs)
		p := podByKey[key]
		g := p.Namespace + " " + strings.Join(pdbs, ", ")
		if groups[g] == nil {
			groups[g] = map[string]bool{}
		}
		groups[g][w.workloadOf(p)] = true
	}
	for g, owners := range groups {
		ns, pdbs, _ := strings.Cut(g, " ")
		out = append(out, Finding{Severity: runbook.SeverityError, Object: "PodDisruptionBudgets " + ns + "/{" + pdbs + "}",
			Message: fmt.Sprintf("pods of %s are selected by more than one budget: the eviction API refuses to evict them, so their nodes cannot drain", names(owners)),
			Fix:     "make the selectors disjoint so that each pod has one budget"})
	}
	// Replicated workloads without a budget.
	for _, d := range w.deps {
		if d.replicas < 2 {
			continue
		}
		covered := false
		for i := range w.pdbs {
			pdb := &w.pdbs[i]
			if pdb.Namespace != d.namespace {
				continue
			}
			if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err == nil && pdb.Spec.Selector != nil && sel.Matches(d.selector) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, Finding{Severity: runbook.SeverityWarning, ObjectRef: Ref(d.kind, d.namespace, d.name),
				Message: fmt.Sprintf("%d replicas and no PodDisruptionBudget: a drain may evict all of them at once", d.replicas),
				Fix:     "add a PodDisruptionBudget with maxUnavailable: 1 selecting its pods"})
		}
	}
	return out, nil
}
