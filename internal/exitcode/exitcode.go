// Package exitcode is the one place where drydock's outcomes become process exit codes.
// The README's "Exit codes" table is generated from All.
package exitcode

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/drydock-dev/drydock/runbook"
)

// Code is a process exit status.
type Code int

// The exit codes drydock uses. README.md's table is generated from All (TestREADMEExitCodeTable).
const (
	OK          Code = 0   // success
	Failure     Code = 1   // a runtime failure: the cluster, the network, a step that failed
	Usage       Code = 2   // bad usage or invalid input: flags, arguments, a malformed runbook
	Blocked     Code = 3   // a check blocked: a finding reached --fail-on, a drain is blocked
	Aborted     Code = 4   // aborted or rolled back
	Paused      Code = 5   // stopped at a pause point; `drydock resume` continues
	Forbidden   Code = 6   // the credentials lack a permission drydock needs (the message lists them)
	Interrupted Code = 130 // interrupted by Ctrl-C or SIGTERM; the run stays resumable
)

// All lists every code with its meaning and when drydock exits with it: the README's "Exit codes"
// table is generated from this (TestREADMEExitCodeTable), so the two cannot disagree.
var All = []struct {
	Code    Code
	Meaning string
	When    string // from which commands, when
}{
	{OK, "success", "every command; `resume` of a run that already succeeded (\"nothing to resume\")"},
	{Failure, "runtime failure",
		"the apiserver cannot be reached (within seconds when it never answered; reads that fail mid-run are retried for up to 2 minutes), " +
			"a step failed (a command exited non-zero, a drain ran out of time), a rollback failed, the local journal could not be written (a full disk: the message names the file)"},
	{Usage, "usage error or invalid input",
		"a bad flag or argument, an unknown command, a malformed runbook (`validate`, `run`, `plan`), a literal credential in a runbook, " +
			"a selector or node that matches nothing (`drain`, `uncordon`, a runbook's step), no kubeconfig at all, a run that cannot be resumed or found, a target the cluster cannot take"},
	{Blocked, "blocked before anything moved",
		"a finding reached `--fail-on` (`preflight`, a check step), a certain blocker in the plan (`plan`, `run`, `resume`, `drain`), " +
			"a drain blocked (`drain --dry-run` too), the lock held by another run"},
	{Aborted, "aborted or rolled back",
		"a rollback or restore answered \"no\", a failed canary rolled back, `onFailure: rollback`, a rollback asked for at a pause point"},
	{Paused, "paused at a pause point; resumable with `drydock resume`", "`run`, `resume` with nobody to answer and no `--yes`"},
	{Forbidden, "not allowed: the credentials lack a permission drydock needs",
		"the access check before a run or drain (the message lists what is missing; nothing was changed), a 403 from the apiserver, " +
			"a `preflight` check that could not read what it needs (whatever `--fail-on` says: the report is incomplete; with `--strict`, anything a check could not examine, for any reason)"},
	{Interrupted, "interrupted (Ctrl-C, SIGTERM); resumable", "`run`, `resume`, `rollback`, `drain`, and any command waiting on the cluster"},
}

// Table is the README's exit code table, in Markdown.
func Table() string {
	var b strings.Builder
	b.WriteString("| code | meaning | from which commands, when |\n|---|---|---|\n")
	for _, c := range All {
		fmt.Fprintf(&b, "| `%d` | %s | %s |\n", c.Code, c.Meaning, c.When)
	}
	return b.String()
}

// Error carries the exit code an error should end the process with.
type Error struct {
	Code Code
	Err  error
	// Help: the command line itself was wrong, so point at --help.
	Help bool
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// With marks err so that the process exits with code. A nil err stays nil.
func With(code Code, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// UsageError marks err as a usage error (exit 2): the command line is wrong; --help helps.
func UsageError(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: Usage, Err: err, Help: true}
}

// Invalid marks err as invalid input (exit 2): a malformed file, a refused target. The error
// itself says what to fix; --help would not.
func Invalid(err error) error { return With(Usage, err) }

// WantsHelp says whether the error is about the command line, so that --help is worth a mention.
func WantsHelp(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Help
}

// For is the one place where an outcome becomes an exit code: nil is OK; an error the command line
// marked (UsageError, With) has its mark; then the engine's and the steps' typed outcomes, the
// strongest first (a canary rolled back because its drain was blocked ended rolled back); an
// interrupted context is Interrupted; the apiserver's 403 anywhere is Forbidden; anything else is
// Failure.
func For(err error) Code {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	switch {
	case errors.Is(err, runbook.ErrInterrupted), errors.Is(err, context.Canceled):
		return Interrupted
	case errors.Is(err, runbook.ErrPaused):
		return Paused
	case errors.Is(err, runbook.ErrRolledBack):
		return Aborted
	case errors.Is(err, runbook.ErrForbidden), apierrors.IsForbidden(err):
		return Forbidden
	case errors.Is(err, runbook.ErrBlocked):
		return Blocked
	case errors.Is(err, runbook.ErrInvalid):
		return Usage
	}
	return Failure
}
