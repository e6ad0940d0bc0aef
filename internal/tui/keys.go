package tui

// The keys: the key map, Update's dispatch and what each key does outside a dialog.

import (
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/drydock-dev/drydock/runbook"
)

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
