package rehearse

import (
	"slices"
	"testing"
	"time"

	"github.com/drydock-dev/drydock/runbook"
)

// TestMet: what held pods back (each pod's wait from its first refusal to its eviction), which
// holds count as blockers (at least a minimum), and each group's time from its first cordon to the
// next group's (the last group's to the step's end), the groups learnt from the waiting nodes.
func TestMet(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	at := func(ms int) runbook.Meta {
		return runbook.Meta{Time: t0.Add(time.Duration(ms) * time.Millisecond), Step: "fleet"}
	}
	m := &Met{}
	for _, ev := range []runbook.Event{
		&runbook.NodeChanged{Meta: at(0), Node: "a-1", Group: "a", State: runbook.NodeWaiting},
		&runbook.NodeChanged{Meta: at(0), Node: "b-1", Group: "b", State: runbook.NodeWaiting},
		&runbook.NodeChanged{Meta: at(500), Node: "a-1", State: runbook.NodeCordoned},
		&runbook.PodChanged{Meta: at(600), Node: "a-1", Pod: "shop/web-1", State: runbook.PodBlocked, PDB: "shop/web"},
		&runbook.PodChanged{Meta: at(900), Node: "a-1", Pod: "shop/web-1", State: runbook.PodBlocked, PDB: "shop/web"},
		&runbook.PodChanged{Meta: at(3100), Node: "a-1", Pod: "shop/web-1", State: runbook.PodEvicted},
		&runbook.PodChanged{Meta: at(700), Node: "a-1", Pod: "batch/w-1", State: runbook.PodBlocked, PDB: "batch/w"},
		&runbook.PodChanged{Meta: at(900), Node: "a-1", Pod: "batch/w-1", State: runbook.PodEvicted},
		&runbook.NodeChanged{Meta: at(5000), Node: "a-1", State: runbook.NodeUncordoned},
		&runbook.NodeChanged{Meta: at(5500), Node: "b-1", State: runbook.NodeCordoned},
		&runbook.StepFinished{Meta: at(9500)},
	} {
		m.Emit(ev)
	}
	held := m.Held()
	if len(held) != 2 || held[0].What != "PodDisruptionBudget batch/w" || held[0].Longest.Duration != 200*time.Millisecond ||
		held[1].What != "PodDisruptionBudget shop/web" || held[1].Pods != 1 || held[1].Longest.Duration != 2500*time.Millisecond {
		t.Fatalf("held: %+v", held)
	}
	if got := Holders(held, time.Second); !slices.Equal(got, []string{"PodDisruptionBudget shop/web"}) {
		t.Errorf("holders of a second or more: %q (a 0.2 s hold is a race, not a blocker)", got)
	}
	g := m.GroupTook()
	if len(g) != 2 || g[0].Group != "a" || g[0].Took.Duration != 5*time.Second || g[1].Group != "b" || g[1].Took.Duration != 4*time.Second {
		t.Errorf("groups: %+v", g)
	}
}

// TestLag: the copy's lag over the pods it made during the run (median, p90), and when it means the
// copy, not the cluster's start-ups, paced the run.
func TestLag(t *testing.T) {
	t.Parallel()
	s := func(secs ...float64) []time.Duration {
		var out []time.Duration
		for _, x := range secs {
			out = append(out, time.Duration(x*float64(time.Second)))
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		lags        []time.Duration
		median, p90 time.Duration
		saturated   bool
	}{
		{"none", nil, 0, 0, false},
		{"on time (whole-second timestamps: a little early or late)", s(-0.4, 0.2, 0.6, 0.8, -0.9), 200 * time.Millisecond, 800 * time.Millisecond, false},
		{"one slow pod", s(0, 0, 0, 0, 0, 0, 0, 0, 0, 30), 0, 30 * time.Second, false},
		{"a copy that cannot keep up", s(2, 3, 5, 8, 13, 21), 8 * time.Second, 21 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := lagOf(tc.lags)
			if tc.lags == nil {
				if l != nil || l.Saturated() {
					t.Fatalf("lag %+v of no pods", l)
				}
				return
			}
			if l.Pods != len(tc.lags) || l.Median.Duration != tc.median || l.P90.Duration != tc.p90 || l.Saturated() != tc.saturated {
				t.Fatalf("lag %+v saturated %v, want median %s p90 %s saturated %v", l, l.Saturated(), tc.median, tc.p90, tc.saturated)
			}
		})
	}
}
