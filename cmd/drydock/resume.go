package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// ResumeOptions are the options of `drydock resume [RUN-ID]`.
type ResumeOptions struct {
	RunFlags
	// RunID names the run; empty: the one paused, interrupted or failed run of a runbook on this
	// machine (several are refused, listed; a standalone drain is resumed only when named).
	RunID string

	f *Factory
}

// NewResumeCommand returns `drydock resume [RUN-ID]`. runF, when not nil, replaces Run (tests).
func NewResumeCommand(f *Factory, runF func(*ResumeOptions) error) *cobra.Command {
	o := &ResumeOptions{}
	cmd := &cobra.Command{
		Use:   "resume [RUN-ID]",
		Short: "Continue a paused, interrupted or failed run where it stopped (says which run and what it does first)",
		Example: `  drydock resume                            # the one resumable run of a runbook here (several: name one)
  drydock resume 20261201-1545-22a2 --yes   # answer its pause points with continue
  drydock runs --status paused,failed,interrupted   # which runs are waiting`,
		Args: cobra.MaximumNArgs(1),
		RunE: runE(f, o, runF),
	}
	o.RunFlags.AddFlags(cmd)
	cmd.ValidArgsFunction = completeRuns(&o.StateFlags, runbook.RunStatus.Resumable)
	return cmd
}

// Complete takes the run id, if given.
func (o *ResumeOptions) Complete(f *Factory, cmd *cobra.Command, args []string) error {
	o.f = f
	if len(args) > 0 {
		o.RunID = args[0]
	}
	o.RunFlags.complete(cmd)
	return nil
}

// Validate checks the flags; no side effects.
func (o *ResumeOptions) Validate() error { return o.RunFlags.Validate() }

// Run finds the run and continues it.
func (o *ResumeOptions) Run(ctx context.Context) error {
	r, err := newRunner(o.f, &o.RunFlags)
	if err != nil {
		return err
	}
	st, err := findRun(ctx, o.StateFlags, r.client, o.RunID, resumeChoice, o.f.errOut())
	if err != nil {
		return err
	}
	if st.Status == runbook.RunSucceeded {
		fmt.Fprintf(o.f.out(), "run %s succeeded at %s: nothing to resume\n", st.ID, st.Updated.Local().Format(time.DateTime))
		o.releaseAbandoned(ctx, r.client, st.ID)
		return nil
	}
	rb, err := runbook.Parse(st.RunbookPath, []byte(st.RunbookText), steps.Registry)
	if err == nil {
		r.notifyFrom(rb) // the journaled runbook's webhooks (the engine reports a runbook that no longer loads)
	}
	fmt.Fprintf(o.f.errOut(), "drydock: %s\n", resumeSays(st, rb))
	return r.execute(ctx, "resume", func(ctx context.Context) error {
		st, err = r.engine.Resume(ctx, st)
		return err
	}, func() *runbook.RunState { return st })
}

// releaseAbandoned frees the cluster's lock when the succeeded run's last session was killed after
// its last journal write, before it released the lock: nothing else would, and every later run
// would be refused.
func (o *ResumeOptions) releaseAbandoned(ctx context.Context, client kubernetes.Interface, id string) {
	l := &runbook.Lock{Client: client, RunID: id, Operator: runbook.Operator()}
	released, err := l.ReleaseAbandoned(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(o.f.errOut(), "drydock: WARNING: run %s: %v\n", id, err)
	case released:
		fmt.Fprintf(o.f.out(), "run %s: released the cluster lock its last session left behind (its process is gone)\n", id)
	}
}
