// Package gate is the `health-gate` step: wait until the cluster is healthy, then hold for a soak
// while every health gate (pods, budgets, a probe URL, Prometheus queries, Alertmanager alerts)
// stays green; the first gate that trips fails the step. Between add-ons, after the control plane,
// or anywhere a runbook should move on evidence rather than on a timer.
//
//   - name: soak-after-control-plane
//     type: health-gate
//     with: {soak: 10m, health: {namespaces: [shop], prometheus: {url: "http://prometheus.monitoring:9090",
//     queries: [{name: p99, expr: "histogram_quantile(0.99, ...)", max: 0.5, for: 1m}]}}}
package gate

import (
	"context"
	"fmt"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/rollout"
)

// Kind registers the step.
var Kind = runbook.Kind{
	Name:        "health-gate",
	Description: "wait until healthy, then soak while every health gate (pods, budgets, probe, Prometheus, Alertmanager) stays green",
	Phase:       runbook.PhaseAny,
	New:         func() runbook.Step { return &Step{} },
}

// Step is the health-gate step's settings.
type Step struct {
	// Soak is how long every gate must stay green (default 5m).
	Soak runbook.Duration `json:"soak,omitzero"`
	// Health gates.
	Health rollout.Health `json:"health,omitzero"`
}

// Name is the kind.
func (*Step) Name() string { return Kind.Name }

// ValidateSettings checks the gates.
func (s *Step) ValidateSettings() []runbook.FieldError { return s.Health.Validate("health") }

func (s *Step) soak() runbook.Duration {
	if s.Soak.IsZero() {
		return runbook.Duration{Duration: 5 * 60e9}
	}
	return s.Soak
}

// Run waits for health, then soaks. A resumed step soaks again from the start: the evidence must
// cover the whole duration.
func (s *Step) Run(ctx context.Context, env *runbook.Env) error {
	gates, err := rollout.NewGates(ctx, env, s.Health)
	if err != nil {
		return err
	}
	defer gates.Stop()
	if err := gates.Gate(ctx, "health gate"); err != nil {
		return err
	}
	return gates.Soak(ctx, s.soak().Duration)
}

// Access says what the step reads: what the health gates watch.
func (s *Step) Access() []runbook.Access { return rollout.GatesAccess() }

// Plan says what the step waits for.
func (s *Step) Plan(context.Context, *runbook.Env) ([]string, error) {
	return []string{fmt.Sprintf("wait until healthy, then soak %s on the health gates", s.soak())}, nil
}
