package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/preflight"
	"github.com/drydock-dev/drydock/preflight/apis"
	"github.com/drydock-dev/drydock/runbook"
)

// PreflightOptions are the options of `drydock preflight`.
type PreflightOptions struct {
	Target    string
	Manifests []string
	Helm      bool
	FilesOnly bool
	Output    string
	FailOn    string
	Checks    []string
	// Strict fails (exit 6) on anything a check could not examine, not only on what it was not
	// allowed to.
	Strict bool
	// The fleet: several kubeconfig contexts in one report.
	Contexts       []string
	AllContexts    bool
	Parallel       int
	ClusterTimeout time.Duration

	f     *Factory
	rest  *rest.Config
	stdin []byte // the text of --manifests -
}

// NewPreflightCommand returns `drydock preflight`.
// runF, when not nil, replaces Run (tests).
func NewPreflightCommand(f *Factory, runF func(*PreflightOptions) error) *cobra.Command {
	o := &PreflightOptions{}
	cmd := &cobra.Command{
		Use:   "preflight [--target vX.Y] [--manifests PATH...]",
		Short: "Read-only checks before an upgrade: removed APIs, budgets, version skew, health, permissions",
		Long: `Run drydock's read-only pre-flight checks and report findings, each with the object and the fix:

  api-scan      deprecated and removed API versions: in stored objects (managedFields and kubectl's
                last-applied annotation), in Helm releases, in manifest files (--manifests), in
                requests clients made since the apiserver started, and in CRD versions
  pdb-check     PodDisruptionBudgets that block every drain, allow nothing now, select nothing,
                overlap, or are missing for replicated workloads
  traffic-check workloads behind Services that lose requests when drained: no readiness probe,
                no preStop delay, terminationGracePeriodSeconds 0, every replica on one node,
                a single replica
  skew-check    the target against the version-skew policy for apiservers and kubelets
  health-check  NotReady nodes, failing kube-system pods, unavailable APIServices, webhooks
                without endpoints
  config-check  flags and feature gates the target removes or locks, in the control plane's
                static pods, kubeadm's ClusterConfiguration and KubeletConfiguration, and each
                kubelet's running configuration (configz); kubeadm configuration APIs it no
                longer reads; volumes whose in-tree plugin it drops
  addon-check   the add-ons installed (CNI, CoreDNS, kube-proxy, ingress-nginx, cert-manager,
                metrics-server, Istio, Linkerd, Karpenter, Cluster Autoscaler, Argo CD, Velero;
                found by image, label or Helm chart) against the Kubernetes versions each
                supports, with the vendor's table as the source and when to upgrade it
  velero        Velero installed, its storage Available, a recent Completed backup
  access-check  the permissions these checks need (SelfSubjectAccessReview)

Nothing is written to the cluster. Without a kubeconfig (or with --files-only) only the files
given with --manifests are scanned, which suits CI on pull requests. The target defaults to the
cluster's next minor release.

A fleet: --contexts a,b,c (or --all-contexts) checks each kubeconfig context, --parallel at a
time, each within --cluster-timeout, and writes one report: a summary line per cluster, then each
cluster's findings (JSON and YAML keyed by context, JUnit a testsuite per cluster, SARIF a run per
cluster). Progress goes to stderr. A cluster that cannot be reached is in the report, not a reason
to stop the others.

What a check could not examine (not allowed, not found, timed out, unavailable) is listed apart,
under "could not check": never an upgrade finding, never a clean result. Not being allowed makes
the report incomplete (exit 6); --strict makes every reason do so.

Exit status: 0 clean, 3 when a finding reaches --fail-on, 6 when something could not be examined
(permissions; with --strict, any reason), 1 on a runtime error (for a fleet: a cluster that could
not be checked), 2 on bad usage. When several apply, a blocking finding is never masked: 3 first (a
finding at --fail-on in any cluster checked: the upgrade must wait for it, whatever else was
missed), then 1 (a cluster of a fleet not checked at all), then 6 (a report with holes cannot pass),
then 0. The message on stderr names every cluster of each kind, not only the worst.`,
		Example: `  drydock preflight                                   # the cluster, for its next minor
  drydock preflight --target v1.38 -o junit > preflight.xml
  drydock preflight --files-only --target v1.38 --manifests deploy/ -o sarif > drydock.sarif
  drydock preflight --checks pdb-check,health-check --fail-on warning
  drydock preflight --contexts prod-eu,prod-us,staging -o markdown >> "$GITHUB_STEP_SUMMARY"
  drydock preflight --all-contexts --target v1.38 -o junit > fleet.xml`,
		Args: cobra.NoArgs,
		RunE: runE(f, o, runF),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Target, "target", "", "the Kubernetes release to check for (default: the cluster's next minor)")
	fl.StringSliceVar(&o.Manifests, "manifests", nil, "manifest files or directories to scan (recursively; YAML, JSON, kind: List); - reads standard input (helm template ... | drydock preflight --manifests -)")
	fl.BoolVar(&o.Helm, "helm", true, "scan the Helm v3 releases stored in the cluster")
	fl.BoolVar(&o.FilesOnly, "files-only", false, "scan only the --manifests files; never contact a cluster (CI on pull requests)")
	fl.StringVarP(&o.Output, "output", "o", "table", "output format: "+strings.Join(preflight.Formats, "|"))
	fl.StringVar(&o.FailOn, "fail-on", string(preflight.FailOnRemoved), "exit 3 when a finding reaches this level: "+strings.Join(preflight.FailOnValues, "|")+
		" (removed: errors such as removed APIs and budgets that block every drain; deprecated: and deprecated APIs; warning: and every warning)")
	fl.StringSliceVar(&o.Checks, "checks", nil, "run only these checks: "+strings.Join(preflight.Names(), ","))
	fl.BoolVar(&o.Strict, "strict", false, "exit 6 when a check could not examine something for any reason (not found, timed out, unavailable), not only when it was not allowed to")
	fl.StringSliceVar(&o.Contexts, "contexts", nil, "check these kubeconfig contexts (a fleet) and write one report")
	fl.BoolVar(&o.AllContexts, "all-contexts", false, "check every context of the kubeconfig (a fleet) and write one report")
	fl.IntVar(&o.Parallel, "parallel", 4, "a fleet: how many clusters are checked at once")
	fl.DurationVar(&o.ClusterTimeout, "cluster-timeout", 5*time.Minute, "a fleet: how long one cluster's checks may take before it is reported as not checked")
	return cmd
}

// Validate checks the flags; it has no side effects.
func (o *PreflightOptions) Validate() error {
	if err := o.f.oldClusterFlag("preflight", "--files-only scans only the --manifests files"); err != nil {
		return err
	}
	if !slices.Contains(preflight.Formats, o.Output) {
		return exitcode.UsageError(fmt.Errorf("preflight: unknown output format %q: use one of %s", o.Output, strings.Join(preflight.Formats, ", ")))
	}
	if !slices.Contains(preflight.FailOnValues, o.FailOn) {
		return exitcode.UsageError(fmt.Errorf("preflight: --fail-on %q: use one of %s", o.FailOn, strings.Join(preflight.FailOnValues, ", ")))
	}
	for _, c := range o.Checks {
		if _, ok := preflight.Lookup(c); !ok {
			return exitcode.UsageError(fmt.Errorf("preflight: no check %q: the checks are %s", c, strings.Join(preflight.Names(), ", ")))
		}
	}
	if o.Target != "" {
		if _, err := apis.ParseRelease(o.Target); err != nil {
			return exitcode.UsageError(fmt.Errorf("preflight: --target: %w", err))
		}
	}
	for _, m := range o.Manifests {
		if m == "-" {
			continue // standard input, read in Run
		}
		if _, err := os.Stat(m); err != nil {
			return exitcode.UsageError(fmt.Errorf("preflight: --manifests %s: %w", m, errors.Unwrap(err)))
		}
	}
	if o.fleet() {
		switch {
		case len(o.Contexts) > 0 && o.AllContexts:
			return exitcode.UsageError(errors.New("preflight: --contexts and --all-contexts: give one"))
		case o.FilesOnly:
			return exitcode.UsageError(errors.New("preflight: --files-only never contacts a cluster: drop it, or drop --contexts/--all-contexts"))
		case o.f.KubeFlags != nil && o.f.KubeFlags.Context != nil && *o.f.KubeFlags.Context != "":
			return exitcode.UsageError(errors.New("preflight: --context names one cluster; --contexts names the fleet's: give one of them"))
		case o.Parallel < 1:
			return exitcode.UsageError(fmt.Errorf("preflight: --parallel %d: at least 1", o.Parallel))
		case o.ClusterTimeout <= 0:
			return exitcode.UsageError(fmt.Errorf("preflight: --cluster-timeout %s: must be positive", o.ClusterTimeout))
		}
	}
	if o.FilesOnly && len(o.Manifests) == 0 {
		return exitcode.UsageError(errors.New("preflight: --files-only leaves nothing to check: give --manifests"))
	}
	return nil
}

// Complete keeps the factory.
func (o *PreflightOptions) Complete(f *Factory, _ *cobra.Command, _ []string) error {
	o.f = f
	return nil
}

// clusterConfig loads the kubeconfig; nil without one when --manifests gives files to scan (CI on
// pull requests has no cluster, and then the files are what there is to scan).
func (o *PreflightOptions) clusterConfig() (*rest.Config, error) {
	if o.FilesOnly {
		return nil, nil
	}
	if !o.f.HasKubeconfig() {
		if len(o.Manifests) > 0 {
			fmt.Fprintln(o.f.errOut(), "drydock: no kubeconfig: scanning the --manifests files only")
			return nil, nil
		}
		return nil, exitcode.UsageError(errors.New("preflight: no kubeconfig: pass --kubeconfig or set KUBECONFIG, or give --manifests to scan files only"))
	}
	cfg, err := o.f.RESTConfig()
	if err != nil {
		return nil, fmt.Errorf("preflight: %w (or --files-only with --manifests to scan files only)", err)
	}
	return cfg, nil
}

func (o *PreflightOptions) fleet() bool { return len(o.Contexts) > 0 || o.AllContexts }

// readStdin reads standard input once when --manifests names it ("-"): every cluster of a fleet
// scans the same text.
func (o *PreflightOptions) readStdin() error {
	if !slices.Contains(o.Manifests, "-") || o.stdin != nil {
		return nil
	}
	in := o.f.IOStreams.In
	if in == nil {
		in = strings.NewReader("")
	}
	b, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("preflight: --manifests -: read standard input: %w", err)
	}
	o.stdin = b
	if o.stdin == nil {
		o.stdin = []byte{}
	}
	return nil
}

// Run runs the checks and writes the report.
func (o *PreflightOptions) Run(ctx context.Context) error {
	if err := o.readStdin(); err != nil {
		return err
	}
	if o.fleet() {
		return o.runFleet(ctx)
	}
	var err error
	if o.rest, err = o.clusterConfig(); err != nil {
		return err
	}
	var progress func(string)
	if isTerminal(o.f.errOut()) {
		progress = func(s string) { fmt.Fprintln(o.f.errOut(), "drydock: "+s) }
	}
	rep, err := o.report(ctx, o.rest, progress)
	if err != nil {
		return err
	}
	failOn := preflight.FailOn(o.FailOn)
	if err := preflight.Write(o.f.out(), o.Output, rep, failOn); err != nil {
		return err
	}
	return o.verdict(rep, failOn)
}

// The exit status of a pre-flight, one cluster or a fleet, in an order that never masks a blocking
// finding: 3 when a finding reaches --fail-on (in any cluster checked), else 1 when a cluster of a
// fleet could not be checked at all, else 6 when something could not be examined (not allowed; with
// --strict, for any reason), else 0. A blocking finding is a definite answer, whatever else was
// missed: the upgrade must wait for it, and a pipeline gating on 3 sees it. What could not be
// checked or examined is said in the same message, so nothing is hidden behind the 3.

// verdict is the exit status of one cluster's report.
func (o *PreflightOptions) verdict(rep *preflight.Report, failOn preflight.FailOn) error {
	fs := rep.Findings()
	notAllowed := 0
	for _, f := range fs {
		if f.NotAllowed {
			notAllowed++
		}
	}
	var incomplete error
	switch n := len(preflight.CouldNot(fs)); {
	case notAllowed > 0:
		// Whatever --fail-on says: a report with holes cannot pass a gate.
		incomplete = runbook.Forbidden(fmt.Errorf("%d %s could not be examined: the credentials lack permissions (the report says which): grant the read-only role in deploy/, or run with --as a user who has it", notAllowed, plural(notAllowed, "thing")))
	case n > 0 && o.Strict:
		incomplete = exitcode.With(exitcode.Forbidden, fmt.Errorf("%d %s could not be checked (the report's \"could not check\" list says why) and --strict is set", n, plural(n, "thing")))
	}
	if n := failOn.Failing(fs); n > 0 {
		msg := fmt.Sprintf("preflight: %d %s at or above --fail-on %s", n, plural(n, "finding"), failOn)
		if incomplete != nil {
			msg += "; and " + incomplete.Error()
		}
		return exitcode.With(exitcode.Blocked, errors.New(msg))
	}
	if incomplete != nil {
		return fmt.Errorf("preflight: %w", incomplete)
	}
	return nil
}

// report runs the checks against one cluster (cfg; nil: the files only).
func (o *PreflightOptions) report(ctx context.Context, cfg *rest.Config, progress func(string)) (*preflight.Report, error) {
	in, err := preflight.NewInput(cfg)
	if err != nil {
		return nil, err
	}
	in.Manifests, in.Stdin, in.Helm = o.Manifests, o.stdin, o.Helm
	in.Access = preflight.AccessFor(o.Checks...) // access-check asks about what the chosen checks read
	if in.Cluster() {
		v, err := in.Kube.Discovery().ServerVersion()
		if err != nil {
			return nil, fmt.Errorf("preflight: read the server version: %w", err)
		}
		in.ServerVersion = v.GitVersion
		if in.Server, err = apis.ParseRelease(v.GitVersion); err != nil {
			return nil, fmt.Errorf("preflight: server version: %w", err)
		}
	}
	if in.Target, err = preflight.ResolveTarget(o.Target, in.Server); err != nil {
		return nil, exitcode.UsageError(fmt.Errorf("preflight: %w", err))
	}
	in.Progress = progress
	rep, err := preflight.Run(ctx, in, o.Checks)
	if err != nil {
		return nil, err
	}
	if in.Cluster() {
		rep.Cluster = cfg.Host
	}
	return rep, nil
}

// runFleet checks each context, --parallel at a time, each within --cluster-timeout, and writes
// one report. A cluster that cannot be checked is a line of the report; the exit status is
// fleetVerdict's (3: findings at --fail-on, before 1: not checked, before 6: incomplete).
func (o *PreflightOptions) runFleet(ctx context.Context) error {
	names := o.Contexts
	if o.AllContexts {
		var err error
		if names, err = o.f.KubeContexts(); err != nil {
			return fmt.Errorf("preflight: %w", err)
		}
		if len(names) == 0 {
			return exitcode.UsageError(errors.New("preflight: --all-contexts: the kubeconfig has no context"))
		}
	}
	failOn := preflight.FailOn(o.FailOn)
	fleet := &preflight.FleetReport{SchemaVersion: preflight.SchemaVersion, Clusters: make([]preflight.ClusterReport, len(names))}
	errOut := o.f.errOut()
	var mu sync.Mutex
	fmt.Fprintf(errOut, "drydock: pre-flight of %d cluster(s), %d at a time, each within %s\n", len(names), min(o.Parallel, len(names)), o.ClusterTimeout)
	g := new(errgroup.Group)
	g.SetLimit(o.Parallel)
	for i, name := range names {
		g.Go(func() error {
			start := time.Now()
			cctx, cancel := context.WithTimeout(ctx, o.ClusterTimeout)
			defer cancel()
			c := preflight.ClusterReport{Context: name}
			cfg, err := o.f.RESTConfigForContext(name)
			if err == nil {
				c.Report, err = o.report(cctx, cfg, nil)
			}
			if err != nil {
				c.Report = nil
				c.Error = err.Error()
				if cctx.Err() != nil && ctx.Err() == nil {
					c.Error = fmt.Sprintf("not done within --cluster-timeout %s: %v", o.ClusterTimeout, err)
				}
			}
			fleet.Clusters[i] = c
			mu.Lock()
			fmt.Fprintf(errOut, "drydock: %s: %s (%s)\n", name, c.Verdict(failOn), time.Since(start).Round(100*time.Millisecond))
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := preflight.WriteFleet(o.f.out(), o.Output, fleet, failOn); err != nil {
		return err
	}
	return o.fleetVerdict(fleet.Clusters, failOn)
}

// fleetVerdict is a fleet's exit status, in the order of verdict: 3 when any cluster checked has a
// finding at --fail-on, else 1 when a cluster could not be checked, else 6 when one could not be
// examined in full. The message names the clusters of every kind found, not only the worst.
func (o *PreflightOptions) fleetVerdict(clusters []preflight.ClusterReport, failOn preflight.FailOn) error {
	var notChecked, incomplete, failing []string
	for _, c := range clusters {
		if !c.Checked() {
			notChecked = append(notChecked, c.Context)
			continue
		}
		switch exitcode.For(o.verdict(c.Report, failOn)) {
		case exitcode.OK:
		case exitcode.Blocked:
			failing = append(failing, c.Context)
		default:
			incomplete = append(incomplete, c.Context)
		}
	}
	var parts []string
	what := func(names []string, s, then string) {
		if len(names) > 0 {
			parts = append(parts, fmt.Sprintf("%d of %d cluster(s) %s (%s)%s", len(names), len(clusters), s, strings.Join(names, ", "), then))
		}
	}
	what(failing, "with findings at or above --fail-on "+string(failOn), "")
	what(notChecked, "could not be checked", ": the report says why")
	what(incomplete, "could not be examined in full", ": the report says what and why (missing permissions: grant the read-only role in deploy/)")
	err := errors.New("preflight: " + strings.Join(parts, "; "))
	switch {
	case len(failing) > 0:
		return exitcode.With(exitcode.Blocked, err)
	case len(notChecked) > 0:
		return err
	case len(incomplete) > 0:
		return runbook.Forbidden(err)
	}
	return nil
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}
