package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
	"github.com/drydock-dev/drydock/steps/drain"
)

// DrainOptions are the options of `drydock drain`.
type DrainOptions struct {
	RunOptions
	Selector string
	Timeout  time.Duration
	Settings drain.Step
	nodes    []string
}

// NewDrainCommand returns `drydock drain`.
func NewDrainCommand(kube *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DrainOptions{RunOptions: RunOptions{kube: kube, IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "drain NODE... | -l SELECTOR",
		Short: "Cordon and drain nodes without breaking a PodDisruptionBudget, explaining what blocks",
		Long: `Cordon and drain nodes. Before anything moves, drydock says which pods will be evicted, which are
skipped and why, and what blocks the drain: a PodDisruptionBudget that can never allow an eviction
(minAvailable: 100%, maxUnavailable: 0), one that allows none right now, a pod covered by two budgets,
pods with emptyDir or local volumes, pods with no controller, and pods that would not fit elsewhere.

A refused eviction waits on the budget's status (by watch) instead of retrying blindly. drydock never
deletes past a budget unless --disable-eviction is given. On failure or timeout it reports exactly
which pods are left and why, and uncordons the nodes it cordoned (not those an admin had cordoned)
unless --keep-cordoned. A drain is a one-step run: same journal, lock and exit codes as 'drydock run'.`,
		Example: `  drydock drain node-7 --dry-run           # what would move, what blocks
  drydock drain -l drydock.dev/group=batch --timeout 20m
  drydock drain node-7 -o json               # one JSON event per line`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.nodes = args
			if err := o.Complete(true); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd)
		},
	}
	o.addRunFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "text or json (events); with --dry-run also yaml"
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", "", "drain the nodes matching this label selector")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print the drain plan and its blockers; change nothing (exit 3 when something blocks)")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 15*time.Minute, "give up after this long, reporting what is left and why")
	cmd.Flags().BoolVar(&o.Settings.DeleteEmptyDirData, "delete-emptydir-data", false, "evict pods with emptyDir volumes (their data is lost)")
	cmd.Flags().BoolVar(&o.Settings.Force, "force", false, "evict pods that no controller will recreate")
	cmd.Flags().BoolVar(&o.Settings.AllowLocalVolumes, "allow-local-volumes", false, "evict pods bound to local PersistentVolumes")
	cmd.Flags().BoolVar(&o.Settings.DisableEviction, "disable-eviction", false, "DELETE pods instead of evicting them: PodDisruptionBudgets are not honoured")
	cmd.Flags().BoolVar(&o.Settings.KeepCordoned, "keep-cordoned", false, "on failure, leave the nodes drydock cordoned cordoned")
	cmd.Flags().IntVar(&o.Settings.Concurrency, "concurrency", 10, "evictions in flight per node")
	cmd.Flags().DurationVar(&o.Settings.NodeTimeout.Duration, "node-timeout", 0, "give up on one node after this long (default: only --timeout)")
	return cmd
}

// Validate checks the flags.
func (o *DrainOptions) Validate() error {
	if o.Output == "yaml" && !o.DryRun {
		return exitcode.UsageError(fmt.Errorf("drain: -o yaml prints a plan: use it with --dry-run"))
	}
	if o.Output != "yaml" {
		if err := o.RunOptions.Validate(); err != nil {
			return err
		}
	}
	switch {
	case len(o.nodes) == 0 && o.Selector == "":
		return exitcode.UsageError(fmt.Errorf("drain: name the nodes, or give -l SELECTOR"))
	case len(o.nodes) > 0 && o.Selector != "":
		return exitcode.UsageError(fmt.Errorf("drain: give node names or -l SELECTOR, not both"))
	case o.Timeout < time.Second:
		return exitcode.UsageError(fmt.Errorf("drain: --timeout must be at least 1s"))
	case o.Settings.Concurrency < 1:
		return exitcode.UsageError(fmt.Errorf("drain: --concurrency must be at least 1"))
	}
	return nil
}

// Run prints the plan (--dry-run) or runs the drain as a one-step runbook.
func (o *DrainOptions) Run(cmd *cobra.Command) error {
	ctx := cmd.Context()
	o.Settings.Nodes, o.Settings.Selector = o.nodes, o.Selector
	if o.DryRun {
		nodes, err := o.Settings.ResolveNodes(ctx, o.client)
		if err != nil {
			return err
		}
		plan, err := (&drain.Planner{Client: o.client, Options: o.Settings.Options}).Plan(ctx, nodes)
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		switch o.Output {
		case "json":
			b, _ := json.MarshalIndent(plan, "", "  ")
			fmt.Fprintln(o.Out, string(b))
		case "yaml":
			b, _ := yaml.Marshal(plan)
			fmt.Fprint(o.Out, string(b))
		default:
			for _, l := range drain.DescribePlan(plan) {
				fmt.Fprintln(o.Out, l)
			}
		}
		if plan.Fatal() {
			return exitcode.With(exitcode.Blocked, fmt.Errorf("drain %s: blocked: %d blocker(s) above", strings.Join(nodes, ", "), countFatal(plan)))
		}
		return nil
	}

	v, err := o.client.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("drain: get server version: %w", err)
	}
	with, err := json.Marshal(o.Settings)
	if err != nil {
		return err
	}
	var withMap map[string]any
	_ = json.Unmarshal(with, &withMap)
	doc := map[string]any{
		"apiVersion": runbook.APIVersion,
		"kind":       runbook.KindRunbook,
		"metadata":   map[string]any{"name": "drain"},
		"spec": map[string]any{
			"targetVersion": v.GitVersion[:strings.IndexAny(v.GitVersion+"-+", "-+")],
			"defaults":      map[string]any{"timeout": o.Timeout.String()},
			"steps":         []any{map[string]any{"name": "drain", "type": drain.Kind.Name, "with": withMap}},
		},
	}
	text, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	rb, err := runbook.Parse("drydock drain (command line)", text, steps.Registry)
	if err != nil {
		return exitcode.Invalid(fmt.Errorf("drain: %w", err))
	}
	var st *runbook.RunState
	return o.execute(cmd, "drain", func(ctx context.Context) error {
		st, err = o.engine.Start(ctx, rb)
		return err
	}, func() *runbook.RunState { return st })
}

func countFatal(p *drain.Plan) int {
	n := 0
	for _, b := range p.Blockers() {
		if b.Fatal {
			n++
		}
	}
	return n
}

// NewUncordonCommand returns `drydock uncordon NODE...`.
func NewUncordonCommand(kube *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "uncordon NODE...",
		Short: "Mark nodes schedulable again and clear drydock's marks on them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := kubeClient(kube)
			if err != nil {
				return err
			}
			for _, name := range args {
				n, err := client.CoreV1().Nodes().Get(cmd.Context(), name, metav1.GetOptions{})
				if err != nil {
					return fmt.Errorf("uncordon node %q: %w", name, err)
				}
				if by := n.Annotations[drain.AnnotationCordonedBy]; by != "" {
					fmt.Fprintf(streams.ErrOut, "node %s was cordoned by drydock run %s\n", name, by)
				}
				patch := `{"metadata":{"annotations":{"` + drain.AnnotationCordonedBy + `":null,"` + drain.AnnotationRunID + `":null}},"spec":{"unschedulable":false}}`
				if _, err := client.CoreV1().Nodes().Patch(cmd.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
					return fmt.Errorf("uncordon node %q: %w", name, err)
				}
				fmt.Fprintf(streams.Out, "node/%s uncordoned\n", name)
			}
			return nil
		},
	}
}
