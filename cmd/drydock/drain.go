package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
	"github.com/drydock-dev/drydock/steps/drain"
)

// DrainOptions are the options of `drydock drain`.
type DrainOptions struct {
	RunFlags
	Nodes    []string
	Selector string
	Timeout  time.Duration
	// DryRun: --dry-run=client (or bare --dry-run, as kubectl takes it): print the plan, change nothing.
	DryRun bool
	// DryRunStrategy is --dry-run as kubectl reads it: none, client or server.
	DryRunStrategy cmdutil.DryRunStrategy
	// Settings are the drain step's settings the flags set.
	Settings drain.Step
	// RelaxMax and RelaxExpiry are --allow-budget-relax and --relax-expiry (0: never relax).
	RelaxMax    int
	RelaxExpiry time.Duration
	// Kubectl holds kubectl drain's flags that drydock takes so that a kubectl drain command line
	// works here too (see kubectlFlags).
	Kubectl KubectlDrainFlags

	f *Factory
	// warnings: a kubectl flag given that drydock does not need, said once on stderr when it runs.
	warnings []string
}

// KubectlDrainFlags are kubectl drain's flags that drydock had no flag for.
type KubectlDrainFlags struct {
	// GracePeriod is --grace-period: each pod's termination grace period, in seconds, for its
	// eviction (negative: the pod's own, as kubectl).
	GracePeriod int
	// IgnoreDaemonSets is --ignore-daemonsets: drydock always leaves DaemonSet pods.
	IgnoreDaemonSets bool
	// PodSelector is --pod-selector, refused: drydock drains every pod it can move.
	PodSelector string
	// SkipWaitForDeleteTimeout is --skip-wait-for-delete-timeout, refused but for 0: drydock waits
	// until every evicted pod is gone.
	SkipWaitForDeleteTimeout int
	// set: the flags given on the command line (by name).
	set map[string]bool
}

// NewDrainCommand returns `drydock drain`. runF, when not nil, replaces Run (tests).
func NewDrainCommand(f *Factory, runF func(*DrainOptions) error) *cobra.Command {
	o := &DrainOptions{}
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
unless --keep-cordoned. A drain is a one-step run: same journal, lock and exit codes as 'drydock run'.
Each eviction is journaled before it is sent: a state directory that fills up stops the drain before
its next eviction, and the failure rule is said node by node. A node deleted while it drains is said
as deleted at once (not drained); an evicted pod that finalizers hold is named with them; a budget
tightened to allow nothing (maxUnavailable: 0) fails the drain after --stall-timeout.

The Service guard: a pod that is the last ready endpoint of a Service waits until another endpoint
of that Service has been ready for --endpoint-settle (kube-proxy routes to it by then), with or
without a budget; the plan lists the Services each pod serves. A Deployment's only pod behind a
Service is replaced first by a rollout restart (when its strategy surges), any other only pod
behind a Service blocks the plan; --disable-service-guard turns the guard off.

kubectl drain's command line works: --dry-run[=client], --force, --delete-emptydir-data,
--disable-eviction, --grace-period, --timeout and -l mean what they mean to kubectl (--force only lets
pods without a controller be evicted: still by eviction, within their budgets). --ignore-daemonsets is
not needed (DaemonSet pods always stay) and says so; --dry-run=server, --pod-selector and
--skip-wait-for-delete-timeout are refused, each saying what drydock does instead.`,
		Example: `  drydock drain node-7 --dry-run           # what would move, what blocks (also --dry-run=client)
  drydock drain node-7 --dry-run -o yaml   # the plan as an object (also json, jsonpath=...)
  drydock drain -l drydock.dev/group=batch --timeout 20m
  drydock drain node-7 -o json               # one JSON event per line`,
		RunE: runE(f, o, runF),
	}
	o.RunFlags.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = "text or json (events); with --dry-run the plan: text, json, yaml, jsonpath=..."
	cmd.Flags().StringVarP(&o.Selector, "selector", "l", "", "drain the nodes matching this label selector")
	cmdutil.AddDryRunFlag(cmd)                           // kubectl's --dry-run: none, client (also bare --dry-run), server
	cmd.Flags().Lookup("dry-run").NoOptDefVal = "client" // kubectl's "unchanged", which GetDryRunStrategy reads as client too
	cmd.Flags().Lookup("dry-run").Usage = `"client" (or bare --dry-run): print the drain plan and its blockers, change nothing (exit 3 when something blocks); "none": drain; "server" is refused (the apiserver judges a dry-run eviction pod by pod, without counting the budget down)`
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 15*time.Minute, "give up after this long, reporting what is left and why")
	cmd.Flags().BoolVar(&o.Settings.DeleteEmptyDirData, "delete-emptydir-data", false, "evict pods with emptyDir volumes (their data is lost)")
	cmd.Flags().BoolVar(&o.Settings.Force, "force", false, "evict pods that no controller will recreate (still by eviction: budgets are honoured; only --disable-eviction goes past them)")
	cmd.Flags().BoolVar(&o.Settings.AllowLocalVolumes, "allow-local-volumes", false, "evict pods bound to local PersistentVolumes")
	cmd.Flags().BoolVar(&o.Settings.DisableEviction, "disable-eviction", false, "DELETE pods instead of evicting them: PodDisruptionBudgets are not honoured")
	cmd.Flags().BoolVar(&o.Settings.KeepCordoned, "keep-cordoned", false, "on failure, leave the nodes drydock cordoned cordoned")
	cmd.Flags().IntVar(&o.Settings.Concurrency, "concurrency", 10, "evictions in flight per node")
	cmd.Flags().DurationVar(&o.Settings.NodeTimeout.Duration, "node-timeout", 0, "give up on one node after this long (default: only --timeout)")
	cmd.Flags().IntVar(&o.RelaxMax, "allow-budget-relax", 0, "when a budget stalls the drain (--stall-timeout), relax it this many times per node (one more disruption each, or AlwaysAllow for a pod that is not Ready) and restore it after the node")
	cmd.Flags().DurationVar(&o.RelaxExpiry, "relax-expiry", 30*time.Minute, "a relaxed budget is restored this long after the change at the latest, even if drydock dies (the next drydock command restores it)")
	cmd.Flags().DurationVar(&o.Settings.StallTimeout.Duration, "stall-timeout", 10*time.Minute, "fail early, saying why, when a budget has allowed no eviction this long while its unhealthy pods cannot start")
	cmd.Flags().BoolVar(&o.Settings.DisableServiceGuard, "disable-service-guard", false, "let a pod go even when it is the last ready endpoint of a Service (by default it waits until another endpoint has been ready for --endpoint-settle; a Deployment's only pod behind a Service is replaced first by a rollout restart)")
	cmd.Flags().DurationVar(&o.Settings.EndpointSettle.Duration, "endpoint-settle", 5*time.Second, "how long a new endpoint must be ready before the Service guard counts it: the time kube-proxy needs to route to it")
	cmd.Flags().StringVar(&o.Settings.MaxNodeDrainTime, "max-node-drain-time", "", "flag in the plan a node whose forecast drain takes longer: a duration, or the platform's bound: eks (15m), aks (30m), gke (1h)")
	o.Kubectl.AddFlags(cmd)
	return cmd
}

// AddFlags adds kubectl drain's flags that drydock had no flag for.
func (k *KubectlDrainFlags) AddFlags(cmd *cobra.Command) {
	cmd.Flags().IntVar(&k.GracePeriod, "grace-period", -1, "seconds each evicted pod is given to terminate (negative: the pod's own terminationGracePeriodSeconds)")
	cmd.Flags().BoolVar(&k.IgnoreDaemonSets, "ignore-daemonsets", false, "accepted for kubectl's command line and not needed: drydock always leaves DaemonSet pods on the node")
	cmd.Flags().StringVar(&k.PodSelector, "pod-selector", "", "refused: drydock drains every pod it can move from the node")
	cmd.Flags().IntVar(&k.SkipWaitForDeleteTimeout, "skip-wait-for-delete-timeout", 0, "refused but for 0: drydock waits until every evicted pod is gone (up to --node-timeout or --timeout)")
}

// Complete takes the node names, and --dry-run as kubectl reads it (an unknown value is a usage error).
func (o *DrainOptions) Complete(f *Factory, cmd *cobra.Command, args []string) error {
	o.f, o.Nodes = f, args
	o.RunFlags.complete(cmd)
	o.Settings.Nodes, o.Settings.Selector = o.Nodes, o.Selector
	if o.RelaxMax > 0 {
		o.Settings.AllowBudgetRelax = &drain.BudgetRelax{Max: o.RelaxMax, Expiry: runbook.Duration{Duration: o.RelaxExpiry}}
	}
	s, err := cmdutil.GetDryRunStrategy(cmd)
	if err != nil {
		return exitcode.UsageError(fmt.Errorf("drain: --dry-run=%s is not none, client or server: --dry-run (or --dry-run=client) prints the plan and changes nothing; leave it out to drain", cmd.Flag("dry-run").Value))
	}
	o.DryRunStrategy, o.DryRun = s, s == cmdutil.DryRunClient
	o.Kubectl.set = map[string]bool{}
	for _, name := range []string{"grace-period", "ignore-daemonsets", "skip-wait-for-delete-timeout"} {
		o.Kubectl.set[name] = cmd.Flags().Changed(name)
	}
	o.warnings = o.Kubectl.apply(&o.Settings)
	return nil
}

// apply sets the drain settings kubectl's flags mean to drydock, and returns what to say about a
// flag given that drydock does not need.
func (k *KubectlDrainFlags) apply(s *drain.Step) []string {
	var warn []string
	if k.set["grace-period"] {
		if k.GracePeriod < 0 {
			warn = append(warn, "--grace-period with a negative value is not needed: each pod gets its own terminationGracePeriodSeconds by default")
		} else {
			g := int64(k.GracePeriod)
			s.GracePeriodSeconds = &g
		}
	}
	if k.set["ignore-daemonsets"] && k.IgnoreDaemonSets {
		warn = append(warn, "--ignore-daemonsets is not needed: drydock always leaves DaemonSet pods on the node (the plan lists them as skipped)")
	}
	if k.set["skip-wait-for-delete-timeout"] && k.SkipWaitForDeleteTimeout == 0 {
		warn = append(warn, "--skip-wait-for-delete-timeout=0 is not needed: drydock always waits until every evicted pod is gone")
	}
	return warn
}

// validate refuses kubectl's flags that cannot mean anything to drydock, saying what it does instead.
func (k *KubectlDrainFlags) validate() error {
	switch {
	case k.set["ignore-daemonsets"] && !k.IgnoreDaemonSets:
		return fmt.Errorf("--ignore-daemonsets=false is not supported: drydock always leaves DaemonSet pods on the node (the plan lists them as skipped) and drains the rest; leave the flag out")
	case k.PodSelector != "":
		return fmt.Errorf("--pod-selector is not supported: drydock drains every pod it can move (a node is drained to be upgraded or removed, which stops any pod left on it); DaemonSet, mirror and completed pods stay by design. To move some pods only, evict them with kubectl")
	case k.SkipWaitForDeleteTimeout != 0:
		return fmt.Errorf("--skip-wait-for-delete-timeout is not supported: drydock waits until every evicted pod is gone, up to --node-timeout or --timeout, then names each pod left and why; for a pod stuck terminating on a node that is down, delete it yourself (kubectl delete pod --force --grace-period=0)")
	}
	return nil
}

// Validate checks the flags; no side effects.
func (o *DrainOptions) Validate() error {
	if o.DryRunStrategy == cmdutil.DryRunServer {
		// A server-side dry run of each eviction answers for that pod alone: the budget is not
		// counted down, so it would pass pods that the real drain waits on. drydock's plan counts.
		return exitcode.UsageError(fmt.Errorf("drain: --dry-run=server is not supported: the apiserver answers a dry-run eviction for each pod alone (the budget is not counted down), so it would pass pods the drain waits on; use --dry-run (client), whose plan checks every pod against its budgets, placement and filters and changes nothing"))
	}
	if err := o.Kubectl.validate(); err != nil {
		return exitcode.UsageError(fmt.Errorf("drain: %w", err))
	}
	if o.DryRun {
		if err := o.planPrint().Validate(); err != nil {
			return fmt.Errorf("drain --dry-run: %w", err)
		}
	} else if err := o.RunFlags.Validate(); err != nil {
		if o.Output != "text" && o.Output != "json" && o.planPrint().Validate() == nil {
			return exitcode.UsageError(fmt.Errorf("drain: -o %s prints a plan: use it with --dry-run", o.Output))
		}
		return err
	}
	switch {
	case len(o.Nodes) == 0 && o.Selector == "":
		return exitcode.UsageError(fmt.Errorf("drain: name the nodes, or give -l SELECTOR"))
	case len(o.Nodes) > 0 && o.Selector != "":
		return exitcode.UsageError(fmt.Errorf("drain: give node names or -l SELECTOR, not both"))
	case o.Timeout < time.Second:
		return exitcode.UsageError(fmt.Errorf("drain: --timeout must be at least 1s (kubectl's 0, no limit, is not taken: give a long one such as 24h)"))
	case o.Settings.Concurrency < 1:
		return exitcode.UsageError(fmt.Errorf("drain: --concurrency must be at least 1"))
	case o.RelaxMax < 0:
		return exitcode.UsageError(fmt.Errorf("drain: --allow-budget-relax must be 0 (never) or more"))
	case o.RelaxMax > 0 && o.RelaxExpiry < time.Second:
		return exitcode.UsageError(fmt.Errorf("drain: --relax-expiry must be at least 1s"))
	case o.Settings.StallTimeout.Duration != 0 && o.Settings.StallTimeout.Duration < time.Second:
		return exitcode.UsageError(fmt.Errorf("drain: --stall-timeout must be at least 1s"))
	case o.Settings.EndpointSettle.Duration <= 0:
		return exitcode.UsageError(fmt.Errorf("drain: --endpoint-settle must be positive (for example 5s, the default; 1ms counts a ready endpoint almost at once)"))
	}
	if errs := o.Settings.Options.Validate(""); len(errs) > 0 {
		return exitcode.UsageError(fmt.Errorf("drain: --max-node-drain-time: %s", errs[0].Message))
	}
	return nil
}

// planPrint prints the --dry-run plan with the -o given (the same flag as the events' -o).
func (o *DrainOptions) planPrint() *ObjectPrintFlags {
	p := newObjectPrintFlags()
	*p.OutputFormat = o.Output
	return p
}

// Run prints the plan (--dry-run) or runs the drain as a one-step runbook.
func (o *DrainOptions) Run(ctx context.Context) error {
	for _, w := range o.warnings {
		fmt.Fprintf(o.f.errOut(), "drydock: warning: drain: %s\n", w)
	}
	if o.DryRun {
		return o.dryRun(ctx)
	}
	r, err := newRunner(o.f, &o.RunFlags)
	if err != nil {
		return err
	}
	rb, err := o.runbook(r)
	if err != nil {
		return err
	}
	r.engine.Kind = "drain"
	var st *runbook.RunState
	return r.execute(ctx, "drain", func(ctx context.Context) error {
		st, err = r.engine.Start(ctx, rb)
		return err
	}, func() *runbook.RunState { return st })
}

// runbook is the one-step runbook a drain runs, built as a Go value: the cluster's own version is
// its target (a drain upgrades nothing), --timeout the step's.
func (o *DrainOptions) runbook(r *runner) (*runbook.Runbook, error) {
	v, err := r.client.Discovery().ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("drain: get server version: %w", err)
	}
	target := v.GitVersion
	if i := strings.IndexAny(target, "-+"); i >= 0 {
		target = target[:i]
	}
	settings := o.Settings
	rb, err := runbook.Build("drydock drain (command line)", runbook.Runbook{
		Metadata: runbook.Metadata{Name: "drain"},
		Spec: runbook.Spec{
			TargetVersion: target,
			Defaults:      runbook.Defaults{Timeout: runbook.Duration{Duration: o.Timeout}},
			Steps:         []runbook.StepSpec{{Name: "drain", Step: &settings}},
		},
	}, steps.Registry)
	if err != nil {
		return nil, runbook.Invalid(fmt.Errorf("drain: %w", err))
	}
	return rb, nil
}

// dryRun prints the plan and exits 3 when something blocks.
func (o *DrainOptions) dryRun(ctx context.Context) error {
	client, err := o.f.KubeClient()
	if err != nil {
		return err
	}
	nodes, err := o.Settings.ResolveNodes(ctx, client)
	if err != nil {
		return err
	}
	plan, err := drain.NewPlanner(client, o.Settings.Options, "").Plan(ctx, nodes)
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	if p := o.planPrint(); !p.Text() {
		if err := p.Print(&DrainPlan{TypeMeta: typeMeta(KindDrainPlan), Plan: plan}, o.f.out()); err != nil {
			return err
		}
	} else {
		for _, l := range drain.DescribePlan(plan) {
			fmt.Fprintln(o.f.out(), l)
		}
	}
	if plan.Fatal() {
		return exitcode.With(exitcode.Blocked, fmt.Errorf("drain %s: blocked: %d blocker(s) above", strings.Join(nodes, ", "), countFatal(plan)))
	}
	return nil
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

// sayRepairError says on stderr what the repair of expired budget relaxations could not look at
// or restore (a user who may not list budgets cluster-wide, a refused patch), each with the command
// that finishes it. It never stops the command.
func sayRepairError(f *Factory, err error) {
	var re *drain.RepairError
	if !errors.As(err, &re) {
		if err != nil {
			fmt.Fprintf(f.errOut(), "drydock: warning: %v\n", err)
		}
		return
	}
	for _, w := range re.Findings {
		fmt.Fprintf(f.errOut(), "drydock: %s: %s: %s (fix: %s)\n", strings.ToUpper(string(w.Severity)), w.Object, w.Message, w.Hint)
	}
}
