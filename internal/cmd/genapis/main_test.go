package main

import (
	"os"
	"testing"

	"github.com/drydock-dev/drydock/preflight/apis"
)

// TestTableUpToDate regenerates the lifecycle table and fails when the committed one differs: after
// moving the k8s.io modules, run `go generate ./preflight/apis`.
func TestTableUpToDate(t *testing.T) {
	want, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../../preflight/apis/zz_generated.lifecycle.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("preflight/apis/zz_generated.lifecycle.go is out of date: run `go generate ./preflight/apis`")
	}
}

// TestOverlayOnlyAddsWhatIsGone: an overlay line must not shadow a generated entry, and every line
// names its source.
func TestOverlayOnlyAddsWhatIsGone(t *testing.T) {
	gen := map[string]bool{}
	for _, l := range apis.Generated() {
		gen[l.APIVersion()+" "+l.Kind] = true
	}
	for _, l := range apis.Overlay {
		if gen[l.APIVersion()+" "+l.Kind] {
			t.Errorf("overlay %s %s is generated now: delete the line", l.APIVersion(), l.Kind)
		}
		if l.Source == "" || l.Removed.IsZero() {
			t.Errorf("overlay %s %s: needs a source and a removal release", l.APIVersion(), l.Kind)
		}
	}
}
