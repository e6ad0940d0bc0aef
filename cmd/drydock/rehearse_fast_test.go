package main

import (
	"strings"
	"testing"
	"time"

	"github.com/drydock-dev/drydock/internal/rehearse"
	"github.com/drydock-dev/drydock/runbook"
)

// TestDescribeRehearsalOwnWork: drydock's own work on the cluster can take longer or shorter than
// on the copy; the line gives its sign once.
func TestDescribeRehearsalOwnWork(t *testing.T) {
	for _, tc := range []struct {
		work time.Duration
		want string
	}{
		{800 * time.Millisecond, "with drydock's own work there (+800ms)"},
		{0, "with drydock's own work there (+0s)"},
		{-800 * time.Millisecond, "with drydock's own work there (-800ms)"},
	} {
		r := &rehearse.Report{Status: runbook.RunSucceeded, Steps: []rehearse.StepResult{{
			Step: "fleet", Took: runbook.Duration{Duration: 34 * time.Second},
			LiveWork: runbook.Duration{Duration: tc.work}, Adjusted: runbook.Duration{Duration: 34*time.Second + tc.work},
		}}}
		got := strings.Join(describeRehearsal(r), "\n")
		if !strings.Contains(got, tc.want) {
			t.Errorf("own work %s: want %q in:\n%s", tc.work, tc.want, got)
		}
	}
}
