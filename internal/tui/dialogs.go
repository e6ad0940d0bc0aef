package tui

// The dialogs: roll back, relax a budget, a pause point's answer; each destructive choice asks again.

import (
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/drydock-dev/drydock/runbook"
)

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
