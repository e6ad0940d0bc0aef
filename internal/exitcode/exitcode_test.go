package exitcode

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/drydock-dev/drydock/runbook"
)

func TestFor(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Code
	}{
		{nil, OK},
		{errors.New("boom"), Failure},
		{UsageError(errors.New("bad flag")), Usage},
		{fmt.Errorf("drain node %q: %w", "n1", With(Blocked, errors.New("pdb"))), Blocked},
		// The engine's and the steps' typed outcomes, however deep they are wrapped.
		{runbook.Invalid(errors.New("node not found")), Usage},
		{fmt.Errorf("group a: %w", runbook.Blocked(errors.New("pdb"))), Blocked},
		{fmt.Errorf("step %q: %w", "s", runbook.ErrPaused), Paused},
		{fmt.Errorf("canary n1 failed and was %w: %w", runbook.ErrRolledBack, runbook.Blocked(errors.New("pdb"))), Aborted},
		{fmt.Errorf("run r: %w", runbook.ErrInterrupted), Interrupted},
		{fmt.Errorf("wait: %w", context.Canceled), Interrupted},
		{With(Paused, errors.New("paused")), Paused},
		{fmt.Errorf("run: %w", runbook.Forbidden(errors.New("missing create pods/eviction"))), Forbidden},
		{fmt.Errorf("uncordon node %q: %w", "n1", apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "n1", errors.New("RBAC"))), Forbidden},
	} {
		if got := For(tc.err); got != tc.want {
			t.Errorf("For(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if With(Failure, nil) != nil {
		t.Error("With(code, nil) must stay nil")
	}
}

var update = flag.Bool("update", false, "rewrite README.md's exit code table")

const (
	tableBegin = "<!-- exit-codes: generated from internal/exitcode; `go test ./internal/exitcode -run TestREADMEExitCodeTable -update` rewrites it -->"
	tableEnd   = "<!-- /exit-codes -->"
)

// TestREADMEExitCodeTable keeps the README's exit code table the one this package generates.
func TestREADMEExitCodeTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, tableBegin), strings.Index(readme, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no generated exit code table (%q ... %q)", tableBegin, tableEnd)
	}
	want := tableBegin + "\n\n" + Table() + "\n" + tableEnd
	if readme[i:j+len(tableEnd)] == want {
		return
	}
	if !*update {
		t.Fatalf("README.md's exit code table is out of date: go test ./internal/exitcode -run TestREADMEExitCodeTable -update\nwant:\n%s", want)
	}
	if err := os.WriteFile("../../README.md", []byte(readme[:i]+want+readme[j+len(tableEnd):]), 0o644); err != nil {
		t.Fatal(err)
	}
}
