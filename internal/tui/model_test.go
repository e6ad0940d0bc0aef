package tui

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/drydock-dev/drydock/runbook"
)

// update is teatest's own -update flag (it defines it): go test ./internal/tui -update.
func update() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

func meta(step string, sec int) runbook.Meta {
	return runbook.Meta{Time: t0.Add(time.Duration(sec) * time.Second), RunID: "20261122-0300-ab12", Step: step}
}

func started() []runbook.Event {
	return []runbook.Event{
		&runbook.RunStarted{Meta: meta("", 0), Runbook: "upgrade", Target: "v1.37.1", Steps: []string{"preflight", "backup", "canary", "fleet"}},
		&runbook.StepStarted{Meta: meta("preflight", 0), Kind: "preflight", Attempt: 1},
		&runbook.StepFinding{Meta: meta("preflight", 1), Finding: runbook.Finding{Severity: runbook.SeverityWarning, Object: "Deployment shop/api", Message: "3 replicas and no PodDisruptionBudget"}},
		&runbook.StepFinding{Meta: meta("preflight", 1), Finding: runbook.Finding{Severity: runbook.SeverityError, Object: "PodDisruptionBudget shop/db", Message: "minAvailable: 100%"}},
		&runbook.StepFinished{Meta: meta("preflight", 2), Duration: 2 * time.Second},
		&runbook.StepStarted{Meta: meta("backup", 2), Kind: "velero-backup", Attempt: 1},
		&runbook.RollbackPointSet{Meta: meta("backup", 5), Point: runbook.RollbackPoint{Kind: runbook.RollbackPointVeleroBackup, Namespace: "velero", Name: "drydock-20261122-0300-ab12"}},
		&runbook.StepFinished{Meta: meta("backup", 9), Duration: 7 * time.Second},
	}
}

func draining() []runbook.Event {
	return append(started(),
		&runbook.StepStarted{Meta: meta("canary", 10), Kind: "canary", Attempt: 1},
		&runbook.NodeChanged{Meta: meta("canary", 11), Node: "general-1", State: "cordoned"},
		&runbook.NodeChanged{Meta: meta("canary", 11), Node: "general-1", State: "draining", Detail: "evicting 3 pod(s)"},
		&runbook.PodChanged{Meta: meta("canary", 12), Node: "general-1", Pod: "shop/web-1", State: "gone", Done: 1, Total: 3},
		&runbook.PodChanged{Meta: meta("canary", 13), Node: "general-1", Pod: "shop/db-0", State: "blocked", PDB: "shop/db", Reason: "waits for PDB shop/db: needs 3 healthy, has 3",
			Chain: &runbook.BudgetChain{PDB: "shop/db", DesiredHealthy: 3, CurrentHealthy: 3, ExpectedPods: 4,
				Unhealthy: []runbook.UnhealthyPod{{Pod: "shop/db-3", Reason: "Pending (not scheduled: Unschedulable: 0/6 nodes are available)", Stuck: true}},
				Fix:       `kubectl patch pdb db -n shop --type=merge -p '{"spec":{"minAvailable":2}}'`}},
		&runbook.StepProgress{Meta: meta("canary", 14), Message: "node general-1: draining", Done: 1, Total: 3},
	)
}

func newModel(requests chan Request) Model {
	if requests == nil {
		requests = make(chan Request, 8)
	}
	return New(Info{Command: "run", Context: "prod-eu", Server: "v1.37.1", Lock: "ops@host"}, requests, false).WithoutClock().WithSize(80, 24)
}

func feed(m Model, evs ...runbook.Event) Model {
	for _, ev := range evs {
		nm, _ := m.Update(EventMsg{Event: ev})
		m = nm.(Model)
	}
	return m
}

func press(m Model, keys ...string) Model {
	for _, k := range keys {
		var msg tea.KeyPressMsg
		switch k {
		case "enter":
			msg = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "up":
			msg = tea.KeyPressMsg{Code: tea.KeyUp}
		case "down":
			msg = tea.KeyPressMsg{Code: tea.KeyDown}
		case "esc":
			msg = tea.KeyPressMsg{Code: tea.KeyEscape}
		default:
			msg = tea.KeyPressMsg{Code: rune(k[0]), Text: k}
		}
		nm, _ := m.Update(msg)
		m = nm.(Model)
	}
	return m
}

// TestReducer feeds event sequences and asserts the display state.
func TestReducer(t *testing.T) {
	m := feed(newModel(nil), draining()...)
	st := map[string]string{}
	for _, s := range m.Steps {
		st[s.Name] = s.Status
	}
	want := map[string]string{"preflight": Done, "backup": Done, "canary": Running, "fleet": Pending}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("step %s: %s, want %s", k, st[k], v)
		}
	}
	canary := m.Steps[2]
	if m.Selected != 2 || canary.Nodes["general-1"].State != "draining" || canary.Nodes["general-1"].Done != 1 || canary.Nodes["general-1"].Total != 3 {
		t.Errorf("canary node state: %+v (selected %d)", canary.Nodes["general-1"], m.Selected)
	}
	if p := canary.Pods["shop/db-0"]; p == nil || p.State != "blocked" || p.PDB != "shop/db" || !strings.Contains(p.Reason, "needs 3 healthy, has 3") {
		t.Errorf("blocked pod: %+v", p)
	}
	if m.Steps[1].RollbackPoint == nil || len(m.Steps[0].Findings) != 2 {
		t.Errorf("rollback point %v, findings %d", m.Steps[1].RollbackPoint, len(m.Steps[0].Findings))
	}

	// Failure, then rollback events.
	m = feed(m, &runbook.StepFailed{Meta: meta("canary", 20), Error: "drain node general-1: blocked", Duration: 10 * time.Second},
		&runbook.RollbackStarted{Meta: meta("canary", 21)}, &runbook.RollbackFinished{Meta: meta("canary", 22)},
		&runbook.RunFinished{Meta: meta("", 23), Status: runbook.RunRolledBack, Message: "the completed steps were undone"})
	if m.Steps[2].Status != RolledBack || !m.Finished || m.Status != "rolled-back" {
		t.Errorf("after rollback: %s, finished %v, status %q", m.Steps[2].Status, m.Finished, m.Status)
	}
}

func TestKeys(t *testing.T) {
	requests := make(chan Request, 8)
	m := feed(newModel(requests), draining()...)

	// Pause point: the modal answers on the reply channel.
	reply := make(chan runbook.Decision, 1)
	nm, _ := m.Update(PauseMsg{Req: runbook.PauseRequest{Step: "canary", When: "after", Message: "canary upgraded; soak healthy"}, Reply: reply})
	m = press(nm.(Model), "esc") // a pause point cannot be dismissed
	if m.dialog == nil {
		t.Fatal("esc dismissed a pause point")
	}
	// r and s (and enter on them) ask again, with the way back highlighted; c continues at once.
	for _, keys := range [][]string{{"r"}, {"s"}, {"right", "enter"}, {"right", "right", "enter"}} {
		m = press(m, keys...)
		if m.dialog == nil || m.dialog.kind != dialogConfirmAnswer || m.dialog.choice != 0 || len(reply) != 0 {
			t.Fatalf("%v at a pause point: dialog %+v, answered %d", keys, m.dialog, len(reply))
		}
		m = press(m, "enter") // back to the pause point
		if m.dialog == nil || m.dialog.kind != dialogPause || len(reply) != 0 {
			t.Fatalf("%v then enter: dialog %+v, answered %d", keys, m.dialog, len(reply))
		}
		m.dialog.choice = 0
	}
	m = press(m, "r", "right", "enter")
	if d := <-reply; d != runbook.RollBack || m.dialog != nil {
		t.Fatalf("r, → and enter answered %v", d)
	}
	nm, _ = m.Update(PauseMsg{Req: runbook.PauseRequest{Step: "canary", When: "after"}, Reply: reply})
	m = press(nm.(Model), "c")
	if d := <-reply; d != runbook.Continue || m.dialog != nil {
		t.Fatalf("c answered %v", d)
	}

	// p asks for a pause after the current node.
	m = press(m, "p")
	if r := <-requests; r.Kind != RequestPauseNext || !m.PauseRequested {
		t.Errorf("p: %+v", r)
	}

	// b offers to relax the budget that holds the drain, showing the patch; enter on the highlighted
	// "Keep waiting" does nothing; → then enter approves it.
	m = press(m, "b")
	if m.dialog == nil || m.dialog.kind != dialogRelax || m.dialog.choice != 0 || !strings.Contains(strings.Join(m.dialog.lines, "\n"), "kubectl patch pdb db -n shop") {
		t.Fatalf("b: dialog %+v", m.dialog)
	}
	m = press(m, "enter")
	if m.dialog != nil || len(requests) != 0 {
		t.Fatalf("enter on Keep waiting: dialog %+v, %d request(s)", m.dialog, len(requests))
	}
	m = press(m, "b", "right", "enter")
	if r := <-requests; r.Kind != RequestRelax || r.PDB != "shop/db" {
		t.Errorf("b, → and enter: %+v", r)
	}

	// r on a step lists what would be undone, newest first; the highlighted choice is Cancel, and
	// no single key confirms: y does nothing, enter cancels, → then enter rolls back.
	m = press(m, "up", "r")
	if m.dialog == nil || m.dialog.kind != dialogRollback || !strings.Contains(strings.Join(m.dialog.lines, "\n"), "- canary\n  - backup") || m.dialog.choice != 0 {
		t.Fatalf("rollback dialog: %+v", m.dialog)
	}
	m = press(m, "y")
	if m.dialog == nil || len(requests) != 0 {
		t.Fatal("y confirmed a rollback")
	}
	m = press(m, "enter")
	if m.dialog != nil || len(requests) != 0 {
		t.Fatal("enter on the default choice rolled back")
	}
	m = press(m, "r", "right", "enter")
	if r := <-requests; r.Kind != RequestRollback || r.To != "backup" {
		t.Errorf("rollback request %+v", r)
	}

	// q while the run is active asks; n keeps running; so do y and enter; a, → and enter abort.
	m = press(m, "q")
	if m.dialog == nil || m.dialog.kind != dialogQuit || m.dialog.choice != 0 {
		t.Fatal("q quit an active run without asking")
	}
	m = press(m, "y", "n", "a", "y", "enter")
	if m.dialog != nil || len(requests) != 0 {
		t.Fatalf("a single key aborted: dialog %+v, %d requests", m.dialog, len(requests))
	}
	m = press(m, "a", "right", "enter")
	if r := <-requests; r.Kind != RequestAbort {
		t.Errorf("abort request %+v", r)
	}

	// The log filter.
	m = press(m, "/", "b", "l", "o", "c", "k", "enter")
	if log := m.logView(80, 10); !strings.Contains(log, "blocked") || strings.Contains(log, "started") {
		t.Errorf("filtered log:\n%s", log)
	}
	// After the run, q quits at once.
	nm, _ = m.Update(DoneMsg{Err: errors.New("x")})
	m = nm.(Model)
	if _, cmd := m.Update(tea.KeyPressMsg{Code: 'q', Text: "q"}); cmd == nil {
		t.Error("q after the run did not quit")
	}
}

// screen renders a model through a real Bubble Tea program (teatest) at 80x24 without colour and
// compares the screen with testdata/NAME.golden (go test -update rewrites it).
func screen(t *testing.T, name string, m Model, msgs ...tea.Msg) {
	t.Helper()
	screenAt(t, name, 80, 24, m, msgs...)
	if strings.HasPrefix(name, "running") || name == "pause-modal" || name == "failure" || name == "resumed" {
		screenAt(t, name+"-120x40", 120, 40, m, msgs...)
	}
}

// screenAt renders the model at w×h after msgs, compares it with its golden file, and checks that
// no line is wider than the terminal and the run's state is whole on the second line.
func screenAt(t *testing.T, name string, w, h int, m Model, msgs ...tea.Msg) {
	t.Helper()
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(w, h))
	for _, msg := range msgs {
		tm.Send(msg)
	}
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	final := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(Model)
	got := ansi.Strip(final.Render()) + "\n"
	lines := strings.Split(got, "\n")
	for _, line := range lines {
		if lw := ansi.StringWidth(line); lw > w {
			t.Errorf("%s: a line is %d wide, more than the %d columns: %q", name, lw, w, line)
		}
	}
	if len(lines) < 2 || !regexp.MustCompile(`^\[[a-z -]+\] `).MatchString(lines[1]) {
		t.Errorf("%s: the run's state is not whole at the start of the second line: %q", name, lines[1])
	}
	path := filepath.Join("testdata", name+".golden")
	if update() {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test ./internal/tui -update rewrites it):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

func events(evs []runbook.Event) []tea.Msg {
	var out []tea.Msg
	for _, ev := range evs {
		out = append(out, EventMsg{Event: ev})
	}
	return out
}

func keyMsg(s string) tea.Msg {
	switch s {
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	}
	return tea.KeyPressMsg{Code: rune(s[0]), Text: s}
}

func TestScreens(t *testing.T) {
	running := append(started(), &runbook.StepStarted{Meta: meta("canary", 10), Kind: "canary", Attempt: 1},
		&runbook.StepProgress{Meta: meta("canary", 11), Message: "choosing the least disruptive node"})
	screen(t, "running", newModel(nil), events(running)...)

	screen(t, "blocked-drain", newModel(nil), events(draining())...)

	pause := append(events(draining()), PauseMsg{Req: runbook.PauseRequest{Step: "canary", When: "after", Message: "canary general-1 upgraded to v1.37.1; soaked 5m healthy", Done: []string{"preflight", "backup"}}, Reply: make(chan runbook.Decision, 1)})
	screen(t, "pause-modal", newModel(nil), pause...)

	screen(t, "rollback-confirm", newModel(nil), append(events(draining()), keyMsg("up"), keyMsg("r"))...)

	failed := append(draining(), &runbook.StepFailed{Meta: meta("canary", 30), Error: "drain node general-1: timed out: shop/db-0 waits for PDB shop/db: needs 3 healthy, has 3", Duration: 20 * time.Second},
		&runbook.RunFinished{Meta: meta("", 31), Status: runbook.RunFailed, Message: "step \"canary\" failed: `drydock resume 20261122-0300-ab12` retries it"})
	screen(t, "failure", newModel(nil), append(events(failed), DoneMsg{Err: errors.New("step canary failed")})...)

	screen(t, "preflight-findings", newModel(nil), append(events(started()), keyMsg("up"), keyMsg("up"), keyMsg("f"))...)

	// A resumed run shows what the journal has done, with kinds and times, not pending steps.
	resumed := []runbook.Event{&runbook.RunStarted{Meta: meta("", 0), Runbook: "upgrade", Target: "v1.37.1", Steps: []string{"preflight", "backup", "canary", "fleet"}, Resumed: true,
		StepStates: []runbook.StepBrief{{Name: "preflight", Kind: "preflight", Status: runbook.StatusDone, Took: runbook.Duration{Duration: 2 * time.Second}},
			{Name: "backup", Kind: "velero-backup", Status: runbook.StatusDone, Took: runbook.Duration{Duration: 7 * time.Second}},
			{Name: "canary", Kind: "canary", Status: runbook.StatusPaused}, {Name: "fleet", Kind: "nodegroups", Status: runbook.StatusPending}}}}
	screen(t, "resumed", newModel(nil), events(resumed)...)
	m := feed(newModel(nil), resumed...)
	if m.Steps[0].Status != Done || m.Steps[1].Kind != "velero-backup" || m.Steps[1].Duration != 7*time.Second || m.Steps[3].Status != Pending {
		t.Errorf("resumed steps: %+v %+v %+v", *m.Steps[0], *m.Steps[1], *m.Steps[3])
	}
}

// TestClockStopsAtTheEnd: the elapsed time is the run's, not the screen's, once it finished.
func TestClockStopsAtTheEnd(t *testing.T) {
	m := feed(newModel(nil), append(started(), &runbook.RunFinished{Meta: meta("", 40), Status: runbook.RunSucceeded})...)
	m.Now = m.Started.Add(time.Hour)
	if h := m.header(120); !strings.Contains(h, "elapsed 40s") || !strings.Contains(h, "[succeeded]") {
		t.Errorf("header after the end:\n%s", h)
	}
}

// TestPauseAfterStepKeepsItDone: a pause point after a step shows the step paused while it waits
// and done once answered with continue.
func TestPauseAfterStepKeepsItDone(t *testing.T) {
	m := feed(newModel(nil), append(started(), &runbook.StepPaused{Meta: meta("backup", 10), When: "after"})...)
	if m.Steps[1].Status != Paused {
		t.Fatalf("while waiting: %s", m.Steps[1].Status)
	}
	reply := make(chan runbook.Decision, 1)
	nm, _ := m.Update(PauseMsg{Req: runbook.PauseRequest{Step: "backup", When: "after"}, Reply: reply})
	m = press(nm.(Model), "c")
	if <-reply != runbook.Continue || m.Steps[1].Status != Done {
		t.Errorf("after continue: %s", m.Steps[1].Status)
	}
}

// TestBell: the terminal bell rings at a pause point and when something fails, not otherwise.
func TestBell(t *testing.T) {
	t.Parallel()
	rings := func(cmd tea.Cmd) bool {
		if cmd == nil {
			return false
		}
		raw, ok := cmd().(tea.RawMsg)
		return ok && raw.Msg == "\a"
	}
	m := feed(newModel(make(chan Request, 8)), started()...)
	for _, tc := range []struct {
		msg  tea.Msg
		want bool
	}{
		{PauseMsg{Req: runbook.PauseRequest{Step: "canary", When: "after"}, Reply: make(chan runbook.Decision, 1)}, true},
		{EventMsg{Event: &runbook.StepFailed{Meta: meta("canary", 30), Error: "boom"}}, true},
		{EventMsg{Event: &runbook.StepFailed{Meta: meta("canary", 30), Error: "ctrl-c", Interrupted: true}}, false},
		{EventMsg{Event: &runbook.RunFinished{Meta: meta("", 31), Status: runbook.RunFailed}}, true},
		{EventMsg{Event: &runbook.RunFinished{Meta: meta("", 31), Status: runbook.RunSucceeded}}, false},
		{EventMsg{Event: &runbook.StepProgress{Meta: meta("canary", 29), Message: "x"}}, false},
	} {
		if _, cmd := m.Update(tc.msg); rings(cmd) != tc.want {
			t.Errorf("%T %+v: bell %v, want %v", tc.msg, tc.msg, !tc.want, tc.want)
		}
	}
}

// TestETAFromMeasuredNodes: the ETA is the measured pace of upgraded nodes times the nodes left;
// skipped nodes neither count as measured nor as left; before a node is measured there is none.
func TestETAFromMeasuredNodes(t *testing.T) {
	t.Parallel()
	at := func(sec int) runbook.Meta { return meta("fleet", sec) }
	evs := append(started(), &runbook.StepStarted{Meta: at(10), Kind: "nodegroups", Attempt: 1},
		&runbook.NodeChanged{Meta: at(10), Node: "a", State: runbook.NodeSkipped},
		&runbook.NodeChanged{Meta: at(10), Node: "b", State: runbook.NodeWaiting},
		&runbook.NodeChanged{Meta: at(10), Node: "c", State: runbook.NodeWaiting},
		&runbook.NodeChanged{Meta: at(10), Node: "d", State: runbook.NodeWaiting},
		&runbook.NodeChanged{Meta: at(11), Node: "b", State: runbook.NodeCordoned})
	m := feed(newModel(nil), evs...)
	s := m.step("fleet")
	if got := m.eta(s); got != "" {
		t.Errorf("before any node was measured: %q", got)
	}
	m = feed(m, &runbook.NodeChanged{Meta: at(71), Node: "b", State: runbook.NodeUpgraded})
	if got := m.eta(m.step("fleet")); got != "  ETA ~2m00s" {
		t.Errorf("one node took 1m, two are left: %q", got)
	}
}

// TestHelpHasALegend: ? explains every step mark.
func TestHelpHasALegend(t *testing.T) {
	t.Parallel()
	m := press(feed(newModel(nil), started()...), "?")
	m.width, m.height = 120, 40
	out := m.Render()
	for _, icon := range icons {
		if !strings.Contains(out, icon+" ") {
			t.Errorf("the help does not explain %q:\n%s", icon, out)
		}
	}
}

// TestCountdown: a soak's progress counts down while the step runs.
func TestCountdown(t *testing.T) {
	t.Parallel()
	m := feed(newModel(nil), append(started(), &runbook.StepStarted{Meta: meta("canary", 10), Kind: "canary", Attempt: 1},
		&runbook.StepProgress{Meta: meta("canary", 10), Message: "soak: watching health for 5m0s", Until: meta("", 310).Time})...)
	m.Now = meta("", 70).Time
	if got := m.countdown(m.step("canary")); got != " (4m00s left)" {
		t.Errorf("countdown %q", got)
	}
}

// TestGatesShowValueAndHold: a soaking step shows each gate's value, bounds, verdict and how long it
// has held it; the gates are display state, not log lines.
func TestGatesShowValueAndHold(t *testing.T) {
	t.Parallel()
	gates := &runbook.GatesChanged{Meta: meta("canary", 20), Gates: []runbook.GateState{
		{Name: "pods", Kind: "pods", Value: "0 unhealthy", OK: true, Since: meta("", 10).Time},
		{Name: "error ratio", Kind: "prometheus", Value: "0.0123", Bounds: "max 0.05", OK: true, Since: meta("", 10).Time},
		{Name: "alerts", Kind: "alertmanager", Value: "1 new firing", OK: false, Since: meta("", 50).Time, Why: "alert ShopErrors firing since 03:00:50"},
	}}
	m := feed(newModel(nil), append(started(), &runbook.StepStarted{Meta: meta("canary", 10), Kind: "canary", Attempt: 1}, gates)...)
	m.Now = meta("", 70).Time
	m.width, m.height = 120, 40
	out := ansi.Strip(m.Render())
	for _, want := range []string{"✓ pods", "0 unhealthy  held 1m00s", "✓ error ratio    0.0123 (max 0.05)  held 1m00s", "✗ alerts", "1 new firing  held 20s: alert ShopErrors"} {
		if !strings.Contains(out, want) {
			t.Errorf("screen lacks %q:\n%s", want, out)
		}
	}
	for _, l := range m.Log {
		if strings.Contains(l.Text, "gates:") {
			t.Errorf("the gates went to the log: %q", l.Text)
		}
	}
}

// TestDetailViewWrapsLongReasons: enter shows a blocked pod's whole reason and a finding's fix.
func TestDetailViewWrapsLongReasons(t *testing.T) {
	t.Parallel()
	long := "waits for PDB shop/db: needs 3 healthy, has 3; its replacement shop/db-3 is Pending: 0/6 nodes are available: 3 Insufficient cpu, 3 node(s) had untolerated taint"
	m := feed(newModel(nil), append(draining(), &runbook.PodChanged{Meta: meta("canary", 14), Node: "general-1", Pod: "shop/db-1", State: runbook.PodBlocked, Reason: long})...)
	m = press(m, "enter")
	m.width, m.height = 100, 60
	out := strings.Join(strings.Fields(ansi.Strip(m.Render())), " ")
	if !strings.Contains(out, "3 node(s) had untolerated taint") {
		t.Errorf("the detail view cut the reason:\n%s", m.Render())
	}
}

// TestRefusedBeforeItStarted: a run its plan refuses never starts a step: the screen still shows the
// target, and says the run did not start instead of waiting for it.
func TestRefusedBeforeItStarted(t *testing.T) {
	m := New(Info{Command: "run", Context: "prod-eu", Server: "v1.36.3", Target: "v1.37.1"}, make(chan Request, 8), false).WithoutClock().WithSize(100, 24)
	if d := m.detail(60, 10); !strings.Contains(d, "waiting for the run to start") {
		t.Errorf("before anything: %q", d)
	}
	m = feed(m, &runbook.RunFinished{Meta: meta("", 1), Status: runbook.RunFailed})
	if h := m.header(100); !strings.Contains(h, "v1.36.3 → v1.37.1") || !strings.Contains(h, "[failed]") {
		t.Errorf("header:\n%s", h)
	}
	if d := m.detail(60, 10); !strings.Contains(d, "the run did not start") {
		t.Errorf("detail of a refused run: %q", d)
	}
}

// TestPlanBlockersLoggedLast: with a forecast and node lines around them, a plan's certain blockers
// are the newest log lines, so the screen of a refused run shows what refused it.
func TestPlanBlockersLoggedLast(t *testing.T) {
	t.Parallel()
	est := runbook.Est(time.Minute, time.Minute, time.Minute)
	plan := runbook.NodePlan{Step: "fleet", Kind: "nodegroups", Forecast: &runbook.StepForecast{Total: runbook.Forever, CriticalPath: []string{"never finishes: b"}, Assumed: []string{"x"}},
		Batches: []runbook.NodeBatch{{Forecast: &est, Nodes: []runbook.PlannedNode{{Node: "b", Blockers: []runbook.Finding{{Severity: runbook.SeverityError, Object: "pod/db", Message: "never drains"}}}}}},
		Left:    []runbook.LeftNode{{Node: "a", Reason: "upgraded"}}}
	m := feed(newModel(nil), &runbook.RunPlanned{Meta: meta("", 1), Steps: []runbook.NodePlan{plan}, Forecast: &runbook.RunForecast{Total: runbook.Forever}})
	last := m.Log[len(m.Log)-1]
	if !strings.Contains(last.Text, "BLOCK b pod/db: never drains") {
		t.Fatalf("the last log line is %q, want the blocker", last.Text)
	}
}

// est is an estimate of exactly d.
func est(d time.Duration) runbook.Estimate { return runbook.Est(d, d, d) }

// fleetPlan is the fleet's part of the plan: a batch of forecast d per node, in group general, and
// the nodes it leaves alone (the canary's, upgraded by step canary first).
func fleetPlan(d time.Duration, nodes []string, left ...string) runbook.NodePlan {
	p := runbook.NodePlan{Step: "fleet", Kind: "nodegroups", Forecast: &runbook.StepForecast{Total: est(d * time.Duration(len(nodes)))}}
	for _, n := range nodes {
		f := est(d)
		p.Batches = append(p.Batches, runbook.NodeBatch{Group: "general", Forecast: &f,
			Nodes: []runbook.PlannedNode{{Node: n, Evict: 3, Forecast: &runbook.NodeForecast{Cycle: est(d)}}}})
	}
	for _, n := range left {
		p.Left = append(p.Left, runbook.LeftNode{Node: n, Reason: "upgraded by step canary first"})
	}
	return p
}

// fleetRun: the canary upgraded general-1; the fleet (general-1 to general-6, 1m a node by the
// forecast) lists its nodes, says 0/6 as nodegroups counts them, and drains general-2, whose db pod
// waits for a budget that granted an eviction it has not counted yet.
func fleetRun() []runbook.Event {
	at := func(sec int) runbook.Meta { return meta("fleet", sec) }
	nodes := []string{"general-2", "general-3", "general-4", "general-5", "general-6"}
	plan := fleetPlan(time.Minute, nodes, "general-1")
	evs := append([]runbook.Event{&runbook.RunPlanned{Meta: meta("", 0), Steps: []runbook.NodePlan{plan}}}, started()...)
	evs = append(evs, &runbook.StepStarted{Meta: meta("canary", 10), Kind: "canary", Attempt: 1},
		&runbook.NodeChanged{Meta: meta("canary", 11), Node: "general-1", State: runbook.NodeCordoned},
		&runbook.NodeChanged{Meta: meta("canary", 70), Node: "general-1", State: runbook.NodeUpgraded, Detail: "at v1.37.1"},
		&runbook.StepProgress{Meta: meta("canary", 99), Message: "soak: every gate green for 5m0s"},
		&runbook.StepFinished{Meta: meta("canary", 100), Duration: 90 * time.Second},
		&runbook.StepStarted{Meta: at(110), Kind: "nodegroups", Attempt: 1})
	for _, n := range append([]string{"general-1"}, nodes...) {
		evs = append(evs, &runbook.NodeChanged{Meta: at(110), Node: n, Group: "general", State: runbook.NodeWaiting})
	}
	return append(evs, &runbook.StepProgress{Meta: at(111), Message: "group general (1/1): 6 node(s), 1 at a time", Done: 0, Total: 6},
		&runbook.NodeChanged{Meta: at(112), Node: "general-2", State: runbook.NodeCordoned},
		&runbook.NodeChanged{Meta: at(113), Node: "general-2", State: runbook.NodeDraining, Detail: "evicting 3 pod(s)"},
		&runbook.PodChanged{Meta: at(115), Node: "general-2", Pod: "shop/db-0", State: runbook.PodBlocked, PDB: "shop/db",
			Reason: "waits for PDB shop/db: needs 7 healthy, has 8",
			Chain:  &runbook.BudgetChain{PDB: "shop/db", DesiredHealthy: 7, CurrentHealthy: 8, ExpectedPods: 9}})
}

// fleetPaused: general-2 done, the gates waited for the budget and passed, then the pause asked for
// with p after it.
func fleetPaused() []runbook.Event {
	at := func(sec int) runbook.Meta { return meta("fleet", sec) }
	gates := func(sec int, ok bool) *runbook.GatesChanged {
		g := runbook.GateState{Name: "budgets", Kind: "budgets", Value: "0 at zero", OK: true, Since: at(sec).Time}
		if !ok {
			g.Value, g.OK, g.Why = "1 at zero", false, "PodDisruptionBudget shop/db allows no disruption (needs 7 healthy, has 6)"
		}
		return &runbook.GatesChanged{Meta: at(sec), Gates: []runbook.GateState{{Name: "pods", Kind: "pods", Value: "0 unhealthy", OK: true, Since: at(110).Time}, g}}
	}
	return append(fleetRun(),
		&runbook.PodChanged{Meta: at(150), Node: "general-2", Pod: "shop/db-0", State: runbook.PodGone, Done: 3, Total: 3},
		&runbook.NodeChanged{Meta: at(172), Node: "general-2", State: runbook.NodeUpgraded, Detail: "at v1.37.1"},
		&runbook.StepProgress{Meta: at(172), Message: "group general: node general-2 upgraded", Done: 1, Total: 6},
		&runbook.StepProgress{Meta: at(173), Message: "group general after general-2: waiting for health: PodDisruptionBudget shop/db allows no disruption (needs 7 healthy, has 6)"},
		gates(173, false), gates(180, true),
		&runbook.StepPaused{Meta: at(181), When: runbook.PauseInside, Message: "paused at your request after general-2 (group general)"})
}

// fleetEnds: the run goes on and succeeds, relaxing a budget for general-4 on the way.
func fleetEnds() []runbook.Event {
	at := func(sec int) runbook.Meta { return meta("fleet", sec) }
	var evs []runbook.Event
	for i, n := range []string{"general-3", "general-4", "general-5", "general-6"} {
		sec := 200 + 50*i
		evs = append(evs, &runbook.NodeChanged{Meta: at(sec), Node: n, State: runbook.NodeCordoned},
			&runbook.NodeChanged{Meta: at(sec + 45), Node: n, State: runbook.NodeUpgraded, Detail: "at v1.37.1"},
			&runbook.StepProgress{Meta: at(sec + 45), Message: "group general: node " + n + " upgraded", Done: i + 3, Total: 6})
	}
	return append(evs, &runbook.StepFinished{Meta: at(400), Duration: 290 * time.Second},
		&runbook.RunSummary{Meta: meta("", 401), Status: runbook.RunSucceeded, Took: runbook.Duration{Duration: 401 * time.Second}, Pods: 15, Skipped: []string{"general-1"},
			Groups: []runbook.GroupSummary{{Step: "canary", Nodes: []runbook.NodeSummary{{Node: "general-1", Took: runbook.Duration{Duration: 59 * time.Second}}}},
				{Step: "fleet", Group: "general", Nodes: []runbook.NodeSummary{{Node: "general-2", Took: runbook.Duration{Duration: time.Minute}},
					{Node: "general-3", Took: runbook.Duration{Duration: 45 * time.Second}}, {Node: "general-4", Took: runbook.Duration{Duration: 45 * time.Second}},
					{Node: "general-5", Took: runbook.Duration{Duration: 45 * time.Second}}, {Node: "general-6", Took: runbook.Duration{Duration: 45 * time.Second}}}}},
			Blockers: []string{"shop/db-0: waits for PDB shop/db: needs 7 healthy, has 8, 1 of them just evicted"},
			Relaxed:  []runbook.RelaxSummary{{Step: "fleet", PDB: "shop/web", Node: "general-4", What: "allows one more pod of the budget to be down (maxUnavailable 1 → 2)", Restored: true}},
			Forecast: []runbook.ForecastCheck{{Step: "fleet", Forecast: est(5 * time.Minute), From: "model", Took: runbook.Duration{Duration: 200 * time.Second}, Paused: runbook.Duration{Duration: 90 * time.Second}}}},
		&runbook.RunFinished{Meta: meta("", 401), Status: runbook.RunSucceeded, Message: "every step done"})
}

// TestDecisionPoints: each screen the issue found wrong where a person decides, as display state
// and on screen; golden screens at 160x45 and 80x24.
func TestDecisionPoints(t *testing.T) {
	pause := PauseMsg{Req: runbook.PauseRequest{Step: "fleet", When: runbook.PauseInside, Message: "paused at your request after general-2 (group general)",
		Done: []string{"preflight", "backup", "canary"}}, Reply: make(chan runbook.Decision, 1)}
	for _, tc := range []struct {
		name   string
		events []runbook.Event
		msgs   []tea.Msg // after the events
		golden string
		check  func(m Model, screen string) string // what is wrong at 160x45, "" when nothing
	}{
		{"the pause dialog says the gates passed", fleetPaused(), []tea.Msg{pause}, "decision-pause", func(m Model, _ string) string {
			lines := strings.Join(m.dialog.lines, "\n")
			if strings.Contains(lines, "waiting for health") || !strings.Contains(lines, "group general after general-2: healthy: pods 0 unhealthy, budgets 0 at zero") {
				return "dialog:\n" + lines
			}
			return ""
		}},
		{"the canary's node is skipped, never waiting", fleetRun(), nil, "decision-fleet", func(m Model, screen string) string {
			n := m.step("fleet").Nodes["general-1"]
			if n.State != runbook.NodeSkipped || n.Detail != "upgraded by step canary first" || !strings.Contains(screen, "general-1          general  skipped    upgraded by step canary first") {
				return fmt.Sprintf("general-1 %+v", *n)
			}
			return ""
		}},
		{"the fleet's bar counts the nodes to do", fleetRun(), nil, "", func(_ Model, screen string) string {
			if !strings.Contains(screen, "0% 0/5") || strings.Contains(screen, "% 0/6") {
				return "the bar is not 0/5"
			}
			return ""
		}},
		{"the fleet's bar counts a node done", fleetPaused(), nil, "", func(_ Model, screen string) string {
			if !strings.Contains(screen, "% 1/5") {
				return "the bar is not 1/5"
			}
			return ""
		}},
		{"a budget's numbers add up", fleetRun(), nil, "", func(_ Model, screen string) string {
			if !strings.Contains(screen, "shop/db-0 on general-2: waits for PDB shop/db: needs 7 healthy, has 8, 1 of them just evicted") {
				return "the blocked pod's reason"
			}
			return ""
		}},
		{"the header says the server is at the target", fleetRun(), nil, "", func(m Model, _ string) string {
			if h := m.header(160); !strings.Contains(h, "prod-eu  v1.37.1 (at target)") || strings.Contains(h, "→") {
				return "header:\n" + h
			}
			return ""
		}},
		{"the quit dialog closes when the run ends", fleetPaused(), append(append([]tea.Msg{keyMsg("q")}, events(fleetEnds())...), DoneMsg{}),
			"decision-finished", func(m Model, screen string) string {
				if m.dialog != nil || strings.Contains(screen, "Quit while") || !strings.Contains(screen, "[succeeded]") {
					return "a dialog is still open"
				}
				return ""
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := append(events(tc.events), tc.msgs...)
			for _, size := range [][2]int{{160, 45}, {80, 24}} {
				m := newModel(nil).WithSize(size[0], size[1])
				for _, msg := range msgs {
					nm, _ := m.Update(msg)
					m = nm.(Model)
				}
				screen := ansi.Strip(m.Render())
				if what := tc.check(m, screen); what != "" && size[0] == 160 { // (80 columns cut the lines the checks read)
					t.Errorf("at %dx%d: %s\n%s", size[0], size[1], what, screen)
				}
				// The footer always keeps ? help and q quit.
				if lines := strings.Split(screen, "\n"); !strings.HasSuffix(strings.TrimRight(lines[len(lines)-1], " "), "? help • q quit") {
					t.Errorf("at %dx%d the footer lost ? help or q quit: %q", size[0], size[1], lines[len(lines)-1])
				}
				if tc.golden != "" {
					screenAt(t, fmt.Sprintf("%s-%dx%d", tc.golden, size[0], size[1]), size[0], size[1], newModel(nil), msgs...)
				}
			}
		})
	}
}

// TestRelaxProposesWhatThePaneShows: two pods of one budget were told different fixes (the budget
// changed between them): b proposes the fix the pane shows, the newest.
func TestRelaxProposesWhatThePaneShows(t *testing.T) {
	t.Parallel()
	chain := func(fix string) *runbook.BudgetChain {
		return &runbook.BudgetChain{PDB: "shop/db", DesiredHealthy: 3, CurrentHealthy: 3, ExpectedPods: 4, Fix: fix}
	}
	older := `kubectl patch pdb db -n shop --type=merge -p '{"spec":{"maxUnavailable":2}}'`
	newer := `kubectl patch pdb db -n shop --type=merge -p '{"spec":{"unhealthyPodEvictionPolicy":"AlwaysAllow"}}'`
	m := feed(newModel(nil), append(draining(),
		&runbook.PodChanged{Meta: meta("canary", 15), Node: "general-1", Pod: "shop/db-1", State: runbook.PodBlocked, PDB: "shop/db", Chain: chain(older)},
		&runbook.PodChanged{Meta: meta("canary", 20), Node: "general-1", Pod: "shop/db-0", State: runbook.PodBlocked, PDB: "shop/db", Chain: chain(newer)})...)
	m.width, m.height = 160, 45
	pane := ansi.Strip(m.Render())
	m = press(m, "b")
	if m.dialog == nil {
		t.Fatal("b offered nothing")
	}
	proposed := m.dialog.lines[0]
	if proposed != newer || !strings.Contains(pane, "fix: "+proposed) || strings.Contains(pane, older) {
		t.Errorf("b proposes %q; the pane:\n%s", proposed, pane)
	}
}

// TestETA: the ETA's arithmetic, from known events and times: the forecast at first, counted down
// on the clock between events, re-estimated as each batch finishes from the forecast of the batches
// left and the pace measured so far (the forecast weighing as one batch), the time at a pause point
// left out, and nothing rather than "ETA ~" when no time is left to show.
func TestETA(t *testing.T) {
	t.Parallel()
	at := func(sec int) runbook.Meta { return meta("fleet", sec) }
	node := func(sec int, n string, st runbook.NodeState) runbook.Event {
		return &runbook.NodeChanged{Meta: at(sec), Node: n, State: st}
	}
	type point struct {
		sec    int             // the clock
		events []runbook.Event // before it
		answer bool            // the person answers the pause point at sec
		want   string
	}
	four := []string{"a", "b", "c", "d"}
	for _, tc := range []struct {
		name   string
		plan   *runbook.NodePlan
		points []point
	}{
		{"counts down between events", ptr(fleetPlan(time.Minute, four)), []point{
			{11, []runbook.Event{node(11, "a", runbook.NodeCordoned)}, false, "  ETA ~3m59s"},
			{40, nil, false, "  ETA ~3m30s"},
			{70, nil, false, "  ETA ~3m00s"},
			{100, nil, false, "  ETA ~3m00s"}, // a runs late: the batches after it are still ahead
		}},
		{"a fast batch moves it only so far", ptr(fleetPlan(time.Minute, four)), []point{
			{12, []runbook.Event{node(11, "a", runbook.NodeCordoned)}, false, "  ETA ~3m58s"},
			// a took 15s against a forecast of 1m: 3 batches at (15s+1m)/(1m+1m) of the forecast, not a quarter.
			{25, []runbook.Event{node(25, "a", runbook.NodeUpgraded)}, false, "  ETA ~1m53s"},
			{55, []runbook.Event{node(26, "b", runbook.NodeCordoned)}, false, "  ETA ~1m23s"},
			// b took 30s: 2 batches at (45s+1m)/(2m+1m).
			{55, []runbook.Event{node(55, "b", runbook.NodeUpgraded)}, false, "  ETA ~1m10s"},
		}},
		{"a slow batch moves it only so far", ptr(fleetPlan(time.Minute, four)), []point{
			// a took 4m against 1m: 3 batches at (4m+1m)/(1m+1m), not four times the forecast.
			{250, []runbook.Event{node(11, "a", runbook.NodeCordoned), node(250, "a", runbook.NodeUpgraded)}, false, "  ETA ~7m30s"},
		}},
		{"a pause is not counted", ptr(fleetPlan(time.Minute, four)), []point{
			{70, []runbook.Event{node(11, "a", runbook.NodeCordoned), node(70, "a", runbook.NodeUpgraded)}, false, "  ETA ~3m00s"},
			{71, []runbook.Event{&runbook.StepPaused{Meta: at(71), When: runbook.PauseInside}}, false, ""}, // paused: no ETA
			{371, nil, true, "  ETA ~2m59s"},
			{401, nil, false, "  ETA ~2m29s"},
			{402, []runbook.Event{node(402, "b", runbook.NodeCordoned)}, false, "  ETA ~2m28s"},
		}},
		{"nothing left to show", ptr(fleetPlan(time.Minute, []string{"a"})), []point{
			{70, []runbook.Event{node(11, "a", runbook.NodeCordoned)}, false, ""},
			{75, []runbook.Event{node(75, "a", runbook.NodeUpgraded)}, false, ""}, // the step waits for health at its end
		}},
		{"without a forecast, the measured pace", nil, []point{
			{11, []runbook.Event{node(10, "x", runbook.NodeSkipped), node(10, "b", runbook.NodeWaiting), node(10, "c", runbook.NodeWaiting),
				node(10, "d", runbook.NodeWaiting), node(11, "b", runbook.NodeCordoned)}, false, ""},
			{71, []runbook.Event{node(71, "b", runbook.NodeUpgraded)}, false, "  ETA ~2m00s"},
			{101, nil, false, "  ETA ~1m30s"},
			{200, nil, false, "  ETA ~1m00s"},
		}},
	} {
		evs := started()
		if tc.plan != nil {
			evs = append([]runbook.Event{&runbook.RunPlanned{Meta: at(1), Steps: []runbook.NodePlan{*tc.plan}}}, evs...)
		}
		reply := make(chan runbook.Decision, 1)
		m := feed(newModel(nil), append(evs, &runbook.StepStarted{Meta: at(10), Kind: "nodegroups", Attempt: 1},
			&runbook.StepProgress{Meta: at(10), Message: "group general", Total: 4})...)
		for _, p := range tc.points {
			m = feed(m, p.events...)
			m.Now = at(p.sec).Time
			if p.answer {
				nm, _ := m.Update(PauseMsg{Req: runbook.PauseRequest{Step: "fleet", When: runbook.PauseInside}, Reply: reply})
				m = press(nm.(Model), "c")
			}
			if got := m.eta(m.step("fleet")); got != p.want {
				t.Errorf("%s, at %ds: %q, want %q", tc.name, p.sec, got, p.want)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// resumedWithHistory is a run resumed after a first session in which the canary upgraded n1 (with
// its evidence) and the fleet upgraded n2: the engine's RunStarted, then the RunHistory of its log.
func resumedWithHistory() []runbook.Event {
	return []runbook.Event{
		&runbook.RunStarted{Meta: meta("", 600), Runbook: "upgrade", Target: "v1.37.1", Steps: []string{"preflight", "backup", "canary", "fleet"}, Resumed: true,
			StepStates: []runbook.StepBrief{{Name: "preflight", Kind: "preflight", Status: runbook.StatusDone, Took: runbook.Duration{Duration: 2 * time.Second}},
				{Name: "backup", Kind: "velero-backup", Status: runbook.StatusDone, Took: runbook.Duration{Duration: 7 * time.Second}},
				{Name: "canary", Kind: "canary", Status: runbook.StatusDone, Took: runbook.Duration{Duration: 340 * time.Second}},
				{Name: "fleet", Kind: "nodegroups", Status: runbook.StatusInterrupted}}},
		&runbook.RunHistory{Meta: meta("", 600), Sessions: 1, Since: t0, Pods: 5,
			Nodes: []runbook.NodeHistory{
				{Step: "canary", Node: "n1", Group: "general", State: runbook.NodeUpgraded, Detail: "at v1.37.1", Took: runbook.Duration{Duration: 30 * time.Second}},
				{Step: "fleet", Node: "n1", Group: "general", State: runbook.NodeSkipped, Detail: "upgraded by step canary first"},
				{Step: "fleet", Node: "n2", Group: "general", State: runbook.NodeUpgraded, Detail: "at v1.37.1", Took: runbook.Duration{Duration: time.Minute}}},
			Steps: []runbook.StepHistory{{Step: "canary", Progress: []string{
				"canary node n1: of 4 candidates, the fewest pods to move (1)",
				"soak: every gate green for 5m (pods 0 unhealthy, budgets 0 at zero)"}}}},
	}
}

// TestResumedRunShowsEarlierSessions: a resumed run's screen shows the nodes its earlier session
// upgraded, and the pause point after the canary shows the canary's evidence from that session;
// golden screens at 160x45 and 80x24.
func TestResumedRunShowsEarlierSessions(t *testing.T) {
	pause := PauseMsg{Req: runbook.PauseRequest{Step: "canary", When: runbook.PauseAfter, Done: []string{"preflight", "backup", "canary"}}, Reply: make(chan runbook.Decision, 1)}
	msgs := append(events(resumedWithHistory()), pause)
	for _, size := range [][2]int{{160, 45}, {80, 24}} {
		m := newModel(nil).WithSize(size[0], size[1])
		for _, msg := range msgs {
			nm, _ := m.Update(msg)
			m = nm.(Model)
		}
		for _, tc := range []struct {
			what      string
			got, want any
		}{
			{"canary's n1", m.step("canary").Nodes["n1"].State, runbook.NodeUpgraded},
			{"n1's time", m.step("canary").Nodes["n1"].Took, 30 * time.Second},
			{"fleet's n2", m.step("fleet").Nodes["n2"].State, runbook.NodeUpgraded},
			{"fleet's n1", m.step("fleet").Nodes["n1"].State, runbook.NodeSkipped},
			{"fleet's nodes in order", strings.Join(m.step("fleet").NodeOrder, ","), "n1,n2"},
			{"the dialog", m.dialog != nil && m.dialog.kind == dialogPause, true},
		} {
			if tc.got != tc.want {
				t.Errorf("at %dx%d: %s: %v, want %v", size[0], size[1], tc.what, tc.got, tc.want)
			}
		}
		if m.dialog != nil {
			lines := strings.Join(m.dialog.lines, "\n")
			for _, want := range []string{"canary (earlier session): canary node n1: of 4 candidates", "canary (earlier session): soak: every gate green for 5m", "nodes: n1 upgraded"} {
				if !strings.Contains(lines, want) {
					t.Errorf("at %dx%d the pause dialog lacks %q:\n%s", size[0], size[1], want, lines)
				}
			}
		}
		if screen := ansi.Strip(m.Render()); size[0] == 160 && !strings.Contains(screen, "2 node(s) upgraded: n1, n2") {
			t.Errorf("the log does not say what the earlier session upgraded:\n%s", screen)
		}
		screenAt(t, fmt.Sprintf("resumed-history-%dx%d", size[0], size[1]), size[0], size[1], newModel(nil), msgs...)
	}
	// Once the step moves again, its progress is this session's: the evidence is gone.
	m := feed(newModel(nil), append(resumedWithHistory(), &runbook.StepProgress{Meta: meta("canary", 700), Message: "now"})...)
	if s := m.step("canary"); len(s.Evidence) != 0 || s.Progress != "now" {
		t.Errorf("after new progress: evidence %v, progress %q", s.Evidence, s.Progress)
	}
}

// TestRollbackDialogNamesNodesAndCommands: the rollback dialog names, under each step it undoes,
// every node and the command run there, newest first (the step's UndoPlanned events), with "and N
// more" past a screen's worth; the log gets no line per node for it.
func TestRollbackDialogNamesNodesAndCommands(t *testing.T) {
	t.Parallel()
	evs := append(started(), &runbook.StepStarted{Meta: meta("canary", 10), Kind: "canary", Attempt: 1})
	for i := 1; i <= 10; i++ {
		evs = append(evs, &runbook.UndoPlanned{Meta: meta("canary", 10+i), Lines: []string{fmt.Sprintf("node n%d: cordon, drain under its budgets, run `downgrade n%d`", i, i)}})
	}
	m := feed(newModel(nil), evs...)
	logged := len(m.Log)
	m = press(m, "r")
	if m.dialog == nil || m.dialog.kind != dialogRollback {
		t.Fatalf("r: dialog %+v", m.dialog)
	}
	got := strings.Join(m.dialog.lines, "\n")
	for _, want := range []string{"  - canary\n      node n10: cordon, drain under its budgets, run `downgrade n10`\n      node n9:", "and 2 more (`drydock rollback", "--dry-run` lists them all)"} {
		if !strings.Contains(got, want) {
			t.Errorf("the dialog does not say %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "node n2:") {
		t.Errorf("the dialog lists more than a screen's worth:\n%s", got)
	}
	if logged != len(feed(newModel(nil), started()...).Log)+1 {
		t.Errorf("UndoPlanned went to the log: %d lines", logged)
	}
}
