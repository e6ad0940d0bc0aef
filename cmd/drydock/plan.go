package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/runbook"
)

// PlanOptions are the options of `drydock plan FILE`.
type PlanOptions struct {
	Print *ObjectPrintFlags
	Path  string
	// StateDir holds the journals of earlier runs, which forecast the steps no model covers.
	StateDir string

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
	cmd.Flags().StringVar(&o.StateDir, "state-dir", runbook.DefaultStateDir(), "local directory of the run journals (earlier runs forecast the steps no model covers)")
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
	r, err := newRunner(o.f, &RunFlags{Output: "text", StateFlags: StateFlags{StateDir: o.StateDir}})
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
	// The whole-runbook plan: every node step's nodes, in order, by batch, with their blockers. A
	// certain blocker is what `drydock run` would stop on before the first node moves: exit 3 here too.
	nodes, blocked := r.engine.PlanNodes(ctx, rb, nil)
	var bpe *runbook.BlockedPlanError
	if blocked != nil && !errors.As(blocked, &bpe) {
		return fmt.Errorf("plan: %w", blocked)
	}
	if blocked != nil {
		bpe.Listed = o.Print.Text() // printed below, each with its fix; -o json|yaml: the error says them
		blocked = fmt.Errorf("plan: runbook %q: %w", rb.Metadata.Name, blocked)
	}
	plan := &RunbookPlan{TypeMeta: typeMeta(KindRunbookPlan), Runbook: rb.Metadata.Name, Target: rb.Spec.TargetVersion, Cluster: r.engine.Cluster, Steps: steps, Nodes: nodes}
	plan.Forecast = r.engine.ForecastRun(rb, nodes)
	if !o.Print.Text() {
		if err := o.Print.Print(plan, o.f.out()); err != nil {
			return err
		}
		return blocked
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
	if len(plan.Nodes) > 0 {
		fmt.Fprintln(out, "Nodes, in the order they will be drained:")
		for _, l := range printer.DescribeNodePlans(plan.Nodes) {
			fmt.Fprintln(out, "  "+l.Text)
		}
	}
	for _, l := range printer.DescribeForecast(plan.Forecast) {
		fmt.Fprintln(out, l)
	}
	return blocked
}
