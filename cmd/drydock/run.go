package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/drydock-dev/drydock/runbook"
)

// RunOptions are the options of `drydock run FILE`.
type RunOptions struct {
	RunFlags
	DryRun bool
	Path   string

	f *Factory
}

// NewRunCommand returns `drydock run FILE`. runF, when not nil, replaces Run (tests).
func NewRunCommand(f *Factory, runF func(*RunOptions) error) *cobra.Command {
	o := &RunOptions{}
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run an upgrade runbook: journaled, locked, with pause points and rollback",
		Long: `Run an upgrade runbook. Every step transition is journaled (locally and in a ConfigMap), the
cluster is locked with a Lease for the whole run, pause points ask a person (or stop the run when
nobody can answer: exit 5, continue with 'drydock resume'), and Ctrl-C leaves the run resumable.

Before anything moves, every node step is planned against the cluster; a certain blocker anywhere
stops the run (exit 3) unless that step says onBlocked: proceed.`,
		Example: `  drydock run upgrade.yaml                  # the terminal UI at a terminal, plain lines elsewhere
  drydock run upgrade.yaml --dry-run        # what each step would do
  drydock run upgrade.yaml --yes -o json    # CI: answer pause points, one JSON event per line
  drydock run upgrade.yaml --notify slack=https://hooks.slack.com/services/…`,
		Args: cobra.ExactArgs(1),
		RunE: runE(f, o, runF),
	}
	o.RunFlags.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "say what each step would do, change nothing")
	return cmd
}

// Complete takes the runbook path.
func (o *RunOptions) Complete(f *Factory, cmd *cobra.Command, args []string) error {
	o.f, o.Path = f, args[0]
	o.RunFlags.complete(cmd)
	return nil
}

// Validate checks the flags; no side effects.
func (o *RunOptions) Validate() error { return o.RunFlags.Validate() }

// Run loads the runbook, checks its target against the cluster and runs it (or says what it would do).
func (o *RunOptions) Run(ctx context.Context) error {
	rb, err := loadRunbook(o.Path)
	if err != nil {
		return err
	}
	r, err := newRunner(o.f, &o.RunFlags)
	if err != nil {
		return err
	}
	if err := r.checkTarget(rb); err != nil {
		return err
	}
	if o.DryRun {
		plans, err := r.engine.Plan(ctx, rb)
		if err != nil {
			return err
		}
		for _, p := range plans {
			for _, a := range append([]string{"(" + p.Kind + ")"}, p.Actions...) {
				r.engine.Sink.Emit(&runbook.StepProgress{Meta: runbook.Meta{Time: time.Now(), RunID: "dry-run", Step: p.Name}, Message: "would " + a})
			}
		}
		return nil
	}
	r.engine.Kind = "run"
	r.target = rb.Spec.TargetVersion // the screen shows it even when the plan refuses the run
	r.notifyFrom(rb)
	var st *runbook.RunState
	return r.execute(ctx, "run", func(ctx context.Context) error {
		st, err = r.engine.Start(ctx, rb)
		return err
	}, func() *runbook.RunState { return st })
}
