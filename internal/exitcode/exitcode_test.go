package exitcode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
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

// TestREADMEListsEveryCode keeps the README's exit code table and this package in step.
func TestREADMEListsEveryCode(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range All {
		row := regexp.MustCompile(fmt.Sprintf("(?m)^\\| *`?%d`? *\\|", c.Code))
		if !row.Match(readme) {
			t.Errorf("README.md's exit code table has no row for %d (%s)", c.Code, c.Meaning)
		}
	}
}
