package runbook

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
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
	Time  time.Time `json:"time"`
	RunID string    `json:"run"`
	Step  string    `json:"step,omitempty"`
}

func (m *Meta) meta() *Meta { return m }

// EventTime is when e happened.
func EventTime(e Event) time.Time { return e.meta().Time }

// RunStarted: a run began or resumed.
type RunStarted struct {
	Meta
	Runbook string   `json:"runbook"`
	Target  string   `json:"target"`
	Cluster string   `json:"cluster,omitempty"`
	Steps   []string `json:"steps"`
	Resumed bool     `json:"resumed,omitempty"`
	DryRun  bool     `json:"dryRun,omitempty"`
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
	Node   string `json:"node"`
	Group  string `json:"group,omitempty"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// PodChanged: a pod leaving a node: evicted, gone, or blocked (PDB and Reason say why).
type PodChanged struct {
	Meta
	Node   string `json:"node"`
	Pod    string `json:"pod"`
	State  string `json:"state"`
	PDB    string `json:"pdb,omitempty"`
	Reason string `json:"reason,omitempty"`
	Done   int    `json:"done,omitempty"`
	Total  int    `json:"total,omitempty"`
}

// RollbackPointSet: the step made something a person can roll back to (a Velero backup).
type RollbackPointSet struct {
	Meta
	Name string `json:"name"`
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
func (*StepFinished) Type() string     { return "step.finished" }
func (*StepFailed) Type() string       { return "step.failed" }
func (*RollbackStarted) Type() string  { return "rollback.started" }
func (*RollbackFinished) Type() string { return "rollback.finished" }
func (*LogLine) Type() string          { return "log" }
func (*RunFinished) Type() string      { return "run.finished" }
func (*NodeChanged) Type() string      { return "node.state" }
func (*PodChanged) Type() string       { return "pod.state" }
func (*RollbackPointSet) Type() string { return "step.rollbackpoint" }

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

// JSONSink writes one JSON object per event and line: {"type": ..., "time": ..., "run": ..., ...}.
type JSONSink struct {
	mu sync.Mutex
	w  io.Writer
}

// NewJSONSink writes to w.
func NewJSONSink(w io.Writer) *JSONSink { return &JSONSink{w: w} }

// Emit writes e.
func (s *JSONSink) Emit(e Event) {
	body, err := json.Marshal(e)
	if err != nil {
		return
	}
	line := fmt.Sprintf(`{"type":%q,%s`, e.Type(), body[1:])
	if len(body) == 2 { // {}
		line = fmt.Sprintf(`{"type":%q}`, e.Type())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintln(s.w, line)
}

// TextSink writes one plain, stable, greppable line per event:
//
//	15:04:05 run 20261122-0750-ab12: started runbook "prod" (target v1.37.2; steps: a, b)
//	15:04:05 step a: started (exec)
type TextSink struct {
	mu sync.Mutex
	w  io.Writer
	// Verbose includes progress events and command output.
	Verbose bool
}

// NewTextSink writes to w.
func NewTextSink(w io.Writer) *TextSink { return &TextSink{w: w, Verbose: true} }

// Emit writes e.
func (s *TextSink) Emit(e Event) {
	line := FormatEvent(e)
	if line == "" {
		return
	}
	if !s.Verbose {
		switch e.(type) {
		case *StepProgress, *LogLine:
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, "%s %s\n", e.meta().Time.Local().Format("15:04:05"), line)
}

// FormatEvent is an event's one-line description, without the time.
func FormatEvent(e Event) string {
	m := e.meta()
	step := "step " + m.Step + ": "
	switch e := e.(type) {
	case *RunStarted:
		verb := "started"
		if e.Resumed {
			verb = "resumed"
		}
		extra := ""
		if e.DryRun {
			extra = ", dry run"
		}
		return fmt.Sprintf("run %s: %s runbook %q (target %s%s; steps: %s)", m.RunID, verb, e.Runbook, e.Target, extra, strings.Join(e.Steps, ", "))
	case *StepStarted:
		if e.Attempt > 1 {
			return fmt.Sprintf("%sstarted (%s, attempt %d: re-entered after an interruption)", step, e.Kind, e.Attempt)
		}
		return fmt.Sprintf("%sstarted (%s)", step, e.Kind)
	case *StepProgress:
		if e.Total > 0 {
			return fmt.Sprintf("%s%s [%d/%d]", step, e.Message, e.Done, e.Total)
		}
		return step + e.Message
	case *StepFinding:
		s := fmt.Sprintf("%s%s: %s: %s", step, strings.ToUpper(string(e.Severity)), e.Object, e.Message)
		if e.Hint != "" {
			s += " (fix: " + e.Hint + ")"
		}
		return s
	case *StepPaused:
		s := fmt.Sprintf("%spaused %s the step", step, e.When)
		if e.Message != "" {
			s += ": " + e.Message
		}
		return s
	case *StepFinished:
		if e.Skipped {
			return fmt.Sprintf("%sskipped: %s", step, e.Reason)
		}
		return fmt.Sprintf("%sdone in %s", step, e.Duration.Round(time.Millisecond))
	case *StepFailed:
		if e.Interrupted {
			return fmt.Sprintf("%sinterrupted after %s: %s", step, e.Duration.Round(time.Millisecond), e.Error)
		}
		return fmt.Sprintf("%sFAILED after %s: %s", step, e.Duration.Round(time.Millisecond), e.Error)
	case *NodeChanged:
		s := fmt.Sprintf("%snode %s: %s", step, e.Node, e.State)
		if e.Group != "" {
			s = fmt.Sprintf("%snode %s (group %s): %s", step, e.Node, e.Group, e.State)
		}
		if e.Detail != "" {
			s += ": " + e.Detail
		}
		return s
	case *PodChanged:
		s := fmt.Sprintf("%snode %s: %s %s", step, e.Node, e.Pod, e.State)
		if e.Reason != "" {
			s += ": " + e.Reason
		}
		if e.Total > 0 {
			s += fmt.Sprintf(" [%d/%d]", e.Done, e.Total)
		}
		return s
	case *RollbackPointSet:
		return step + "rollback point: " + e.Name
	case *RollbackStarted:
		return step + "rolling back"
	case *RollbackFinished:
		switch {
		case e.Error != "":
			return step + "ROLLBACK FAILED: " + e.Error
		case e.Nothing:
			return step + "nothing to undo"
		}
		return step + "rolled back"
	case *LogLine:
		return fmt.Sprintf("%s%s: %s", step, e.Stream, e.Line)
	case *RunFinished:
		s := fmt.Sprintf("run %s: %s", m.RunID, e.Status)
		if e.Message != "" {
			s += ": " + e.Message
		}
		return s
	}
	return ""
}

// Recorder keeps every event in memory, in order (tests; a display that replays a run).
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Emit keeps e.
func (r *Recorder) Emit(e Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

// Events returns the events so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Lines returns each event as FormatEvent writes it.
func (r *Recorder) Lines() []string {
	var out []string
	for _, e := range r.Events() {
		out = append(out, FormatEvent(e))
	}
	return out
}

// Text is Lines joined by newlines.
func (r *Recorder) Text() string { return strings.Join(r.Lines(), "\n") }
