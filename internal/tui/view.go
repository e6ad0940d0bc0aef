package tui

// The screen: header, step list, detail, log, footer and the dialog overlay.

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/drydock-dev/drydock/runbook"
)

func short(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	d = d.Round(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

func trunc(s string, w int) string {
	if w <= 0 {
		return ""
	}
	return ansi.Truncate(s, w, "…")
}

// View renders the screen.
func (m Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	return v
}

// Render draws the screen as a string (the tests' golden files are this, without colour).
func (m Model) Render() string {
	w, h := max(m.width, 40), max(m.height, 12)
	header := m.header(w)
	helpBar := m.footer(w)
	if m.filtering {
		helpBar = ansi.Truncate(m.filter.View(), w, "…")
	}
	logH := max(4, h/4)
	bodyH := h - lipgloss.Height(header) - logH - 1 // the boxes' height, borders included
	var body string
	if m.Detail {
		body = m.styles.box.Width(w).Height(bodyH).Render(m.detail(w-2, bodyH-2))
	} else {
		leftW := min(30, w/3)
		left := m.styles.box.Width(leftW).Height(bodyH).Render(m.stepList(leftW-2, bodyH-2))
		right := m.styles.box.Width(w - leftW).Height(bodyH).Render(m.detail(w-leftW-2, bodyH-2))
		body = lipgloss.JoinHorizontal(lipgloss.Top, left, right)
	}
	logBox := m.logView(w, logH)
	screen := lipgloss.JoinVertical(lipgloss.Left, header, body, logBox, helpBar)
	if m.showHelp {
		screen = m.overlay(screen, w, h, m.styles.dialog.Render(m.help.FullHelpView(m.keys.FullHelp())+"\n\n"+legend))
	}
	if m.dialog != nil {
		screen = m.overlay(screen, w, h, m.dialogView(w))
	}
	return screen
}

// footer is the short help, cut to the width but for "? help" and "q quit", which always fit (the
// full help is one key away, and so is leaving).
func (m Model) footer(w int) string {
	var others []key.Binding
	for _, k := range m.keys.ShortHelp() {
		if k.Help() != m.keys.Help.Help() && k.Help() != m.keys.Quit.Help() {
			others = append(others, k)
		}
	}
	pinned := m.help.ShortHelpView([]key.Binding{m.keys.Help, m.keys.Quit})
	sep := m.help.ShortSeparator
	// Whole keys are left out from the end (an ellipsis says so) until the line fits.
	for n := len(others); n > 0; n-- {
		line := m.help.ShortHelpView(others[:n])
		if n < len(others) {
			line += sep + "…"
		}
		if line += sep + pinned; ansi.StringWidth(line) <= w {
			return line
		}
	}
	// (bubbles' help does not always cut the line at its width: cut it here)
	return ansi.Truncate(pinned, w, "…")
}

func (m Model) header(w int) string {
	elapsed := ""
	switch {
	case !m.Started.IsZero() && !m.Ended.IsZero():
		elapsed = short(m.Ended.Sub(m.Started)) // the clock stops with the run
	case !m.Started.IsZero() && !m.Now.IsZero():
		elapsed = short(m.Now.Sub(m.Started))
	}
	line1 := m.styles.title.Render("drydock "+m.Info.Command) + "  " + trunc(m.Info.Context+"  "+versions(m.Info.Server, m.Info.Target), w-20)
	state := "running"
	switch {
	case m.Finished && m.Status != "":
		state = m.Status
	case m.Finished && m.Err != nil:
		state = "failed"
	case m.Finished:
		state = "finished"
	case m.dialog != nil && (m.dialog.kind == dialogPause || m.dialog.kind == dialogConfirmAnswer):
		state = "waiting for you"
	}
	// Where the run stands comes first: on a narrow terminal the rest is cut, never the state.
	line2 := m.styles.dim.Render(trunc(fmt.Sprintf("[%s]  run %s  %s  elapsed %s  lock %s", state, m.RunID, m.Runbook, elapsed, m.Info.Lock), w))
	return line1 + "\n" + line2
}

// versions is where the run takes the cluster: "v1.36.3 → v1.37.1", or "v1.37.1 (at target)" when
// the apiserver is there already (a node upgrade after the control plane's).
func versions(server, target string) string {
	switch {
	case server == "":
		server = "?"
	case target == "":
	case atTarget(server, target):
		return server + " (at target)"
	}
	return server + " → " + target
}

// atTarget says whether version is target, or a build of it ("v1.37.1-eks-5e0fdde" is at
// "v1.37.1"; any v1.37 patch is at "v1.37").
func atTarget(version, target string) bool {
	v, t := strings.TrimPrefix(version, "v"), strings.TrimPrefix(target, "v")
	if t == "" {
		return false
	}
	rest, ok := strings.CutPrefix(v, t)
	return ok && (rest == "" || rest[0] == '-' || rest[0] == '+' || (rest[0] == '.' && strings.Count(t, ".") < 2))
}

func (m Model) stepList(w, h int) string {
	var lines []string
	for i, s := range m.Steps {
		icon := icons[s.Status]
		mark := ""
		if s.RollbackPoint != nil {
			mark = " ⚑"
		}
		dur := short(s.Duration)
		if s.Status == Running && !s.Started.IsZero() && !m.Now.IsZero() {
			dur = short(m.Now.Sub(s.Started))
		}
		name := trunc(s.Name+mark, w-len(dur)-3)
		line := fmt.Sprintf("%s %-*s %s", icon, w-len(dur)-3, name, dur)
		line = m.statusStyle(s.Status).Render(line)
		if i == m.Selected {
			line = m.styles.sel.Render(line)
		}
		lines = append(lines, line)
	}
	if len(lines) > h {
		lines = lines[:h]
	}
	return strings.Join(lines, "\n")
}

// counts is where the step's progress bar stands. A node step with a plan counts the nodes the plan
// moves, done when upgraded or found at the target (the step's own count includes the nodes the plan
// leaves alone: 0/6 of 5 to do); any other step, what it reports.
func (m Model) counts(s *Step) (done, total int) {
	p := m.Plans[s.Name]
	if p == nil || len(p.Batches) == 0 || s.Total == 0 {
		return s.Done, s.Total
	}
	for _, name := range p.Nodes() {
		total++
		if n := s.Nodes[name]; n != nil && (n.State == runbook.NodeUpgraded || n.State == runbook.NodeSkipped) {
			done++
		}
	}
	return done, total
}

func (m Model) bar(done, total, w int) string {
	if total <= 0 {
		return ""
	}
	p := progress.New(progress.WithWidth(min(w, 40)), progress.WithFillCharacters('█', '░'))
	if !m.styles.color {
		p = progress.New(progress.WithWidth(min(w, 40)), progress.WithFillCharacters('#', '.'), progress.WithColors(lipgloss.NoColor{}))
	}
	return p.ViewAs(float64(done) / float64(total))
}

// countdown is the time left of a soak or a wait, while the step runs.
func (m Model) countdown(s *Step) string {
	if s.Until.IsZero() || s.Status != Running || m.Now.IsZero() {
		return ""
	}
	left := s.Until.Sub(m.Now)
	if left < 0 {
		left = 0
	}
	return " (" + short(left.Round(time.Second)) + " left)"
}

func (m Model) detail(w, h int) string {
	if len(m.Steps) == 0 {
		if m.Finished {
			return m.styles.dim.Render("the run did not start: the log below says why")
		}
		return m.styles.dim.Render("waiting for the run to start…")
	}
	s := m.Steps[m.Selected]
	var b []string
	title := fmt.Sprintf("%s (%s) — %s", s.Name, s.Kind, s.Status)
	b = append(b, m.styles.bold.Render(trunc(title, w)))
	if s.RollbackPoint != nil {
		b = append(b, trunc("rollback point: "+s.RollbackPoint.String(), w))
	}
	if s.Error != "" {
		b = append(b, strings.Split(m.styles.err.Width(w).Render("error: "+s.Error), "\n")...)
	}
	if s.Progress != "" {
		b = append(b, trunc(s.Progress+m.countdown(s), w))
	}
	if done, total := m.counts(s); total > 0 {
		b = append(b, fmt.Sprintf("%s %d/%d%s", m.bar(done, total, w-16), done, total, m.eta(s)))
	}
	b = append(b, nodeLines(s, w)...)
	// A long reason is cut to the pane's width; in the detail view (enter) it is wrapped whole.
	fit := func(line string) []string {
		if !m.Detail {
			return []string{trunc(line, w)}
		}
		return strings.Split(lipgloss.NewStyle().Width(w).Render(line), "\n")
	}
	var blocked []string
	for _, name := range s.PodOrder {
		if p := s.Pods[name]; p.State == runbook.PodBlocked {
			reason := p.Reason
			if p.Chain != nil {
				reason = p.Chain.Reason() // the budget's numbers in words that add up
			}
			blocked = append(blocked, fit(fmt.Sprintf("  %s on %s: %s", p.Name, p.Node, reason))...)
		}
	}
	// The chain, once per budget: its unhealthy pods, where and why, and the patch that unblocks
	// (what b proposes: the same chain).
	for _, c := range budgetChains(s) {
		for _, l := range c.Lines() {
			blocked = append(blocked, fit("  "+l)...)
		}
	}
	b = append(b, m.gateLines(s, fit)...)
	if len(blocked) > 0 {
		b = append(b, m.styles.warn.Render("blocked:"))
		b = append(b, blocked...)
	}
	if len(s.Findings) > 0 {
		filter := "all"
		if m.SeverityFilter != "" {
			filter = string(m.SeverityFilter) + " only"
		}
		b = append(b, m.styles.bold.Render(fmt.Sprintf("findings (%d, %s; f filters)", len(s.Findings), filter)))
		for _, f := range s.Findings {
			if m.SeverityFilter != "" && f.Severity != m.SeverityFilter {
				continue
			}
			st := m.styles.warn
			if f.Severity == runbook.SeverityError {
				st = m.styles.err
			}
			line := fmt.Sprintf("  %-7s %s: %s", f.Severity, f.Object, f.Message)
			if m.Detail && f.Hint != "" {
				line += " (fix: " + f.Hint + ")"
			}
			for _, l := range fit(line) {
				b = append(b, st.Render(l))
			}
		}
	}
	if len(b) > h {
		b = append(b[:h-1], m.styles.dim.Render(fmt.Sprintf("… %d more lines", len(b)-h+1)))
	}
	return strings.Join(b, "\n")
}

// nodeLines are a node step's nodes: how many in each state, then each with its group, state and
// pods moved (a skipped node: why).
func nodeLines(s *Step, w int) []string {
	if len(s.NodeOrder) == 0 {
		return nil
	}
	counts := map[runbook.NodeState]int{}
	for _, n := range s.Nodes {
		counts[n.State]++
	}
	var keys []string
	for k, c := range counts {
		keys = append(keys, fmt.Sprintf("%s %d", k, c))
	}
	sort.Strings(keys)
	b := []string{trunc("nodes: "+strings.Join(keys, ", "), w)}
	for _, name := range s.NodeOrder {
		n := s.Nodes[name]
		line := fmt.Sprintf("  %-18s %-10s", trunc(n.Name, 18), n.State)
		if n.Group != "" {
			line = fmt.Sprintf("  %-18s %-8s %-10s", trunc(n.Name, 18), trunc(n.Group, 8), n.State)
		}
		switch {
		case n.Total > 0:
			line += fmt.Sprintf(" pods %d/%d", n.Done, n.Total)
		case n.State == runbook.NodeSkipped && n.Detail != "":
			line += " " + n.Detail // why: at the target, upgraded by an earlier step
		}
		b = append(b, trunc(line, w))
	}
	return b
}

// gateLines are the step's health gates: each value, bounds, verdict and how long it has held it.
func (m Model) gateLines(s *Step, fit func(string) []string) []string {
	if len(s.Gates) == 0 {
		return nil
	}
	b := []string{m.styles.bold.Render("gates:")}
	for _, g := range s.Gates {
		mark, st := "✓", m.styles.dim
		if !g.OK {
			mark, st = "✗", m.styles.warn
		}
		line := fmt.Sprintf("  %s %-14s %s", mark, trunc(g.Name, 14), g.Value)
		if g.Bounds != "" {
			line += " (" + g.Bounds + ")"
		}
		if !m.Now.IsZero() && !g.Since.IsZero() && m.Now.After(g.Since) {
			line += "  held " + short(m.Now.Sub(g.Since))
		}
		if !g.OK && g.Why != "" {
			line += ": " + g.Why
		}
		for _, l := range fit(line) {
			b = append(b, st.Render(l))
		}
	}
	return b
}

func (m Model) logView(w, h int) string {
	var lines []string
	q := strings.ToLower(m.filter.Value())
	for _, l := range m.Log {
		if q != "" && !strings.Contains(strings.ToLower(l.Text), q) {
			continue
		}
		t := ""
		if !l.Time.IsZero() {
			t = l.Time.Format("15:04:05") + " "
		}
		line := trunc(t+l.Text, w)
		switch l.Level {
		case "error":
			line = m.styles.err.Render(line)
		case "warning":
			line = m.styles.warn.Render(line)
		}
		lines = append(lines, line)
	}
	if len(lines) > h {
		lines = lines[len(lines)-h:]
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}

func (m Model) dialogView(w int) string {
	d := m.dialog
	var b []string
	b = append(b, m.styles.bold.Render(d.title), "")
	for _, l := range d.lines {
		b = append(b, strings.Split(lipgloss.NewStyle().Width(min(w-8, 70)).Render(l), "\n")...)
	}
	b = append(b, "")
	var cs []string
	for i, c := range d.choices {
		if i == d.choice {
			cs = append(cs, m.styles.sel.Render("["+c+"]"))
		} else {
			cs = append(cs, " "+c+" ")
		}
	}
	b = append(b, strings.Join(cs, "  "))
	hint := "←/→ choose · enter confirms the highlighted choice · esc cancels"
	if d.kind == dialogPause {
		hint = "c continue · r roll back… · s stop… (each asks again) · ←/→ and enter"
	}
	b = append(b, m.styles.dim.Render(hint))
	return m.styles.dialog.Render(strings.Join(b, "\n"))
}

// overlay draws box in the middle of screen.
func (m Model) overlay(screen string, w, h int, box string) string {
	lines := strings.Split(screen, "\n")
	bl := strings.Split(box, "\n")
	top := max(0, (h-len(bl))/2)
	left := max(0, (w-lipgloss.Width(box))/2)
	for i, l := range bl {
		y := top + i
		for y >= len(lines) {
			lines = append(lines, "")
		}
		lines[y] = strings.Repeat(" ", left) + l
	}
	return strings.Join(lines, "\n")
}
