package runbook

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// MaxHistoryProgress is how many of a finished step's last progress lines RunHistory keeps.
const MaxHistoryProgress = 5

// loggedTypes are the events of the log that history reads, by their Type(), each made empty to
// decode into: what the other lines say is not needed to show the run again.
var loggedTypes = map[string]func() Event{
	"run.started":        func() Event { return &RunStarted{} },
	"step.started":       func() Event { return &StepStarted{} },
	"step.progress":      func() Event { return &StepProgress{} },
	"step.finished":      func() Event { return &StepFinished{} },
	"step.failed":        func() Event { return &StepFailed{} },
	"step.rollbackpoint": func() Event { return &RollbackPointSet{} },
	"node.state":         func() Event { return &NodeChanged{} },
	"pod.state":          func() Event { return &PodChanged{} },
}

// ReadEventLog reads the events of a run's event log (<stateDir>/runs/<id>/events.jsonl) that
// history needs, typed, in order: none when there is no log; a line that does not decode (the
// torn last line of a crash) or of another type is left out.
func ReadEventLog(stateDir, runID string) ([]Event, error) {
	f, err := os.Open(filepath.Join(stateDir, "runs", runID, EventLogName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the event log of run %s: %w", runID, err)
	}
	defer func() { _ = f.Close() }()
	var out []Event
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if ev := decodeEvent(line); ev != nil {
			out = append(out, ev)
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read the event log of run %s: %w", runID, err)
		}
	}
}

// decodeEvent is one line of the log as its typed event, or nil (an unknown type, a torn line).
func decodeEvent(line []byte) Event {
	var head struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(line, &head) != nil {
		return nil
	}
	mk, ok := loggedTypes[head.Type]
	if !ok {
		return nil
	}
	ev := mk()
	if json.Unmarshal(line, ev) != nil {
		return nil
	}
	return ev
}

// NewRunHistory folds the events of earlier sessions into a RunHistory, or nil when there are none.
func NewRunHistory(evs []Event) *RunHistory {
	if len(evs) == 0 {
		return nil
	}
	h := &RunHistory{Since: EventTime(evs[0])}
	nodes := map[[2]string]int{}       // step, node → index in h.Nodes
	began := map[[2]string]time.Time{} // step, node → when it was cordoned
	progress := map[string][]string{}  // step → its last attempt's progress lines
	steps := map[string]int{}          // step → index in h.Steps
	for _, ev := range evs {
		m := ev.meta()
		switch e := ev.(type) {
		case *RunStarted:
			h.Sessions++
		case *StepStarted:
			delete(progress, m.Step)
		case *StepProgress:
			progress[m.Step] = lastN(append(progress[m.Step], e.Message), MaxHistoryProgress)
		case *StepFinished:
			if e.Skipped {
				continue
			}
			i, ok := steps[m.Step]
			if !ok {
				i = len(h.Steps)
				steps[m.Step] = i
				h.Steps = append(h.Steps, StepHistory{Step: m.Step})
			}
			h.Steps[i].Progress = slices.Clone(progress[m.Step])
		case *NodeChanged:
			key := [2]string{m.Step, e.Node}
			i, ok := nodes[key]
			if !ok {
				i = len(h.Nodes)
				nodes[key] = i
				h.Nodes = append(h.Nodes, NodeHistory{Step: m.Step, Node: e.Node})
			}
			n := &h.Nodes[i]
			n.State, n.Detail = e.State, e.Detail
			if e.Group != "" {
				n.Group = e.Group
			}
			if _, ok := began[key]; !ok && e.State == NodeCordoned {
				began[key] = m.Time
			}
			if b, ok := began[key]; ok && e.State == NodeUpgraded {
				n.Took = Duration{m.Time.Sub(b).Round(time.Second)}
			}
		case *PodChanged:
			if e.State == PodGone {
				h.Pods++
			}
		case *RollbackPointSet:
			h.Backup = e.Point.String()
		}
	}
	return h
}

// lastN is the last n of s.
func lastN(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Upgraded are the nodes the history left upgraded, in order, each once.
func (h *RunHistory) Upgraded() []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range h.Nodes {
		if n.State == NodeUpgraded && !seen[n.Node] {
			seen[n.Node] = true
			out = append(out, n.Node)
		}
	}
	return out
}

// history reads the run's earlier sessions from its event log, seeds the session's summary with
// them and returns the RunHistory to emit after RunStarted, or nil when the log has none. An
// unreadable log is a warning: the run goes on without its history.
func (s *session) history() *RunHistory {
	st := s.journal.State()
	evs, err := ReadEventLog(s.e.StateDir, st.ID)
	if err != nil {
		s.emit(&LogLine{Meta: Meta{RunID: st.ID}, Stream: "warning", Line: err.Error()})
	}
	h := NewRunHistory(evs)
	if h == nil {
		return nil
	}
	if s.sum != nil {
		s.sum.seed(evs, h.Since)
	}
	return h
}
