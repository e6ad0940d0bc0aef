package main

import (
	"strings"
	"testing"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/preflight"
	"github.com/drydock-dev/drydock/runbook"
)

// TestPreflightExitOrder: a blocking finding is never masked, in one cluster or a fleet: 3 before
// 1 (a cluster of a fleet not checked) before 6 (something not examined), and the message names
// every cluster of each kind, not only the worst.
func TestPreflightExitOrder(t *testing.T) {
	t.Parallel()
	blocking := preflight.Finding{Check: "pdb-check", Severity: runbook.SeverityError, Object: "PodDisruptionBudget default/db", Message: "never drains"}
	forbidden := preflight.Finding{Check: "api-scan", Severity: runbook.SeverityWarning, Object: "widgets.example.com", NotAllowed: true, CouldNotCheck: preflight.CouldNotForbidden, Message: "not allowed to list"}
	timedOut := preflight.Finding{Check: "health-check", Severity: runbook.SeverityWarning, Object: "/metrics", CouldNotCheck: preflight.CouldNotTimeout, Message: "timed out"}
	report := func(fs ...preflight.Finding) *preflight.Report {
		return &preflight.Report{SchemaVersion: preflight.SchemaVersion, Results: []preflight.Result{{Check: "x", Findings: append([]preflight.Finding{}, fs...)}}}
	}
	blocked := preflight.ClusterReport{Context: "blocked", Report: report(blocking)}
	down := preflight.ClusterReport{Context: "down", Error: "dial tcp 127.0.0.1:1: connection refused"}
	holes := preflight.ClusterReport{Context: "holes", Report: report(forbidden)}
	clean := preflight.ClusterReport{Context: "clean", Report: report()}
	both := preflight.ClusterReport{Context: "both", Report: report(blocking, forbidden)}
	slow := preflight.ClusterReport{Context: "slow", Report: report(timedOut)}
	for _, tc := range []struct {
		name     string
		strict   bool
		clusters []preflight.ClusterReport
		code     exitcode.Code
		says     []string
	}{
		{"a blocking finding and an unreachable cluster", false, []preflight.ClusterReport{down, blocked, clean}, exitcode.Blocked,
			[]string{"1 of 3 cluster(s) with findings at or above --fail-on removed (blocked)", "1 of 3 cluster(s) could not be checked (down)"}},
		{"a blocking finding and a cluster with holes", false, []preflight.ClusterReport{holes, blocked}, exitcode.Blocked, []string{"(blocked)", "could not be examined in full", "(holes)"}},
		{"a blocking finding in a cluster with holes", false, []preflight.ClusterReport{both}, exitcode.Blocked, []string{"with findings at or above --fail-on removed (both)"}},
		{"unreachable before holes", false, []preflight.ClusterReport{holes, down, clean}, exitcode.Failure, []string{"could not be checked", "(down)", "(holes)"}},
		{"holes alone", false, []preflight.ClusterReport{clean, holes}, exitcode.Forbidden, []string{"1 of 2 cluster(s) could not be examined in full (holes)"}},
		{"a timeout is a hole only with --strict", false, []preflight.ClusterReport{slow}, exitcode.OK, nil},
		{"--strict: a timeout is a hole", true, []preflight.ClusterReport{slow, clean}, exitcode.Forbidden, []string{"(slow)"}},
		{"--strict: still a blocking finding first", true, []preflight.ClusterReport{slow, blocked}, exitcode.Blocked, []string{"(blocked)", "(slow)"}},
		{"clean", false, []preflight.ClusterReport{clean, clean}, exitcode.OK, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := &PreflightOptions{Strict: tc.strict}
			err := o.fleetVerdict(tc.clusters, preflight.FailOnRemoved)
			if got := exitcode.For(err); got != tc.code {
				t.Fatalf("exit %d, want %d (%v)", got, tc.code, err)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q does not say %q", err, s)
				}
			}
		})
	}

	// One cluster: a blocking finding beside a permission hole exits 3 and says both.
	o := &PreflightOptions{}
	err := o.verdict(both.Report, preflight.FailOnRemoved)
	if exitcode.For(err) != exitcode.Blocked || !strings.Contains(err.Error(), "1 finding at or above --fail-on removed") || !strings.Contains(err.Error(), "1 thing could not be examined") {
		t.Errorf("one cluster, blocking and not allowed: exit %d, %v; want 3 saying both", exitcode.For(err), err)
	}
	if err := o.verdict(holes.Report, preflight.FailOnRemoved); exitcode.For(err) != exitcode.Forbidden {
		t.Errorf("one cluster, not allowed: exit %d, want 6", exitcode.For(err))
	}
	if v := both.Verdict(preflight.FailOnRemoved); !strings.HasPrefix(v, "fails: 1 at or above --fail-on removed") || !strings.Contains(v, "incomplete") {
		t.Errorf("summary line %q: want the failure first, then the holes", v)
	}
}

// TestPreflightManifestsFromStdin: --manifests - reads standard input (helm template … | drydock
// preflight --manifests -), without a cluster, and an unrendered template piped in is an error.
func TestPreflightManifestsFromStdin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		code     exitcode.Code
		says     string
	}{
		{"rendered", "---\n# Source: web/templates/pdb.yaml\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n  namespace: shop\n",
			exitcode.Blocked, "<stdin>:3"},
		{"not rendered", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {{ .Release.Name }}\n", exitcode.Blocked, "an unrendered template"},
		{"fine", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\n", exitcode.OK, "<stdin>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, out, _ := testFactory(t)
			f.IOStreams.In = strings.NewReader(tc.in)
			err := execCmd(t, NewPreflightCommand(f, nil), "--files-only", "--target", "v1.25", "--manifests", "-", "--checks", "api-scan")
			if got := exitcode.For(err); got != tc.code {
				t.Fatalf("exit %d, want %d (%v)\n%s", got, tc.code, err, out)
			}
			if !strings.Contains(out.String(), tc.says) && tc.code != exitcode.OK {
				t.Errorf("report does not say %q:\n%s", tc.says, out)
			}
		})
	}
}
