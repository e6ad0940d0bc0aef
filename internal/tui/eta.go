package tui

import (
	"time"

	"github.com/drydock-dev/drydock/runbook"
)

// The ETA of a node step is display state like the rest: an estimate of the work left, made as the
// step starts and again each time a batch (or, without a forecast, a node) finishes, then counted
// down on the clock between those events. The step's clock is its active time: since it started,
// less the time it waited for a person at a pause point (a forecast never counts pauses, so neither
// does the pace measured against it).

// eta is what the step's progress line shows: "  ETA ~2m10s", or nothing (the step is not running,
// nothing is estimated, or the estimate has run out).
func (m Model) eta(s *Step) string {
	if s.Status != Running || !s.est.ok || m.Now.IsZero() {
		return ""
	}
	left := s.est.leftAt(s.active(m.Now))
	if left < time.Second {
		return ""
	}
	return "  ETA ~" + short(left)
}

// estimate is an ETA as made at one moment.
type estimate struct {
	ok bool
	// left is the time left when it was made, at the step's active time at.
	left, at time.Duration
	// floor is where the countdown stops: what is left after the batch under way (it cannot
	// finish the step's later batches by running late).
	floor time.Duration
	// done is how many batches (nodes, without a forecast) were finished when it was made.
	done int
}

// leftAt is the estimate counted down to the step's active time a, never below its floor.
func (e estimate) leftAt(a time.Duration) time.Duration {
	return max(e.floor, e.left-max(0, a-e.at))
}

// active is the step's time at work by t: since it started, less its pauses.
func (s *Step) active(t time.Time) time.Duration {
	if s.Started.IsZero() || t.Before(s.Started) {
		return 0
	}
	d := t.Sub(s.Started) - s.pausedFor
	if !s.pausedSince.IsZero() && t.After(s.pausedSince) {
		d -= t.Sub(s.pausedSince)
	}
	return max(0, d)
}

// pauseEnds closes the step's pause at t, if it waits at one.
func (s *Step) pauseEnds(t time.Time) {
	if s.pausedSince.IsZero() {
		return
	}
	s.pausedFor += max(0, t.Sub(s.pausedSince))
	s.pausedSince = time.Time{}
}

// reestimate makes the step's estimate again at t when a batch (a node, without a forecast) has
// finished since the last one, or when there is none yet.
func (s *Step) reestimate(plan *runbook.NodePlan, t time.Time) {
	a := s.active(t)
	if e, ok := fromForecast(s, plan, a); ok {
		if !s.est.ok || e.done != s.est.done {
			s.est = e
		}
		return
	}
	if e, ok := fromPace(s, a); ok && (!s.est.ok || e.done != s.est.done) {
		s.est = e
	}
}

// fromForecast estimates from the plan's forecast of the batches not finished, scaled by the pace
// measured so far: the step's active time a over the forecast of the batches finished, weighed
// against the forecast itself as if it were one more batch measured. At the start the ETA is the
// forecast; as batches finish, the measured pace counts more, one batch at a time, so that one fast
// or slow batch moves it only so far. A batch whose nodes were all skipped took no time and counts
// for nothing.
func fromForecast(s *Step, plan *runbook.NodePlan, a time.Duration) (estimate, bool) {
	if plan == nil || plan.Forecast == nil || plan.Forecast.Total.Never() || len(plan.Batches) == 0 {
		return estimate{}, false
	}
	var finished, left, current time.Duration
	done, batches := 0, 0
	for _, b := range plan.Batches {
		if b.Forecast == nil {
			return estimate{}, false
		}
		over, skipped := true, true
		for _, pn := range b.Nodes {
			n := s.Nodes[pn.Node]
			over = over && n != nil && (n.State == runbook.NodeUpgraded || n.State == runbook.NodeSkipped)
			skipped = skipped && n != nil && n.State == runbook.NodeSkipped
		}
		switch f := b.Forecast.Expected.Duration; {
		case over && skipped:
			done++
		case over:
			finished += f
			done++
			batches++
		default:
			if left == 0 {
				current = f
			}
			left += f
			batches++
		}
	}
	if batches == 0 {
		return estimate{}, false
	}
	pace := 1.0
	if finished > 0 {
		prior := float64(finished+left) / float64(batches) // the forecast, as one batch
		pace = (float64(a) + prior) / (float64(finished) + prior)
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * pace) }
	return estimate{ok: true, left: scale(left), at: a, floor: scale(left - current), done: done}, true
}

// fromPace estimates without a forecast: the nodes left at the pace the step upgraded the nodes
// so far (its active time from its first cordon to the last node upgraded, over them: nodes upgraded
// side by side count as such); none before a node was upgraded. Skipped nodes take no time.
func fromPace(s *Step, a time.Duration) (estimate, bool) {
	upgraded, left := 0, 0
	for _, n := range s.Nodes {
		switch n.State {
		case runbook.NodeUpgraded:
			upgraded++
		case runbook.NodeSkipped:
		default:
			left++
		}
	}
	if upgraded == 0 || !s.cordoned {
		return estimate{}, false
	}
	pace := (a - s.firstCordon) / time.Duration(upgraded)
	return estimate{ok: true, left: pace * time.Duration(left), at: a, floor: pace * time.Duration(max(0, left-1)), done: upgraded}, true
}
