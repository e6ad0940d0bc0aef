package simcluster

import (
	"testing"
	"time"
)

// TestBudgetWatchExcuse: a broken status inside an excused window of its namespace is listed by
// Excused, not Broken; one in another namespace, or outside the window, still breaks.
func TestBudgetWatchExcuse(t *testing.T) {
	t0 := time.Unix(100, 0)
	w := &BudgetWatch{broken: []brokenBudget{
		{at: t0.Add(1 * time.Second), ns: "a", text: "a/web: inside"},
		{at: t0.Add(5 * time.Second), ns: "a", text: "a/web: after"},
		{at: t0.Add(1 * time.Second), ns: "b", text: "b/web: other namespace"},
	}}
	w.Excuse("a", t0, t0.Add(2*time.Second))
	if b := w.Broken(); len(b) != 2 || b[0][13:] != "a/web: after" || b[1][13:] != "b/web: other namespace" {
		t.Errorf("Broken: %q", b)
	}
	if x := w.Excused(); len(x) != 1 || x[0][13:] != "a/web: inside" {
		t.Errorf("Excused: %q", x)
	}
}
