package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	validator "github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/drydock-dev/drydock/internal/exitcode"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestValidateInvalidRunbooks runs `drydock validate` on every malformed runbook under
// testdata/runbooks/invalid and compares its error output (file:line:col, caret, hint) with the
// .golden file beside it.
func TestValidateInvalidRunbooks(t *testing.T) {
	files, err := filepath.Glob("../../testdata/runbooks/invalid/*.yaml")
	if err != nil || len(files) < 20 {
		t.Fatalf("want at least 20 malformed runbooks, found %d (%v)", len(files), err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			rel := filepath.Join("testdata/runbooks/invalid", filepath.Base(file))
			stdout, stderr, code := executeIn(t, "../..", "validate", rel)
			if code != exitcode.Usage {
				t.Fatalf("exit %d, want %d; stdout %q stderr:\n%s", code, exitcode.Usage, stdout, stderr)
			}
			if !strings.Contains(stderr, rel+":") {
				t.Errorf("the problems do not name the file %s:\n%s", rel, stderr)
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(stderr), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/drydock -run TestValidateInvalidRunbooks -update)", err)
			}
			if stderr != string(want) {
				t.Errorf("validate %s printed:\n%s\nwant (%s):\n%s", rel, stderr, golden, want)
			}
		})
	}
}

func TestAcceptanceUnknownTypeAndKey(t *testing.T) {
	_, stderr, code := executeIn(t, "../..", "validate", "testdata/runbooks/invalid/01-acceptance-unknown-type-and-key.yaml")
	if code != exitcode.Usage {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"01-acceptance-unknown-type-and-key.yaml:8:13: spec.steps[0].type: unknown step type \"no-such-step\"",
		"01-acceptance-unknown-type-and-key.yaml:9:7: spec.steps[0].timout: unknown field",
		`did you mean "timeout"?`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
}

func TestValidateValidRunbooks(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/runbooks/valid/*.yaml")
	examples, _ := filepath.Glob("../../examples/*.yaml")
	if len(files) == 0 || len(examples) == 0 {
		t.Fatal("no valid runbooks under testdata/runbooks/valid or examples")
	}
	files = append(files, examples...)
	stdout, stderr, code := execute(t, append([]string{"validate"}, files...)...)
	if code != exitcode.OK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if strings.Count(stdout, "valid runbook") != len(files) {
		t.Fatalf("stdout:\n%s", stdout)
	}
}

// TestSchemaGolden keeps the committed schema (testdata/runbook.schema.json) in step with the Go
// types, and proves it is a valid JSON Schema that accepts the valid runbooks.
func TestSchemaGolden(t *testing.T) {
	stdout, stderr, code := execute(t, "schema")
	if code != exitcode.OK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	golden := "../../testdata/runbook.schema.json"
	if *update {
		if err := os.WriteFile(golden, []byte(stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if stdout != string(want) {
		t.Fatalf("drydock schema differs from %s: run go test ./cmd/drydock -run TestSchemaGolden -update", golden)
	}
	doc, err := validator.UnmarshalJSON(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	c := validator.NewCompiler()
	if err := c.AddResource("runbook.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compile("runbook.schema.json"); err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	var v map[string]any
	if err := json.Unmarshal(want, &v); err != nil || v["$schema"] == nil {
		t.Fatalf("no $schema: %v", err)
	}
}

// executeIn runs the command tree in-process from directory dir.
func executeIn(t *testing.T, dir string, args ...string) (string, string, exitcode.Code) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Chdir(wd) }()
	return execute(t, args...)
}
