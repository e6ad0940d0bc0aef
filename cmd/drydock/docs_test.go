package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/drydock-dev/drydock/steps"
)

// TestDocsUpToDate: docs/ is what `make docs` writes; a change to a command or a runbook field
// without `make docs` fails here.
func TestDocsUpToDate(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, code := executeIn(t, ".", "docs", dir); code != 0 {
		t.Fatalf("drydock docs: exit %d: %s", code, stderr)
	}
	ref, err := os.ReadFile(filepath.Join(dir, "runbook-reference.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range steps.Registry.Names() {
		if !strings.Contains(string(ref), "## `"+k+"`") {
			t.Errorf("the runbook reference lacks step kind %s", k)
		}
	}
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		want, err := os.ReadFile(filepath.Join("../../docs", rel))
		if err != nil {
			t.Errorf("docs/%s is missing: run make docs", rel)
			return nil
		}
		got, _ := os.ReadFile(path)
		if withoutManDate(string(got)) != withoutManDate(string(want)) {
			t.Errorf("docs/%s is out of date: run make docs", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// withoutManDate drops the .TH line of a man page: it carries the day the page was generated.
func withoutManDate(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, ".TH ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRecipesParse: the CI, krew and Kustomize recipes under deploy/ are valid YAML.
func TestRecipesParse(t *testing.T) {
	files, _ := filepath.Glob("../../deploy/*/*.y*ml")
	if len(files) < 6 {
		t.Fatalf("only %d recipe files under deploy/", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Errorf("%s: %v", f, err)
				break
			}
		}
	}
}
