// Package tui is drydock's terminal UI for run, resume, rollback and drain: a Bubble Tea v2 model
// that turns the engine's events into display state and answers its pause points. The model never
// calls Kubernetes: Update only folds messages into state and sends requests (abort, roll back,
// pause after the current node, a pause point's answer) to the controller in run.go.
package tui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/runbook"
)

// Step statuses as the screen shows them.
const (
	Pending     = "pending"
	Running     = "running"
	Paused      = "paused"
	Done        = "done"
	Failed      = "failed"
	Skipped     = "skipped"
	RollingBack = "rolling back"
	RolledBack  = "rolled back"
)

// RequestKind is what the person asked for.
type RequestKind int

const (
	// RequestAbort stops the running step; the run stays resumable.
	RequestAbort RequestKind = iota + 1
	// RequestRollback stops the run and rolls it back to Request.To.
	RequestRollback
	// RequestPauseNext asks for a pause point after the current node.
	RequestPauseNext
	// RequestRelax approves relaxing the budget Request.PDB for the node being drained.
	RequestRelax
)

// Request is something the person asked for; the controller acts on it.
type Request struct {
	Kind RequestKind
	To   string // RequestRollback: back to and including this step
	PDB  string // RequestRelax: namespace/name of the budget
}

// dialogKind is which question a dialog asks.
type dialogKind int

const (
	dialogPause dialogKind = iota + 1
	dialogAbort
	dialogQuit
	dialogRollback
	dialogConfirmAnswer // a destructive answer to a pause point (roll back, stop), asked again
	dialogRelax         // relax a budget that holds a drain, for the node
)

// Messages the controller sends to the model.
type (
	// EventMsg carries an engine event.
	EventMsg struct{ Event runbook.Event }
	// PauseMsg is a pause point waiting for an answer on Reply.
	PauseMsg struct {
		Req   runbook.PauseRequest
		Reply chan<- runbook.Decision
	}
	// DoneMsg: the work ended (Err nil on success).
	DoneMsg struct{ Err error }
	// TickMsg advances the clock (elapsed time, ETA).
	TickMsg time.Time
)

// Info is what the header shows besides what events say.
type Info struct {
	Command string // run, resume, rollback, drain
	Context string
	Server  string // the apiserver's version
	Target  string
	Lock    string // the lock holder (this process)
}

// Node is a node's display state.
type Node struct {
	Name, Group, Detail string
	State               runbook.NodeState
	Done, Total         int
	// Began is when the node was cordoned; Took how long it took from there to upgraded.
	Began time.Time
	Took  time.Duration
}

// Pod is a pod being moved.
type Pod struct {
	Node, Name, PDB, Reason string
	State                   runbook.PodState
	// Chain is why its budget refuses, while it is blocked: the budget's unhealthy pods and the fix;
	// ChainAt when it was told.
	Chain   *runbook.BudgetChain
	ChainAt time.Time
}

// Step is a step's display state.
type Step struct {
	Name, Kind    string
	Status        string
	Started       time.Time
	Duration      time.Duration
	Progress      string
	Until         time.Time // the progress counts down to it (a soak, a wait)
	Done, Total   int
	Error         string
	RollbackPoint *runbook.RollbackPoint
	Findings      []runbook.Finding
	resume        string // the status to go back to when a pause point is answered with continue
	Nodes         map[string]*Node
	NodeOrder     []string
	Pods          map[string]*Pod
	PodOrder      []string
	// Gates are the step's health gates as last reported: value, verdict, since when it held.
	Gates []runbook.GateState
	// Undo is what rolling the step back will do, object by object (UndoPlanned), oldest first: the
	// rollback dialog names each node and command.
	Undo []string
	// Evidence are the last progress lines an earlier session of the run left (RunHistory), until
	// the step moves again: what a pause point after it shows (the canary's soak).
	Evidence []string

	// The ETA (eta.go): the last estimate; the pause point the step waits at and what its pauses
	// took (the ETA's clock leaves them out); its active time at its first cordon.
	est         estimate
	pausedSince time.Time
	pausedFor   time.Duration
	firstCordon time.Duration
	cordoned    bool
}

// LogLine is one line of the event log.
type LogLine struct {
	Time  time.Time
	Level string // info, warning, error
	Text  string
}

type dialog struct {
	kind    dialogKind
	title   string
	lines   []string
	choices []string
	choice  int
	reply   chan<- runbook.Decision
	to      string
	step    string
	pdb     string
	// dialogConfirmAnswer: the answer to confirm, and the pause dialog to go back to on cancel.
	answer runbook.Decision
	back   *dialog
}

// Model is the screen's state.
type Model struct {
	Info    Info
	RunID   string
	Runbook string
	Cluster string
	Steps   []*Step
	// Plans are the node steps' parts of the whole-runbook plan, by step, with their forecasts.
	Plans    map[string]*runbook.NodePlan
	Selected int
	Detail   bool // enter: the detail pane takes the whole width
	Log      []LogLine
	Started  time.Time
	Now      time.Time
	Finished bool
	Ended    time.Time // when the run finished: the elapsed clock stops there
	Summary  *runbook.RunSummary
	Status   string // the run's final status
	Message  string // the run's final message
	Err      error
	// SeverityFilter limits findings in the detail pane ("" = all).
	SeverityFilter runbook.Severity
	PauseRequested bool

	width, height int
	noClock       bool
	dialog        *dialog
	quitWhenDone  bool
	showHelp      bool
	filter        textinput.Model
	filtering     bool
	help          help.Model
	keys          keyMap
	requests      chan<- Request
	styles        styles
}

// New returns a model that sends the person's requests to requests (buffered; never blocks Update).
func New(info Info, requests chan<- Request, color bool) Model {
	ti := textinput.New()
	ti.Prompt = "/"
	ti.Placeholder = "filter the log"
	h := help.New()
	return Model{Info: info, requests: requests, keys: newKeyMap(), filter: ti, help: h, styles: newStyles(color), width: 80, height: 24}
}

type keyMap struct {
	Up, Down, Enter, PauseNext, Continue, Rollback, Abort, Relax, Filter, Findings, Help, Quit key.Binding
}

func newKeyMap() keyMap {
	return keyMap{
		Up:        key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "previous step")),
		Down:      key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "next step")),
		Enter:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "detail")),
		PauseNext: key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pause after this node")),
		Continue:  key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "continue")),
		Rollback:  key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "roll back to step")),
		Abort:     key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "abort")),
		Relax:     key.NewBinding(key.WithKeys("b"), key.WithHelp("b", "relax the blocking budget")),
		Filter:    key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter log")),
		Findings:  key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "severity filter")),
		Help:      key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:      key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	}
}

func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Up, k.Enter, k.PauseNext, k.Rollback, k.Abort, k.Filter, k.Help, k.Quit}
}

func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.Enter, k.Findings}, {k.PauseNext, k.Continue, k.Rollback, k.Abort, k.Relax}, {k.Filter, k.Help, k.Quit}}
}

// WithoutClock stops the model from reading the wall clock: time comes only from events (tests).
func (m Model) WithoutClock() Model { m.noClock = true; return m }

// WithSize sets the screen size before the first WindowSizeMsg.
func (m Model) WithSize(w, h int) Model { m.width, m.height = w, h; m.help.SetWidth(w); return m }

// Init starts the clock.
func (m Model) Init() tea.Cmd {
	if m.noClock {
		return nil
	}
	return tick()
}

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(t time.Time) tea.Msg { return TickMsg(t) })
}

func (m *Model) step(name string) *Step {
	for _, s := range m.Steps {
		if s.Name == name {
			return s
		}
	}
	s := &Step{Name: name, Status: Pending}
	m.Steps = append(m.Steps, s)
	return s
}

func (m *Model) log(t time.Time, level, text string) {
	m.Log = append(m.Log, LogLine{Time: t, Level: level, Text: text})
	if len(m.Log) > 2000 {
		m.Log = m.Log[len(m.Log)-2000:]
	}
}

func (m *Model) send(r Request) {
	select {
	case m.requests <- r:
	default: // the controller is busy with the same request
	}
}

// bell rings the terminal's bell: a pause point waits, or something failed.
var bell = tea.Raw("\a")

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

// Active reports whether the work is still going.
func (m *Model) Active() bool { return !m.Finished }

// Update folds a message into the state.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.help.SetWidth(msg.Width)
		return m, nil
	case TickMsg:
		if m.noClock {
			return m, nil
		}
		m.Now = time.Time(msg)
		return m, tick()
	case EventMsg:
		m.Apply(msg.Event)
		if m.Now.IsZero() || runbook.EventTime(msg.Event).After(m.Now) {
			m.Now = runbook.EventTime(msg.Event)
		}
		if needsAPerson(msg.Event) {
			return m, bell
		}
		return m, nil
	case PauseMsg:
		var lines []string
		if msg.Req.Message != "" {
			lines = append(lines, msg.Req.Message)
		}
		// What happened so far in the step: its last word (the canary's soak result) and its nodes.
		if s := m.step(msg.Req.Step); s.Progress != "" || len(s.NodeOrder) > 0 {
			switch {
			case len(s.Evidence) > 0: // the step's last word is an earlier session's: all of it
				for _, l := range s.Evidence {
					lines = append(lines, msg.Req.Step+" (earlier session): "+l)
				}
			case s.Progress != "":
				lines = append(lines, msg.Req.Step+": "+s.Progress)
			}
			var nodes []string
			for _, n := range s.NodeOrder {
				nodes = append(nodes, n+" "+string(s.Nodes[n].State))
			}
			if len(nodes) > 0 {
				lines = append(lines, "nodes: "+strings.Join(nodes, ", "))
			}
		}
		if len(msg.Req.Done) > 0 {
			lines = append(lines, "done so far: "+strings.Join(msg.Req.Done, ", "))
		}
		if s := m.step(msg.Req.Step); len(s.Findings) > 0 {
			lines = append(lines, fmt.Sprintf("%d findings in this step (see the detail)", len(s.Findings)))
		}
		m.dialog = &dialog{kind: dialogPause, title: fmt.Sprintf("Pause point %s step %s", msg.Req.When, msg.Req.Step), lines: lines,
			choices: []string{"Continue", "Roll back", "Stop and resume later"}, reply: msg.Reply, step: msg.Req.Step}
		m.Selected = m.index(msg.Req.Step)
		return m, bell // a pause point waits for a person: call them
	case DoneMsg:
		m.Finished, m.Err = true, msg.Err
		if m.quitWhenDone {
			return m, tea.Quit
		}
		// Every question is moot once the work is over ("quit while the run is active?" too): the
		// header says how it ended, and q quits.
		m.closeMootDialog(m.Now)
		m.dialog = nil
		return m, nil
	case tea.KeyPressMsg:
		return m.key(msg)
	}
	return m, nil
}

func (m Model) key(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	if m.filtering {
		switch k.String() {
		case "enter", "esc":
			m.filtering = false
			m.filter.Blur()
			if k.String() == "esc" {
				m.filter.SetValue("")
			}
			return m, nil
		}
		var cmd tea.Cmd
		m.filter, cmd = m.filter.Update(k)
		return m, cmd
	}
	if m.dialog != nil {
		return m.dialogKey(k)
	}
	if m.showHelp {
		m.showHelp = false
		return m, nil
	}
	switch {
	case key.Matches(k, m.keys.Up):
		if m.Selected > 0 {
			m.Selected--
		}
	case key.Matches(k, m.keys.Down):
		if m.Selected < len(m.Steps)-1 {
			m.Selected++
		}
	case key.Matches(k, m.keys.Enter):
		m.Detail = !m.Detail
	case key.Matches(k, m.keys.Findings):
		m.SeverityFilter = map[runbook.Severity]runbook.Severity{"": runbook.SeverityError, runbook.SeverityError: runbook.SeverityWarning, runbook.SeverityWarning: ""}[m.SeverityFilter]
	case key.Matches(k, m.keys.Filter):
		m.filtering = true
		return m, m.filter.Focus()
	case key.Matches(k, m.keys.Help):
		m.showHelp = true
	case key.Matches(k, m.keys.PauseNext):
		if m.Active() {
			m.PauseRequested = true
			m.send(Request{Kind: RequestPauseNext})
			m.log(m.Now, "info", "you asked to pause after the current node")
		}
	case key.Matches(k, m.keys.Rollback):
		m.openRollback()
	case key.Matches(k, m.keys.Relax):
		m.openRelax()
	case key.Matches(k, m.keys.Abort):
		if m.Active() {
			m.dialog = &dialog{kind: dialogAbort, title: "Abort the run?", lines: []string{"The running step is stopped; the run stays resumable (drydock resume " + m.RunID + ")."},
				choices: []string{"Keep running", "Abort"}}
		}
	case key.Matches(k, m.keys.Quit):
		if !m.Active() {
			return m, tea.Quit
		}
		m.dialog = &dialog{kind: dialogQuit, title: "Quit while the run is active?", lines: []string{"Quitting aborts the run; it stays resumable (drydock resume " + m.RunID + ")."},
			choices: []string{"Keep running", "Abort and quit"}}
	}
	return m, nil
}

// undoList is what rolling back to step `to` undoes, newest first.
func (m *Model) undoList(to string) []string {
	var out []string
	seen := false
	for _, s := range m.Steps {
		if s.Name == to {
			seen = true
		}
		if seen && (s.Status == Done || s.Status == Failed || s.Status == Running || s.Status == Paused) {
			out = append([]string{s.Name}, out...)
		}
	}
	return out
}

// undoLines are what rolling step back does, newest first, at most limit lines ("and N more").
func (m *Model) undoLines(step string, limit int) []string {
	all := m.step(step).Undo
	var out []string
	for i := len(all) - 1; i >= 0; i-- {
		if len(out) == limit {
			out = append(out, fmt.Sprintf("      and %d more (`drydock rollback %s --dry-run` lists them all)", i+1, m.RunID))
			break
		}
		out = append(out, "      "+all[i])
	}
	return out
}

func (m *Model) openRollback() {
	if len(m.Steps) == 0 {
		return
	}
	to := m.Steps[m.Selected].Name
	undo := m.undoList(to)
	if len(undo) == 0 {
		m.log(m.Now, "info", "nothing to roll back from step "+to)
		return
	}
	lines := []string{"These steps are undone, newest first:"}
	for _, u := range undo {
		lines = append(lines, "  - "+u)
		lines = append(lines, m.undoLines(u, 8)...)
	}
	for _, s := range m.Steps {
		if p := s.RollbackPoint; p != nil && p.Kind == runbook.RollbackPointVeleroBackup {
			lines = append(lines, "The backup "+p.Namespace+"/"+p.Name+" is kept; restoring it is `drydock rollback "+m.RunID+" --restore-backup`.")
		}
	}
	m.dialog = &dialog{kind: dialogRollback, title: "Roll back to step " + to + "?", lines: lines, choices: []string{"Cancel", "Roll back"}, to: to}
}

func (m Model) dialogKey(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	d := m.dialog
	switch k.String() {
	case "left", "h", "shift+tab", "up":
		if d.choice > 0 {
			d.choice--
		}
		return m, nil
	case "right", "l", "tab", "down":
		if d.choice < len(d.choices)-1 {
			d.choice++
		}
		return m, nil
	case "esc":
		if d.kind == dialogPause {
			return m, nil // a pause point needs an answer
		}
		return m.cancel()
	case "c":
		// Continuing is what a pause point is for: the one answer a single key gives.
		if d.kind == dialogPause {
			d.choice = 0
			return m.choose()
		}
	case "r":
		if d.kind == dialogPause {
			d.choice = 1
			return m.confirmAnswer(d)
		}
	case "s":
		if d.kind == dialogPause {
			d.choice = 2
			return m.confirmAnswer(d)
		}
	case "n":
		if d.kind != dialogPause {
			return m.cancel()
		}
	case "enter", "space":
		return m.choose()
	}
	return m, nil
}

// cancel closes a dialog without doing anything; a confirmation goes back to its pause point.
func (m Model) cancel() (tea.Model, tea.Cmd) {
	if d := m.dialog; d.kind == dialogConfirmAnswer {
		m.dialog = d.back
		return m, nil
	}
	m.dialog = nil
	return m, nil
}

// confirmAnswer asks again before a destructive answer to a pause point (roll back, stop), with
// the safe choice first: no single key rolls a run back or stops it.
func (m Model) confirmAnswer(pause *dialog) (tea.Model, tea.Cmd) {
	answer := []runbook.Decision{runbook.Continue, runbook.RollBack, runbook.Stop}[pause.choice]
	if answer == runbook.Continue {
		return m.choose()
	}
	c := &dialog{kind: dialogConfirmAnswer, answer: answer, back: pause, reply: pause.reply, step: pause.step}
	switch answer {
	case runbook.RollBack:
		c.title = "Roll back the run?"
		c.lines = []string{"The completed steps are undone, newest first (what cannot be undone is named as it goes)."}
		c.choices = []string{"Back to the pause point", "Roll back"}
	default:
		c.title = "Stop the run here?"
		c.lines = []string{"The run stops at this pause point; `drydock resume " + m.RunID + "` asks again."}
		c.choices = []string{"Back to the pause point", "Stop"}
	}
	m.dialog = c
	return m, nil
}

func (m Model) choose() (tea.Model, tea.Cmd) {
	d := m.dialog
	if d.kind == dialogPause && d.choice != 0 {
		return m.confirmAnswer(d) // enter on roll back or stop: asked again
	}
	m.dialog = nil
	switch d.kind {
	case dialogConfirmAnswer:
		if d.choice != 1 {
			m.dialog = d.back
			return m, nil
		}
		select {
		case d.reply <- d.answer:
		default:
		}
		m.log(m.Now, "info", "you answered: "+d.answer.String())
	case dialogPause:
		decision := runbook.Continue
		select {
		case d.reply <- decision:
		default:
		}
		m.log(m.Now, "info", "you answered: "+decision.String())
		st := m.step(d.step)
		st.pauseEnds(m.Now)
		if decision == runbook.Continue && st.Status == Paused && st.resume != "" {
			st.Status = st.resume // "after" pauses come after the step finished
		}
	case dialogAbort:
		if d.choice == 1 {
			m.send(Request{Kind: RequestAbort})
			m.log(m.Now, "warning", "you aborted the run")
		}
	case dialogQuit:
		if d.choice == 1 {
			m.send(Request{Kind: RequestAbort})
			if !m.Active() {
				return m, tea.Quit
			}
			m.log(m.Now, "warning", "aborting; the screen closes when the run has stopped")
			m.quitWhenDone = true
		}
	case dialogRollback:
		if d.choice == 1 {
			m.send(Request{Kind: RequestRollback, To: d.to})
			m.log(m.Now, "warning", "you asked to roll back to step "+d.to)
		}
	case dialogRelax:
		if d.choice == 1 {
			m.send(Request{Kind: RequestRelax, PDB: d.pdb})
			m.log(m.Now, "warning", "you approved relaxing PDB "+d.pdb+" for the node being drained")
		}
	}
	return m, nil
}

// budgetChains are the budgets that hold pods of s, in the order they first did, each with the
// newest chain told of any of its pods: the pane shows these and b proposes their fix.
func budgetChains(s *Step) []*runbook.BudgetChain {
	var out []*runbook.BudgetChain
	at := map[string]int{} // budget → its index in out
	when := map[string]time.Time{}
	for _, name := range s.PodOrder {
		p := s.Pods[name]
		if p.State != runbook.PodBlocked || p.Chain == nil {
			continue
		}
		i, seen := at[p.Chain.PDB]
		switch {
		case !seen:
			at[p.Chain.PDB] = len(out)
			out = append(out, p.Chain)
		case !p.ChainAt.Before(when[p.Chain.PDB]):
			out[i] = p.Chain
		default:
			continue
		}
		when[p.Chain.PDB] = p.ChainAt
	}
	return out
}

// blockingChain is the chain of the first budget that holds a pod of the selected step with a fix
// to offer, as the pane shows it, or nil.
func (m *Model) blockingChain() *runbook.BudgetChain {
	if len(m.Steps) == 0 {
		return nil
	}
	for _, c := range budgetChains(m.Steps[m.Selected]) {
		if c.Fix != "" {
			return c
		}
	}
	return nil
}

// openRelax asks before approving the relaxation of the budget that blocks the drain: the change,
// what it risks, and that drydock restores it (the safe choice first).
func (m *Model) openRelax() {
	c := m.blockingChain()
	if c == nil || !m.Active() {
		m.log(m.Now, "info", "no budget holds a pod of this step with a fix to apply")
		return
	}
	lines := []string{c.Fix}
	if c.FixNote != "" {
		lines = append(lines, c.FixNote)
	}
	lines = append(lines, "drydock records it in the journal and on the budget, and restores it when the node is drained, when the drain fails, on rollback, or after its expiry (30m) even if drydock dies.")
	m.dialog = &dialog{kind: dialogRelax, title: "Relax PDB " + c.PDB + " for this node?", lines: lines, pdb: c.PDB,
		choices: []string{"Keep waiting", "Relax it"}}
}

// ---- view ----

type styles struct {
	title, dim, bold, sel, ok, warn, err, box, dialog lipgloss.Style
	color                                             bool
}

func newStyles(color bool) styles {
	s := styles{color: color}
	if !color {
		plain := lipgloss.NewStyle()
		s.title, s.dim, s.bold, s.sel, s.ok, s.warn, s.err = plain, plain, plain, plain.Reverse(true), plain, plain, plain
		s.box = plain.Border(lipgloss.NormalBorder())
		s.dialog = plain.Border(lipgloss.DoubleBorder()).Padding(0, 1)
		return s
	}
	s.title = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("12"))
	s.dim = lipgloss.NewStyle().Foreground(lipgloss.Color("8"))
	s.bold = lipgloss.NewStyle().Bold(true)
	s.sel = lipgloss.NewStyle().Reverse(true)
	s.ok = lipgloss.NewStyle().Foreground(lipgloss.Color("10"))
	s.warn = lipgloss.NewStyle().Foreground(lipgloss.Color("11"))
	s.err = lipgloss.NewStyle().Foreground(lipgloss.Color("9")).Bold(true)
	s.box = lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(lipgloss.Color("8"))
	s.dialog = lipgloss.NewStyle().Border(lipgloss.DoubleBorder()).BorderForeground(lipgloss.Color("11")).Padding(0, 1)
	return s
}

// legend explains the screen's marks (in the ? help).
const legend = `· pending  ▶ running  ‖ paused  ✓ done  ✗ failed  – skipped  ↺ rolling back  ↩ rolled back
⚑ the step made a rollback point (a Velero backup)   ETA ~: the forecast of what is left, at the pace measured so far (pauses not counted)
a node: waiting, cordoned, draining, upgrading, upgraded, uncordoned, skipped (already at the target)`

var icons = map[string]string{Pending: "·", Running: "▶", Paused: "‖", Done: "✓", Failed: "✗", Skipped: "–", RollingBack: "↺", RolledBack: "↩"}

func (m Model) statusStyle(st string) lipgloss.Style {
	switch st {
	case Done, RolledBack:
		return m.styles.ok
	case Failed:
		return m.styles.err
	case Paused, RollingBack:
		return m.styles.warn
	}
	return lipgloss.NewStyle()
}

func short(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	d = d.Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

func trunc(s string, w int) string {
	if w <= 0 {
		return ""
	}
	return ansi.Truncate(s, w, "…")
}

// View renders the screen.
func (m Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	return v
}

// Render draws the screen as a string (the tests' golden files are this, without colour).
func (m Model) Render() string {
	w, h := max(m.width, 40), max(m.height, 12)
	header := m.header(w)
	helpBar := m.footer(w)
	if m.filtering {
		helpBar = ansi.Truncate(m.filter.View(), w, "…")
	}
	logH := max(4, h/4)
	bodyH := h - lipgloss.Height(header) - logH - 1 // the boxes' height, borders included
	var body string
	if m.Detail {
		body = m.styles.box.Width(w).Height(bodyH).Render(m.detail(w-2, bodyH-2))
	} else {
		leftW := min(30, w/3)
		left := m.styles.box.Width(leftW).Height(bodyH).Render(m.stepList(leftW-2, bodyH-2))
		right := m.styles.box.Width(w - leftW).Height(bodyH).Render(m.detail(w-leftW-2, bodyH-2))
		body = lipgloss.JoinHorizontal(lipgloss.Top, left, right)
	}
	logBox := m.logView(w, logH)
	screen := lipgloss.JoinVertical(lipgloss.Left, header, body, logBox, helpBar)
	if m.showHelp {
		screen = m.overlay(screen, w, h, m.styles.dialog.Render(m.help.FullHelpView(m.keys.FullHelp())+"\n\n"+legend))
	}
	if m.dialog != nil {
		screen = m.overlay(screen, w, h, m.dialogView(w))
	}
	return screen
}

// footer is the short help, cut to the width but for "? help" and "q quit", which always fit (the
// full help is one key away, and so is leaving).
func (m Model) footer(w int) string {
	var others []key.Binding
	for _, k := range m.keys.ShortHelp() {
		if k.Help() != m.keys.Help.Help() && k.Help() != m.keys.Quit.Help() {
			others = append(others, k)
		}
	}
	pinned := m.help.ShortHelpView([]key.Binding{m.keys.Help, m.keys.Quit})
	sep := m.help.ShortSeparator
	// Whole keys are left out from the end (an ellipsis says so) until the line fits.
	for n := len(others); n > 0; n-- {
		line := m.help.ShortHelpView(others[:n])
		if n < len(others) {
			line += sep + "…"
		}
		if line += sep + pinned; ansi.StringWidth(line) <= w {
			return line
		}
	}
	// (bubbles' help does not always cut the line at its width: cut it here)
	return ansi.Truncate(pinned, w, "…")
}

func (m Model) header(w int) string {
	elapsed := ""
	switch {
	case !m.Started.IsZero() && !m.Ended.IsZero():
		elapsed = short(m.Ended.Sub(m.Started)) // the clock stops with the run
	case !m.Started.IsZero() && !m.Now.IsZero():
		elapsed = short(m.Now.Sub(m.Started))
	}
	line1 := m.styles.title.Render("drydock "+m.Info.Command) + "  " + trunc(m.Info.Context+"  "+versions(m.Info.Server, m.Info.Target), w-20)
	state := "running"
	switch {
	case m.Finished && m.Status != "":
		state = m.Status
	case m.Finished && m.Err != nil:
		state = "failed"
	case m.Finished:
		state = "finished"
	case m.dialog != nil && (m.dialog.kind == dialogPause || m.dialog.kind == dialogConfirmAnswer):
		state = "waiting for you"
	}
	// Where the run stands comes first: on a narrow terminal the rest is cut, never the state.
	line2 := m.styles.dim.Render(trunc(fmt.Sprintf("[%s]  run %s  %s  elapsed %s  lock %s", state, m.RunID, m.Runbook, elapsed, m.Info.Lock), w))
	return line1 + "\n" + line2
}

// versions is where the run takes the cluster: "v1.36.3 → v1.37.1", or "v1.37.1 (at target)" when
// the apiserver is there already (a node upgrade after the control plane's).
func versions(server, target string) string {
	switch {
	case server == "":
		server = "?"
	case target == "":
	case atTarget(server, target):
		return server + " (at target)"
	}
	return server + " → " + target
}

// atTarget says whether version is target, or a build of it ("v1.37.1-eks-5e0fdde" is at
// "v1.37.1"; any v1.37 patch is at "v1.37").
func atTarget(version, target string) bool {
	v, t := strings.TrimPrefix(version, "v"), strings.TrimPrefix(target, "v")
	if t == "" {
		return false
	}
	rest, ok := strings.CutPrefix(v, t)
	return ok && (rest == "" || rest[0] == '-' || rest[0] == '+' || (rest[0] == '.' && strings.Count(t, ".") < 2))
}

func (m Model) stepList(w, h int) string {
	var lines []string
	for i, s := range m.Steps {
		icon := icons[s.Status]
		mark := ""
		if s.RollbackPoint != nil {
			mark = " ⚑"
		}
		dur := short(s.Duration)
		if s.Status == Running && !s.Started.IsZero() && !m.Now.IsZero() {
			dur = short(m.Now.Sub(s.Started))
		}
		name := trunc(s.Name+mark, w-len(dur)-3)
		line := fmt.Sprintf("%s %-*s %s", icon, w-len(dur)-3, name, dur)
		line = m.statusStyle(s.Status).Render(line)
		if i == m.Selected {
			line = m.styles.sel.Render(line)
		}
		lines = append(lines, line)
	}
	if len(lines) > h {
		lines = lines[:h]
	}
	return strings.Join(lines, "\n")
}

// counts is where the step's progress bar stands. A node step with a plan counts the nodes the plan
// moves, done when upgraded or found at the target (the step's own count includes the nodes the plan
// leaves alone: 0/6 of 5 to do); any other step, what it reports.
func (m Model) counts(s *Step) (done, total int) {
	p := m.Plans[s.Name]
	if p == nil || len(p.Batches) == 0 || s.Total == 0 {
		return s.Done, s.Total
	}
	for _, name := range p.Nodes() {
		total++
		if n := s.Nodes[name]; n != nil && (n.State == runbook.NodeUpgraded || n.State == runbook.NodeSkipped) {
			done++
		}
	}
	return done, total
}

func (m Model) bar(done, total, w int) string {
	if total <= 0 {
		return ""
	}
	p := progress.New(progress.WithWidth(min(w, 40)), progress.WithFillCharacters('█', '░'))
	if !m.styles.color {
		p = progress.New(progress.WithWidth(min(w, 40)), progress.WithFillCharacters('#', '.'), progress.WithColors(lipgloss.NoColor{}))
	}
	return p.ViewAs(float64(done) / float64(total))
}

// countdown is the time left of a soak or a wait, while the step runs.
func (m Model) countdown(s *Step) string {
	if s.Until.IsZero() || s.Status != Running || m.Now.IsZero() {
		return ""
	}
	left := s.Until.Sub(m.Now)
	if left < 0 {
		left = 0
	}
	return " (" + short(left.Round(time.Second)) + " left)"
}

func (m Model) detail(w, h int) string {
	if len(m.Steps) == 0 {
		if m.Finished {
			return m.styles.dim.Render("the run did not start: the log below says why")
		}
		return m.styles.dim.Render("waiting for the run to start…")
	}
	s := m.Steps[m.Selected]
	var b []string
	title := fmt.Sprintf("%s (%s) — %s", s.Name, s.Kind, s.Status)
	b = append(b, m.styles.bold.Render(trunc(title, w)))
	if s.RollbackPoint != nil {
		b = append(b, trunc("rollback point: "+s.RollbackPoint.String(), w))
	}
	if s.Error != "" {
		b = append(b, strings.Split(m.styles.err.Width(w).Render("error: "+s.Error), "\n")...)
	}
	if s.Progress != "" {
		b = append(b, trunc(s.Progress+m.countdown(s), w))
	}
	if done, total := m.counts(s); total > 0 {
		b = append(b, fmt.Sprintf("%s %d/%d%s", m.bar(done, total, w-16), done, total, m.eta(s)))
	}
	b = append(b, nodeLines(s, w)...)
	// A long reason is cut to the pane's width; in the detail view (enter) it is wrapped whole.
	fit := func(line string) []string {
		if !m.Detail {
			return []string{trunc(line, w)}
		}
		return strings.Split(lipgloss.NewStyle().Width(w).Render(line), "\n")
	}
	var blocked []string
	for _, name := range s.PodOrder {
		if p := s.Pods[name]; p.State == runbook.PodBlocked {
			reason := p.Reason
			if p.Chain != nil {
				reason = p.Chain.Reason() // the budget's numbers in words that add up
			}
			blocked = append(blocked, fit(fmt.Sprintf("  %s on %s: %s", p.Name, p.Node, reason))...)
		}
	}
	// The chain, once per budget: its unhealthy pods, where and why, and the patch that unblocks
	// (what b proposes: the same chain).
	for _, c := range budgetChains(s) {
		for _, l := range c.Lines() {
			blocked = append(blocked, fit("  "+l)...)
		}
	}
	b = append(b, m.gateLines(s, fit)...)
	if len(blocked) > 0 {
		b = append(b, m.styles.warn.Render("blocked:"))
		b = append(b, blocked...)
	}
	if len(s.Findings) > 0 {
		filter := "all"
		if m.SeverityFilter != "" {
			filter = string(m.SeverityFilter) + " only"
		}
		b = append(b, m.styles.bold.Render(fmt.Sprintf("findings (%d, %s; f filters)", len(s.Findings), filter)))
		for _, f := range s.Findings {
			if m.SeverityFilter != "" && f.Severity != m.SeverityFilter {
				continue
			}
			st := m.styles.warn
			if f.Severity == runbook.SeverityError {
				st = m.styles.err
			}
			line := fmt.Sprintf("  %-7s %s: %s", f.Severity, f.Object, f.Message)
			if m.Detail && f.Hint != "" {
				line += " (fix: " + f.Hint + ")"
			}
			for _, l := range fit(line) {
				b = append(b, st.Render(l))
			}
		}
	}
	if len(b) > h {
		b = append(b[:h-1], m.styles.dim.Render(fmt.Sprintf("… %d more lines", len(b)-h+1)))
	}
	return strings.Join(b, "\n")
}

// nodeLines are a node step's nodes: how many in each state, then each with its group, state and
// pods moved (a skipped node: why).
func nodeLines(s *Step, w int) []string {
	if len(s.NodeOrder) == 0 {
		return nil
	}
	counts := map[runbook.NodeState]int{}
	for _, n := range s.Nodes {
		counts[n.State]++
	}
	var keys []string
	for k, c := range counts {
		keys = append(keys, fmt.Sprintf("%s %d", k, c))
	}
	sort.Strings(keys)
	b := []string{trunc("nodes: "+strings.Join(keys, ", "), w)}
	for _, name := range s.NodeOrder {
		n := s.Nodes[name]
		line := fmt.Sprintf("  %-18s %-10s", trunc(n.Name, 18), n.State)
		if n.Group != "" {
			line = fmt.Sprintf("  %-18s %-8s %-10s", trunc(n.Name, 18), trunc(n.Group, 8), n.State)
		}
		switch {
		case n.Total > 0:
			line += fmt.Sprintf(" pods %d/%d", n.Done, n.Total)
		case n.State == runbook.NodeSkipped && n.Detail != "":
			line += " " + n.Detail // why: at the target, upgraded by an earlier step
		}
		b = append(b, trunc(line, w))
	}
	return b
}

// gateLines are the step's health gates: each value, bounds, verdict and how long it has held it.
func (m Model) gateLines(s *Step, fit func(string) []string) []string {
	if len(s.Gates) == 0 {
		return nil
	}
	b := []string{m.styles.bold.Render("gates:")}
	for _, g := range s.Gates {
		mark, st := "✓", m.styles.dim
		if !g.OK {
			mark, st = "✗", m.styles.warn
		}
		line := fmt.Sprintf("  %s %-14s %s", mark, trunc(g.Name, 14), g.Value)
		if g.Bounds != "" {
			line += " (" + g.Bounds + ")"
		}
		if !m.Now.IsZero() && !g.Since.IsZero() && m.Now.After(g.Since) {
			line += "  held " + short(m.Now.Sub(g.Since))
		}
		if !g.OK && g.Why != "" {
			line += ": " + g.Why
		}
		for _, l := range fit(line) {
			b = append(b, st.Render(l))
		}
	}
	return b
}

func (m Model) logView(w, h int) string {
	var lines []string
	q := strings.ToLower(m.filter.Value())
	for _, l := range m.Log {
		if q != "" && !strings.Contains(strings.ToLower(l.Text), q) {
			continue
		}
		t := ""
		if !l.Time.IsZero() {
			t = l.Time.Format("15:04:05") + " "
		}
		line := trunc(t+l.Text, w)
		switch l.Level {
		case "error":
			line = m.styles.err.Render(line)
		case "warning":
			line = m.styles.warn.Render(line)
		}
		lines = append(lines, line)
	}
	if len(lines) > h {
		lines = lines[len(lines)-h:]
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}

func (m Model) dialogView(w int) string {
	d := m.dialog
	var b []string
	b = append(b, m.styles.bold.Render(d.title), "")
	for _, l := range d.lines {
		b = append(b, strings.Split(lipgloss.NewStyle().Width(min(w-8, 70)).Render(l), "\n")...)
	}
	b = append(b, "")
	var cs []string
	for i, c := range d.choices {
		if i == d.choice {
			cs = append(cs, m.styles.sel.Render("["+c+"]"))
		} else {
			cs = append(cs, " "+c+" ")
		}
	}
	b = append(b, strings.Join(cs, "  "))
	hint := "←/→ choose · enter confirms the highlighted choice · esc cancels"
	if d.kind == dialogPause {
		hint = "c continue · r roll back… · s stop… (each asks again) · ←/→ and enter"
	}
	b = append(b, m.styles.dim.Render(hint))
	return m.styles.dialog.Render(strings.Join(b, "\n"))
}

// overlay draws box in the middle of screen.
func (m Model) overlay(screen string, w, h int, box string) string {
	lines := strings.Split(screen, "\n")
	bl := strings.Split(box, "\n")
	top := max(0, (h-len(bl))/2)
	left := max(0, (w-lipgloss.Width(box))/2)
	for i, l := range bl {
		y := top + i
		for y >= len(lines) {
			lines = append(lines, "")
		}
		lines[y] = strings.Repeat(" ", left) + l
	}
	return strings.Join(lines, "\n")
}
