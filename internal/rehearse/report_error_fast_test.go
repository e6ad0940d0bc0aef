package rehearse

import (
	"fmt"
	"strings"
	"testing"

	"github.com/drydock-dev/drydock/runbook"
)

// TestReportErrorListsBlockers: a rehearsal refused by its plan names each blocker and its fix in
// the report, not only "listed above" (the rehearsal's screen is gone by then).
func TestReportErrorListsBlockers(t *testing.T) {
	plan := runbook.NodePlan{Step: "fleet", Batches: []runbook.NodeBatch{{Nodes: []runbook.PlannedNode{{Node: "n1",
		Blockers: []runbook.Finding{{Severity: runbook.SeverityError, Object: "pod/rh/web-1", Message: "would not fit", Hint: "add a node"}}}}}}}
	err := fmt.Errorf("runbook %q: %w", "rh", &runbook.BlockedPlanError{Plans: []runbook.NodePlan{plan}, Listed: true})
	got := reportError(err)
	if !strings.Contains(got, `they were: step "fleet": pod/rh/web-1: would not fit (fix: add a node)`) {
		t.Fatalf("reportError = %q", got)
	}
}
