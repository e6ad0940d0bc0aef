package tui

// Folding the engine's events into display state: Apply and what it calls.

import (
	"strings"
	"time"

	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/runbook"
)

// needsAPerson: a step failed, or the run ended other than succeeded or paused (the pause point
// rings by itself).
func needsAPerson(ev runbook.Event) bool {
	switch e := ev.(type) {
	case *runbook.StepFailed:
		return !e.Interrupted
	case *runbook.RunFinished:
		return e.Status != runbook.RunSucceeded && e.Status != runbook.RunPaused && e.Status != runbook.RunInterrupted
	}
	return false
}

// journaled is how a step the journal already has looks on the screen.
var journaled = map[runbook.StepStatus]string{
	runbook.StatusDone: Done, runbook.StatusSkipped: Skipped, runbook.StatusFailed: Failed, runbook.StatusInterrupted: Failed,
	runbook.StatusRolledBack: RolledBack, runbook.StatusRollbackFailed: Failed, runbook.StatusPaused: Paused,
}

// Apply folds one event into the state: the reducer the tests drive.
func (m *Model) Apply(ev runbook.Event) {
	text := printer.Format(ev)
	level := "info"
	t := runbook.EventTime(ev)
	if name := runbook.MetaOf(ev).Step; name != "" {
		if _, paused := ev.(*runbook.StepPaused); !paused {
			m.step(name).pauseEnds(t) // the step goes on only once its pause point was answered
		}
	}
	switch e := ev.(type) {
	case *runbook.RunStarted:
		m.runStarted(e)
	case *runbook.StepStarted:
		s := m.step(e.Step)
		s.Kind, s.Status, s.Started, s.Error, s.Evidence = e.Kind, Running, e.Time, "", nil
		s.est, s.pausedFor, s.pausedSince, s.cordoned = estimate{}, 0, time.Time{}, false
		s.reestimate(m.Plans[e.Step], e.Time)
		m.Selected = m.index(e.Step)
	case *runbook.StepProgress:
		s := m.step(e.Step)
		s.Progress, s.Until, s.Evidence = e.Message, e.Until, nil
		if e.Total > 0 {
			s.Done, s.Total = e.Done, e.Total
		}
	case *runbook.StepFinding:
		s := m.step(e.Step)
		s.Findings = append(s.Findings, e.Finding)
		level = string(e.Severity)
	case *runbook.StepPaused:
		s := m.step(e.Step)
		if s.Status != Paused {
			s.resume = s.Status
		}
		s.Status = Paused
		if s.pausedSince.IsZero() {
			s.pausedSince = e.Time
		}
	case *runbook.StepFinished:
		s := m.step(e.Step)
		s.Duration = e.Duration
		s.Status = Done
		if e.Skipped {
			s.Status = Skipped
		}
	case *runbook.StepFailed:
		s := m.step(e.Step)
		s.Duration, s.Error, s.Status = e.Duration, e.Error, Failed
		level = "error"
	case *runbook.RollbackStarted:
		m.step(e.Step).Status = RollingBack
	case *runbook.RollbackFinished:
		level = m.rollbackFinished(e)
	case *runbook.RollbackPointSet:
		p := e.Point
		m.step(e.Step).RollbackPoint = &p
	case *runbook.NodeChanged:
		if !m.nodeChanged(e) {
			return // the plan, not news: keep the log for what happens
		}
	case *runbook.GatesChanged:
		// Display state, not news: the pane shows the gates; the log keeps what happens.
		s := m.step(e.Step)
		s.Gates = e.Gates
		s.Progress = healthyAgain(s.Progress, e.Gates)
		return
	case *runbook.PodChanged:
		if m.podChanged(e) {
			level = "warning"
		}
	case *runbook.LogLine:
		if e.Stream == "stderr" || e.Stream == "warning" {
			level = "warning"
		}
	case *runbook.RunFinished:
		m.Finished, m.Status, m.Message, m.Ended = true, string(e.Status), e.Message, e.Time
		if e.Status != runbook.RunSucceeded {
			level = "warning"
		}
		m.log(t, level, text)
		m.closeMootDialog(t)
		return
	case *runbook.RunSummary:
		m.Summary = e
		m.log(t, "info", text)
		for _, l := range printer.DescribeSummary(e) {
			m.log(t, "info", strings.TrimSpace(l))
		}
		return
	case *runbook.RunPlanned:
		m.runPlanned(e, text)
		return
	case *runbook.RunHistory:
		m.runHistory(e, text)
		return
	case *runbook.UndoPlanned: // display state for the rollback dialog, not news for the log
		m.step(e.Step).Undo = append(m.step(e.Step).Undo, e.Lines...)
		return
	}
	m.log(t, level, text)
}

func (m *Model) runStarted(e *runbook.RunStarted) {
	m.RunID, m.Runbook, m.Cluster = e.RunID, e.Runbook, e.Cluster
	if m.Info.Target == "" {
		m.Info.Target = e.Target
	}
	if m.Started.IsZero() {
		m.Started = e.Time
	}
	for _, name := range e.Steps {
		m.step(name)
	}
	for _, b := range e.StepStates {
		s := m.step(b.Name)
		s.Kind = b.Kind
		if b.Took.Duration > 0 {
			s.Duration = b.Took.Duration
		}
		if st, ok := journaled[b.Status]; ok && s.Status == Pending {
			s.Status = st
		}
	}
	m.Finished, m.Ended = false, time.Time{}
}

// runHistory shows what the run's earlier sessions did: each node as they left it, each finished
// step's last progress lines (its evidence), and logs it in a few lines, not one per old event.
func (m *Model) runHistory(e *runbook.RunHistory, text string) {
	for _, n := range e.Nodes {
		s := m.step(n.Step)
		if s.Nodes == nil {
			s.Nodes = map[string]*Node{}
		}
		if _, ok := s.Nodes[n.Node]; !ok {
			s.NodeOrder = append(s.NodeOrder, n.Node)
		}
		s.Nodes[n.Node] = &Node{Name: n.Node, Group: n.Group, Detail: n.Detail, State: n.State, Took: n.Took.Duration}
	}
	for _, h := range e.Steps {
		if s := m.step(h.Step); len(h.Progress) > 0 {
			s.Evidence, s.Progress = h.Progress, h.Progress[len(h.Progress)-1]
		}
	}
	m.log(e.Time, "info", text)
	for _, l := range printer.DescribeHistory(e) {
		m.log(e.Time, "info", strings.TrimSpace(l))
	}
}

// rollbackFinished folds the end of a step's rollback in and says the log line's level.
func (m *Model) rollbackFinished(e *runbook.RollbackFinished) string {
	s := m.step(e.Step)
	if e.Error != "" {
		s.Status, s.Error = Failed, "rollback: "+e.Error
		return "error"
	}
	s.Status = RolledBack
	if len(e.Kept) > 0 {
		return "warning" // what could not be undone is news, not routine
	}
	return "info"
}

// nodeChanged folds a node's state in; false when it is the plan, not news for the log. A node
// the plan leaves alone (at the target, upgraded by an earlier step) shows as skipped, and why, from
// the start: the step lists it with the nodes it waits for, but will not move it.
func (m *Model) nodeChanged(e *runbook.NodeChanged) bool {
	s := m.step(e.Step)
	if s.Nodes == nil {
		s.Nodes = map[string]*Node{}
	}
	n := s.Nodes[e.Node]
	if n == nil {
		n = &Node{Name: e.Node}
		s.Nodes[e.Node] = n
		s.NodeOrder = append(s.NodeOrder, e.Node)
	}
	state, detail := e.State, e.Detail
	if why := m.leftAlone(e.Step, e.Node); why != "" && (state == runbook.NodeWaiting || state == runbook.NodeSkipped) {
		state, detail = runbook.NodeSkipped, why
	}
	n.State, n.Detail = state, detail
	if e.Group != "" {
		n.Group = e.Group
	}
	switch {
	case state == runbook.NodeCordoned && n.Began.IsZero():
		n.Began = e.Time
		if !s.cordoned {
			s.cordoned, s.firstCordon = true, s.active(e.Time)
		}
	case state == runbook.NodeUpgraded && !n.Began.IsZero():
		n.Took = e.Time.Sub(n.Began)
	}
	if state == runbook.NodeUpgraded || state == runbook.NodeSkipped {
		s.reestimate(m.Plans[e.Step], e.Time)
	}
	return e.State != runbook.NodeWaiting || e.Group == ""
}

// leftAlone is why the plan leaves node alone in step, or "".
func (m *Model) leftAlone(step, node string) string {
	if p := m.Plans[step]; p != nil {
		for _, l := range p.Left {
			if l.Node == node {
				return l.Reason
			}
		}
	}
	return ""
}

// podChanged folds a pod's state in; true when it is blocked.
func (m *Model) podChanged(e *runbook.PodChanged) bool {
	s := m.step(e.Step)
	if s.Pods == nil {
		s.Pods = map[string]*Pod{}
	}
	p := s.Pods[e.Pod]
	if p == nil {
		p = &Pod{Name: e.Pod}
		s.Pods[e.Pod] = p
		s.PodOrder = append(s.PodOrder, e.Pod)
	}
	p.Node, p.State, p.PDB, p.Reason, p.Chain = e.Node, e.State, e.PDB, e.Reason, e.Chain
	if e.Chain != nil {
		p.ChainAt = e.Time
	}
	if n := s.Nodes[e.Node]; n != nil && e.Total > 0 {
		n.Done, n.Total = e.Done, e.Total
	}
	return e.State == runbook.PodBlocked
}

// runPlanned keeps each node step's part of the plan (the ETA starts from its forecast) and logs the
// plan's lines, the blockers as errors, after its summary.
func (m *Model) runPlanned(e *runbook.RunPlanned, text string) {
	t := e.Time
	m.Plans = map[string]*runbook.NodePlan{}
	for i := range e.Steps {
		m.Plans[e.Steps[i].Step] = &e.Steps[i]
	}
	m.log(t, "info", text)
	// The certain blockers come last, so that the newest lines on screen say what stops the run.
	var certain []string
	for _, l := range printer.DescribeNodePlans(e.Steps) {
		if l.Certain {
			certain = append(certain, strings.TrimSpace(l.Text))
			continue
		}
		m.log(t, "info", strings.TrimSpace(l.Text))
	}
	for _, l := range printer.DescribeForecast(e.Forecast) {
		m.log(t, "info", strings.TrimSpace(l))
	}
	for _, l := range certain {
		m.log(t, "error", l)
	}
}

// waitingForHealth marks the progress of a step that waits for its health gates (steps/rollout's
// Gates.WaitHealthy): "group a after n1: waiting for health: PDB shop/db allows no disruption".
const waitingForHealth = ": waiting for health: "

// healthyAgain is the step's progress once every gate passed: a wait for health is over, and the
// screen (the pane, a pause point's dialog) must not say it still waits.
func healthyAgain(progress string, gates []runbook.GateState) string {
	what, _, waiting := strings.Cut(progress, waitingForHealth)
	if !waiting || len(gates) == 0 {
		return progress
	}
	values := make([]string, 0, len(gates))
	for _, g := range gates {
		if !g.OK {
			return progress
		}
		values = append(values, g.Name+" "+g.Value)
	}
	return what + ": healthy: " + strings.Join(values, ", ")
}

// closeMootDialog closes a question the end of the run made moot (quit or abort a running run; a
// budget to relax for a drain that is over): the header says how it ended, q quits.
func (m *Model) closeMootDialog(t time.Time) {
	if d := m.dialog; d != nil && (d.kind == dialogQuit || d.kind == dialogAbort || d.kind == dialogRelax) {
		m.dialog = nil
		m.log(t, "info", "the run ended before you answered: q quits")
	}
}

func (m *Model) index(step string) int {
	for i, s := range m.Steps {
		if s.Name == step {
			return i
		}
	}
	return m.Selected
}
