package printer

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drydock-dev/drydock/runbook"
)

// TestJSONEncodesTheEventStructs: every event type is one JSON object per line whose "type" is its
// Type(), first, followed by the common and the event's own fields.
func TestJSONEncodesTheEventStructs(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	meta := runbook.Meta{Time: at, RunID: "r1", Step: "s"}
	events := []runbook.Event{
		&runbook.RunStarted{Meta: meta, Runbook: "rb", Target: "v1.37.1", Steps: []string{"s"}},
		&runbook.StepStarted{Meta: meta, Kind: "drain", Attempt: 1},
		&runbook.StepProgress{Meta: meta, Message: "m", Done: 1, Total: 2},
		&runbook.StepFinding{Meta: meta, Finding: runbook.Finding{Severity: runbook.SeverityError, Object: "pod/a", Message: "x"}},
		&runbook.StepPaused{Meta: meta, When: "after"},
		&runbook.StepFinished{Meta: meta, Duration: time.Second},
		&runbook.StepFailed{Meta: meta, Error: "boom"},
		&runbook.NodeChanged{Meta: meta, Node: "n1", State: "cordoned"},
		&runbook.PodChanged{Meta: meta, Node: "n1", Pod: "ns/p", State: "evicted"},
		&runbook.RollbackPointSet{Meta: meta, Point: runbook.RollbackPoint{Kind: runbook.RollbackPointVeleroBackup, Namespace: "velero", Name: "b"}},
		&runbook.RollbackStarted{Meta: meta},
		&runbook.RollbackFinished{Meta: meta},
		&runbook.LogLine{Meta: meta, Stream: "stdout", Line: "<ok> & done"},
		&runbook.RunPlanned{Meta: meta, Steps: []runbook.NodePlan{{Step: "s", Kind: "drain", Batches: []runbook.NodeBatch{{Nodes: []runbook.PlannedNode{{Node: "n1", Evict: 2}}}}}}},
		&runbook.RunSummary{Meta: meta, Status: runbook.RunSucceeded, Pods: 2, Groups: []runbook.GroupSummary{{Step: "s", Nodes: []runbook.NodeSummary{{Node: "n1"}}}}},
		&runbook.RunFinished{Meta: meta, Status: runbook.RunSucceeded},
		&runbook.PauseAnswered{Meta: meta, When: "after", Decision: "continue"},
		&runbook.UndoPlanned{Meta: meta, Lines: []string{"node n1: cordon, drain under its budgets, run `x`"}},
	}
	var buf bytes.Buffer
	p := NewJSON(&buf)
	for _, e := range events {
		p.Emit(e)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d lines for %d events", len(lines), len(events))
	}
	for i, l := range lines {
		want := `{"type":"` + events[i].Type() + `","time":"2026-12-01T12:00:00Z","run":"r1","step":"s"`
		if !strings.HasPrefix(l, want) {
			t.Errorf("line %d: %s\nwant it to start %s", i, l, want)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("line %d is not JSON: %v", i, err)
		}
	}
	if !strings.Contains(lines[12], `"line":"\u003cok\u003e \u0026 done"`) {
		t.Errorf("log line: %s", lines[12])
	}
}

// TestTextIsOneLinePerEvent: the plain printer writes the time and Format's line.
func TestTextIsOneLinePerEvent(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	NewText(&buf).Emit(&runbook.StepStarted{Meta: runbook.Meta{Time: time.Now(), RunID: "r1", Step: "a"}, Kind: "exec", Attempt: 2})
	if got := buf.String(); !strings.HasSuffix(got, " step a: started (exec, attempt 2: re-entered after an interruption)\n") {
		t.Fatalf("got %q", got)
	}
}

// TestDescribeSummary: the end of a run names each budget relaxed and whether it is back, and sets
// each forecast against what its step took with the pauses left out, saying how long they were; a
// budget's numbers read as words that add up, in the summary and in a blocked pod's line.
func TestDescribeSummary(t *testing.T) {
	t.Parallel()
	meta := runbook.Meta{Time: time.Now(), RunID: "r1", Step: "fleet"}
	chain := &runbook.BudgetChain{PDB: "shop/db", DesiredHealthy: 7, CurrentHealthy: 8, ExpectedPods: 9}
	for _, tc := range []struct {
		name string
		ev   runbook.Event
		want []string
	}{
		{"relaxations", &runbook.RunSummary{Meta: meta, Relaxed: []runbook.RelaxSummary{
			{Step: "fleet", PDB: "shop/db", Node: "n1", What: "allows one more pod of the budget to be down (minAvailable 7 → 6)", Restored: true},
			{Step: "fleet", PDB: "shop/web", Node: "n2", What: "lets pods of the budget that are not Ready be evicted"}}},
			[]string{"budget relaxed: PDB shop/db for node n1 (step fleet): allows one more pod of the budget to be down (minAvailable 7 → 6); restored",
				"budget relaxed: PDB shop/web for node n2 (step fleet): lets pods of the budget that are not Ready be evicted; NOT restored yet"}},
		{"forecast without pauses", &runbook.RunSummary{Meta: meta, Forecast: []runbook.ForecastCheck{
			{Step: "fleet", Forecast: runbook.Est(5*time.Minute, 5*time.Minute, 5*time.Minute), Took: runbook.Duration{Duration: 6 * time.Minute}, Paused: runbook.Duration{Duration: 4 * time.Minute}},
			{Step: "addons", Forecast: runbook.Est(time.Minute, time.Minute, time.Minute), Took: runbook.Duration{Duration: time.Minute}}}},
			[]string{"forecast against actual: fleet ~5m0s, took 6m0s (not counting 4m0s at pause points), +20%",
				"forecast against actual: addons ~1m0s, took 1m0s, +0%",
				"these steps together ~6m0s, took 7m0s (not counting 4m0s at pause points), +17%"}},
		{"a blocked pod's line", &runbook.PodChanged{Meta: meta, Node: "n1", Pod: "shop/db-0", State: runbook.PodBlocked, PDB: "shop/db", Chain: chain,
			Reason: "waits for PDB shop/db: needs 7 healthy, has 8"},
			[]string{"shop/db-0 blocked: waits for PDB shop/db: needs 7 healthy, has 8, 1 of them just evicted"}},
	} {
		text := strings.Join(Lines(tc.ev), "\n")
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: lacks %q:\n%s", tc.name, w, text)
			}
		}
	}
}

// TestDescribeBlockedSaysEachBlockerAndItsFix: what refused a run is each step that may not proceed,
// its heading, then one BLOCK line per certain blocker with its fix (no warnings, no node lists, no
// step that proceeds anyway).
func TestDescribeBlockedSaysEachBlockerAndItsFix(t *testing.T) {
	t.Parallel()
	node := func(name string, fs ...runbook.Finding) runbook.PlannedNode {
		return runbook.PlannedNode{Node: name, Evict: 1, Blockers: fs}
	}
	block := runbook.Finding{Severity: runbook.SeverityError, Object: "pod/shop/solo", Message: "shop/solo has no controller", Hint: "--force (force: true) to evict it anyway"}
	wait := runbook.Finding{Severity: runbook.SeverityWarning, Object: "pod/shop/web-1", Message: "PDB shop/web allows 0 disruptions now"}
	plans := []runbook.NodePlan{
		{Step: "fleet", Kind: "nodegroups", Batches: []runbook.NodeBatch{{Nodes: []runbook.PlannedNode{node("a", wait), node("b", block)}}}},
		{Step: "late", Kind: "nodegroups", Proceed: true, Batches: []runbook.NodeBatch{{Nodes: []runbook.PlannedNode{node("c", block)}}}},
		{Step: "clear", Kind: "drain", Batches: []runbook.NodeBatch{{Nodes: []runbook.PlannedNode{node("d", wait)}}}},
	}
	want := []string{
		"step fleet (nodegroups): 2 node(s) in 1 batch(es); 1 certain blocker(s)",
		"    BLOCK b pod/shop/solo: shop/solo has no controller (fix: --force (force: true) to evict it anyway)",
	}
	if got := DescribeBlocked(plans); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRunHistoryIsAShortBlock: a resumed run's history prints as one line for the earlier sessions'
// nodes and one per step with evidence, not one per old event; the summary tells the session's
// time from the whole run's.
func TestRunHistoryIsAShortBlock(t *testing.T) {
	t.Parallel()
	meta := runbook.Meta{Time: time.Now(), RunID: "r1"}
	h := &runbook.RunHistory{Meta: meta, Sessions: 2, Pods: 5,
		Nodes: []runbook.NodeHistory{{Step: "canary", Node: "n1", State: runbook.NodeUpgraded}, {Step: "fleet", Node: "n1", State: runbook.NodeSkipped},
			{Step: "fleet", Node: "n2", State: runbook.NodeUpgraded}, {Step: "fleet", Node: "n3", State: runbook.NodeDraining}},
		Steps: []runbook.StepHistory{{Step: "canary", Progress: []string{"canary node n1: of 4 candidates", "soak: every gate green"}}, {Step: "backup"}}}
	for _, tc := range []struct {
		name string
		ev   runbook.Event
		want []string
	}{
		{"history", h, []string{"run r1: earlier sessions (2): 2 node(s) upgraded: n1, n2; 5 pod(s) moved",
			"run r1: earlier:   step canary: canary node n1: of 4 candidates; soak: every gate green"}},
		{"summary of a resumed run", &runbook.RunSummary{Meta: meta, Status: runbook.RunSucceeded, Took: runbook.Duration{Duration: time.Minute}, RunTook: runbook.Duration{Duration: time.Hour}},
			[]string{"run r1: succeeded after 1m0s (this session; the whole run 1h0m0s): 0 node(s) upgraded, 0 skipped, 0 pod(s) moved"}},
	} {
		lines := Lines(tc.ev)
		if !slices.Equal(lines, tc.want) {
			t.Errorf("%s:\n%s\nwant\n%s", tc.name, strings.Join(lines, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}
