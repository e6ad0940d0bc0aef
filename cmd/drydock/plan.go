package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drydock-dev/drydock/runbook"
)

// PlanOptions are the options of `drydock plan FILE`.
type PlanOptions struct {
	Print *ObjectPrintFlags
	Path  string

	f *Factory
}

// NewPlanCommand returns `drydock plan FILE`. runF, when not nil, replaces Run (tests).
func NewPlanCommand(f *Factory, runF func(*PlanOptions) error) *cobra.Command {
	o := &PlanOptions{Print: newObjectPrintFlags()}
	cmd := &cobra.Command{
		Use:   "plan FILE",
		Short: "Resolve a runbook against the live cluster and say what each step will do, changing nothing",
		Example: `  drydock plan upgrade.yaml
  drydock plan upgrade.yaml -o yaml
  drydock plan upgrade.yaml -o jsonpath='{.steps[*].name}'`,
		Args: cobra.ExactArgs(1),
		RunE: runE(f, o, runF),
	}
	o.Print.AddFlags(cmd)
	return cmd
}

// Complete takes the runbook path.
func (o *PlanOptions) Complete(f *Factory, _ *cobra.Command, args []string) error {
	o.f, o.Path = f, args[0]
	return nil
}

// Validate checks the flags; no side effects.
func (o *PlanOptions) Validate() error { return o.Print.Validate() }

// Run plans every step against the cluster and prints the plan.
func (o *PlanOptions) Run(ctx context.Context) error {
	rb, err := loadRunbook(o.Path)
	if err != nil {
		return err
	}
	r, err := newRunner(o.f, &RunFlags{Output: "text"})
	if err != nil {
		return err
	}
	if err := r.checkTarget(rb); err != nil {
		return err
	}
	r.engine.Sink = nil
	steps, err := r.engine.Plan(ctx, rb)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	plan := &RunbookPlan{TypeMeta: typeMeta(KindRunbookPlan), Runbook: rb.Metadata.Name, Target: rb.Spec.TargetVersion, Cluster: r.engine.Cluster, Steps: steps}
	if !o.Print.Text() {
		return o.Print.Print(plan, o.f.out())
	}
	out := o.f.out()
	fmt.Fprintf(out, "Runbook %q: target %s on %s\n", plan.Runbook, plan.Target, plan.Cluster)
	for i, p := range plan.Steps {
		flags := []string{p.Kind, "timeout " + p.Timeout.String()}
		if p.Pause != "" && p.Pause != runbook.PauseNone {
			flags = append(flags, "pause "+p.Pause)
		}
		if p.CanRollback {
			flags = append(flags, "can roll back")
		}
		fmt.Fprintf(out, "%d. %s (%s)\n", i+1, p.Name, strings.Join(flags, ", "))
		for _, a := range p.Actions {
			fmt.Fprintf(out, "     %s\n", a)
		}
	}
	return nil
}
