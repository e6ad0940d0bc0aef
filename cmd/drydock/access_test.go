package main

import (
	"os"
	"strings"
	"testing"
)

// TestPermissionsTable: docs/permissions.md's permission table is the one the code declares.
func TestPermissionsTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/permissions.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, accessTableBegin), strings.Index(readme, accessTableEnd)
	if i < 0 || j < i {
		t.Fatalf("docs/permissions.md has no generated permission table (%q ... %q)", accessTableBegin, accessTableEnd)
	}
	want := accessTableBegin + "\n\n" + accessTable() + "\n" + accessTableEnd
	if got := readme[i : j+len(accessTableEnd)]; got != want {
		if *update {
			if err := os.WriteFile("../../docs/permissions.md", []byte(readme[:i]+want+readme[j+len(accessTableEnd):]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("docs/permissions.md's permission table is out of date: go test ./cmd/drydock -run TestPermissionsTable -update\nwant:\n%s", want)
	}
}
