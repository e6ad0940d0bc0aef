package tui

// Colours, icons and the legend (NO_COLOR and the terminal's profile decide the colours).

import (
	"charm.land/lipgloss/v2"
)

type styles struct {
	title, dim, bold, sel, ok, warn, err, box, dialog lipgloss.Style
	color                                             bool
}

func newStyles(color bool) styles {
	s := styles{color: color}
	if !color {
		plain := lipgloss.NewStyle()
		s.title, s.dim, s.bold, s.sel, s.ok, s.warn, s.err = plain, plain, plain, plain.Reverse(true), plain, plain, plain
		s.box = plain.Border(lipgloss.NormalBorder())
		s.dialog = plain.Border(lipgloss.DoubleBorder()).Padding(0, 1)
		return s
	}
	s.title = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("12"))
	s.dim = lipgloss.NewStyle().Foreground(lipgloss.Color("8"))
	s.bold = lipgloss.NewStyle().Bold(true)
	s.sel = lipgloss.NewStyle().Reverse(true)
	s.ok = lipgloss.NewStyle().Foreground(lipgloss.Color("10"))
	s.warn = lipgloss.NewStyle().Foreground(lipgloss.Color("11"))
	s.err = lipgloss.NewStyle().Foreground(lipgloss.Color("9")).Bold(true)
	s.box = lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(lipgloss.Color("8"))
	s.dialog = lipgloss.NewStyle().Border(lipgloss.DoubleBorder()).BorderForeground(lipgloss.Color("11")).Padding(0, 1)
	return s
}

// legend explains the screen's marks (in the ? help).
const legend = `· pending  ▶ running  ‖ paused  ✓ done  ✗ failed  – skipped  ↺ rolling back  ↩ rolled back
⚑ the step made a rollback point (a Velero backup)   ETA ~: the forecast of what is left, at the pace measured so far (pauses not counted)
a node: waiting, cordoned, draining, upgrading, upgraded, uncordoned, skipped (already at the target)`

var icons = map[string]string{Pending: "·", Running: "▶", Paused: "‖", Done: "✓", Failed: "✗", Skipped: "–", RollingBack: "↺", RolledBack: "↩"}

func (m Model) statusStyle(st string) lipgloss.Style {
	switch st {
	case Done, RolledBack:
		return m.styles.ok
	case Failed:
		return m.styles.err
	case Paused, RollingBack:
		return m.styles.warn
	}
	return lipgloss.NewStyle()
}
