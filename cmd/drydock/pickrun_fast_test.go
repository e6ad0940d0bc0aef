package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

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
			st, err := findRun(context.Background(), state, nil, "", tc.choice, io.Discard)
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

// TestFindRunFallsBackToTheClusterCopy: a damaged local journal is named with its path, and given a
// client the run's cluster copy stands in for it, saying so; a copy newer than the local journal (a
// local write failed: a full disk) is taken over it; without a client the error says how to reach
// the copy (issue 30, item 10).
func TestFindRunFallsBackToTheClusterCopy(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	run := func(status runbook.RunStatus, at time.Duration) *runbook.RunState {
		return &runbook.RunState{ID: "up-1", Runbook: "upgrade", Status: status, StateNS: "kube-system", Created: t0, Updated: t0.Add(at),
			Steps: []runbook.StepState{{Name: "fleet", Kind: "nodegroups", Status: runbook.StatusInterrupted}}}
	}
	for _, tc := range []struct {
		name        string
		local       *runbook.RunState // nil: a truncated journal
		copy        *runbook.RunState // nil: none in the cluster
		client      bool
		want        runbook.RunStatus // "" an error
		says, notes string
	}{
		{"damaged, copy intact", nil, run(runbook.RunInterrupted, time.Minute), true, runbook.RunInterrupted, "", "is damaged"},
		{"damaged, no client", nil, nil, false, "", "--from-cluster", ""},
		{"damaged, no copy", nil, nil, true, "", "the cluster's copy cannot replace it", ""},
		{"copy newer: a write here failed", run(runbook.RunRunning, 0), run(runbook.RunFailed, time.Minute), true, runbook.RunFailed, "", "is newer than this machine's journal"},
		{"local newer: the copy lags", run(runbook.RunFailed, time.Minute), run(runbook.RunRunning, 0), true, runbook.RunFailed, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			state := StateFlags{StateDir: t.TempDir(), StateNamespace: "kube-system"}
			path := filepath.Join(state.StateDir, "runs", "up-1", "journal.json")
			if tc.local != nil {
				writeJournal(t, state.StateDir, tc.local)
			} else {
				writeJournal(t, state.StateDir, run(runbook.RunRunning, 0))
				if err := os.Truncate(path, 40); err != nil {
					t.Fatal(err)
				}
			}
			cs := fake.NewClientset()
			if tc.copy != nil {
				data, _ := json.Marshal(tc.copy)
				if _, err := (&runbook.ConfigMapMirror{Client: cs, Namespace: "kube-system"}).Save(context.Background(), tc.copy, data, ""); err != nil {
					t.Fatal(err)
				}
			}
			var client kubernetes.Interface
			if tc.client {
				client = cs
			}
			var note strings.Builder
			st, err := findRun(context.Background(), state, client, "up-1", statusChoice, &note)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("got %v, want an error naming %s and saying %q", err, path, tc.says)
				}
				return
			}
			if err != nil || st.Status != tc.want {
				t.Fatalf("got %v (%v), want the run %s", st, err, tc.want)
			}
			if (tc.notes == "") != (note.Len() == 0) || !strings.Contains(note.String(), tc.notes) {
				t.Fatalf("note %q, want one saying %q", note.String(), tc.notes)
			}
		})
	}
}

// TestResumeTakesASucceededRunByName: resume of a succeeded run, named, is not a usage error (the
// command then says there is nothing to resume and exits 0); a rolled-back run named still is.
func TestResumeTakesASucceededRunByName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status runbook.RunStatus
		taken  bool
	}{{runbook.RunSucceeded, true}, {runbook.RunRolledBack, false}} {
		t.Run(string(tc.status), func(t *testing.T) {
			t.Parallel()
			state := StateFlags{StateDir: t.TempDir()}
			now := time.Now()
			writeJournal(t, state.StateDir, &runbook.RunState{ID: "up-1", Runbook: "upgrade", Status: tc.status, Created: now, Updated: now,
				Steps: []runbook.StepState{{Name: "canary", Kind: "canary", Status: runbook.StatusDone}}})
			st, err := findRun(context.Background(), state, nil, "up-1", resumeChoice, io.Discard)
			if tc.taken != (err == nil) {
				t.Fatalf("resume up-1 (%s): %v, want taken=%v", tc.status, err, tc.taken)
			}
			if err == nil && st.ID != "up-1" {
				t.Fatalf("took %s", st.ID)
			}
			if err != nil && exitcode.For(err) != exitcode.Usage {
				t.Fatalf("exit %d, want %d", exitcode.For(err), exitcode.Usage)
			}
		})
	}
}
