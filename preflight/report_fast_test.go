package preflight

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/drydock-dev/drydock/runbook"
)

// TestJSONStreamSameBytes: the streamed JSON report is byte for byte what an indented json.Encoder
// writes, with no findings, with findings full of characters JSON escapes, and with a skipped check.
func TestJSONStreamSameBytes(t *testing.T) {
	t.Parallel()
	many := make([]Finding, 0, 50)
	for i := range 50 {
		many = append(many, Finding{Check: "api-scan", Severity: runbook.SeverityError, Object: fmt.Sprintf("file-%d.yaml:3", i), ObjectRef: Ref("Ingress", "ns", fmt.Sprintf("i%d", i)),
			Message: `"findings": [] <b>&</b> ✓ \ tab	end`, Fix: "use networking.k8s.io/v1", File: "file.yaml", Line: 3,
			API: &APIUse{APIVersion: "networking.k8s.io/v1beta1", Kind: "Ingress", RemovedIn: "1.22"}})
	}
	for name, rep := range map[string]*Report{
		"empty":    {SchemaVersion: SchemaVersion, Target: "1.38", Results: []Result{}},
		"no finds": {SchemaVersion: SchemaVersion, Target: "1.38", Server: "v1.37.1", Results: []Result{{Check: "pdb-check", Description: "d", Findings: []Finding{}}}},
		"mixed": {SchemaVersion: SchemaVersion, Cluster: "https://x", Target: "1.38", Results: []Result{
			{Check: "api-scan", Description: "scan", Findings: many},
			{Check: "pdb-check", Description: "pdbs", Findings: []Finding{}, Skipped: "no cluster"},
			{Check: "skew-check", Description: "skew", Findings: many[:1]},
		}},
	} {
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			t.Fatal(err)
		}
		if err := writeJSON(&got, rep); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%s: streamed JSON differs:\n--- got\n%s\n--- want\n%s", name, got.String(), want.String())
		}
	}
}
