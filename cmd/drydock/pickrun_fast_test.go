package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
	"github.com/drydock-dev/drydock/steps/drain"
)

// TestUnnamedRunIsNeverAGuess: resume, rollback and status given no run id take the one run they
// can mean, refuse (listing them) when several could be meant, and never take an interrupted
// standalone drain for `resume`: a responder's cancelled drain sat beside a paused upgrade, and the
// `drydock resume` meant for the upgrade cordoned that drain's nodes again.
func TestUnnamedRunIsNeverAGuess(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	upgrade := func(id string, status runbook.RunStatus, at time.Duration) *runbook.RunState {
		st := &runbook.RunState{ID: id, Runbook: "upgrade", Status: status, Created: t0.Add(at), Updated: t0.Add(at),
			Steps: []runbook.StepState{{Name: "canary", Kind: "canary", Status: runbook.StatusDone}, {Name: "fleet", Kind: "nodegroups", Status: runbook.StatusPending}}}
		if status == runbook.RunPaused {
			st.Pause = &runbook.PausePoint{Step: "canary", When: "after"}
		}
		return st
	}
	drain := func(id string, status runbook.RunStatus, at time.Duration) *runbook.RunState {
		return &runbook.RunState{ID: id, Kind: "drain", Runbook: "drain", Status: status, Created: t0.Add(at), Updated: t0.Add(at),
			Steps: []runbook.StepState{{Name: "drain", Kind: "drain", Status: runbook.StatusInterrupted}}}
	}
	for _, tc := range []struct {
		name   string
		runs   []*runbook.RunState
		choice runChoice
		want   string   // the run taken; "" refused
		says   []string // what the refusal says
	}{
		{"resume: the paused upgrade, not the newer cancelled drain",
			[]*runbook.RunState{upgrade("up-1", runbook.RunPaused, 0), drain("dr-1", runbook.RunInterrupted, time.Hour)}, resumeChoice, "up-1", nil},
		{"resume: a cancelled drain alone is not resumed unnamed",
			[]*runbook.RunState{drain("dr-1", runbook.RunInterrupted, 0)}, resumeChoice, "",
			[]string{"no run to resume", "run dr-1 (interrupted) is a standalone drain, resumed only when named: `drydock resume dr-1`"}},
		{"resume: two paused upgrades are listed",
			[]*runbook.RunState{upgrade("up-1", runbook.RunPaused, 0), upgrade("up-2", runbook.RunFailed, time.Hour)}, resumeChoice, "",
			[]string{"2 runs could be meant; name one", "up-1", "canary (paused after)", "drydock resume up-2"}},
		{"rollback: an interrupted drain and a paused upgrade are listed",
			[]*runbook.RunState{upgrade("up-1", runbook.RunPaused, 0), drain("dr-1", runbook.RunInterrupted, time.Hour)}, rollbackChoice(false), "",
			[]string{"rollback: 2 runs could be meant", "drydock rollback up-1", "drydock rollback dr-1"}},
		{"rollback: a finished drain has nothing to undo",
			[]*runbook.RunState{upgrade("up-1", runbook.RunPaused, 0), drain("dr-1", runbook.RunSucceeded, time.Hour)}, rollbackChoice(false), "up-1", nil},
		{"status: the upgrade in flight, not the newer finished drain",
			[]*runbook.RunState{upgrade("up-1", runbook.RunPaused, 0), drain("dr-1", runbook.RunSucceeded, time.Hour)}, statusChoice, "up-1", nil},
		{"status: nothing in flight, the newest",
			[]*runbook.RunState{upgrade("up-1", runbook.RunSucceeded, 0), drain("dr-1", runbook.RunSucceeded, time.Hour)}, statusChoice, "dr-1", nil},
		{"status: two in flight are listed",
			[]*runbook.RunState{upgrade("up-1", runbook.RunPaused, 0), drain("dr-1", runbook.RunInterrupted, time.Hour)}, statusChoice, "",
			[]string{"2 runs are in flight", "drydock status dr-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			state := StateFlags{StateDir: t.TempDir()}
			for _, r := range tc.runs {
				writeJournal(t, state.StateDir, r)
			}
			st, err := findRun(context.Background(), state, nil, "", tc.choice)
			if tc.want != "" {
				if err != nil || st.ID != tc.want {
					t.Fatalf("took %v (%v), want %s", st, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("took run %s, want a refusal", st.ID)
			}
			if code := exitcode.For(err); code != exitcode.Usage {
				t.Errorf("exit %d, want %d", code, exitcode.Usage)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the refusal does not say %q:\n%v", s, err)
				}
			}
		})
	}
}

// TestResumeSaysWhatItWillDo: before anything moves, resume names the run and what it does next.
func TestResumeSaysWhatItWillDo(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	paused := &runbook.RunState{ID: "up-1", Runbook: "upgrade", Target: "v1.37.1", Status: runbook.RunPaused, Updated: t0, Operator: "ann@h",
		Pause: &runbook.PausePoint{Step: "canary", When: "after"},
		Steps: []runbook.StepState{{Name: "backup", Status: runbook.StatusDone}, {Name: "canary", Status: runbook.StatusDone},
			{Name: "fleet", Status: runbook.StatusPending}, {Name: "addons", Status: runbook.StatusPending}}}
	if got := resumeSays(paused, nil); !strings.Contains(got, "resuming run up-1 (run of \"upgrade\", target v1.37.1, paused since") ||
		!strings.Contains(got, "it continues with the pause point after step canary (asked again, unless --yes), then fleet, addons") {
		t.Errorf("paused: %s", got)
	}
	rb, err := runbook.Build("drydock drain (command line)", runbook.Runbook{Metadata: runbook.Metadata{Name: "drain"}, Spec: runbook.Spec{TargetVersion: "v1.37.1",
		Steps: []runbook.StepSpec{{Name: "drain", Step: &drain.Step{Nodes: []string{"n1", "n2"}}}}}}, steps.Registry)
	if err != nil {
		t.Fatal(err)
	}
	dr := &runbook.RunState{ID: "dr-1", Kind: "drain", Runbook: "drain", Status: runbook.RunInterrupted, Updated: t0,
		Steps: []runbook.StepState{{Name: "drain", Status: runbook.StatusInterrupted, Attempts: 1}}}
	if got := resumeSays(dr, rb); !strings.Contains(got, "it continues with step drain again, which was interrupted (attempt 2); it cordons node(s) n1, n2 again and evicts their pods") {
		t.Errorf("drain: %s", got)
	}
}
