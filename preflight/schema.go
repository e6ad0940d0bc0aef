package preflight

import (
	"encoding/json"

	"github.com/invopop/jsonschema"
)

// SchemaVersion is the version of the JSON and YAML report's shape (its schemaVersion field): a
// field may be added within a version; a field removed, renamed or retyped makes a new version.
// docs/preflight-report.schema.json describes it (make docs writes it; a test keeps it current).
const SchemaVersion = 1

// SchemaID names the report's JSON Schema.
const SchemaID = "https://drydock.dev/schemas/preflight-report-v1.json"

// ReportSchema is the JSON Schema of `drydock preflight -o json`: every list is an array (never
// null), every finding has its check, severity, object and message, and the kind, namespace and
// name of the object when it is a Kubernetes object.
func ReportSchema() ([]byte, error) {
	r := &jsonschema.Reflector{ExpandedStruct: true, AllowAdditionalProperties: false, Anonymous: true}
	s := r.Reflect(&Report{})
	s.ID = SchemaID
	s.Title = "drydock pre-flight report (schemaVersion 1)"
	return json.MarshalIndent(s, "", "  ")
}
