// Package printer holds the plain-text and JSON-lines sinks of run events (the terminal UI in
// internal/tui is the third), and an in-memory recorder. The engine and the steps only emit typed
// events; how they look is decided here.
package printer

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/drydock-dev/drydock/runbook"
)

// JSON writes one JSON object per event and line, the event struct itself:
// {"type": ..., "time": ..., "run": ..., "step": ..., and the event's own fields}.
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSON writes to w.
func NewJSON(w io.Writer) *JSON { return &JSON{enc: json.NewEncoder(w)} }

// Emit writes e.
func (s *JSON) Emit(e runbook.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.enc.Encode(runbook.Stamp(e))
}

// Text writes one plain, stable, greppable line per event:
//
//	15:04:05 run 20261122-0750-ab12: started runbook "prod" (target v1.37.2; steps: a, b)
//	15:04:05 step a: started (exec)
type Text struct {
	mu sync.Mutex
	w  io.Writer
}

// NewText writes to w.
func NewText(w io.Writer) *Text { return &Text{w: w} }

// Emit writes e.
func (s *Text) Emit(e runbook.Event) {
	line := Format(e)
	if line == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.w, "%s %s\n", runbook.EventTime(e).Local().Format("15:04:05"), line)
}

// Format is an event's one-line description, without the time.
func Format(e runbook.Event) string {
	m := runbook.MetaOf(e)
	step := "step " + m.Step + ": "
	switch e := e.(type) {
	case *runbook.RunStarted:
		verb := "started"
		if e.Resumed {
			verb = "resumed"
		}
		extra := ""
		if e.DryRun {
			extra = ", dry run"
		}
		return fmt.Sprintf("run %s: %s runbook %q (target %s%s; steps: %s)", m.RunID, verb, e.Runbook, e.Target, extra, strings.Join(e.Steps, ", "))
	case *runbook.StepStarted:
		if e.Attempt > 1 {
			return fmt.Sprintf("%sstarted (%s, attempt %d: re-entered after an interruption)", step, e.Kind, e.Attempt)
		}
		return fmt.Sprintf("%sstarted (%s)", step, e.Kind)
	case *runbook.StepProgress:
		if e.Total > 0 {
			return fmt.Sprintf("%s%s [%d/%d]", step, e.Message, e.Done, e.Total)
		}
		return step + e.Message
	case *runbook.StepFinding:
		s := fmt.Sprintf("%s%s: %s: %s", step, strings.ToUpper(string(e.Severity)), e.Object, e.Message)
		if e.Hint != "" {
			s += " (fix: " + e.Hint + ")"
		}
		return s
	case *runbook.StepPaused:
		s := fmt.Sprintf("%spaused %s the step", step, e.When)
		if e.Message != "" {
			s += ": " + e.Message
		}
		return s
	case *runbook.StepFinished:
		if e.Skipped {
			return fmt.Sprintf("%sskipped: %s", step, e.Reason)
		}
		return fmt.Sprintf("%sdone in %s", step, e.Duration.Round(time.Millisecond))
	case *runbook.StepFailed:
		if e.Interrupted {
			return fmt.Sprintf("%sinterrupted after %s: %s", step, e.Duration.Round(time.Millisecond), e.Error)
		}
		return fmt.Sprintf("%sFAILED after %s: %s", step, e.Duration.Round(time.Millisecond), e.Error)
	case *runbook.NodeChanged:
		s := fmt.Sprintf("%snode %s: %s", step, e.Node, e.State)
		if e.Group != "" {
			s = fmt.Sprintf("%snode %s (group %s): %s", step, e.Node, e.Group, e.State)
		}
		if e.Detail != "" {
			s += ": " + e.Detail
		}
		return s
	case *runbook.PodChanged:
		s := fmt.Sprintf("%snode %s: %s %s", step, e.Node, e.Pod, e.State)
		if e.Reason != "" {
			s += ": " + e.Reason
		}
		if e.Total > 0 {
			s += fmt.Sprintf(" [%d/%d]", e.Done, e.Total)
		}
		return s
	case *runbook.RollbackPointSet:
		return step + "rollback point: " + e.Point.String()
	case *runbook.RollbackStarted:
		return step + "rolling back"
	case *runbook.RollbackFinished:
		switch {
		case e.Error != "":
			return step + "ROLLBACK FAILED: " + e.Error
		case e.Nothing:
			return step + "nothing to undo"
		}
		return step + "rolled back"
	case *runbook.LogLine:
		return fmt.Sprintf("%s%s: %s", step, e.Stream, e.Line)
	case *runbook.RunFinished:
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
	events []runbook.Event
}

// Emit keeps e.
func (r *Recorder) Emit(e runbook.Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

// Events returns the events so far.
func (r *Recorder) Events() []runbook.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]runbook.Event(nil), r.events...)
}

// Lines returns each event as Format writes it.
func (r *Recorder) Lines() []string {
	var out []string
	for _, e := range r.Events() {
		out = append(out, Format(e))
	}
	return out
}

// Text is Lines joined by newlines.
func (r *Recorder) Text() string { return strings.Join(r.Lines(), "\n") }
