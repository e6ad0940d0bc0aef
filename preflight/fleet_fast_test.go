package preflight

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/drydock-dev/drydock/runbook"
)

// TestWriteFleet: every format holds every cluster, the one not checked with its reason; JSON is
// keyed by context, JUnit has a testsuite per cluster, SARIF a run per cluster.
func TestWriteFleet(t *testing.T) {
	t.Parallel()
	bad := Finding{Check: "pdb-check", Severity: runbook.SeverityError, Object: "PodDisruptionBudget default/db", ObjectRef: Ref("PodDisruptionBudget", "default", "db"), Message: "never drains"}
	fleet := &FleetReport{SchemaVersion: SchemaVersion, Clusters: []ClusterReport{
		{Context: "eu", Report: &Report{SchemaVersion: 1, Server: "v1.36.3", Target: "1.37", Results: []Result{{Check: "pdb-check", Findings: []Finding{bad}}}}},
		{Context: "us", Report: &Report{SchemaVersion: 1, Server: "v1.37.1", Target: "1.38", Results: []Result{{Check: "pdb-check", Findings: []Finding{}}}}},
		{Context: "down", Error: "dial tcp 127.0.0.1:1: connection refused"},
	}}
	out := func(format string) string {
		var b bytes.Buffer
		if err := WriteFleet(&b, format, fleet, FailOnRemoved); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	table := out("table")
	for _, want := range []string{"pre-flight of 3 cluster(s)", "eu       v1.36.3  1.37", "fails: 1 at or above --fail-on removed", "passes", "could not check: dial tcp", "=== context eu: pre-flight for Kubernetes 1.37 (cluster at v1.36.3)", "=== context down: could not check"} {
		if !strings.Contains(table, want) {
			t.Errorf("table: no %q:\n%s", want, table)
		}
	}
	var j struct {
		Kind     string `json:"kind"`
		Clusters map[string]struct {
			Context string `json:"context"`
			Error   string `json:"error"`
			Target  string `json:"target"`
		} `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(out("json")), &j); err != nil || j.Kind != "FleetReport" || len(j.Clusters) != 3 || j.Clusters["us"].Target != "1.38" || j.Clusters["down"].Error == "" {
		t.Errorf("json: %+v (%v)", j, err)
	}
	if y := out("yaml"); !strings.Contains(y, "clusters:\n  down:\n    context: down\n    error: ") {
		t.Errorf("yaml not keyed by context:\n%s", y)
	}
	if x := out("junit"); strings.Count(x, "<testsuite ") != 3 || !strings.Contains(x, `<testsuite name="down" tests="1" failures="1"`) {
		t.Errorf("junit:\n%s", x)
	}
	if s := out("sarif"); strings.Count(s, `"automationDetails"`) != 3 || !strings.Contains(s, "drydock-preflight/down") {
		t.Errorf("sarif:\n%s", s)
	}
	if m := out("markdown"); !strings.Contains(m, "| down | | | | | | ⛔ could not check: dial tcp") || !strings.Contains(m, "### eu: pre-flight for Kubernetes 1.37") {
		t.Errorf("markdown:\n%s", m)
	}
}
