package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
	"github.com/drydock-dev/drydock/steps/exec"
)

// fromVersion is the key, in an "upgrade" change's data, of the kubelet version the node had before.
const fromVersion = "from"

// Undo rolls back what Cycle did on the nodes recorded by env, newest first, each through the same
// cycle as the upgrade: planned and refused on a certain blocker, cordoned, drained under its
// budgets, the rollback command, Ready again at the version it had, uncordoned, the health gates
// from the step's baseline, and a pause when a person asks for one. A rollback command run under
// running pods, node after node in seconds, is a fleet-wide outage; this is not. Then it uncordons
// what this run cordoned and restores what budgets it relaxed.
func Undo(ctx context.Context, env *runbook.Env, action Action, opts drain.Options, health Health) error {
	return undo(ctx, env, action, opts, health, false)
}

// UndoFailed is Undo after the step failed (a failed canary, rolled back at once): with keep (the
// step's keepCordoned) every node the step cordoned stays cordoned and recorded — a rolled-back
// node too, once Ready at its old version — and is named with the command that lets it go
// (`drydock uncordon`: the step counts as rolled back, so a later `drydock rollback` passes it by).
func UndoFailed(ctx context.Context, env *runbook.Env, action Action, opts drain.Options, health Health, keep bool) error {
	return undo(ctx, env, action, opts, health, keep)
}

func undo(ctx context.Context, env *runbook.Env, action Action, opts drain.Options, health Health, keep bool) error {
	changes := env.Changes()
	if len(changes) == 0 {
		return runbook.ErrNothingToUndo
	}
	var gates *Gates
	defer func() {
		if gates != nil {
			gates.Stop()
		}
	}()
	var errs []error
	var kept []string
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		node := strings.TrimPrefix(c.Object, "node/")
		switch c.Kind {
		case "upgrade":
			if env.Done("undone/" + node) {
				continue
			}
			if len(action.Rollback) == 0 {
				// Said, not passed over: the node stays upgraded, and the run ends partly rolled back.
				if err := env.Keep(ctx, runbook.Kept{Object: "node/" + node, Reason: "left at " + env.Target + ": the upgrade action has no rollback command"}); err != nil {
					return err
				}
				continue
			}
			if gates == nil {
				// A gate of the upgrade that never passed (the canary failed in it) is not waited on
				// again: the rollback is the answer to it. Each node's own gate runs before the node
				// counts as undone, so a rollback run again after a crash re-checks it anyway.
				if err := forgetPendingGate(ctx, env); err != nil {
					return err
				}
				var err error
				if gates, err = NewGates(ctx, env, health); err != nil {
					return fmt.Errorf("roll back node %q: %w", node, err)
				}
			}
			if err := undoNode(ctx, env, node, c.Data[fromVersion], action, opts, gates, keep); err != nil {
				return err
			}
		case "cordon":
			if keep {
				kept = append(kept, node)
				continue
			}
			if err := drain.LetGo(ctx, env, node); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Budgets relaxed for a node and not restored yet (a crash in between) go back too.
	if err := drain.RestoreBudgets(ctx, env, ""); err != nil {
		errs = append(errs, err)
	}
	if len(kept) > 0 {
		for _, n := range kept {
			env.Node(n, runbook.NodeCordoned, "kept cordoned after the failure (keepCordoned)")
		}
		env.Logf("warning", "node(s) %s stay cordoned (keepCordoned): `drydock uncordon %s` lets them go",
			strings.Join(kept, ", "), strings.Join(kept, " "))
	}
	return errors.Join(errs...)
}

// undoNode rolls one node back through the upgrade's cycle; each stage is checkpointed, so a
// rollback run again after a crash goes on where it stopped. With keep the node stays cordoned once
// back (its "cordon" change, kept, names it).
func undoNode(ctx context.Context, env *runbook.Env, node, from string, action Action, opts drain.Options, gates *Gates, keep bool) error {
	n, err := env.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("roll back node %q: %w", node, err)
	}
	if !env.Done("undo-drained/"+node) && !env.Done("undo-action/"+node) {
		plan, err := drain.PlannerFor(env, opts).Plan(ctx, []string{node})
		if err != nil {
			return fmt.Errorf("roll back node %q: plan its drain: %w", node, err)
		}
		if err := drain.Refuse(env, plan, opts); err != nil {
			return fmt.Errorf("roll back node %q: %w", node, err)
		}
		if err := drain.DrainPlanned(ctx, env, plan.Nodes[0], opts); err != nil {
			return fmt.Errorf("roll back node %q: %w", node, err)
		}
		if err := env.MarkDone(ctx, "undo-drained/"+node); err != nil {
			return err
		}
	}
	if !env.Done("undo-action/" + node) {
		argv, err := exec.Render(env, action.Rollback, n)
		if err != nil {
			return err
		}
		env.Node(node, runbook.NodeUpgrading, "rollback: "+strings.Join(argv, " "))
		if err := exec.RunCommand(ctx, env, argv, n, "", nil); err != nil {
			return fmt.Errorf("roll back node %q: %w", node, err)
		}
		if err := env.MarkDone(ctx, "undo-action/"+node); err != nil {
			return err
		}
	}
	back := func(n *corev1.Node) bool {
		if from != "" {
			return kube.NodeReady(n) && n.Status.NodeInfo.KubeletVersion == from
		}
		return kube.NodeReady(n) && !Upgraded(n, env.Target) // a journal from before the version was kept
	}
	if err := waitNode(ctx, env, node, action.readyTimeout(), "at "+orBefore(from), back); err != nil {
		return fmt.Errorf("roll back node %q: %w", node, err)
	}
	if !keep {
		if err := drain.Uncordon(ctx, env, node); err != nil {
			return err
		}
	}
	env.Node(node, runbook.NodeUpgraded, "rolled back to "+orBefore(from))
	if err := gates.Gate(ctx, "after rolling back node "+node, node); err != nil {
		return fmt.Errorf("roll back node %q: %w", node, err)
	}
	if err := env.MarkDone(ctx, "undone/"+node); err != nil {
		return err
	}
	return env.PauseIfRequested(ctx, "undone/"+node, fmt.Sprintf("paused at your request after rolling back node %s", node))
}

func orBefore(from string) string {
	if from == "" {
		return "its version before the upgrade"
	}
	return from
}

// DescribeUndo says, before a person confirms, what Undo will do, node by node, newest first.
func DescribeUndo(action Action, changes []runbook.Change, target, runID, step string) []string {
	var out []string
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		if c.Kind != "upgrade" {
			continue
		}
		node := strings.TrimPrefix(c.Object, "node/")
		if len(action.Rollback) == 0 {
			out = append(out, fmt.Sprintf("node %s: left at %s (no rollback command)", node, target))
			continue
		}
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}
		cmd := strings.Join(action.Rollback, " ")
		if argv, err := exec.RenderPreview(action.Rollback, n, target, runID, step); err == nil {
			cmd = strings.Join(argv, " ")
		}
		out = append(out, fmt.Sprintf("node %s: cordon, drain under its budgets, run `%s`, wait Ready at %s, uncordon, health gates", node, cmd, orBefore(c.Data[fromVersion])))
	}
	return out
}
