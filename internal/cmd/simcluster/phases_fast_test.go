package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drydock-dev/drydock/internal/loadgen"
	"github.com/drydock-dev/drydock/runbook"
)

// TestPhases: each step from its first start to its last end (a retried step is one phase), a node
// step split into its groups when it has two or more (a node's group named by its first event;
// waiting and skipped nodes do not start a group), and the whole run.
func TestPhases(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) runbook.Meta { return runbook.Meta{Time: t0.Add(time.Duration(s) * time.Second)} }
	step := func(s int, name string) runbook.Meta { m := at(s); m.Step = name; return m }
	events := []runbook.Event{
		&runbook.StepStarted{Meta: step(0, "control-plane")},
		&runbook.StepFailed{Meta: step(5, "control-plane")},
		&runbook.StepStarted{Meta: step(6, "control-plane")},
		&runbook.StepFinished{Meta: step(10, "control-plane")},
		&runbook.StepStarted{Meta: step(11, "canary")},
		&runbook.NodeChanged{Meta: step(12, "canary"), Node: "general-1", Group: "general", State: runbook.NodeCordoned},
		&runbook.StepFinished{Meta: step(20, "canary")},
		&runbook.StepStarted{Meta: step(21, "fleet")},
		&runbook.NodeChanged{Meta: step(21, "fleet"), Node: "batch-1", Group: "batch", State: runbook.NodeWaiting},
		&runbook.NodeChanged{Meta: step(21, "fleet"), Node: "general-1", Group: "general", State: runbook.NodeSkipped},
		&runbook.NodeChanged{Meta: step(21, "fleet"), Node: "general-2", Group: "general", State: runbook.NodeWaiting},
		&runbook.NodeChanged{Meta: step(22, "fleet"), Node: "general-2", State: runbook.NodeCordoned},
		&runbook.NodeChanged{Meta: step(30, "fleet"), Node: "general-2", State: runbook.NodeUncordoned},
		&runbook.NodeChanged{Meta: step(31, "fleet"), Node: "batch-1", State: runbook.NodeCordoned},
		&runbook.NodeChanged{Meta: step(40, "fleet"), Node: "batch-1", State: runbook.NodeUncordoned},
		&runbook.StepFinished{Meta: step(41, "fleet")},
	}
	var got []string
	for _, p := range phases(events) {
		got = append(got, p.name+" "+p.from.Sub(t0).String()+"-"+p.to.Sub(t0).String())
	}
	want := []string{"control-plane 0s-10s", "canary 11s-20s", "fleet 21s-41s", "  group general 22s-30s", "  group batch 31s-40s", "whole run 0s-41s"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("phases:\n got %q\nwant %q", got, want)
	}
}

// TestLoadReport: the table counts each phase's seconds (from the second it began to the one it
// ended in) from the load file and the run's event log.
func TestLoadReport(t *testing.T) {
	dir := t.TempDir()
	id := "20261207-0000-abcd"
	if err := os.MkdirAll(filepath.Join(dir, "runs", id), 0o755); err != nil {
		t.Fatal(err)
	}
	journal, _ := json.Marshal(runbook.RunState{ID: id, Kind: "run", Created: time.Unix(100, 0)})
	if err := os.WriteFile(filepath.Join(dir, "runs", id, "journal.json"), journal, 0o600); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	enc := json.NewEncoder(&log)
	for _, e := range []runbook.Event{
		&runbook.StepStarted{Meta: runbook.Meta{Step: "canary", Time: time.Unix(100, 500)}},
		&runbook.StepFinished{Meta: runbook.Meta{Step: "canary", Time: time.Unix(102, 100)}},
		&runbook.StepStarted{Meta: runbook.Meta{Step: "addons", Time: time.Unix(104, 0)}},
		&runbook.StepFinished{Meta: runbook.Meta{Step: "addons", Time: time.Unix(105, 0)}},
	} {
		if err := enc.Encode(runbook.Stamp(e)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "runs", id, runbook.EventLogName), log.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var secs []loadgen.Second
	for s := int64(99); s <= 106; s++ {
		sec := loadgen.Second{T: s, Sent: 10}
		if s == 101 {
			sec.Failed, sec.Errors = 2, map[string]int{"refused": 2}
		}
		for range 8 {
			sec.Latency.Add(3 * time.Millisecond)
		}
		secs = append(secs, sec)
	}
	file := filepath.Join(dir, "load.jsonl")
	if err := writeSeconds(file, secs); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := loadReport(&out, file, dir, ""); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("report:\n%s", out.String())
	}
	for i, want := range [][]string{{"canary", "2s", " 30 ", " 2 ", `{"refused":2}`}, {"addons", "1s", " 20 ", " 0 "}, {"whole run", "5s", " 60 ", " 2 "}} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("line %q lacks %q", lines[i+1], w)
			}
		}
	}
	if err := loadReport(&out, file, t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "no run in") {
		t.Errorf("no run: %v", err)
	}
}
