package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/runbook"
)

// RunsOptions are the options of `drydock runs`.
type RunsOptions struct {
	Print *ObjectPrintFlags
	StateFlags
	// FromCluster adds the runs mirrored in the cluster.
	FromCluster bool
	// Prune deletes the journal ConfigMaps of finished runs but the newest KeepRuns.
	Prune    bool
	KeepRuns int
	// Repair restores the budgets relaxed by runs whose expiry has passed, and lists the others.
	Repair bool
	// Status and Kind keep only the runs in one of these statuses, of one of these kinds.
	Status []string
	Kind   []string

	f *Factory
}

// NewRunsCommand returns `drydock runs`. runF, when not nil, replaces Run (tests).
func NewRunsCommand(f *Factory, runF func(*RunsOptions) error) *cobra.Command {
	o := &RunsOptions{Print: newObjectPrintFlags()}
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs and their status (this machine's; --from-cluster adds those mirrored in the cluster)",
		Example: `  drydock runs
  drydock runs --from-cluster -o json
  drydock runs --status paused,failed,interrupted      # what is waiting for a person
  drydock runs --kind drain
  drydock runs -o jsonpath='{.items[?(@.status=="paused")].id}'
  drydock runs --prune --keep-runs 5     # delete the cluster copies of finished runs but the newest 5
  drydock runs --repair                  # restore budgets relaxed by a run that died, once expired`,
		Args: cobra.NoArgs,
		RunE: runE(f, o, runF),
	}
	o.Print.AddFlags(cmd)
	cmd.Flags().BoolVar(&o.FromCluster, "from-cluster", false, "also list the runs mirrored in the cluster (their journal ConfigMaps)")
	cmd.Flags().BoolVar(&o.Prune, "prune", false, "delete the journal ConfigMaps of finished runs (succeeded, rolled back) but the newest --keep-runs")
	cmd.Flags().BoolVar(&o.Repair, "repair", false, "restore the PodDisruptionBudgets runs relaxed (allowBudgetRelax) whose expiry has passed, and list those still relaxed")
	cmd.Flags().IntVar(&o.KeepRuns, "keep-runs", runbook.DefaultKeepRuns, "with --prune: how many finished runs keep their ConfigMap")
	cmd.Flags().StringSliceVar(&o.Status, "status", nil, "only runs in these statuses: "+strings.Join(runStatuses, ","))
	cmd.Flags().StringSliceVar(&o.Kind, "kind", nil, "only runs of these kinds: run (a runbook), drain (drydock drain)")
	o.StateFlags.AddFlags(cmd)
	return cmd
}

// Complete keeps the factory.
func (o *RunsOptions) Complete(f *Factory, _ *cobra.Command, _ []string) error {
	o.f = f
	return nil
}

// Validate checks the flags; no side effects.
func (o *RunsOptions) Validate() error {
	if err := o.f.oldClusterFlag("runs", "--from-cluster lists the runs mirrored in the cluster"); err != nil {
		return err
	}
	if err := o.Print.Validate(); err != nil {
		return fmt.Errorf("runs: %w", err)
	}
	if o.Repair && o.Prune {
		return exitcode.UsageError(fmt.Errorf("runs: give --repair or --prune, not both"))
	}
	if o.KeepRuns < 0 {
		return exitcode.UsageError(fmt.Errorf("runs: --keep-runs must be 0 or more"))
	}
	for _, s := range o.Status {
		if !slices.Contains(runStatuses, s) {
			return exitcode.UsageError(fmt.Errorf("runs: --status %q: use one of %s", s, strings.Join(runStatuses, ", ")))
		}
	}
	for _, k := range o.Kind {
		if k != "run" && k != "drain" {
			return exitcode.UsageError(fmt.Errorf("runs: --kind %q: use run or drain", k))
		}
	}
	return nil
}

// runStatuses are the statuses a run can have, for --status.
var runStatuses = []string{
	string(runbook.RunRunning), string(runbook.RunPaused), string(runbook.RunInterrupted), string(runbook.RunFailed),
	string(runbook.RunSucceeded), string(runbook.RunRolledBack), string(runbook.RunPartlyRolledBack), string(runbook.RunRollbackFailed), string(runbook.RunDamaged),
}

// keep says whether a run passes the --status and --kind filters.
func (o *RunsOptions) keep(r *runbook.RunState) bool {
	return (len(o.Status) == 0 || slices.Contains(o.Status, string(r.Status))) &&
		(len(o.Kind) == 0 || slices.Contains(o.Kind, r.KindOf()))
}

// Run lists the runs, or prunes the cluster copies.
func (o *RunsOptions) Run(ctx context.Context) error {
	out := o.f.out()
	if o.Repair {
		client, err := o.f.KubeClient()
		if err != nil {
			return err
		}
		if err := repairBudgets(ctx, o.f, client, true); err != nil {
			return fmt.Errorf("runs --repair: %w", err)
		}
		return nil
	}
	var mirror *runbook.ConfigMapMirror
	if o.FromCluster || o.Prune {
		client, err := o.f.KubeClient()
		if err != nil {
			return err
		}
		mirror = &runbook.ConfigMapMirror{Client: client, Namespace: o.StateNamespace}
	}
	if o.Prune {
		pruned, err := mirror.Prune(ctx, o.KeepRuns)
		for _, id := range pruned {
			fmt.Fprintf(out, "pruned run %s (ConfigMap %s/%s)\n", id, o.StateNamespace, runbook.ConfigMapName(id))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%d run(s) pruned; the newest %d finished runs and every unfinished one are kept\n", len(pruned), o.KeepRuns)
		return nil
	}
	runs, err := runbook.ListRuns(o.StateDir)
	if err != nil {
		return err
	}
	if mirror != nil {
		remote, err := mirror.List(ctx)
		if err != nil {
			return fmt.Errorf("runs: list ConfigMaps in %s: %w", o.StateNamespace, err)
		}
		runs = mergeRuns(runs, remote)
	}
	kept := []*runbook.RunState{}
	for _, r := range runs {
		if o.keep(r) {
			kept = append(kept, r)
		}
	}
	runs = kept
	if !o.Print.Text() {
		return o.Print.Print(&RunList{TypeMeta: typeMeta(KindRunList), Items: runs}, out)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "RUN\tKIND\tRUNBOOK\tCLUSTER\tSTATUS\tAT STEP\tSTARTED\tDURATION\tOPERATOR")
	for _, r := range runs {
		at := "-"
		for _, s := range r.Steps {
			if s.Status != runbook.StatusDone && s.Status != runbook.StatusSkipped {
				at = s.Name + " (" + string(s.Status) + ")"
				break
			}
		}
		if r.Pause != nil {
			at = fmt.Sprintf("%s (paused %s)", r.Pause.Step, r.Pause.When)
		}
		if r.Status == runbook.RunDamaged {
			at = fmt.Sprintf("journal unreadable: `drydock status %s --from-cluster`", r.ID)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.KindOf(), r.Runbook, clusterOf(r), r.Status, at,
			r.Created.Local().Format(time.DateTime), r.Duration().Round(time.Second), r.Operator)
	}
	return w.Flush()
}

// mergeRuns adds the cluster's copies of runs this machine has not, and puts a copy in place of a
// local journal that is damaged.
func mergeRuns(local, remote []*runbook.RunState) []*runbook.RunState {
	copies := map[string]*runbook.RunState{}
	for _, r := range remote {
		copies[r.ID] = r
	}
	var out []*runbook.RunState
	for _, r := range local {
		if cp := copies[r.ID]; cp != nil && r.Status == runbook.RunDamaged {
			r = cp
		}
		delete(copies, r.ID)
		out = append(out, r)
	}
	for _, r := range remote {
		if copies[r.ID] != nil {
			out = append(out, r)
		}
	}
	return out
}

// clusterOf is the kubeconfig context a run was started with, else its API server.
func clusterOf(r *runbook.RunState) string {
	switch {
	case r.Context != "":
		return r.Context
	case r.Cluster != "":
		return r.Cluster
	}
	return "-"
}
