package runbook

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// RunSummary: how the session ended, in numbers, just before RunFinished: the nodes upgraded per
// group with how long each took, the nodes skipped, the pods moved, the blockers met, the backup,
// and what is left to do.
type RunSummary struct {
	Meta
	Status   RunStatus      `json:"status"`
	Took     Duration       `json:"took"`
	Groups   []GroupSummary `json:"groups,omitempty"`
	Skipped  []string       `json:"skipped,omitempty"` // nodes already at the target
	Pods     int            `json:"podsMoved"`
	Blockers []string       `json:"blockers,omitempty"` // pod: reason, each once
	Backup   string         `json:"backup,omitempty"`   // the rollback point, if the run made one
	Left     []string       `json:"left,omitempty"`     // steps not done, what was not undone
	// Forecast is each forecast step's forecast (made as the session began) against what it took.
	Forecast []ForecastCheck `json:"forecast,omitempty"`
}

// ForecastCheck is a step's forecast against what it took (its last attempt, start to finish).
type ForecastCheck struct {
	Step     string   `json:"step"`
	Forecast Estimate `json:"forecast"`
	From     string   `json:"from"`
	Took     Duration `json:"took"`
}

// GroupSummary is the nodes of one group (or of a step without groups) upgraded in the session.
type GroupSummary struct {
	Step  string        `json:"step"`
	Group string        `json:"group,omitempty"`
	Nodes []NodeSummary `json:"nodes"`
}

// NodeSummary is one upgraded node and how long it took, from cordon to upgraded.
type NodeSummary struct {
	Node string   `json:"node"`
	Took Duration `json:"took"`
}

func (*RunSummary) Type() string { return "run.summary" }

// summarizer folds a session's events into its RunSummary.
type summarizer struct {
	mu       sync.Mutex
	start    time.Time
	groups   []*GroupSummary
	groupOf  map[string]string    // node -> group
	began    map[string]time.Time // node -> when it was cordoned
	skipped  []string
	pods     int
	blockers []string
	backup   string
	forecast *RunForecast
}

func newSummarizer(now time.Time) *summarizer {
	return &summarizer{start: now, groupOf: map[string]string{}, began: map[string]time.Time{}}
}

func (s *summarizer) see(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := ev.meta()
	switch e := ev.(type) {
	case *NodeChanged:
		if e.Group != "" {
			s.groupOf[e.Node] = e.Group
		}
		switch e.State {
		case NodeCordoned:
			if _, ok := s.began[e.Node]; !ok {
				s.began[e.Node] = m.Time
			}
		case NodeSkipped:
			if !slices.Contains(s.skipped, e.Node) {
				s.skipped = append(s.skipped, e.Node)
			}
		case NodeUpgraded:
			g := s.group(m.Step, s.groupOf[e.Node])
			var took time.Duration
			if b, ok := s.began[e.Node]; ok {
				took = m.Time.Sub(b)
			}
			g.Nodes = append(g.Nodes, NodeSummary{Node: e.Node, Took: Duration{took.Round(time.Second)}})
		}
	case *PodChanged:
		switch e.State {
		case PodGone:
			s.pods++
		case PodBlocked:
			b := e.Pod + ": " + e.Reason
			if !slices.Contains(s.blockers, b) {
				s.blockers = append(s.blockers, b)
			}
		}
	case *RollbackPointSet:
		s.backup = e.Point.String()
	}
}

func (s *summarizer) group(step, group string) *GroupSummary {
	for _, g := range s.groups {
		if g.Step == step && g.Group == group {
			return g
		}
	}
	g := &GroupSummary{Step: step, Group: group}
	s.groups = append(s.groups, g)
	return g
}

// summary is the RunSummary of the session, as the journal st ends it.
func (s *summarizer) summary(st *RunState, status RunStatus, now time.Time) *RunSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &RunSummary{Status: status, Took: Duration{now.Sub(s.start).Round(time.Second)}, Skipped: s.skipped, Pods: s.pods, Blockers: s.blockers, Backup: s.backup}
	for _, g := range s.groups {
		out.Groups = append(out.Groups, *g)
	}
	if out.Backup == "" {
		if p := st.RollbackPoint(RollbackPointVeleroBackup); p != nil {
			out.Backup = p.String() // made in an earlier session of the run
		}
	}
	if s.forecast != nil {
		for _, f := range s.forecast.Steps {
			if took, ok := st.took(f.Step); ok {
				out.Forecast = append(out.Forecast, ForecastCheck{Step: f.Step, Forecast: f.Estimate, From: f.From, Took: Duration{took.Round(100 * time.Millisecond)}})
			}
		}
	}
	for _, step := range st.Steps {
		switch {
		case step.Status == StatusPending || step.Status == StatusFailed || step.Status == StatusInterrupted || step.Status == StatusRunning || step.Status == StatusPaused:
			out.Left = append(out.Left, fmt.Sprintf("step %s (%s)", step.Name, step.Status))
		}
		for _, k := range step.Kept {
			out.Left = append(out.Left, k.Object+": "+k.Reason)
		}
	}
	return out
}

// eventLog writes every event of the run as a JSON line to events.jsonl next to its journal
// (appended to by each session), so that what happened can be read after the terminal is gone.
type eventLog struct {
	mu  sync.Mutex
	f   *os.File
	enc *json.Encoder
}

// EventLogName is the run's event log, next to its journal.
const EventLogName = "events.jsonl"

func openEventLog(stateDir, runID string) (*eventLog, error) {
	f, err := os.OpenFile(filepath.Join(stateDir, "runs", runID, EventLogName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("run %s: open its event log: %w", runID, err)
	}
	return &eventLog{f: f, enc: json.NewEncoder(io.Writer(f))}, nil
}

func (l *eventLog) write(ev Event) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.enc.Encode(Stamp(ev)) // a full disk must not stop the run: the journal is what counts
}

func (l *eventLog) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.f.Close()
}
