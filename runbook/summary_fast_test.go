package runbook

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestSummary folds known events and a journal into the run's summary: a budget's numbers that add
// up, once per pod and budget; the budgets relaxed and whether each came back; and each forecast
// against what its step took less the time it waited at a pause point inside it.
func TestSummary(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	at := func(sec int) Meta { return Meta{Time: t0.Add(time.Duration(sec) * time.Second), Step: "fleet"} }
	chain := func(current, allowed int32) *BudgetChain {
		return &BudgetChain{PDB: "shop/db", DesiredHealthy: 7, CurrentHealthy: current, ExpectedPods: 9, DisruptionsAllowed: allowed}
	}
	blocked := func(sec int, c *BudgetChain) Event {
		return &PodChanged{Meta: at(sec), Node: "n1", Pod: "shop/db-0", State: PodBlocked, PDB: c.PDB, Chain: c,
			Reason: fmt.Sprintf("waits for PDB shop/db: needs 7 healthy, has %d", c.CurrentHealthy)}
	}
	started, finished := t0.Add(10*time.Second), t0.Add(610*time.Second)
	journal := func(changes ...Change) *RunState {
		return &RunState{Steps: []StepState{{Name: "fleet", Kind: "nodegroups", Status: StatusDone, Started: &started, Finished: &finished, Changes: changes}}}
	}
	relax := func(pdb, node string, sec int) Change {
		return Change{Kind: "budget-relax", Object: "pdb/" + pdb, At: t0.Add(time.Duration(sec) * time.Second),
			Data: map[string]string{"node": node, "record": `{"what":"allows one more pod of the budget to be down (minAvailable 7 → 6)"}`}}
	}
	restored := func(pdb string, sec int) Change {
		return Change{Kind: "budget-restored", Object: "pdb/" + pdb, At: t0.Add(time.Duration(sec) * time.Second)}
	}
	for _, tc := range []struct {
		name   string
		events []Event
		st     *RunState
		check  func(*RunSummary) string // what is wrong, "" when nothing
	}{
		{"a budget that granted an eviction says so", []Event{blocked(20, chain(8, 0))}, journal(), func(s *RunSummary) string {
			if len(s.Blockers) != 1 || s.Blockers[0] != "shop/db-0: waits for PDB shop/db: needs 7 healthy, has 8, 1 of them just evicted" {
				return "blockers " + strings.Join(s.Blockers, " | ")
			}
			return ""
		}},
		{"once per pod and budget, its last reason", []Event{blocked(20, chain(8, 0)), blocked(30, chain(7, 0)), blocked(40, chain(6, 0))}, journal(), func(s *RunSummary) string {
			if len(s.Blockers) != 1 || s.Blockers[0] != "shop/db-0: waits for PDB shop/db: needs 7 healthy, has 6" {
				return "blockers " + strings.Join(s.Blockers, " | ")
			}
			return ""
		}},
		{"relaxations, restored or not", nil, journal(relax("shop/db", "n1", 100), relax("shop/db", "n1", 200), restored("shop/db", 300), relax("shop/web", "n2", 400)), func(s *RunSummary) string {
			want := []RelaxSummary{{Step: "fleet", PDB: "shop/db", Node: "n1", What: "allows one more pod of the budget to be down (minAvailable 7 → 6)", Restored: true},
				{Step: "fleet", PDB: "shop/web", Node: "n2", What: "allows one more pod of the budget to be down (minAvailable 7 → 6)"}}
			if len(s.Relaxed) != len(want) || s.Relaxed[0] != want[0] || s.Relaxed[1] != want[1] {
				return fmt.Sprintf("relaxed %+v", s.Relaxed)
			}
			return ""
		}},
		{"a relaxation of an earlier session is not this one's", nil, journal(relax("shop/db", "n1", -100)), func(s *RunSummary) string {
			if len(s.Relaxed) != 0 {
				return fmt.Sprintf("relaxed %+v", s.Relaxed)
			}
			return ""
		}},
		{"pauses inside the step are not counted against the forecast", []Event{
			&StepStarted{Meta: at(10), Kind: "nodegroups", Attempt: 1},
			&StepPaused{Meta: at(200), When: PauseInside, Message: "group a is done; next: b"},
			&StepProgress{Meta: at(440), Message: "group b (2/2)"}, // answered 4 minutes later
			&StepFinished{Meta: at(610), Duration: 600 * time.Second},
		}, journal(), func(s *RunSummary) string {
			if len(s.Forecast) != 1 || s.Forecast[0].Took.Duration != 6*time.Minute || s.Forecast[0].Paused.Duration != 4*time.Minute {
				return fmt.Sprintf("forecast %+v", s.Forecast)
			}
			return ""
		}},
		{"a pause of an earlier attempt is not this one's", []Event{
			&StepPaused{Meta: at(5), When: PauseInside},
			&StepStarted{Meta: at(10), Kind: "nodegroups", Attempt: 2},
		}, journal(), func(s *RunSummary) string {
			if len(s.Forecast) != 1 || s.Forecast[0].Took.Duration != 10*time.Minute || s.Forecast[0].Paused.Duration != 0 {
				return fmt.Sprintf("forecast %+v", s.Forecast)
			}
			return ""
		}},
	} {
		sum := newSummarizer(t0)
		sum.forecast = &RunForecast{Steps: []NamedEstimate{{Step: "fleet", Estimate: Est(5*time.Minute, 4*time.Minute, 6*time.Minute), From: "model"}}}
		for _, ev := range tc.events {
			sum.see(ev)
		}
		if what := tc.check(sum.summary(tc.st, RunSucceeded, t0.Add(time.Hour))); what != "" {
			t.Errorf("%s: %s", tc.name, what)
		}
	}
}

// TestBudgetChainCounts: a budget's numbers read as words that add up, in every rendering of it.
func TestBudgetChainCounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		current, desired, allowed int32
		counts                    string
	}{
		{8, 7, 0, "needs 7 healthy, has 8, 1 of them just evicted"},
		{7, 7, 0, "needs 7 healthy, has 7"},
		{6, 7, 0, "needs 7 healthy, has 6"},
		{9, 7, 1, "needs 7 healthy, has 9, 1 of them just evicted"},
		{9, 7, 2, "needs 7 healthy, has 9"},
	} {
		c := &BudgetChain{PDB: "shop/db", DesiredHealthy: tc.desired, CurrentHealthy: tc.current, ExpectedPods: 9, DisruptionsAllowed: tc.allowed}
		if got := c.Counts(); got != tc.counts {
			t.Errorf("%d/%d/%d: %q, want %q", tc.current, tc.desired, tc.allowed, got, tc.counts)
		}
		if !strings.Contains(c.Lines()[0], tc.counts[len("needs 7 healthy"):]) || !strings.Contains(c.Short(), tc.counts) || c.Reason() != "waits for PDB shop/db: "+tc.counts {
			t.Errorf("%d/%d/%d: lines %q, short %q, reason %q", tc.current, tc.desired, tc.allowed, c.Lines()[0], c.Short(), c.Reason())
		}
	}
}
