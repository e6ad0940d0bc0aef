package main

import (
	"os"
	"testing"
)

// TestGatesUpToDate regenerates the feature-gate table from k8s.io/kubernetes at the pinned
// versions and fails when the committed one differs: after moving tools/cluster or
// tools/cluster-prev, run `go generate ./preflight/config`. It compiles part of k8s.io/kubernetes,
// so the fast tier leaves it to `make test`.
func TestGatesUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles k8s.io/kubernetes/pkg/features twice: make test runs it")
	}
	want, err := Generate("../../..")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../../preflight/config/zz_generated.featuregates.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("preflight/config/zz_generated.featuregates.go is out of date: run `go generate ./preflight/config`")
	}
}
