// Package pause is the `pause` step: a manual gate. The run stops until a person answers continue,
// roll back or stop (with --yes it continues; with nobody to ask it stops, and `drydock resume`
// asks again later).
//
//   - name: look-at-dashboards
//     type: pause
//     with: {message: "Check the error-rate dashboard before the node groups move."}
package pause

import (
	"context"

	"github.com/drydock-dev/drydock/runbook"
)

// Kind registers the step.
var Kind = runbook.Kind{
	Name:        "pause",
	Description: "a manual gate: stop until a person says continue, roll back or stop",
	Phase:       runbook.PhaseAny,
	New:         func() runbook.Step { return &Step{} },
}

// Step is the pause step's settings.
type Step struct {
	// Message is shown at the gate.
	Message string `json:"message,omitempty"`
}

// Name is the kind.
func (*Step) Name() string { return Kind.Name }

// GateMessage makes the step a pause point.
func (s *Step) GateMessage() string {
	if s.Message == "" {
		return "manual gate: continue when ready"
	}
	return s.Message
}

// Run does nothing: passing the gate is the step.
func (*Step) Run(context.Context, *runbook.Env) error { return nil }

// Plan says the run stops here.
func (s *Step) Plan(context.Context, *runbook.Env) ([]string, error) {
	return []string{"stop and ask: " + s.GateMessage()}, nil
}
