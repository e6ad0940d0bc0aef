package main

import (
	"strings"
	"testing"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
	"github.com/drydock-dev/drydock/steps/canary"
	"github.com/drydock-dev/drydock/steps/rollout"
)

// TestRollbackPreviewNamesNodesAndCommands: before a person confirms a rollback (and with
// --dry-run), drydock names every node it rolls back, newest first, the command it runs there, and
// that each goes through cordon, drain and the health gates; not only the step names.
func TestRollbackPreviewNamesNodesAndCommands(t *testing.T) {
	t.Parallel()
	rb, err := runbook.Build("test", runbook.Runbook{Metadata: runbook.Metadata{Name: "up"}, Spec: runbook.Spec{TargetVersion: "v1.37.1",
		Steps: []runbook.StepSpec{{Name: "canary", Step: &canary.Step{Node: "n1", Action: rollout.Action{
			Exec: []string{"upgrade", "{{.Node.Name}}"}, Rollback: []string{"ssh", "{{.Node.Name}}", "downgrade", "--from", "{{.TargetVersion}}"}}}}}}}, steps.Registry)
	if err != nil {
		t.Fatal(err)
	}
	st := &runbook.RunState{ID: "r1", Target: "v1.37.1", Steps: []runbook.StepState{{Name: "canary", Kind: "canary", Status: runbook.StatusDone, Changes: []runbook.Change{
		{Kind: "canary", Object: "n1"}, {Kind: "cordon", Object: "node/n1"}, {Kind: "upgrade", Object: "node/n1", Data: map[string]string{"from": "v1.36.3"}},
		{Kind: "upgrade", Object: "node/n2"}}}}}
	will, wont := undoPreview(st, rb, []string{"canary"})
	want := []string{
		"step canary: node n2: cordon, drain under its budgets, run `ssh n2 downgrade --from v1.37.1`, wait Ready at its version before the upgrade, uncordon, health gates",
		"step canary: node n1: cordon, drain under its budgets, run `ssh n1 downgrade --from v1.37.1`, wait Ready at v1.36.3, uncordon, health gates",
	}
	if strings.Join(will, "\n") != strings.Join(want, "\n") || len(wont) != 0 {
		t.Errorf("preview:\n%s\nwant:\n%s\nnot undone: %v", strings.Join(will, "\n"), strings.Join(want, "\n"), wont)
	}
}
