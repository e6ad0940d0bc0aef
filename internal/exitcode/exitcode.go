// Package exitcode is the one place where drydock's outcomes become process exit codes.
// The README's "Exit codes" table lists the same values; a test keeps the two in step.
package exitcode

import (
	"context"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/drydock-dev/drydock/runbook"
)

// Code is a process exit status.
type Code int

// The exit codes drydock uses. Keep README.md's table in step (TestREADMEListsEveryCode).
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

// All lists every code with the README's one-line meaning, in order.
var All = []struct {
	Code    Code
	Meaning string
}{
	{OK, "success"},
	{Failure, "runtime failure (cluster unreachable, a step failed)"},
	{Usage, "usage error or invalid input (bad flag, malformed runbook)"},
	{Blocked, "a check blocked (a finding reached --fail-on, a drain is blocked)"},
	{Aborted, "aborted or rolled back"},
	{Paused, "paused at a pause point; resumable with `drydock resume`"},
	{Forbidden, "not allowed: the credentials lack a permission drydock needs (the message lists them; nothing that needed it was changed)"},
	{Interrupted, "interrupted (Ctrl-C, SIGTERM); resumable"},
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
