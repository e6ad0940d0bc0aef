package tui

import (
	"errors"
	"flag"
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

// TestETAFromForecast: with the plan's forecast the ETA is there before any node finished, and as
// nodes finish it is the forecast of the batches left, scaled by how the done nodes compared.
func TestETAFromForecast(t *testing.T) {
	t.Parallel()
	at := func(sec int) runbook.Meta { return meta("fleet", sec) }
	est := func(d time.Duration) runbook.Estimate { return runbook.Est(d, d, d) }
	batch := func(d time.Duration, nodes ...string) runbook.NodeBatch {
		b := runbook.NodeBatch{Forecast: &runbook.Estimate{}}
		*b.Forecast = est(d)
		for _, n := range nodes {
			b.Nodes = append(b.Nodes, runbook.PlannedNode{Node: n, Forecast: &runbook.NodeForecast{Cycle: est(d)}})
		}
		return b
	}
	plan := runbook.NodePlan{Step: "fleet", Kind: "nodegroups", Forecast: &runbook.StepForecast{Total: est(3 * time.Minute)},
		Batches: []runbook.NodeBatch{batch(time.Minute, "b"), batch(time.Minute, "c"), batch(time.Minute, "d")}}
	evs := append([]runbook.Event{&runbook.RunPlanned{Meta: at(1), Steps: []runbook.NodePlan{plan}}}, started()...)
	evs = append(evs, &runbook.StepStarted{Meta: at(10), Kind: "nodegroups", Attempt: 1},
		&runbook.NodeChanged{Meta: at(10), Node: "b", State: runbook.NodeWaiting},
		&runbook.NodeChanged{Meta: at(10), Node: "c", State: runbook.NodeWaiting},
		&runbook.NodeChanged{Meta: at(10), Node: "d", State: runbook.NodeWaiting},
		&runbook.NodeChanged{Meta: at(11), Node: "b", State: runbook.NodeCordoned})
	m := feed(newModel(nil), evs...)
	if got := m.eta(m.step("fleet")); got != "  ETA ~3m00s" {
		t.Errorf("before any node finished, the forecast: %q", got)
	}
	// b took 2 minutes against a forecast of 1: the two batches left should take 4.
	m = feed(m, &runbook.NodeChanged{Meta: at(131), Node: "b", State: runbook.NodeUpgraded})
	if got := m.eta(m.step("fleet")); got != "  ETA ~4m00s" {
		t.Errorf("refined by the node done: %q", got)
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
