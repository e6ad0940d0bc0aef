package main

import (
	"os"
	"testing"
)

// TestCommentsUpToDate regenerates the comment map from the sources and fails when the committed
// one differs: after changing a runbook or step settings comment, run `go generate ./runbook`.
func TestCommentsUpToDate(t *testing.T) {
	if err := os.Chdir("../../.."); err != nil {
		t.Fatal(err)
	}
	want, err := Generate(Dirs...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("runbook/zz_generated.comments.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("runbook/zz_generated.comments.go is out of date: run `go generate ./runbook` (then go test ./cmd/drydock -run TestSchemaGolden -update)")
	}
}
