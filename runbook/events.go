package runbook

import (
	"fmt"
	"strings"
	"time"
)

// Event is something that happened in a run. The engine and the steps emit events to a Sink; the
// plain-text printer, the JSON-lines printer and the terminal UI are sinks.
type Event interface {
	// Type is the event's stable name in the JSON-lines output, e.g. "step.started".
	Type() string
	meta() *Meta
}

// Meta is common to every event.
type Meta struct {
	// EventType is the event's Type(), filled in by Stamp, so that an event encodes as itself.
	EventType string    `json:"type"`
	Time      time.Time `json:"time"`
	RunID     string    `json:"run"`
	Step      string    `json:"step,omitempty"`
}

func (m *Meta) meta() *Meta { return m }

// EventTime is when e happened.
func EventTime(e Event) time.Time { return e.meta().Time }

// MetaOf returns e's common fields.
func MetaOf(e Event) Meta { return *e.meta() }

// Stamp fills in e's EventType and returns e: encoded as JSON, it then says what it is.
func Stamp(e Event) Event {
	e.meta().EventType = e.Type()
	return e
}

// RunStarted: a run began or resumed.
type RunStarted struct {
	Meta
	Runbook string   `json:"runbook"`
	Target  string   `json:"target"`
	Cluster string   `json:"cluster,omitempty"`
	Steps   []string `json:"steps"`
	// StepStates are the steps as the journal has them when the session begins: a resumed run's
	// finished steps show as finished, with their kind and how long they took.
	StepStates []StepBrief `json:"stepStates,omitempty"`
	Resumed    bool        `json:"resumed,omitempty"`
	// Rollback: the session undoes the run (drydock rollback, or a rollback asked for on screen).
	Rollback bool `json:"rollback,omitempty"`
	DryRun   bool `json:"dryRun,omitempty"`
}

// StepBrief is a step as the journal has it.
type StepBrief struct {
	Name   string     `json:"name"`
	Kind   string     `json:"kind"`
	Status StepStatus `json:"status"`
	Took   Duration   `json:"took,omitzero"`
}

// briefs are the steps of st as the journal has them.
func briefs(st *RunState) []StepBrief {
	var out []StepBrief
	for _, s := range st.Steps {
		b := StepBrief{Name: s.Name, Kind: s.Kind, Status: s.Status}
		if s.Started != nil && s.Finished != nil {
			b.Took = Duration{s.Finished.Sub(*s.Started)}
		}
		out = append(out, b)
	}
	return out
}

// StepStarted: a step began (Attempt > 1 when it is re-entered after an interruption).
type StepStarted struct {
	Meta
	Kind    string `json:"kind"`
	Attempt int    `json:"attempt"`
}

// StepProgress: a step moved forward. Total is 0 when unknown.
type StepProgress struct {
	Meta
	Message string `json:"message"`
	Done    int    `json:"done,omitempty"`
	Total   int    `json:"total,omitempty"`
	// Until is when what the message describes ends (a soak) or gives up (a wait): a countdown.
	Until time.Time `json:"until,omitzero"`
}

// Severity of a finding.
type Severity string

const (
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Finding is something a step found: a removed API in use, a budget that blocks every drain.
type Finding struct {
	Severity Severity `json:"severity"`
	Object   string   `json:"object"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
}

// StepFinding: a step reports a finding.
type StepFinding struct {
	Meta
	Finding
}

// StepPaused: the run waits at a pause point (When is "before" or "after").
type StepPaused struct {
	Meta
	When    string `json:"when"`
	Message string `json:"message,omitempty"`
}

// PauseAnswered: the pause point a step waited at was answered (Decision: continue; the others end
// the step or the run, and their own events say so). Time at a pause point ends here.
type PauseAnswered struct {
	Meta
	When     string `json:"when"`
	Decision string `json:"decision"`
}

// UndoPlanned: what rolling the step back will do for a change it just recorded (a node it began to
// upgrade: cordon, drain, the rollback command, Ready at the old version, ...), so that a rollback
// dialog names every node and command before a person confirms.
type UndoPlanned struct {
	Meta
	Lines []string `json:"lines"`
}

// StepFinished: a step succeeded or was skipped.
type StepFinished struct {
	Meta
	Duration time.Duration `json:"duration"`
	Skipped  bool          `json:"skipped,omitempty"`
	Reason   string        `json:"reason,omitempty"`
}

// StepFailed: a step failed (or was interrupted: Interrupted is then true).
type StepFailed struct {
	Meta
	Error       string        `json:"error"`
	Duration    time.Duration `json:"duration"`
	Interrupted bool          `json:"interrupted,omitempty"`
}

// RollbackStarted: the engine began to undo a step.
type RollbackStarted struct {
	Meta
}

// RollbackFinished: a step was undone, or undoing it failed (Error set).
type RollbackFinished struct {
	Meta
	Error   string `json:"error,omitempty"`
	Nothing bool   `json:"nothingToUndo,omitempty"`
	// Kept is what the step could not undo, and why.
	Kept []Kept `json:"kept,omitempty"`
}

// LogLine: a line of output, e.g. from an exec step's command.
type LogLine struct {
	Meta
	Stream string `json:"stream"` // stdout, stderr, info, warning
	Line   string `json:"line"`
}

// NodeChanged: a node step moved a node: waiting, cordoned, draining, upgrading, upgraded,
// uncordoned, skipped.
type NodeChanged struct {
	Meta
	Node   string    `json:"node"`
	Group  string    `json:"group,omitempty"`
	State  NodeState `json:"state"`
	Detail string    `json:"detail,omitempty"`
}

// NodeState is where a node stands in a node step.
type NodeState string

// The states of a node, in the order a node step takes it through them.
const (
	NodeWaiting    NodeState = "waiting"    // in a later batch, or to be drained again
	NodeCordoned   NodeState = "cordoned"   // unschedulable (Detail says when an admin had done it)
	NodeDraining   NodeState = "draining"   // its pods are being evicted
	NodeUpgrading  NodeState = "upgrading"  // the upgrade action runs
	NodeUpgraded   NodeState = "upgraded"   // Ready at the target
	NodeUncordoned NodeState = "uncordoned" // schedulable again
	NodeSkipped    NodeState = "skipped"    // already at the target: nothing to do (Detail: its version)
	NodeDeleted    NodeState = "deleted"    // the node was deleted while drydock worked on it (Detail: what was left)
)

// PodState is what happened to a pod leaving a node.
type PodState string

// The states of a pod in a drain.
const (
	PodEvicted PodState = "evicted" // the eviction was accepted
	PodGone    PodState = "gone"    // deleted from the node
	PodBlocked PodState = "blocked" // the eviction is refused for now (PDB and Reason say why)
)

// PodChanged: a pod leaving a node: evicted, gone, or blocked (PDB and Reason say why).
type PodChanged struct {
	Meta
	Node   string   `json:"node"`
	Pod    string   `json:"pod"`
	State  PodState `json:"state"`
	PDB    string   `json:"pdb,omitempty"`
	Reason string   `json:"reason,omitempty"`
	Done   int      `json:"done,omitempty"`
	Total  int      `json:"total,omitempty"`
	// Chain, for a pod a budget holds, is why the budget allows no disruption and what fixes it.
	// A blocked pod is reported again whenever its chain changes.
	Chain *BudgetChain `json:"chain,omitempty"`
}

// BudgetChain explains a PodDisruptionBudget that refuses an eviction: what it needs, which of its
// pods are not healthy, where and why, and the change that lets the drain go on.
type BudgetChain struct {
	PDB                string `json:"pdb"` // namespace/name
	DesiredHealthy     int32  `json:"desiredHealthy"`
	CurrentHealthy     int32  `json:"currentHealthy"`
	ExpectedPods       int32  `json:"expectedPods"`
	DisruptionsAllowed int32  `json:"disruptionsAllowed"`
	// Unhealthy are the budget's pods that do not count as healthy, the reason it is at zero.
	Unhealthy []UnhealthyPod `json:"unhealthy,omitempty"`
	// Fix is a ready command that lets the drain go on, FixNote what it does and risks, Undo the
	// command that restores the budget afterwards.
	Fix     string `json:"fix,omitempty"`
	FixNote string `json:"fixNote,omitempty"`
	Undo    string `json:"undo,omitempty"`
}

// UnhealthyPod is one of a budget's pods that does not count as healthy.
type UnhealthyPod struct {
	Pod    string `json:"pod"`            // namespace/name
	Node   string `json:"node,omitempty"` // empty: not scheduled
	Reason string `json:"reason"`         // Pending (not scheduled: ...), CrashLoopBackOff (container app), not Ready, terminating
	// Stuck: it cannot get better by waiting (unschedulable, crash-looping, image not pulled).
	Stuck bool `json:"stuck,omitempty"`
	// Terminating: it is being deleted (an eviction accepted), its replacement may be on its way.
	Terminating bool      `json:"terminating,omitempty"`
	Since       time.Time `json:"since,omitzero"` // when it was created (a replacement) or deleted
}

// where says where the pod is: "on NODE" or "not scheduled".
func (u UnhealthyPod) where() string {
	if u.Node == "" {
		return "not scheduled"
	}
	return "on " + u.Node
}

// maxChainLines is how many unhealthy pods a chain lists for people (JSON has them all).
const maxChainLines = 8

// Lines renders the chain for people: the budget, each unhealthy pod, the fix.
func (c *BudgetChain) Lines() []string {
	if c == nil {
		return nil
	}
	out := []string{fmt.Sprintf("PDB %s allows %d disruption(s): needs %d healthy of %d, %s", c.PDB, c.DisruptionsAllowed, c.DesiredHealthy, c.ExpectedPods, c.has())}
	for i, u := range c.Unhealthy {
		if i == maxChainLines {
			out = append(out, fmt.Sprintf("  and %d more not healthy", len(c.Unhealthy)-i))
			break
		}
		out = append(out, fmt.Sprintf("  %s (%s): %s", u.Pod, u.where(), u.Reason))
	}
	if c.Fix != "" {
		out = append(out, "  fix: "+c.Fix)
		if c.FixNote != "" {
			out = append(out, "       "+c.FixNote)
		}
	}
	if c.Undo != "" {
		out = append(out, "  undo afterwards: "+c.Undo)
	}
	return out
}

// Short is the chain in one line: the budget's numbers, its unhealthy pods and the fix.
func (c *BudgetChain) Short() string {
	if c == nil {
		return ""
	}
	s := "PDB " + c.PDB + " " + c.Counts()
	if why := c.Why(); why != "" {
		s += "; " + why
	}
	return s
}

// Granted is how many disruptions the budget has granted that its count does not show yet: evictions
// the API accepted whose pods still count as healthy (the budget's controller has not counted them
// again). A budget that "needs 7 healthy, has 8" and allows none has granted one.
func (c *BudgetChain) Granted() int32 {
	if c == nil {
		return 0
	}
	return max(0, c.CurrentHealthy-c.DesiredHealthy-c.DisruptionsAllowed)
}

// has is "has 8" and, when it granted disruptions not counted yet, "has 8, 1 of them just evicted".
func (c *BudgetChain) has() string {
	s := fmt.Sprintf("has %d", c.CurrentHealthy)
	if g := c.Granted(); g > 0 {
		s += fmt.Sprintf(", %d of them just evicted", g)
	}
	return s
}

// Counts is the budget's numbers in words that add up: "needs 7 healthy, has 8, 1 of them just
// evicted".
func (c *BudgetChain) Counts() string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("needs %d healthy, %s", c.DesiredHealthy, c.has())
}

// Reason is why a pod the budget holds waits, in one line: "waits for PDB shop/db: needs 7 healthy,
// has 8, 1 of them just evicted".
func (c *BudgetChain) Reason() string {
	if c == nil {
		return ""
	}
	return "waits for PDB " + c.PDB + ": " + c.Counts()
}

// Why is the chain's unhealthy pods and fix in one line ("" when it names neither).
func (c *BudgetChain) Why() string {
	if c == nil {
		return ""
	}
	var parts, pods []string
	for i, u := range c.Unhealthy {
		if i == 3 {
			pods = append(pods, fmt.Sprintf("and %d more", len(c.Unhealthy)-i))
			break
		}
		pods = append(pods, fmt.Sprintf("%s (%s) %s", u.Pod, u.where(), u.Reason))
	}
	if len(pods) > 0 {
		parts = append(parts, "not healthy: "+strings.Join(pods, ", "))
	}
	if c.Fix != "" {
		parts = append(parts, "fix: "+c.Fix)
	}
	return strings.Join(parts, "; ")
}

// GatesChanged: the health gates of a step (pods, budgets, nodes, probe, each Prometheus query,
// Alertmanager) while it waits for health or soaks, sent when a value or a verdict changes.
type GatesChanged struct {
	Meta
	Gates []GateState `json:"gates"`
}

// GateState is one health gate now.
type GateState struct {
	Name   string `json:"name"`             // "pods", "error ratio", ...
	Kind   string `json:"kind"`             // pods, budgets, nodes, probe, prometheus, alertmanager
	Value  string `json:"value"`            // "0 unhealthy", "0.0123", "no data", "1 new alert"
	Bounds string `json:"bounds,omitempty"` // a Prometheus query's: "max 0.05"
	// OK: within bounds now (a Prometheus query out of bounds is not OK before its `for` trips it).
	OK bool `json:"ok"`
	// Since is when the gate last turned OK or not OK: how long it has held.
	Since time.Time `json:"since"`
	Why   string    `json:"why,omitempty"` // what is wrong, when not OK
}

// RollbackPointSet: the step made something a person can roll back to (a Velero backup).
type RollbackPointSet struct {
	Meta
	Point RollbackPoint `json:"point"`
}

// RunPlanned: the whole-runbook plan, made before the first step runs (and before the lock): every
// node step's nodes in order, by batch, with what blocks each.
type RunPlanned struct {
	Meta
	Steps []NodePlan `json:"steps"`
	// Forecast is how long the run should take (each node step's forecast is in Steps).
	Forecast *RunForecast `json:"forecast,omitempty"`
}

// RunHistory: what the run's earlier sessions did, read from its event log, sent right after
// RunStarted when a session resumes (or rolls back) a run whose log has events: each node's last
// state per step, the pods moved, and the last progress lines of each finished step (a canary's
// evidence), so that screens and summaries cover the whole run, not just this session.
type RunHistory struct {
	Meta
	Sessions int           `json:"sessions"`       // earlier sessions (each began with run.started)
	Since    time.Time     `json:"since,omitzero"` // when the first of them began
	Nodes    []NodeHistory `json:"nodes,omitempty"`
	Pods     int           `json:"podsMoved,omitempty"`
	Steps    []StepHistory `json:"steps,omitempty"`
	Backup   string        `json:"backup,omitempty"` // the rollback point an earlier session made
}

// NodeHistory is a node as an earlier session of a node step left it.
type NodeHistory struct {
	Step   string    `json:"step"`
	Node   string    `json:"node"`
	Group  string    `json:"group,omitempty"`
	State  NodeState `json:"state"`
	Detail string    `json:"detail,omitempty"`
	Took   Duration  `json:"took,omitzero"` // cordon to upgraded
}

// StepHistory is a step an earlier session finished, with its last progress lines (at most
// MaxHistoryProgress), oldest first.
type StepHistory struct {
	Step     string   `json:"step"`
	Progress []string `json:"progress,omitempty"`
}

// RunFinished: the run ended for now. Status is a RunStatus.
type RunFinished struct {
	Meta
	Status  RunStatus `json:"status"`
	Message string    `json:"message,omitempty"`
}

func (*RunStarted) Type() string       { return "run.started" }
func (*StepStarted) Type() string      { return "step.started" }
func (*StepProgress) Type() string     { return "step.progress" }
func (*StepFinding) Type() string      { return "step.finding" }
func (*StepPaused) Type() string       { return "step.paused" }
func (*PauseAnswered) Type() string    { return "step.pause-answered" }
func (*UndoPlanned) Type() string      { return "step.undo-planned" }
func (*StepFinished) Type() string     { return "step.finished" }
func (*StepFailed) Type() string       { return "step.failed" }
func (*RollbackStarted) Type() string  { return "rollback.started" }
func (*RollbackFinished) Type() string { return "rollback.finished" }
func (*LogLine) Type() string          { return "log" }
func (*RunFinished) Type() string      { return "run.finished" }
func (*RunPlanned) Type() string       { return "run.planned" }
func (*NodeChanged) Type() string      { return "node.state" }
func (*PodChanged) Type() string       { return "pod.state" }
func (*RollbackPointSet) Type() string { return "step.rollbackpoint" }
func (*GatesChanged) Type() string     { return "step.gates" }
func (*RunHistory) Type() string       { return "run.history" }

// Sink receives events. Emit must not block for long: the engine waits for it.
type Sink interface {
	Emit(Event)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(Event)

// Emit calls f.
func (f SinkFunc) Emit(e Event) { f(e) }

// MultiSink sends every event to each sink in turn.
type MultiSink []Sink

// Emit sends e to every sink.
func (m MultiSink) Emit(e Event) {
	for _, s := range m {
		s.Emit(e)
	}
}
