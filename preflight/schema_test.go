package preflight

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	validator "github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/drydock-dev/drydock/runbook"
)

// TestReportMatchesItsSchema: the JSON report, clean or not, validates against the published
// schema (docs/preflight-report.schema.json, which TestPublishedSchemaUpToDate keeps current):
// arrays are never null, a finding about an object has kind, namespace and name as fields.
func TestReportMatchesItsSchema(t *testing.T) {
	t.Parallel()
	text, err := ReportSchema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := validator.UnmarshalJSON(bytes.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	c := validator.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatal(err)
	}
	clean := &Report{SchemaVersion: SchemaVersion, Target: "v1.38", Results: []Result{{Check: "pdb-check", Description: "d", Findings: []Finding{}}}}
	found := &Report{SchemaVersion: SchemaVersion, Target: "v1.38", Cluster: "https://x", Results: []Result{{Check: "health-check", Description: "d", Findings: []Finding{
		{Check: "health-check", Severity: runbook.SeverityError, Object: "Node n1", ObjectRef: Ref("Node", "", "n1"), Message: "NotReady"},
		{Check: "api-scan", Severity: runbook.SeverityError, Object: "deploy/a.yaml:3", Message: "removed", File: "deploy/a.yaml", Line: 3, API: &APIUse{APIVersion: "policy/v1beta1", Kind: "PodDisruptionBudget"}},
	}}}}
	for _, rep := range []*Report{clean, found} {
		var buf bytes.Buffer
		if err := Write(&buf, "json", rep, FailOnRemoved); err != nil {
			t.Fatal(err)
		}
		inst, err := validator.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(inst); err != nil {
			t.Errorf("the report does not match its schema: %v\n%s", err, buf.String())
		}
		if strings.Contains(buf.String(), "null") {
			t.Errorf("null in the report:\n%s", buf.String())
		}
	}
	var got map[string]any
	var buf bytes.Buffer
	_ = Write(&buf, "json", found, FailOnRemoved)
	_ = json.Unmarshal(buf.Bytes(), &got)
	f := got["checks"].([]any)[0].(map[string]any)["findings"].([]any)[0].(map[string]any)
	if f["kind"] != "Node" || f["name"] != "n1" || got["schemaVersion"] != float64(1) {
		t.Errorf("finding fields: %v, schemaVersion %v", f, got["schemaVersion"])
	}

	// A report with a null list is refused by the schema: the contract is checked, not assumed.
	inst, _ := validator.UnmarshalJSON(strings.NewReader(`{"schemaVersion":1,"target":"v1.38","checks":[{"check":"x","description":"d","findings":null}]}`))
	if schema.Validate(inst) == nil {
		t.Error("the schema lets findings be null")
	}
}

// TestPublishedSchemaUpToDate: docs/preflight-report.schema.json is what ReportSchema generates
// (make docs writes it).
func TestPublishedSchemaUpToDate(t *testing.T) {
	t.Parallel()
	want, err := ReportSchema()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../docs/preflight-report.schema.json")
	if err != nil || !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Errorf("docs/preflight-report.schema.json is out of date (%v): run make docs", err)
	}
}
