package runbook

import "errors"

// The outcomes a run, a step or a check ends with, besides plain failure. The engine and the steps
// return them (wrapped, with the message that says what happened); cmd/drydock alone turns them
// into exit codes (internal/exitcode.For), with errors.Is — nothing parses an error's text.
var (
	// ErrInvalid: the input cannot be used as given (settings, a target, a node that does not exist,
	// a run that cannot be resumed); fix it and run again.
	ErrInvalid = errors.New("invalid input")
	// ErrBlocked: something stopped the work before it changed anything it should not have: a check
	// at or above failOn, a drain blocked by a budget, the lock held by another run.
	ErrBlocked = errors.New("blocked")
	// ErrForbidden: the credentials lack a permission the work needs (the message says which);
	// nothing was changed that needed it.
	ErrForbidden = errors.New("not allowed")
	// ErrPaused: stopped at a pause point; `drydock resume` continues.
	ErrPaused = errors.New("paused at a pause point")
	// ErrRolledBack: the run (or a failed canary) was rolled back.
	ErrRolledBack = errors.New("rolled back")
	// ErrInterrupted: Ctrl-C or SIGTERM; the run stays resumable.
	ErrInterrupted = errors.New("interrupted")
)

// outcome is err marked with an outcome: it prints as err and matches both with errors.Is/As.
type outcome struct {
	kind, err error
}

func (o *outcome) Error() string   { return o.err.Error() }
func (o *outcome) Unwrap() []error { return []error{o.err, o.kind} }

func mark(kind, err error) error {
	if err == nil {
		return nil
	}
	return &outcome{kind: kind, err: err}
}

// Invalid marks err as invalid input (ErrInvalid).
func Invalid(err error) error { return mark(ErrInvalid, err) }

// Blocked marks err as blocked before anything moved (ErrBlocked).
func Blocked(err error) error { return mark(ErrBlocked, err) }

// Forbidden marks err as a missing permission (ErrForbidden).
func Forbidden(err error) error { return mark(ErrForbidden, err) }
