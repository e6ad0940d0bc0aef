// Package tui is drydock's terminal UI for run, resume, rollback and drain: a Bubble Tea v2 model
// that turns the engine's events into display state and answers its pause points. The model never
// calls Kubernetes: Update only folds messages into state and sends requests (abort, roll back,
// pause after the current node, a pause point's answer) to the controller in run.go.
package tui

import (
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

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

// Active reports whether the work is still going.
func (m *Model) Active() bool { return !m.Finished }
