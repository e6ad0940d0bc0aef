package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/rehearse"
	"github.com/drydock-dev/drydock/internal/tui"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

// RehearseOptions are the options of `drydock rehearse FILE`.
type RehearseOptions struct {
	Path     string
	SimBin   string
	Output   string
	StateDir string
	NoTUI    bool

	f         *Factory
	outputSet bool
}

// NewRehearseCommand returns `drydock rehearse FILE`. runF, when not nil, replaces Run (tests).
func NewRehearseCommand(f *Factory, runF func(*RehearseOptions) error) *cobra.Command {
	o := &RehearseOptions{}
	cmd := &cobra.Command{
		Use:   "rehearse FILE",
		Short: "Play a runbook's node steps first on a simulated copy of the cluster: blockers, Pending pods, lowest availability and durations against the forecast",
		Long: `Copies the scheduling-relevant state of the cluster (nodes with their labels, taints, size and
version; namespaces; Deployments, StatefulSets, DaemonSets and ReplicaSets with their replicas and pod
templates, each pod on the node it runs on; pods no controller owns; bound claims with their volumes'
zones; PodDisruptionBudgets; PriorityClasses) into a local simulated cluster (kwok), with each
workload's pods as slow to become Ready as on the cluster, and runs the runbook's node steps there with
the node actions simulated (the node reports the target after action.expectedDuration). It reports the
blockers met, the budgets taken to their limit without a wait (on the cluster, where the scheduler puts
each replacement decides whether a drain waits for one), the pods the run made Pending (those Pending
before it apart), the lowest availability of each workload the run lowered, and the duration of each
step and node group against the forecast. On a terminal the run on the copy is shown as a run is.
It reads the cluster and writes nothing to it; it never reads a Secret or a ConfigMap, and the copied
pod templates keep no reference to one.`,
		Example: `  drydock rehearse upgrade.yaml --sim-bin ~/kwok-bin
  drydock rehearse upgrade.yaml -o json`,
		Args: cobra.ExactArgs(1),
		RunE: runE(f, o, runF),
	}
	cmd.Flags().StringVar(&o.SimBin, "sim-bin", "", "directory with kwokctl, kwok, etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (default: the directory of kwokctl on PATH)")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "text (the rehearsal's events, then the report) or json (the report)")
	cmd.Flags().BoolVar(&o.NoTUI, "no-tui", false, "print plain lines even on a terminal (the screen is used only when stdin, stdout and stderr are terminals)")
	cmd.Flags().StringVar(&o.StateDir, "state-dir", runbook.DefaultStateDir(), "local directory of the run journals (earlier runs forecast the steps no model covers)")
	return cmd
}

// Complete takes the runbook path and finds the simulated cluster's binaries.
func (o *RehearseOptions) Complete(f *Factory, cmd *cobra.Command, args []string) error {
	o.f, o.Path = f, args[0]
	o.outputSet = cmd.Flags().Changed("output")
	if o.SimBin == "" {
		if p, err := exec.LookPath("kwokctl"); err == nil {
			o.SimBin = filepath.Dir(p)
		}
	}
	return nil
}

// Validate checks the flags; no side effects.
func (o *RehearseOptions) Validate() error {
	if o.Output != "text" && o.Output != "json" {
		return exitcode.UsageError(fmt.Errorf("rehearse: -o must be text or json, not %q", o.Output))
	}
	return nil
}

// Run rehearses the runbook and prints the report; exit 3 when the rehearsal did not finish.
func (o *RehearseOptions) Run(ctx context.Context) error {
	rb, err := loadRunbook(o.Path)
	if err != nil {
		return err
	}
	again, err := loadRunbook(o.Path)
	if err != nil {
		return err
	}
	cfg, err := o.f.RESTConfig()
	if err != nil {
		return err
	}
	client, err := o.f.KubeClient()
	if err != nil {
		return err
	}
	opts := rehearse.Options{Live: client, LiveREST: cfg, Runbook: rb, Rehearsal: again, Registry: steps.Registry,
		SimBin: o.SimBin, StateDir: o.StateDir}
	var rep *rehearse.Report
	work := func(ctx context.Context, sink runbook.Sink) error {
		opts.Sink = sink
		rep, err = rehearse.Run(ctx, opts)
		return err
	}
	switch {
	case o.f.Prompter().Screen() && !o.NoTUI && !o.outputSet:
		// The rehearsal's run on the screen, as a run's; it closes by itself and the report follows.
		info := tui.Info{Command: "rehearse", Context: o.f.ContextName(), Lock: "none (a simulated copy)", Target: rb.Spec.TargetVersion}
		err = tui.Run(ctx, tui.Options{Info: info, In: o.f.IOStreams.In, Out: o.f.errOut(), Color: o.f.Getenv("NO_COLOR") == "", QuitWhenDone: true},
			func(ctx context.Context, sink runbook.Sink, _ runbook.Decider) error { return work(ctx, sink) })
	case o.Output == "text":
		err = work(ctx, printer.NewText(o.f.out()))
	default:
		err = work(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("rehearse %s: %w", o.Path, err)
	}
	out := o.f.out()
	if o.Output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, l := range describeRehearsal(rep) {
			fmt.Fprintln(out, l)
		}
	}
	if rep.Status != runbook.RunSucceeded {
		return runbook.Blocked(fmt.Errorf("rehearse %s: the rehearsal did not finish (%s): %s", o.Path, rep.Status, rep.Error))
	}
	return nil
}

func describeRehearsal(r *rehearse.Report) []string {
	out := []string{"Rehearsal on a simulated copy (" + r.Copied + "): " + string(r.Status)}
	for _, s := range r.Steps {
		f := "no forecast"
		if s.Forecast != nil {
			f = "forecast " + s.Forecast.String() + printer.Off(s.Forecast.Expected.Duration, s.Adjusted.Duration)
		}
		sign := "+" // drydock's own work can be quicker on the cluster than on the copy: "-800ms"
		if s.LiveWork.Duration < 0 {
			sign = ""
		}
		out = append(out, fmt.Sprintf("  %s: took %s on the copy; on the cluster ~%s with drydock's own work there (%s%s) (%s)", s.Step, s.Took, s.Adjusted, sign, s.LiveWork, f))
	}
	for _, g := range r.Groups {
		f := "no forecast"
		if g.Forecast != nil {
			f = "forecast " + g.Forecast.String() + printer.Off(g.Forecast.Expected.Duration, g.Adjusted.Duration)
		}
		out = append(out, fmt.Sprintf("    %s group %s: took %s on the copy, ~%s on the cluster (%s)", g.Step, g.Group, g.Took, g.Adjusted, f))
	}
	for _, b := range r.Blockers {
		out = append(out, "  blocker met: "+b.String())
	}
	if len(r.AtLimit) > 0 {
		out = append(out, "  at its limit, no wait here (where the scheduler puts each replacement decides whether a drain waits; on the cluster, expect a wait of a start-up): "+strings.Join(r.AtLimit, ", "))
	}
	for _, p := range r.Pending {
		out = append(out, "  went Pending: "+p)
	}
	for _, a := range r.Lowest {
		line := fmt.Sprintf("  lowest availability: %s %d of %d Ready", a.Workload, a.Lowest, a.Desired)
		if a.Before < a.Desired {
			line += fmt.Sprintf(" (%d before the run)", a.Before)
		}
		out = append(out, line)
	}
	if n := len(r.PendingBefore); n > 0 {
		names := r.PendingBefore[:min(n, 3)]
		more := ""
		if n > 3 {
			more = fmt.Sprintf(" and %d more", n-3)
		}
		out = append(out, fmt.Sprintf("  Pending before the run (the cluster's own, or what the copy could not place; not counted above): %s%s", strings.Join(names, ", "), more))
	}
	if l := r.CopyLag; l != nil {
		line := fmt.Sprintf("  the copy's pace: its %d new pods were Ready a median %s (p90 %s) after the start-up measured on the cluster", l.Pods, l.Median, l.P90)
		if l.Saturated() {
			line += ": this machine could not keep up with the copy, so the durations above are upper bounds (the cluster's own control plane makes its pods sooner)"
		}
		out = append(out, line)
	}
	if len(r.Left) > 0 {
		out = append(out, "  not rehearsed: "+strings.Join(r.Left, "; "))
	}
	for _, s := range r.Skipped {
		out = append(out, "  in the copy: "+s)
	}
	if r.Error != "" {
		out = append(out, "  error: "+r.Error)
	}
	return out
}
