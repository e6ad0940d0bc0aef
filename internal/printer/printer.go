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
	lines := Lines(e)
	if len(lines) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at := runbook.EventTime(e).Local().Format("15:04:05")
	for _, l := range lines {
		fmt.Fprintf(s.w, "%s %s\n", at, l)
	}
}

// Lines is an event as the text sink writes it: one line, but for the whole-runbook plan, whose
// summary line is followed by one line per node step, batch, blocker and node left alone.
func Lines(e runbook.Event) []string {
	line := Format(e)
	if line == "" {
		return nil
	}
	out := []string{line}
	if p, ok := e.(*runbook.RunPlanned); ok {
		for _, l := range DescribeNodePlans(p.Steps) {
			out = append(out, "run "+runbook.MetaOf(e).RunID+": plan: "+l.Text)
		}
		for _, l := range DescribeForecast(p.Forecast) {
			out = append(out, "run "+runbook.MetaOf(e).RunID+": plan: "+l)
		}
	}
	if p, ok := e.(*runbook.PodChanged); ok && p.Chain != nil {
		// Why the budget refuses: its unhealthy pods, where and why, and the patch that lets the drain go on.
		prefix := "node " + p.Node + ": "
		if st := runbook.MetaOf(e).Step; st != "" {
			prefix = "step " + st + ": " + prefix
		}
		for _, l := range p.Chain.Lines() {
			out = append(out, prefix+"  "+l)
		}
	}
	if h, ok := e.(*runbook.RunHistory); ok {
		for _, l := range DescribeHistory(h) {
			out = append(out, "run "+runbook.MetaOf(e).RunID+": earlier: "+l)
		}
	}
	if s, ok := e.(*runbook.RunSummary); ok {
		for _, l := range DescribeSummary(s) {
			out = append(out, "run "+runbook.MetaOf(e).RunID+": summary: "+l)
		}
	}
	return out
}

// DescribeHistory renders what the run's earlier sessions did, one line per step they finished
// with its evidence (its last progress lines), oldest first.
func DescribeHistory(h *runbook.RunHistory) []string {
	var out []string
	for _, st := range h.Steps {
		if len(st.Progress) > 0 {
			out = append(out, "  step "+st.Step+": "+strings.Join(st.Progress, "; "))
		}
	}
	return out
}

// DescribeSummary renders the end of a run: nodes upgraded per group with how long each took,
// the nodes skipped, blockers met, budgets relaxed, the backup, what is left to do, and each
// forecast against what the step took (pauses left out).
func DescribeSummary(s *runbook.RunSummary) []string {
	var out []string
	for _, g := range s.Groups {
		var nodes []string
		for _, n := range g.Nodes {
			nodes = append(nodes, fmt.Sprintf("%s %s", n.Node, n.Took))
		}
		where := "step " + g.Step
		if g.Group != "" {
			where += ", group " + g.Group
		}
		out = append(out, fmt.Sprintf("  upgraded (%s): %s", where, strings.Join(nodes, ", ")))
	}
	if len(s.Skipped) > 0 {
		out = append(out, "  already at the target: "+strings.Join(s.Skipped, ", "))
	}
	for _, b := range s.Blockers {
		out = append(out, "  blocker met: "+b)
	}
	for _, r := range s.Relaxed {
		out = append(out, "  budget relaxed: "+describeRelax(r))
	}
	if s.Backup != "" {
		out = append(out, "  rollback point: "+s.Backup)
	}
	for _, l := range s.Left {
		out = append(out, "  left to do: "+l)
	}
	var all runbook.Estimate
	var took, paused time.Duration
	for _, f := range s.Forecast {
		out = append(out, fmt.Sprintf("  forecast against actual: %s %s, took %s%s%s", f.Step, forecastText(f.Forecast), f.Took, pausedText(f.Paused.Duration), Off(f.Forecast.Expected.Duration, f.Took.Duration)))
		all, took, paused = all.Plus(f.Forecast), took+f.Took.Duration, paused+f.Paused.Duration
	}
	if len(s.Forecast) > 1 {
		out = append(out, fmt.Sprintf("  forecast against actual: these steps together %s, took %s%s%s", forecastText(all), took.Round(100*time.Millisecond), pausedText(paused), Off(all.Expected.Duration, took)))
	}
	return out
}

// pausedText is " (not counting 4m10s at pause points)", or "" without a pause.
func pausedText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return fmt.Sprintf(" (not counting %s at pause points)", d.Round(time.Second))
}

// describeRelax is a relaxed budget in one line: which, for which node, what it allowed, and whether
// it is back as it was.
func describeRelax(r runbook.RelaxSummary) string {
	s := "PDB " + r.PDB
	if r.Node != "" {
		s += " for node " + r.Node
	}
	s += " (step " + r.Step + ")"
	if r.What != "" {
		s += ": " + r.What
	}
	if r.Restored {
		return s + "; restored"
	}
	return s + "; NOT restored yet: drydock restores it at its expiry (`drydock runs --repair`), or restore it by hand"
}

// PlanLine is one line of the rendered plan; Certain marks a certain blocker's line.
type PlanLine struct {
	Text    string
	Certain bool
}

// DescribeNodePlans renders the whole-runbook plan (drydock plan, the run's first lines): each node
// step, its batches in order with their nodes, what blocks each (BLOCK: certain; WAIT: may clear),
// and the nodes it leaves alone.
func DescribeNodePlans(plans []runbook.NodePlan) []PlanLine {
	var out []PlanLine
	add := func(certain bool, format string, args ...any) {
		out = append(out, PlanLine{Text: fmt.Sprintf(format, args...), Certain: certain})
	}
	for _, p := range plans {
		nodes := len(p.Nodes())
		head := fmt.Sprintf("step %s (%s): %d node(s) in %d batch(es)", p.Step, p.Kind, nodes, len(p.Batches))
		if c := len(p.Certain()); c > 0 {
			head += fmt.Sprintf("; %d certain blocker(s)", c)
			if p.Proceed {
				head += " (onBlocked: proceed: it starts anyway)"
			}
		}
		if f := p.Forecast; f != nil {
			head += ", forecast " + forecastText(f.Total)
		}
		add(false, "%s", head)
		for i, b := range p.Batches {
			var names []string
			for _, n := range b.Nodes {
				names = append(names, fmt.Sprintf("%s (evict %d, skip %d)", n.Node, n.Evict, n.Skip))
			}
			group := ""
			if b.Group != "" {
				group = " group " + b.Group
			}
			took := ""
			if b.Forecast != nil {
				took = " " + forecastText(*b.Forecast)
			}
			add(false, "  batch %d%s%s: %s", i+1, group, took, strings.Join(names, ", "))
			for _, n := range b.Nodes {
				for _, f := range n.Blockers {
					level := "WAIT "
					if f.Severity == runbook.SeverityError {
						level = "BLOCK"
					}
					l := fmt.Sprintf("    %s %s %s: %s", level, n.Node, f.Object, f.Message)
					if f.Hint != "" {
						l += " (fix: " + f.Hint + ")"
					}
					add(f.Severity == runbook.SeverityError, "%s", l)
				}
			}
		}
		for _, l := range p.Left {
			add(false, "  left alone: %s (%s)", l.Node, l.Reason)
		}
		if f := p.Forecast; f != nil {
			for _, c := range f.CriticalPath {
				add(false, "  critical path: %s", c)
			}
			for _, a := range f.Assumed {
				add(false, "  assumed: %s", a)
			}
			if len(p.Batches) > 0 {
				add(false, "  drydock's own work: planning measured at %s of reads and %s per batch, done again before each batch",
					f.PlanCost.Load.Round(time.Millisecond), f.PlanCost.Batch.Round(time.Millisecond))
			}
		}
	}
	return out
}

// DescribeBlocked is what refused a run before anything moved: each node step that may not proceed
// with its certain blockers, its heading and then one BLOCK line per blocker with its fix, as in
// DescribeNodePlans. A display that does not stay on the terminal (the terminal UI) prints these
// after it closes, so that the error's "listed above" is true.
func DescribeBlocked(plans []runbook.NodePlan) []string {
	var out []string
	for _, p := range plans {
		if p.Proceed || len(p.Certain()) == 0 {
			continue
		}
		lines := DescribeNodePlans([]runbook.NodePlan{p})
		out = append(out, lines[0].Text) // the step's heading
		for _, l := range lines[1:] {
			if l.Certain {
				out = append(out, l.Text)
			}
		}
	}
	return out
}

func forecastText(e runbook.Estimate) string {
	if e.Never() {
		return "never (blocked)"
	}
	return e.String()
}

// Off is how far took is from forecast, as ", +12%" ("" without a forecast).
func Off(forecast, took time.Duration) string {
	if forecast <= 0 {
		return ""
	}
	return fmt.Sprintf(", %+.0f%%", 100*(float64(took)-float64(forecast))/float64(forecast))
}

// DescribeForecast is the run's forecast: the total, then each step's and where it comes from.
func DescribeForecast(f *runbook.RunForecast) []string {
	if f == nil {
		return nil
	}
	out := []string{"Forecast: " + forecastText(f.Total)}
	for _, s := range f.Steps {
		from := "from the plan and durations measured on the cluster"
		if s.From != "model" {
			from = "as long as in " + s.From
		}
		out = append(out, fmt.Sprintf("  %s: %s (%s)", s.Step, forecastText(s.Estimate), from))
	}
	if len(f.Unknown) > 0 {
		out = append(out, "  not counted (no model, no earlier run of this runbook on this cluster): "+strings.Join(f.Unknown, ", "))
	}
	return out
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
		if !e.Until.IsZero() {
			return fmt.Sprintf("%s%s (until %s)", step, e.Message, e.Until.Local().Format("15:04:05"))
		}
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
	case *runbook.UndoPlanned:
		return step + "if rolled back: " + strings.Join(e.Lines, "; ")
	case *runbook.PauseAnswered:
		return fmt.Sprintf("%spause point %s the step answered: %s", step, e.When, e.Decision)
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
		switch {
		case e.Chain != nil:
			s += ": " + e.Chain.Reason() // the budget's numbers in words that add up
		case e.Reason != "":
			s += ": " + e.Reason
		}
		if e.Total > 0 {
			s += fmt.Sprintf(" [%d/%d]", e.Done, e.Total)
		}
		return s
	case *runbook.GatesChanged:
		return step + "gates: " + DescribeGates(e.Gates)
	case *runbook.RollbackPointSet:
		return step + "rollback point: " + e.Point.String()
	case *runbook.RollbackStarted:
		return step + "rolling back"
	case *runbook.RollbackFinished:
		return formatRollbackFinished(step, e)
	case *runbook.LogLine:
		return fmt.Sprintf("%s%s: %s", step, e.Stream, e.Line)
	case *runbook.RunPlanned:
		return formatPlanned(m.RunID, e)
	case *runbook.RunSummary:
		return formatSummary(m.RunID, e)
	case *runbook.RunHistory:
		return formatHistory(m.RunID, e)
	case *runbook.RunFinished:
		s := fmt.Sprintf("run %s: %s", m.RunID, e.Status)
		if e.Message != "" {
			s += ": " + e.Message
		}
		return s
	}
	return ""
}

// formatRollbackFinished is the line of a step's rollback end.
func formatRollbackFinished(step string, e *runbook.RollbackFinished) string {
	switch {
	case e.Error != "":
		return step + "ROLLBACK FAILED: " + e.Error
	case len(e.Kept) > 0:
		var kept []string
		for _, k := range e.Kept {
			kept = append(kept, k.Object+": "+k.Reason)
		}
		return step + "rolled back, except what cannot be undone: " + strings.Join(kept, "; ")
	case e.Nothing:
		return step + "nothing to undo"
	}
	return step + "rolled back"
}

// formatPlanned is the line of the whole-runbook plan.
func formatPlanned(runID string, e *runbook.RunPlanned) string {
	nodes, certain := 0, 0
	for _, p := range e.Steps {
		nodes += len(p.Nodes())
		if !p.Proceed {
			certain += len(p.Certain())
		}
	}
	s := fmt.Sprintf("run %s: planned %d node step(s), %d node(s) to drain", runID, len(e.Steps), nodes)
	if certain > 0 {
		s += fmt.Sprintf("; %d certain blocker(s): nothing will move", certain)
	}
	return s
}

// formatSummary is the summary's first line.
func formatSummary(runID string, e *runbook.RunSummary) string {
	nodes := 0
	for _, g := range e.Groups {
		nodes += len(g.Nodes)
	}
	took := e.Took.String()
	if e.RunTook.Duration > 0 {
		took = fmt.Sprintf("%s (this session; the whole run %s)", e.Took, e.RunTook)
	}
	return fmt.Sprintf("run %s: %s after %s: %d node(s) upgraded, %d skipped, %d pod(s) moved", runID, e.Status, took, nodes, len(e.Skipped), e.Pods)
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

// Lines returns the events as the text sink writes them (without the time).
func (r *Recorder) Lines() []string {
	var out []string
	for _, e := range r.Events() {
		out = append(out, Lines(e)...)
	}
	return out
}

// Text is Lines joined by newlines.
func (r *Recorder) Text() string { return strings.Join(r.Lines(), "\n") }

// DescribeGates renders the health gates in one line: each value, its bounds, its verdict and since
// when it has held it ("error ratio 0.0123 (max 0.05) ok since 12:00:01; alerts 1 new firing NOT OK
// since 12:03:10: ...").
func DescribeGates(gates []runbook.GateState) string {
	parts := make([]string, 0, len(gates))
	for _, g := range gates {
		s := g.Name + " " + g.Value
		if g.Bounds != "" {
			s += " (" + g.Bounds + ")"
		}
		verdict := "ok"
		if !g.OK {
			verdict = "NOT OK"
		}
		s += " " + verdict + " since " + g.Since.Local().Format(time.TimeOnly)
		if !g.OK && g.Why != "" {
			s += ": " + g.Why
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// formatHistory is the line a resumed run begins with: its earlier sessions and the nodes they
// upgraded.
func formatHistory(run string, h *runbook.RunHistory) string {
	s := fmt.Sprintf("run %s: earlier sessions (%d", run, h.Sessions)
	if !h.Since.IsZero() {
		s += ", since " + h.Since.Local().Format("2006-01-02 15:04:05")
	}
	up := h.Upgraded()
	s += fmt.Sprintf("): %d node(s) upgraded", len(up))
	if len(up) > 0 {
		s += ": " + strings.Join(up, ", ")
	}
	if h.Pods > 0 {
		s += fmt.Sprintf("; %d pod(s) moved", h.Pods)
	}
	return s
}
