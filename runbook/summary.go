package runbook

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// RunSummary: how the session ended, in numbers, just before RunFinished: the nodes upgraded per
// group with how long each took, the nodes skipped, the pods moved, the blockers met, the budgets
// relaxed, the backup, and what is left to do.
type RunSummary struct {
	Meta
	Status RunStatus `json:"status"`
	// Took is this session's time; RunTook, for a run resumed, the whole run's (from its first
	// session's start). Groups, Skipped, Pods and Backup cover the whole run (its event log).
	Took     Duration       `json:"took"`
	RunTook  Duration       `json:"runTook,omitzero"`
	Groups   []GroupSummary `json:"groups,omitempty"`
	Skipped  []string       `json:"skipped,omitempty"` // nodes already at the target
	Pods     int            `json:"podsMoved"`
	Blockers []string       `json:"blockers,omitempty"` // pod: reason, once per pod and budget (its last reason)
	// Relaxed are the budgets relaxed for a node in the session, and whether each is back as it was.
	Relaxed []RelaxSummary `json:"relaxed,omitempty"`
	Backup  string         `json:"backup,omitempty"` // the rollback point, if the run made one
	Left    []string       `json:"left,omitempty"`   // steps not done, what was not undone
	// Forecast is each forecast step's forecast (made as the session began) against what it took.
	Forecast []ForecastCheck `json:"forecast,omitempty"`
}

// ForecastCheck is a step's forecast against what it took (its last attempt, start to finish, less
// the time it waited for a person at a pause point inside it: a forecast never counts pauses).
type ForecastCheck struct {
	Step     string   `json:"step"`
	Forecast Estimate `json:"forecast"`
	From     string   `json:"from"`
	Took     Duration `json:"took"`
	// Paused is the time at pause points inside the step, left out of Took.
	Paused Duration `json:"paused,omitzero"`
}

// RelaxSummary is a budget relaxed for a node (allowBudgetRelax, or approved at the terminal).
type RelaxSummary struct {
	Step string `json:"step"`
	PDB  string `json:"pdb"` // namespace/name
	Node string `json:"node,omitempty"`
	What string `json:"what,omitempty"` // what the relaxation allowed
	// Restored: the budget is back as it was (or was left as someone changed it since).
	Restored bool `json:"restored"`
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
	runStart time.Time // the first session's start, for a run resumed
	groups   []*GroupSummary
	groupOf  map[string]string    // node -> group
	began    map[string]time.Time // node -> when it was cordoned
	skipped  []string
	pods     int
	blockers []blocker
	backup   string
	forecast *RunForecast
	// pausedAt is when a step's pause point inside it began to wait (until the step's next event);
	// paused is what its last attempt waited so.
	pausedAt map[string]time.Time
	paused   map[string]time.Duration
}

// blocker is a pod held back, by a budget or otherwise, and the last reason given.
type blocker struct{ pod, pdb, reason string }

func newSummarizer(now time.Time) *summarizer {
	return &summarizer{start: now, groupOf: map[string]string{}, began: map[string]time.Time{}, pausedAt: map[string]time.Time{}, paused: map[string]time.Duration{}}
}

func (s *summarizer) see(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pauses(ev)
	s.fold(ev, true)
}

// seed folds in the events of the run's earlier sessions (its event log), which began at since:
// the nodes upgraded and skipped, the pods moved and the backup count for the whole run; their
// blockers and pauses were those sessions' own.
func (s *summarizer) seed(evs []Event, since time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runStart = since
	for _, ev := range evs {
		s.fold(ev, false)
	}
}

// fold adds one event to the summary; blockers only when they are this session's.
func (s *summarizer) fold(ev Event, blockers bool) {
	m := ev.meta()
	switch e := ev.(type) {
	case *NodeChanged:
		s.node(e, m)
	case *PodChanged:
		if e.State == PodBlocked && !blockers {
			return
		}
		switch e.State {
		case PodGone:
			s.pods++
		case PodBlocked:
			s.blocked(e)
		}
	case *RollbackPointSet:
		s.backup = e.Point.String()
	}
}

// node folds a node's change in: cordoned starts its clock, upgraded stops it (once per node and
// step: a step re-entered that upgrades it again counts it once).
func (s *summarizer) node(e *NodeChanged, m *Meta) {
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
		n := NodeSummary{Node: e.Node, Took: Duration{took.Round(time.Second)}}
		if i := slices.IndexFunc(g.Nodes, func(x NodeSummary) bool { return x.Node == e.Node }); i >= 0 {
			g.Nodes[i] = n
			return
		}
		g.Nodes = append(g.Nodes, n)
	}
}

// pauses keeps the time each step waited at pause points inside it, in its last attempt: from its
// StepPaused to its next event (the step goes on only once a person answered).
func (s *summarizer) pauses(ev Event) {
	m := ev.meta()
	if m.Step == "" {
		return
	}
	if at, ok := s.pausedAt[m.Step]; ok {
		s.paused[m.Step] += max(0, m.Time.Sub(at))
		delete(s.pausedAt, m.Step)
	}
	switch e := ev.(type) {
	case *StepStarted:
		delete(s.paused, m.Step)
	case *StepPaused:
		if e.When == PauseInside {
			s.pausedAt[m.Step] = m.Time
		}
	}
}

// blocked keeps a pod held back once per pod and budget, with its last reason: a budget's in words
// that add up (BudgetChain.Reason) when the event explains the budget.
func (s *summarizer) blocked(e *PodChanged) {
	reason, pdb := e.Reason, e.PDB
	if e.Chain != nil {
		reason, pdb = e.Chain.Reason(), e.Chain.PDB
	}
	for i := range s.blockers {
		if b := &s.blockers[i]; b.pod == e.Pod && b.pdb == pdb {
			b.reason = reason
			return
		}
	}
	s.blockers = append(s.blockers, blocker{pod: e.Pod, pdb: pdb, reason: reason})
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
	out := &RunSummary{Status: status, Took: Duration{now.Sub(s.start).Round(time.Second)}, Skipped: s.skipped, Pods: s.pods, Backup: s.backup}
	if !s.runStart.IsZero() {
		out.RunTook = Duration{now.Sub(s.runStart).Round(time.Second)}
	}
	for _, b := range s.blockers {
		out.Blockers = append(out.Blockers, b.pod+": "+b.reason)
	}
	out.Relaxed = relaxations(st, s.start)
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
				paused := min(took, s.paused[f.Step])
				out.Forecast = append(out.Forecast, ForecastCheck{Step: f.Step, Forecast: f.Estimate, From: f.From,
					Took: Duration{(took - paused).Round(100 * time.Millisecond)}, Paused: Duration{paused.Round(time.Second)}})
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

// relaxations are the budgets the steps relaxed for a node since the session began (the journal's
// budget-relax changes), each restored or not (a later budget-restored change of the same step).
func relaxations(st *RunState, since time.Time) []RelaxSummary {
	var out []RelaxSummary
	for _, step := range st.Steps {
		open := map[string][]int{} // budget → its relaxations not restored yet, by index in out
		for _, c := range step.Changes {
			pdb := strings.TrimPrefix(c.Object, "pdb/")
			switch c.Kind {
			case "budget-relax":
				if !c.At.IsZero() && c.At.Before(since) {
					continue
				}
				var rec struct {
					What string `json:"what"`
				}
				_ = json.Unmarshal([]byte(c.Data["record"]), &rec) // an unreadable record still names the budget
				if slices.ContainsFunc(open[pdb], func(i int) bool { return out[i].Node == c.Data["node"] }) {
					continue // relaxed again for the same node: still one relaxation to restore
				}
				open[pdb] = append(open[pdb], len(out))
				out = append(out, RelaxSummary{Step: step.Name, PDB: pdb, Node: c.Data["node"], What: rec.What})
			case "budget-restored":
				for _, i := range open[pdb] {
					out[i].Restored = true
				}
				delete(open, pdb)
			}
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
