package drain

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// explainer answers "why does this budget refuse?" for the pods of a drain that wait on one: it
// lists the budget's pods (at most once per interval per budget, shared by every pod and every drain
// waiting on it: the list is kept with the budgets) and names those that do not count as healthy,
// where they are and why.
type explainer struct {
	client kubernetes.Interface
	bud    *budgets
	every  time.Duration
	// began is when the drain began: a pod of the budget made since is a replacement.
	began time.Time
}

type listedPods struct {
	at   time.Time
	pods []corev1.Pod
	err  error
}

func newExplainer(client kubernetes.Interface, bud *budgets, every time.Duration) *explainer {
	return &explainer{client: client, bud: bud, every: every, began: time.Now()}
}

// chain explains budget key for the pod blocked (nil when it is not known); nil when the budget is
// not in the watch.
func (x *explainer) chain(ctx context.Context, key string, blocked *corev1.Pod) *runbook.BudgetChain {
	obj, ok, _ := x.bud.store.GetByKey(key)
	if !ok {
		return nil
	}
	pdb := obj.(*policyv1.PodDisruptionBudget)
	pods, err := x.pods(ctx, key, pdb)
	c := explain(pdb, pods, blocked, x.began, time.Now())
	if err != nil {
		c.Unhealthy = append(c.Unhealthy, runbook.UnhealthyPod{Pod: "?", Reason: "could not list the budget's pods: " + err.Error()})
	}
	return c
}

func (x *explainer) pods(ctx context.Context, key string, pdb *policyv1.PodDisruptionBudget) ([]corev1.Pod, error) {
	b := x.bud
	b.listMu.Lock()
	l, ok := b.listed[key]
	b.listMu.Unlock()
	if ok && time.Since(l.at) < x.every {
		return l.pods, l.err
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector of PDB %s: %w", key, err)
	}
	// Drains asking at the same moment share one list.
	v, _, _ := b.listing.Do(key, func() (any, error) {
		var list *corev1.PodList
		err := kube.Retry(ctx, nil, func(ctx context.Context) error {
			var err error
			list, err = x.client.CoreV1().Pods(pdb.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String(), ResourceVersion: "0"})
			return err
		})
		l := listedPods{at: time.Now(), err: err}
		if err == nil {
			l.pods = list.Items
		}
		if ctx.Err() == nil { // not an error of this caller's own end, which the others would get
			b.listMu.Lock()
			if b.listed == nil {
				b.listed = map[string]listedPods{}
			}
			b.listed[key] = l
			b.listMu.Unlock()
		}
		return l, nil
	})
	l = v.(listedPods)
	return l.pods, l.err
}

// startupGrace is how long a replacement may take to become Ready before the chain of the budget
// waiting on it offers a fix: a replacement starting and an evicted pod terminating are the ordinary
// waits of a drain (seconds), not something to change a budget for.
const startupGrace = time.Minute

// explain is the chain of pdb over its pods: the pods that do not count as healthy (stuck ones first)
// and, unless the budget is at zero only for the ordinary waits of a drain that began at began, the
// smallest change to the budget that lets blocked go.
func explain(pdb *policyv1.PodDisruptionBudget, pods []corev1.Pod, blocked *corev1.Pod, began, now time.Time) *runbook.BudgetChain {
	key := pdb.Namespace + "/" + pdb.Name
	c := &runbook.BudgetChain{PDB: key, DesiredHealthy: pdb.Status.DesiredHealthy, CurrentHealthy: pdb.Status.CurrentHealthy,
		ExpectedPods: pdb.Status.ExpectedPods, DisruptionsAllowed: pdb.Status.DisruptionsAllowed}
	for i := range pods {
		p := &pods[i]
		u := runbook.UnhealthyPod{Pod: p.Namespace + "/" + p.Name, Node: p.Spec.NodeName, Since: p.CreationTimestamp.Time}
		if p.DeletionTimestamp != nil {
			u.Reason, u.Since, u.Terminating = "terminating (evicted or deleted)", p.DeletionTimestamp.Time, true
			if held := heldBy(p, now); held != "" {
				u.Reason = "terminating, " + held
			}
		} else if u.Reason, u.Stuck = kube.PodProblem(p); u.Reason == "" {
			continue
		}
		c.Unhealthy = append(c.Unhealthy, u)
	}
	sort.SliceStable(c.Unhealthy, func(i, j int) bool {
		if c.Unhealthy[i].Stuck != c.Unhealthy[j].Stuck {
			return c.Unhealthy[i].Stuck
		}
		return c.Unhealthy[i].Pod < c.Unhealthy[j].Pod
	})
	if ordinaryWait(c, began, now) {
		return c
	}
	if r, ok := relaxFor(pdb, blocked); ok {
		c.Fix, c.Undo, c.FixNote = r.command(pdb, r.Set), r.command(pdb, r.Restore), r.What
	}
	return c
}

// ordinaryWait says whether c is at zero only for what passes by itself: evictions the budget has
// granted and not counted yet, pods terminating, and replacements made since the drain began that
// are not stuck and younger than startupGrace.
func ordinaryWait(c *runbook.BudgetChain, began, now time.Time) bool {
	if len(c.Unhealthy) == 0 {
		return c.Granted() > 0
	}
	for _, u := range c.Unhealthy {
		if u.Terminating {
			continue
		}
		if u.Stuck || u.Since.Before(began) || now.Sub(u.Since) >= startupGrace {
			return false
		}
	}
	return true
}

// relaxation is a temporary change to a budget that lets a drain go on: the spec fields it sets and
// those that restore the budget as it was (null where a field was not set).
type relaxation struct {
	Set     map[string]any `json:"set"`
	Restore map[string]any `json:"restore"`
	What    string         `json:"what"`
}

// relaxFor is the smallest change to pdb that lets a pod it holds be evicted. It is the budget's, the
// same whichever of its pods is passed (the terminal's proposal, the chain every blocked pod shows and
// what the stall detector applies must agree): below its budget (fewer healthy than desired), an
// unhealthy pod can go only with unhealthyPodEvictionPolicy AlwaysAllow, which keeps the Ready pods
// protected; otherwise, or when it is set already, one allowed disruption now (minAvailable lower,
// or maxUnavailable higher, as a number, by as much as the budget is short plus one).
func relaxFor(pdb *policyv1.PodDisruptionBudget, _ *corev1.Pod) (relaxation, bool) {
	spec := pdb.Spec
	always := spec.UnhealthyPodEvictionPolicy != nil && *spec.UnhealthyPodEvictionPolicy == policyv1.AlwaysAllow
	short := max(0, int(pdb.Status.DesiredHealthy-pdb.Status.CurrentHealthy))
	if short > 0 && !always {
		var was any
		if spec.UnhealthyPodEvictionPolicy != nil {
			was = string(*spec.UnhealthyPodEvictionPolicy)
		}
		return relaxation{
			Set:     map[string]any{"unhealthyPodEvictionPolicy": string(policyv1.AlwaysAllow)},
			Restore: map[string]any{"unhealthyPodEvictionPolicy": was},
			What:    "lets pods of the budget that are not Ready be evicted whatever its count; Ready pods stay protected",
		}, true
	}
	expected := int(pdb.Status.ExpectedPods)
	switch {
	case spec.MaxUnavailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(spec.MaxUnavailable, expected, true)
		if err != nil {
			return relaxation{}, false
		}
		return relaxation{
			Set:     map[string]any{"maxUnavailable": n + 1 + short},
			Restore: map[string]any{"maxUnavailable": intOrString(*spec.MaxUnavailable)},
			What:    fmt.Sprintf("%s (maxUnavailable %s → %d) while its unhealthy pods stay unhealthy", oneMore(short), spec.MaxUnavailable.String(), n+1+short),
		}, true
	case spec.MinAvailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(spec.MinAvailable, expected, true)
		if err != nil || n <= 0 {
			return relaxation{}, false
		}
		to := max(0, n-1-short)
		return relaxation{
			Set:     map[string]any{"minAvailable": to},
			Restore: map[string]any{"minAvailable": intOrString(*spec.MinAvailable)},
			What:    fmt.Sprintf("%s (minAvailable %s → %d) while its unhealthy pods stay unhealthy", oneMore(short), spec.MinAvailable.String(), to),
		}, true
	}
	return relaxation{}, false
}

// oneMore says what a count one above what the budget is short of allows.
func oneMore(short int) string {
	if short == 0 {
		return "allows one more pod of the budget to be down"
	}
	return fmt.Sprintf("lets one pod of the budget go now, though it is %d healthy short of its budget", short)
}

func intOrString(v intstr.IntOrString) any {
	if v.Type == intstr.String {
		return v.StrVal
	}
	return v.IntValue()
}

// command is the kubectl patch that sets spec fields on pdb.
func (relaxation) command(pdb *policyv1.PodDisruptionBudget, spec map[string]any) string {
	b, _ := json.Marshal(map[string]any{"spec": spec})
	return fmt.Sprintf("kubectl patch pdb %s -n %s --type=merge -p '%s'", pdb.Name, pdb.Namespace, b)
}

// StalledError is the cause of a drain the stall detector stopped: a budget it waits on has allowed
// no disruption for longer than stallTimeout, and pods of the budget that are not healthy are not
// replacements still starting.
type StalledError struct {
	Node  string
	After time.Duration
	Chain *runbook.BudgetChain
	// Relax is why drydock did not relax the budget although allowBudgetRelax allowed it.
	Relax error
}

func (e *StalledError) Error() string {
	s := fmt.Sprintf("stalled: PDB %s has allowed no disruption for %s: %s", e.Chain.PDB, e.After, e.Chain.Short())
	if e.Relax != nil {
		s += fmt.Sprintf(" (not relaxed: %v)", e.Relax)
	}
	return s
}

func (e *StalledError) Unwrap() error { return e.Relax }

// heldBy says which finalizers keep a pod whose deletion is due (its grace period over) from
// going: "held by finalizer(s) a, b"; "" when none does, or the grace period is not over yet.
func heldBy(p *corev1.Pod, now time.Time) string {
	if p == nil || p.DeletionTimestamp == nil || len(p.Finalizers) == 0 || now.Before(p.DeletionTimestamp.Time) {
		return ""
	}
	return "held by finalizer(s) " + strings.Join(p.Finalizers, ", ")
}

// stalled says whether chain, at zero since zeroSince, is a stall at now: zero for at least after,
// and a pod of the budget not healthy for at least after (not merely a replacement starting).
func stalled(c *runbook.BudgetChain, zeroSince, now time.Time, after time.Duration) bool {
	if c == nil || c.DisruptionsAllowed > 0 || zeroSince.IsZero() || now.Sub(zeroSince) < after {
		return false
	}
	if len(c.Unhealthy) == 0 {
		// Every pod of the budget is healthy and it still allows none, and none was granted: its
		// spec forbids any (maxUnavailable: 0, or minAvailable as many as it has, set or tightened
		// during the drain). Waiting does not change that.
		return c.Granted() == 0
	}
	for _, u := range c.Unhealthy {
		if !u.Terminating && (u.Stuck || now.Sub(u.Since) >= after) {
			return true
		}
	}
	return false
}
