package main

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEAccessTable: the README's permission table is the one the code declares.
func TestREADMEAccessTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, accessTableBegin), strings.Index(readme, accessTableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no generated permission table (%q ... %q)", accessTableBegin, accessTableEnd)
	}
	want := accessTableBegin + "\n\n" + accessTable() + "\n" + accessTableEnd
	if got := readme[i : j+len(accessTableEnd)]; got != want {
		if *update {
			if err := os.WriteFile("../../README.md", []byte(readme[:i]+want+readme[j+len(accessTableEnd):]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("README.md's permission table is out of date: go test ./cmd/drydock -run TestREADMEAccessTable -update\nwant:\n%s", want)
	}
}
