package runbook

import (
	"strings"
	"testing"
	"time"
)

// TestForecastNodes: a batch is its slowest node plus what the action leaves of the replacements'
// start-up plus drydock's own work; a step is its batches one after another plus the soak; a drain
// that never ends makes the step never end, and says which node.
func TestForecastNodes(t *testing.T) {
	t.Parallel()
	s := time.Second
	node := func(name string, drain, settle time.Duration, why string) PlannedNode {
		return PlannedNode{Node: name, Forecast: &NodeForecast{Drain: Est(drain, drain, drain), Settle: Est(settle, settle, settle), PacedBy: why}}
	}
	p := &NodePlan{Batches: []NodeBatch{
		{Nodes: []PlannedNode{node("a", 10*s, 5*s, "budget x"), node("b", 20*s, 3*s, "budget y")}},
		{Nodes: []PlannedNode{node("c", 5*s, 0, "pod termination")}},
	}}
	act := Est(4*s, 4*s, 4*s)
	ForecastNodes(p, &act, Est(10*s, 10*s, 10*s), []string{"x"}, PlanCost{Load: 300 * time.Millisecond, Batch: 500 * time.Millisecond})
	// drydock's own work per batch: planning it again as measured (0.3 s of reads + 0.5 s) + 0.2 s
	// batch 1: b's 20 s + 4 s action, + (5 s settle − 4 s action) + 1 s own work = 26 s
	// batch 2: 5 s + 4 s + 0 + 1 s = 10 s; the step: 26 + 10 + 10 s soak = 46 s
	if got := p.Batches[0].Forecast.Expected.Duration; got != 26*s {
		t.Errorf("batch 1: %s, want 26s", got)
	}
	if got := p.Batches[1].Forecast.Expected.Duration; got != 10*s {
		t.Errorf("batch 2: %s, want 10s", got)
	}
	if got := p.Forecast.Total.Expected.Duration; got != 46*s {
		t.Errorf("step: %s, want 46s", got)
	}
	// In groups, a group's first batch also plans the group again: reads + one plan per batch.
	grouped := &NodePlan{Batches: []NodeBatch{
		{Group: "g", Nodes: []PlannedNode{node("a", 10*s, 0, "")}}, {Group: "g", Nodes: []PlannedNode{node("b", 10*s, 0, "")}},
		{Group: "h", Nodes: []PlannedNode{node("c", 10*s, 0, "")}},
	}}
	ForecastNodes(grouped, &act, Estimate{}, nil, PlanCost{Load: 300 * time.Millisecond, Batch: 500 * time.Millisecond})
	for i, want := range []time.Duration{16300 * time.Millisecond, 15 * s, 15800 * time.Millisecond} {
		if got := grouped.Batches[i].Forecast.Expected.Duration; got != want {
			t.Errorf("grouped batch %d: %s, want %s", i+1, got, want)
		}
	}
	if own := (PlanCost{Load: 300 * time.Millisecond, Batch: 500 * time.Millisecond}).OwnWork(grouped); own != 5100*time.Millisecond {
		t.Errorf("own work over the grouped plan: %s, want 3 × 1 s + the groups' 1.3 s and 0.8 s", own)
	}
	if g := grouped.GroupForecasts(); len(g) != 2 || g[0].Group != "g" || g[0].Estimate.Expected.Duration != 31300*time.Millisecond || g[1].Estimate.Expected.Duration != 15800*time.Millisecond {
		t.Errorf("group forecasts: %+v", g)
	}
	if cp := p.Forecast.CriticalPath; len(cp) == 0 || !strings.Contains(cp[0], "batch 1 (a, b)") || !strings.Contains(cp[0], "b: budget y") {
		t.Errorf("critical path %q: want batch 1 first, paced by b's budget", cp)
	}
	if p.Batches[0].Nodes[1].Forecast.Cycle.Expected.Duration != 24*s {
		t.Errorf("node b's cycle: %s, want its drain and the action", p.Batches[0].Nodes[1].Forecast.Cycle)
	}

	never := &NodePlan{Batches: []NodeBatch{{Nodes: []PlannedNode{node("a", 10*s, 0, ""), {Node: "z", Forecast: &NodeForecast{Drain: Forever, PacedBy: "never: budget q"}}}}}}
	ForecastNodes(never, &act, Estimate{}, nil, PlanCost{})
	if cp := never.Forecast.CriticalPath; len(cp) != 1 || !strings.Contains(cp[0], "z: never: budget q") || !never.Forecast.Total.Never() {
		t.Errorf("never-ending drain: critical path %q, total %s", cp, never.Forecast.Total)
	}
}

func TestEstimateString(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		e    Estimate
		want string
	}{
		{Est(2500*time.Millisecond, 2*time.Second, 3*time.Second), "~2.5s (2s–3s)"},
		{Est(130*time.Second, 40*time.Second, 10*time.Minute), "~2m10s (40s–10m0s)"},
		{Est(5*time.Second, 5*time.Second, 5*time.Second), "~5s"},
		{Est(3*time.Second, 5*time.Second, time.Second), "~3s"}, // a range that does not hold the expected value is widened to it
	} {
		if got := c.e.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.e, got, c.want)
		}
	}
}
