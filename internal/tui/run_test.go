package tui

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/drydock-dev/drydock/runbook"
)

// TestRefusedPlanStaysOnTheTerminal: a drain that its plan refuses closes the screen by itself (no
// one to press q); what is left on the terminal after the screen (the normal screen and its
// scrollback, not the alternate screen that is gone) names each blocker with its fix, so that the
// error's "listed above" points at output that is there.
func TestRefusedPlanStaysOnTheTerminal(t *testing.T) {
	t.Parallel()
	block := runbook.Finding{Severity: runbook.SeverityError, Object: "pod/shop/db-0", Message: "PDB shop/db can never allow an eviction", Hint: "allow at least one disruption: e.g. maxUnavailable: 1"}
	plan := runbook.NodePlan{Step: "drain", Kind: "drain", Batches: []runbook.NodeBatch{{Nodes: []runbook.PlannedNode{
		{Node: "n1", Evict: 1, Blockers: []runbook.Finding{block, {Severity: runbook.SeverityWarning, Object: "pod/shop/web-1", Message: "may wait"}}}}}}}
	var out bytes.Buffer
	err := Run(context.Background(), Options{
		Info: Info{Command: "drain"}, In: strings.NewReader(""), Out: &out, QuitWhenDone: true,
		ProgramOptions: []tea.ProgramOption{tea.WithWindowSize(100, 30)},
	}, func(_ context.Context, sink runbook.Sink, _ runbook.Decider) error {
		sink.Emit(&runbook.RunPlanned{Meta: runbook.Meta{Time: time.Now()}, Steps: []runbook.NodePlan{plan}})
		return fmt.Errorf("runbook %q: %w", "drain", &runbook.BlockedPlanError{Plans: []runbook.NodePlan{plan}, Listed: true, Drain: true})
	})
	if err == nil || !strings.Contains(err.Error(), "listed above") {
		t.Fatalf("err = %v", err)
	}
	// What the terminal keeps: everything after the alternate screen was left.
	const leaveAltScreen = "\x1b[?1049l"
	i := strings.LastIndex(out.String(), leaveAltScreen)
	if i < 0 {
		t.Fatalf("the screen was never left: %q", out.String())
	}
	left := out.String()[i+len(leaveAltScreen):]
	want := "BLOCK n1 pod/shop/db-0: PDB shop/db can never allow an eviction (fix: allow at least one disruption: e.g. maxUnavailable: 1)"
	if !strings.Contains(left, want) || !strings.Contains(left, "step drain (drain)") {
		t.Errorf("left on the terminal after the screen closed:\n%s\nwant the blocker and its fix: %s", left, want)
	}
}
