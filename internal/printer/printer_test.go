package printer

import (
	"bytes"
	"encoding/json"
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
