package runbook

import "context"

// Decision answers a pause point.
type Decision int

const (
	Continue Decision = iota // go on with the run
	RollBack                 // undo the completed steps, newest first, and end the run
	Stop                     // stop here; `drydock resume` asks again later
)

func (d Decision) String() string { return [...]string{"continue", "roll back", "stop"}[d] }

// PauseRequest is the question at a pause point.
type PauseRequest struct {
	RunID   string
	Step    string
	When    string // before or after
	Message string
	// Done lists the steps completed so far, for the person deciding.
	Done []string
}

// Decider answers pause points: a person at a terminal, --yes, or nobody (stop and resume later).
type Decider interface {
	Decide(ctx context.Context, req PauseRequest) (Decision, error)
}

// DeciderFunc adapts a function to a Decider.
type DeciderFunc func(ctx context.Context, req PauseRequest) (Decision, error)

// Decide calls f.
func (f DeciderFunc) Decide(ctx context.Context, req PauseRequest) (Decision, error) {
	return f(ctx, req)
}

// AlwaysContinue answers every pause point with Continue (--yes).
var AlwaysContinue Decider = DeciderFunc(func(context.Context, PauseRequest) (Decision, error) { return Continue, nil })

// StopAtPause answers every pause point with Stop: nobody can answer (no terminal, no --yes).
var StopAtPause Decider = DeciderFunc(func(context.Context, PauseRequest) (Decision, error) { return Stop, nil })

// Gate is a step kind that is itself a pause point (type: pause): the engine asks before it runs.
type Gate interface {
	GateMessage() string
}

// PauseDefaulter is a step kind that pauses by default when the runbook says nothing (the canary:
// a person looks at it before the fleet moves). It returns before, after or none.
type PauseDefaulter interface {
	DefaultPause() string
}
