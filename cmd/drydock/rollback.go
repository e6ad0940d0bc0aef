package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	velerov1 "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/velero"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// RollbackOptions are the options of `drydock rollback [RUN-ID]`.
type RollbackOptions struct {
	RunFlags
	// RunID names the run; empty: the one run on this machine with something to undo (several are
	// refused, listed).
	RunID string
	// To: undo back to and including this step ("": every step).
	To string
	// RestoreBackup restores the run's Velero backup instead of undoing steps.
	RestoreBackup bool
	// DryRun prints what the rollback would undo, node by node with each command, and changes nothing.
	DryRun bool

	f *Factory
}

// NewRollbackCommand returns `drydock rollback [RUN-ID] [--to STEP]`. runF, when not nil, replaces Run (tests).
func NewRollbackCommand(f *Factory, runF func(*RollbackOptions) error) *cobra.Command {
	o := &RollbackOptions{}
	cmd := &cobra.Command{
		Use:   "rollback [RUN-ID]",
		Short: "Undo a run's completed steps, newest first (back to and including --to STEP)",
		Example: `  drydock rollback 20261201-1545-22a2                 # asks first; lists what it undoes
  drydock rollback 20261201-1545-22a2 --dry-run       # each node and the command run on it; changes nothing
  drydock rollback 20261201-1545-22a2 --to canary --yes
  drydock rollback 20261201-1545-22a2 --restore-backup   # restore the run's Velero backup instead`,
		Args: cobra.MaximumNArgs(1),
		RunE: runE(f, o, runF),
	}
	o.RunFlags.AddFlags(cmd)
	cmd.Flags().Lookup("yes").Usage = "undo without asking first (what it undoes is still printed), and answer the rollback's pause points with continue; needed when nobody can answer"
	cmd.Flags().StringVar(&o.To, "to", "", "undo back to and including this step (default: every step)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print what the rollback would undo (each step, each node and the command run on it) and change nothing")
	cmd.Flags().BoolVar(&o.RestoreBackup, "restore-backup", false, "instead of undoing steps, restore the run's Velero backup (its rollback point), after confirmation")
	cmd.ValidArgsFunction = completeRuns(&o.StateFlags, nil)
	_ = cmd.RegisterFlagCompletionFunc("to", completeSteps(&o.StateFlags))
	return cmd
}

// Complete takes the run id, if given.
func (o *RollbackOptions) Complete(f *Factory, cmd *cobra.Command, args []string) error {
	o.f = f
	if len(args) > 0 {
		o.RunID = args[0]
	}
	o.RunFlags.complete(cmd)
	return nil
}

// Validate checks the flags; no side effects.
func (o *RollbackOptions) Validate() error {
	if o.RestoreBackup && o.DryRun {
		return exitcode.UsageError(fmt.Errorf("rollback: --dry-run previews the undoing of steps; --restore-backup restores a whole backup and has no preview"))
	}
	if o.RestoreBackup && o.To != "" {
		return exitcode.UsageError(fmt.Errorf("rollback: --restore-backup restores the whole backup; it takes no --to"))
	}
	return o.RunFlags.Validate()
}

// Run undoes the run's steps (after confirmation), or restores its backup.
func (o *RollbackOptions) Run(ctx context.Context) error {
	r, err := newRunner(o.f, &o.RunFlags)
	if err != nil {
		return err
	}
	st, err := findRun(ctx, o.StateFlags, r.client, o.RunID, rollbackChoice(o.RestoreBackup), o.f.errOut())
	if err != nil {
		return err
	}
	rb, _ := runbook.Parse(st.RunbookPath, []byte(st.RunbookText), steps.Registry) // the engine reports one that no longer loads
	if rb != nil {
		r.notifyFrom(rb)
	}
	point := st.RollbackPoint(runbook.RollbackPointVeleroBackup)
	if o.RestoreBackup {
		return o.restoreBackup(ctx, r, st, point)
	}
	if point != nil {
		fmt.Fprintf(o.f.errOut(), "drydock: run %s has a rollback point, Velero backup %s/%s: `drydock rollback %s --restore-backup` restores it (asks first)\n", st.ID, point.Namespace, point.Name, st.ID)
	}
	var undo []string
	seen := o.To == ""
	for _, s := range st.Steps {
		if s.Name == o.To {
			seen = true
		}
		if seen && s.Status != runbook.StatusPending && s.Status != runbook.StatusSkipped && s.Status != runbook.StatusRolledBack {
			undo = append([]string{s.Name}, undo...)
		}
	}
	will, wont := undoPreview(st, rb, undo)
	preview := o.f.errOut()
	if o.DryRun {
		preview = o.f.out()
	}
	fmt.Fprintf(preview, "drydock: rollback of run %s undoes, newest first: %s\n", st.ID, strings.Join(undo, ", "))
	for _, w := range will {
		fmt.Fprintf(preview, "drydock:   %s\n", w)
	}
	for _, w := range wont {
		fmt.Fprintf(preview, "drydock: not undone: %s\n", w)
	}
	if o.DryRun {
		return nil
	}
	if err := confirm(ctx, o.f, o.Yes, fmt.Sprintf("rollback run %s would undo %s", st.ID, strings.Join(undo, ", ")),
		fmt.Sprintf("Undo run %s, steps %s (newest first)?", st.ID, strings.Join(undo, ", "))); err != nil {
		return err
	}
	return r.execute(ctx, "rollback", func(ctx context.Context) error {
		st, err = r.engine.Rollback(ctx, st, o.To)
		return err
	}, func() *runbook.RunState { return st })
}

// undoPreview is what the rollback of the steps undo (newest first) will do, object by object,
// and what it will not undo, for the person before they confirm.
func undoPreview(st *runbook.RunState, rb *runbook.Runbook, undo []string) (will, wont []string) {
	if rb == nil {
		return nil, nil
	}
	for _, name := range undo {
		for _, s := range rb.Spec.Steps {
			if s.Name != name {
				continue
			}
			if d, ok := s.Step.(runbook.UndoDescriber); ok {
				for _, line := range d.WillUndo(st.Step(name).Changes, st.Target, st.ID, name) {
					will = append(will, fmt.Sprintf("step %s: %s", name, line))
				}
			}
			if p, ok := s.Step.(runbook.UndoPreviewer); ok && p.WontUndo() != "" {
				wont = append(wont, fmt.Sprintf("step %s: %s", name, p.WontUndo()))
			}
		}
	}
	return will, wont
}

// restoreBackup restores the run's Velero backup: an explicit, confirmed action, never automatic.
func (o *RollbackOptions) restoreBackup(ctx context.Context, r *runner, st *runbook.RunState, point *runbook.RollbackPoint) error {
	if point == nil {
		return exitcode.UsageError(fmt.Errorf("rollback run %s --restore-backup: the run has no Velero backup (no velero-backup step completed)", st.ID))
	}
	ns, name := point.Namespace, point.Name
	if err := confirm(ctx, o.f, o.Yes, fmt.Sprintf("rollback run %s would restore Velero backup %s/%s", st.ID, ns, name),
		fmt.Sprintf("Restore Velero backup %s/%s into the cluster? Objects that exist are left as they are.", ns, name)); err != nil {
		return err
	}
	vc, err := velero.New(r.engine.REST, ns)
	if err != nil {
		return err
	}
	restoreName := fmt.Sprintf("%s-rollback-%d", name, o.f.Clock().Now().Unix())
	rs, err := vc.CreateRestore(ctx, &velerov1.Restore{ObjectMeta: metav1.ObjectMeta{Name: restoreName, Namespace: ns, Labels: map[string]string{velero.LabelRunID: st.ID}},
		Spec: velerov1.RestoreSpec{BackupName: name}})
	if err != nil {
		return fmt.Errorf("rollback run %s: create restore of %s/%s: %w", st.ID, ns, name, err)
	}
	fmt.Fprintf(o.f.errOut(), "drydock: restore %s/%s created from backup %s; waiting for it\n", ns, rs.Name, name)
	rs, err = vc.WaitRestore(ctx, rs.Name, func(*velerov1.Restore) {}, velero.RestoreFinished)
	if err != nil {
		return fmt.Errorf("rollback run %s: restore %s/%s: %w", st.ID, ns, restoreName, err)
	}
	items := 0
	if rs.Status.Progress != nil {
		items = rs.Status.Progress.ItemsRestored
	}
	fmt.Fprintf(o.f.out(), "restore %s/%s: %s, %d items, %d warnings, %d errors\n", ns, rs.Name, rs.Status.Phase, items, rs.Status.Warnings, rs.Status.Errors)
	if rs.Status.Phase != velerov1.RestorePhaseCompleted {
		return fmt.Errorf("rollback run %s: restore %s/%s ended %s: velero restore describe %s --details", st.ID, ns, rs.Name, rs.Status.Phase, rs.Name)
	}
	return nil
}
