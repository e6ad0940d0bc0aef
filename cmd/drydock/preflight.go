package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
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

	f    *Factory
	rest *rest.Config
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
  skew-check    the target against the version-skew policy for apiservers and kubelets
  health-check  NotReady nodes, failing kube-system pods, unavailable APIServices, webhooks
                without endpoints
  access-check  the permissions these checks need (SelfSubjectAccessReview)

Nothing is written to the cluster. Without a kubeconfig (or with --files-only) only the files
given with --manifests are scanned, which suits CI on pull requests. The target defaults to the
cluster's next minor release.

Exit status: 0 clean, 3 when a finding reaches --fail-on, 1 on a runtime error, 2 on bad usage.`,
		Example: `  drydock preflight                                   # the cluster, for its next minor
  drydock preflight --target v1.38 -o junit > preflight.xml
  drydock preflight --files-only --target v1.38 --manifests deploy/ -o sarif > drydock.sarif
  drydock preflight --checks pdb-check,health-check --fail-on warning`,
		Args: cobra.NoArgs,
		RunE: runE(f, o, runF),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Target, "target", "", "the Kubernetes release to check for (default: the cluster's next minor)")
	fl.StringSliceVar(&o.Manifests, "manifests", nil, "manifest files or directories to scan (recursively; YAML, JSON, kind: List)")
	fl.BoolVar(&o.Helm, "helm", true, "scan the Helm v3 releases stored in the cluster")
	fl.BoolVar(&o.FilesOnly, "files-only", false, "scan only the --manifests files; never contact a cluster (CI on pull requests)")
	fl.StringVarP(&o.Output, "output", "o", "table", "output format: "+strings.Join(preflight.Formats, "|"))
	fl.StringVar(&o.FailOn, "fail-on", string(preflight.FailOnRemoved), "exit 3 when a finding reaches this level: "+strings.Join(preflight.FailOnValues, "|")+
		" (removed: errors such as removed APIs and budgets that block every drain; deprecated: and deprecated APIs; warning: and every warning)")
	fl.StringSliceVar(&o.Checks, "checks", nil, "run only these checks: "+strings.Join(preflight.Names(), ","))
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
		if _, err := os.Stat(m); err != nil {
			return exitcode.UsageError(fmt.Errorf("preflight: --manifests %s: %w", m, errors.Unwrap(err)))
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

// Run runs the checks and writes the report.
func (o *PreflightOptions) Run(ctx context.Context) error {
	var err error
	if o.rest, err = o.clusterConfig(); err != nil {
		return err
	}
	in, err := preflight.NewInput(o.rest)
	if err != nil {
		return err
	}
	in.Manifests, in.Helm = o.Manifests, o.Helm
	in.Access = preflight.AccessFor(o.Checks...) // access-check asks about what the chosen checks read
	if in.Cluster() {
		v, err := in.Kube.Discovery().ServerVersion()
		if err != nil {
			return fmt.Errorf("preflight: read the server version: %w", err)
		}
		in.ServerVersion = v.GitVersion
		if in.Server, err = apis.ParseRelease(v.GitVersion); err != nil {
			return fmt.Errorf("preflight: server version: %w", err)
		}
	}
	if in.Target, err = preflight.ResolveTarget(o.Target, in.Server); err != nil {
		return exitcode.UsageError(fmt.Errorf("preflight: %w", err))
	}
	if isTerminal(o.f.errOut()) {
		in.Progress = func(s string) { fmt.Fprintln(o.f.errOut(), "drydock: "+s) }
	}
	rep, err := preflight.Run(ctx, in, o.Checks)
	if err != nil {
		return err
	}
	if in.Cluster() {
		rep.Cluster = o.rest.Host
	}
	failOn := preflight.FailOn(o.FailOn)
	if err := preflight.Write(o.f.out(), o.Output, rep, failOn); err != nil {
		return err
	}
	notAllowed := 0
	for _, f := range rep.Findings() {
		if f.NotAllowed {
			notAllowed++
		}
	}
	if notAllowed > 0 {
		// Whatever --fail-on says: a report with holes cannot pass a gate, nor fail it for the cluster.
		return runbook.Forbidden(fmt.Errorf("preflight: %d %s could not be examined: the credentials lack permissions (the report says which): grant the read-only role in deploy/, or run with --as a user who has it", notAllowed, plural(notAllowed, "thing")))
	}
	if n := failOn.Failing(rep.Findings()); n > 0 {
		return exitcode.With(exitcode.Blocked, fmt.Errorf("preflight: %d %s at or above --fail-on %s", n, plural(n, "finding"), failOn))
	}
	return nil
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}
