// Package rollout is the per-node upgrade cycle shared by the canary and nodegroups steps: cordon,
// drain, run the upgrade action, wait until the node is Ready at the target kubelet version,
// uncordon; and the health gates checked between nodes, between groups and during a soak.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
	"github.com/drydock-dev/drydock/steps/exec"
)

// Action is how a node is upgraded once it is drained.
type Action struct {
	// Exec runs this command (Go templates: {{.Node.Name}}, {{.TargetVersion}}) to upgrade the node,
	// e.g. [ssh, "{{.Node.Name}}", sudo, kubeadm, upgrade, node].
	Exec []string `json:"exec,omitempty"`
	// WaitForVersion: the platform upgrades or replaces the node (managed node groups); drydock
	// only waits for it.
	WaitForVersion bool `json:"waitForVersion,omitempty"`
	// Rollback runs per upgraded node when the step is rolled back (templates as in exec).
	Rollback []string `json:"rollback,omitempty"`
	// ReadyTimeout bounds the wait for the node to be Ready at the target version (default 10m).
	ReadyTimeout runbook.Duration `json:"readyTimeout,omitzero"`
	// ExpectedDuration is how long the action takes on one node until the node is Ready at the target:
	// the forecast's figure (drydock plan, the ETA); without it the forecast assumes 2m.
	ExpectedDuration runbook.Duration `json:"expectedDuration,omitzero"`
}

// Validate checks the action.
func (a *Action) Validate(prefix string) []runbook.FieldError {
	var errs []runbook.FieldError
	if len(a.Exec) == 0 && !a.WaitForVersion {
		errs = append(errs, runbook.FieldError{Field: prefix, Message: "say how a node is upgraded: exec: [command...] or waitForVersion: true"})
	}
	if len(a.Exec) > 0 && a.WaitForVersion {
		errs = append(errs, runbook.FieldError{Field: prefix + ".waitForVersion", Message: "give exec or waitForVersion, not both"})
	}
	errs = append(errs, exec.CheckTemplates(prefix+".exec", a.Exec)...)
	errs = append(errs, exec.CheckTemplates(prefix+".rollback", a.Rollback)...)
	return errs
}

func (a *Action) readyTimeout() time.Duration {
	if a.ReadyTimeout.IsZero() {
		return 10 * time.Minute
	}
	return a.ReadyTimeout.Duration
}

// Upgraded says whether the node's kubelet already runs the target version (minor and, when the
// target names one, patch).
func Upgraded(n *corev1.Node, target string) bool {
	want, err := version.ParseGeneric(target)
	if err != nil {
		return false
	}
	got, err := version.ParseGeneric(n.Status.NodeInfo.KubeletVersion)
	if err != nil {
		return false
	}
	if got.Major() != want.Major() || got.Minor() != want.Minor() {
		return false
	}
	return strings.Count(strings.TrimPrefix(target, "v"), ".") < 2 || got.Patch() == want.Patch()
}

// CheckSkew refuses to move kubelets past the apiserver: the control plane goes first.
func CheckSkew(ctx context.Context, env *runbook.Env) error {
	v, err := env.Kube.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("get server version: %w", err)
	}
	server, err := version.ParseGeneric(v.GitVersion)
	if err != nil {
		return fmt.Errorf("server version %q: %w", v.GitVersion, err)
	}
	target, err := version.ParseGeneric(env.Target)
	if err != nil {
		return err
	}
	if target.Major() != server.Major() || target.Minor() > server.Minor() {
		return fmt.Errorf("target %s is newer than the apiserver (%s): a kubelet must never be newer than the apiserver; upgrade the control plane first", env.Target, v.GitVersion)
	}
	return nil
}

// Cycle upgrades one node: cordon, drain, action, wait Ready at the target version, uncordon.
// A node already at the target version is left alone, so a resumed rollout skips it.
func Cycle(ctx context.Context, env *runbook.Env, node string, action Action, opts drain.Options) error {
	_, err := CycleNode(ctx, env, node, action, opts)
	return err
}

// CycleNode is Cycle, and says whether the node was skipped, already at the target (so that
// progress says "already at", not "upgraded").
func CycleNode(ctx context.Context, env *runbook.Env, node string, action Action, opts drain.Options) (skipped bool, err error) {
	return CyclePlanned(ctx, env, node, nil, action, opts)
}

// CyclePlanned is CycleNode with the node's drain planned, and its blockers reported and refused,
// by the caller: nodegroups plans each batch as a whole just before it starts, and planning each of
// its nodes again would read every pod of the cluster once per node (at 15,000 pods and 50 nodes a
// batch, gigabytes for drydock and most of the apiserver's time). planned nil, or another node's
// plan, plans the drain here and refuses it when a blocker is certain.
func CyclePlanned(ctx context.Context, env *runbook.Env, node string, planned *drain.NodePlan, action Action, opts drain.Options) (skipped bool, err error) {
	if env.Done("upgraded/" + node) {
		return false, nil
	}
	n, err := env.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("node %q: %w", node, err)
	}
	if Upgraded(n, env.Target) && kube.NodeReady(n) && !(n.Spec.Unschedulable && n.Annotations[drain.AnnotationCordonedBy] == env.RunID) {
		env.Node(node, runbook.NodeSkipped, "already at "+n.Status.NodeInfo.KubeletVersion)
		return true, env.MarkDone(ctx, "upgraded/"+node)
	}

	if env.Done("drained/"+node) && !n.Spec.Unschedulable && !env.Done("action/"+node) {
		// Drained before, but schedulable again (uncordoned by hand): pods may be back.
		env.Node(node, runbook.NodeWaiting, "was drained, but is schedulable again: draining it again")
		if err := env.Unmark(ctx, "drained/"+node); err != nil {
			return false, err
		}
	}
	if !env.Done("drained/" + node) {
		if planned == nil || planned.Node != node {
			plan, err := drain.NewPlanner(env.Kube, opts, "").Plan(ctx, []string{node})
			if err != nil {
				return false, err
			}
			if err := drain.Refuse(env, plan, opts); err != nil {
				return false, err
			}
			planned = &plan.Nodes[0]
		}
		if err := drain.DrainPlanned(ctx, env, *planned, opts); err != nil {
			return false, err
		}
	}

	if !env.Done("action/" + node) {
		if err := env.Record(ctx, runbook.Change{Kind: "upgrade", Object: "node/" + node, Data: map[string]string{fromVersion: n.Status.NodeInfo.KubeletVersion}}); err != nil {
			return false, err
		}
		if len(action.Exec) > 0 {
			argv, err := exec.Render(env, action.Exec, n)
			if err != nil {
				return false, err
			}
			env.Node(node, runbook.NodeUpgrading, strings.Join(argv, " "))
			if err := exec.RunCommand(ctx, env, argv, n, "", nil); err != nil {
				return false, fmt.Errorf("upgrade node %q: %w", node, err)
			}
		} else {
			env.Node(node, runbook.NodeUpgrading, "waiting for the platform to upgrade it to "+env.Target)
		}
		if err := env.MarkDone(ctx, "action/"+node); err != nil {
			return false, err
		}
	}

	if err := WaitNodeAt(ctx, env, node, action.readyTimeout()); err != nil {
		return false, err
	}
	if err := drain.Uncordon(ctx, env, node); err != nil {
		return false, err
	}
	env.Node(node, runbook.NodeUpgraded, "at "+env.Target)
	return false, env.MarkDone(ctx, "upgraded/"+node)
}

// ErrNodeGone: the node was deleted while drydock waited: the platform replaced it.
var ErrNodeGone = errors.New("node replaced")

// WaitNodeAt watches the node until it is Ready at the target version. A node that is deleted in
// the meantime was replaced by the platform: that counts as done.
func WaitNodeAt(ctx context.Context, env *runbook.Env, node string, timeout time.Duration) error {
	return waitNode(ctx, env, node, timeout, "at "+env.Target, func(n *corev1.Node) bool { return kube.NodeReady(n) && Upgraded(n, env.Target) })
}

// waitNode watches the node until it is as want says (wanted describes it), or is deleted.
func waitNode(ctx context.Context, env *runbook.Env, node string, timeout time.Duration, wanted string, want func(*corev1.Node) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nodes := env.Kube.CoreV1().Nodes()
	sel := fields.OneTermEqualSelector("metadata.name", node).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return nodes.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return nodes.Watch(ctx, o)
		},
	}
	last := "not seen yet"
	gone := false
	check := func(n *corev1.Node) bool {
		last = fmt.Sprintf("kubelet %s, Ready=%v", n.Status.NodeInfo.KubeletVersion, kube.NodeReady(n))
		return want(n)
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Node{}, func(store cache.Store) (bool, error) {
		objs := store.List()
		if len(objs) == 0 {
			gone = true
			return true, nil
		}
		return check(objs[0].(*corev1.Node)), nil
	}, func(ev watch.Event) (bool, error) {
		if ev.Type == watch.Deleted {
			gone = true
			return true, nil
		}
		n, ok := ev.Object.(*corev1.Node)
		return ok && check(n), nil
	})
	if gone {
		env.Progress(fmt.Sprintf("node %s: deleted: replaced by the platform", node), 0, 0)
		return nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("node %q did not come back Ready %s within %s (%s)", node, wanted, timeout, last)
		}
		return fmt.Errorf("watch node %q: %w", node, err)
	}
	return nil
}

// AfterFailure is the failure rule for the nodes of cycles that failed or were interrupted: a node
// whose upgrade action has not started is let go (its drained checkpoint cleared, then uncordoned,
// as drain.LetGo does), so the cluster is as it was and resume drains it again; with keep (the
// step's keepCordoned) it stays cordoned and recorded instead, so resume goes on from it and
// rollback lets it go. A node whose action started stays cordoned and recorded either way, since
// what state it is in is the action's: resume finishes it, rollback undoes it. An admin's cordon is
// never lifted (drain.Uncordon lifts only this run's). err is returned with what could not be
// undone added, each node with the command that does it.
func AfterFailure(ctx context.Context, env *runbook.Env, err error, nodes []string, keep bool) error {
	started := map[string]bool{}
	for _, c := range env.Changes() {
		if c.Kind == "upgrade" {
			started[strings.TrimPrefix(c.Object, "node/")] = true
		}
	}
	var letGo, kept, keptHere []string
	for _, n := range nodes {
		switch {
		case env.Done("upgraded/" + n):
		case started[n]:
			kept = append(kept, n)
		case keep && cordonedHere(env, n):
			keptHere = append(keptHere, n)
		case !keep:
			letGo = append(letGo, n)
		}
	}
	err = drain.LetGoAfter(ctx, env, err, letGo)
	if len(kept) > 0 {
		env.Logf("warning", "node(s) %s stay cordoned: their upgrade action started; `drydock resume %s` finishes them, `drydock rollback %s` undoes them",
			strings.Join(kept, ", "), env.RunID, env.RunID)
	}
	if len(keptHere) > 0 {
		for _, n := range keptHere {
			env.Node(n, runbook.NodeCordoned, "kept cordoned after the failure (keepCordoned)")
		}
		env.Logf("warning", "node(s) %s stay cordoned (keepCordoned): `drydock resume %s` goes on from them; `drydock rollback %s` or `drydock uncordon %s` lets them go",
			strings.Join(keptHere, ", "), env.RunID, env.RunID, strings.Join(keptHere, " "))
	}
	return err
}

// cordonedHere says whether this step recorded cordoning node (an admin's cordon is not recorded).
func cordonedHere(env *runbook.Env, node string) bool {
	for _, c := range env.Changes() {
		if c.Kind == "cordon" && c.Object == "node/"+node {
			return true
		}
	}
	return false
}

// WontUndo says what Undo leaves: the upgraded nodes, when the action has no rollback command.
func (a Action) WontUndo() string {
	if len(a.Rollback) == 0 {
		return "the nodes it upgraded stay upgraded: the action has no rollback command (it uncordons what it cordoned)"
	}
	return ""
}

// Leave says why a node step's plan leaves a node alone, or "" when the step will upgrade it:
// upgraded earlier in this run, upgraded by an earlier step of the runbook first, or already Ready
// at the target (as Cycle skips it).
func Leave(env *runbook.Env, n *corev1.Node) string {
	switch {
	case env.Done("upgraded/" + n.Name):
		return "upgraded earlier in this run"
	case env.PlannedBefore[n.Name] != "":
		return "upgraded by step " + env.PlannedBefore[n.Name] + " first"
	case Upgraded(n, env.Target) && kube.NodeReady(n) && !(n.Spec.Unschedulable && n.Annotations[drain.AnnotationCordonedBy] == env.RunID):
		return "already at " + n.Status.NodeInfo.KubeletVersion
	}
	return ""
}
