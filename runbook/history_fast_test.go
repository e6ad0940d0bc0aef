package runbook

// The fast tier for a run's history: the event log of earlier sessions read back, typed (a torn
// last line and unknown types left out), and the summary of a resumed session covering the run.

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var h0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

func hm(step string, sec int) Meta {
	return Meta{Time: h0.Add(time.Duration(sec) * time.Second), RunID: "r1", Step: step}
}

// firstSession is a first session: the canary upgraded n1 (group general) with its evidence, the
// nodegroups step n2, and then the process died.
func firstSession() []Event {
	return []Event{
		&RunStarted{Meta: hm("", 0), Runbook: "upgrade", Target: "v1.37.1", Steps: []string{"canary", "fleet"}},
		&StepStarted{Meta: hm("canary", 1), Kind: "canary", Attempt: 1},
		&StepProgress{Meta: hm("canary", 2), Message: "choosing the least disruptive node"},
		&NodeChanged{Meta: hm("canary", 3), Node: "n1", Group: "general", State: NodeCordoned},
		&PodChanged{Meta: hm("canary", 4), Node: "n1", Pod: "shop/web-1", State: PodGone, Done: 1, Total: 1},
		&NodeChanged{Meta: hm("canary", 33), Node: "n1", Group: "general", State: NodeUpgraded, Detail: "at v1.37.1"},
		&StepProgress{Meta: hm("canary", 34), Message: "canary node n1: of 4 candidates, the fewest pods to move (1)"},
		&GatesChanged{Meta: hm("canary", 35), Gates: []GateState{{Name: "pods", OK: true}}},
		&StepProgress{Meta: hm("canary", 40), Message: "soak: every gate green for 5m"},
		&StepFinished{Meta: hm("canary", 41), Duration: 40 * time.Second},
		&StepStarted{Meta: hm("fleet", 42), Kind: "nodegroups", Attempt: 1},
		&NodeChanged{Meta: hm("fleet", 42), Node: "n1", Group: "general", State: NodeSkipped, Detail: "upgraded by step canary first"},
		&NodeChanged{Meta: hm("fleet", 43), Node: "n2", Group: "general", State: NodeCordoned},
		&PodChanged{Meta: hm("fleet", 44), Node: "n2", Pod: "shop/db-0", State: PodBlocked, Reason: "waits for PDB shop/db"},
		&PodChanged{Meta: hm("fleet", 45), Node: "n2", Pod: "shop/db-0", State: PodGone},
		&NodeChanged{Meta: hm("fleet", 103), Node: "n2", Group: "general", State: NodeUpgraded, Detail: "at v1.37.1"},
		&LogLine{Meta: hm("fleet", 104), Stream: "info", Line: "not history"},
	}
}

// writeLog writes evs as the engine does, then a torn last line (a crash in the middle of a write).
func writeLog(t *testing.T, evs []Event) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "runs", "r1"), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := openEventLog(dir, "r1")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		l.write(ev)
	}
	_, _ = l.f.WriteString(`{"type":"node.state","time":"2026-11-22T03:02:00Z","run":"r1","step":"fleet","node":"n3","sta`)
	l.close()
	return dir
}

func TestRunHistoryFromTheEventLog(t *testing.T) {
	t.Parallel()
	dir := writeLog(t, firstSession())
	evs, err := ReadEventLog(dir, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(firstSession())-2 { // the gates and the log line are not history
		t.Errorf("%d events read, want %d", len(evs), len(firstSession())-2)
	}
	h := NewRunHistory(evs)
	for _, tc := range []struct {
		what      string
		got, want any
	}{
		{"sessions", h.Sessions, 1},
		{"since", h.Since, h0},
		{"upgraded", h.Upgraded(), []string{"n1", "n2"}},
		{"pods", h.Pods, 2},
		{"nodes", len(h.Nodes), 3},
		{"canary's n1", h.Nodes[0], NodeHistory{Step: "canary", Node: "n1", Group: "general", State: NodeUpgraded, Detail: "at v1.37.1", Took: Duration{30 * time.Second}}},
		{"fleet's n1", h.Nodes[1].State, NodeSkipped},
		{"fleet's n2", h.Nodes[2].Took, Duration{time.Minute}},
		{"steps", len(h.Steps), 1},
		{"the canary's evidence", h.Steps[0].Progress, []string{"choosing the least disruptive node", "canary node n1: of 4 candidates, the fewest pods to move (1)", "soak: every gate green for 5m"}},
	} {
		if !equal(tc.got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.what, tc.got, tc.want)
		}
	}
}

func equal(a, b any) bool {
	if as, ok := a.([]string); ok {
		bs, _ := b.([]string)
		return slices.Equal(as, bs)
	}
	return a == b
}

func TestRunHistoryEdges(t *testing.T) {
	t.Parallel()
	var many []Event
	many = append(many, &StepStarted{Meta: hm("soak", 0), Kind: "health-gate", Attempt: 1})
	for i := range 8 {
		many = append(many, &StepProgress{Meta: hm("soak", i), Message: string(rune('a' + i))})
	}
	many = append(many, &StepFinished{Meta: hm("soak", 9)})
	for _, tc := range []struct {
		name string
		evs  []Event
		want func(h *RunHistory) bool
	}{
		{"no events, no history", nil, func(h *RunHistory) bool { return h == nil }},
		{"the last few progress lines only", many, func(h *RunHistory) bool {
			return slices.Equal(h.Steps[0].Progress, []string{"d", "e", "f", "g", "h"})
		}},
		{"a step re-entered keeps only its last attempt's lines", append(slices.Clone(many), &StepStarted{Meta: hm("soak", 10), Attempt: 2},
			&StepProgress{Meta: hm("soak", 11), Message: "z"}, &StepFinished{Meta: hm("soak", 12)}), func(h *RunHistory) bool {
			return len(h.Steps) == 1 && slices.Equal(h.Steps[0].Progress, []string{"z"})
		}},
		{"a skipped step has no evidence", []Event{&StepFinished{Meta: hm("x", 1), Skipped: true}}, func(h *RunHistory) bool { return len(h.Steps) == 0 }},
	} {
		if h := NewRunHistory(tc.evs); !tc.want(h) {
			t.Errorf("%s: %+v", tc.name, h)
		}
	}
	if evs, err := ReadEventLog(t.TempDir(), "none"); err != nil || evs != nil {
		t.Errorf("a run without a log: %v, %v", evs, err)
	}
}

// TestSummaryOfAResumedRun: the session that resumes a run whose first session upgraded n1 and n2
// upgrades n3: its summary says 3 nodes upgraded, and the pods of both sessions, not only its own.
func TestSummaryOfAResumedRun(t *testing.T) {
	t.Parallel()
	earlier := firstSession()
	s := newSummarizer(h0.Add(10 * time.Minute))
	s.seed(earlier, h0)
	for _, ev := range []Event{
		&RunStarted{Meta: hm("", 600), Resumed: true},
		&NodeChanged{Meta: hm("fleet", 601), Node: "n3", Group: "general", State: NodeCordoned},
		&PodChanged{Meta: hm("fleet", 602), Node: "n3", Pod: "shop/web-2", State: PodGone},
		&NodeChanged{Meta: hm("fleet", 641), Node: "n3", Group: "general", State: NodeUpgraded},
	} {
		s.see(ev)
	}
	sum := s.summary(&RunState{}, RunSucceeded, h0.Add(11*time.Minute))
	var nodes []string
	for _, g := range sum.Groups {
		for _, n := range g.Nodes {
			nodes = append(nodes, g.Step+"/"+n.Node+" "+n.Took.String())
		}
	}
	for _, tc := range []struct {
		what      string
		got, want any
	}{
		{"nodes", nodes, []string{"canary/n1 30s", "fleet/n2 1m0s", "fleet/n3 40s"}},
		{"pods", sum.Pods, 3},
		{"skipped", sum.Skipped, []string{"n1"}},
		{"blockers: this session's only", len(sum.Blockers), 0},
		{"this session's time", sum.Took, Duration{time.Minute}},
		{"the whole run's", sum.RunTook, Duration{11 * time.Minute}},
	} {
		if !equal(tc.got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.what, tc.got, tc.want)
		}
	}
}
