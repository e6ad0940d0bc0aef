package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/preflight"
	"github.com/drydock-dev/drydock/preflight/apis"
)

// PreflightOptions are the options of `drydock preflight`.
type PreflightOptions struct {
	kube *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	Target    string
	Manifests []string
	Helm      bool
	Cluster   bool
	Output    string
	FailOn    string
	Checks    []string

	rest *rest.Config
}

// NewPreflightCommand returns `drydock preflight`.
func NewPreflightCommand(kube *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &PreflightOptions{kube: kube, IOStreams: streams}
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

Nothing is written to the cluster. Without a kubeconfig (or with --cluster=false) only the files
given with --manifests are scanned, which suits CI on pull requests. The target defaults to the
cluster's next minor release.

Exit status: 0 clean, 3 when a finding reaches --fail-on, 1 on a runtime error, 2 on bad usage.`,
		Example: `  drydock preflight                                   # the cluster, for its next minor
  drydock preflight --target v1.38 -o junit > preflight.xml
  drydock preflight --cluster=false --target v1.38 --manifests deploy/ -o sarif > drydock.sarif
  drydock preflight --checks pdb-check,health-check --fail-on warning`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Target, "target", "", "the Kubernetes release to check for (default: the cluster's next minor)")
	f.StringSliceVar(&o.Manifests, "manifests", nil, "manifest files or directories to scan (recursively; YAML, JSON, kind: List)")
	f.BoolVar(&o.Helm, "helm", true, "scan the Helm v3 releases stored in the cluster")
	f.BoolVar(&o.Cluster, "cluster", true, "look at the cluster; --cluster=false scans only --manifests")
	f.StringVarP(&o.Output, "output", "o", "table", "output format: "+strings.Join(preflight.Formats, "|"))
	f.StringVar(&o.FailOn, "fail-on", string(preflight.FailOnRemoved), "exit 3 when a finding reaches this level: "+strings.Join(preflight.FailOnValues, "|")+
		" (removed: errors such as removed APIs and budgets that block every drain; deprecated: and deprecated APIs; warning: and every warning)")
	f.StringSliceVar(&o.Checks, "checks", nil, "run only these checks: "+strings.Join(preflight.Names(), ","))
	return cmd
}

// Validate checks the flags; it has no side effects.
func (o *PreflightOptions) Validate() error {
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
	if !o.Cluster && len(o.Manifests) == 0 {
		return exitcode.UsageError(errors.New("preflight: --cluster=false leaves nothing to check: give --manifests"))
	}
	return nil
}

// Complete loads the kubeconfig. With --manifests and no kubeconfig at all, only files are scanned.
func (o *PreflightOptions) Complete() error {
	if !o.Cluster {
		return nil
	}
	// cli-runtime falls back to localhost:8080 when there is no kubeconfig at all; CI on pull
	// requests has none, and then the files are what there is to scan.
	raw, err := o.kube.ToRawKubeConfigLoader().RawConfig()
	noConfig := err == nil && len(raw.Contexts) == 0 && (o.kube.APIServer == nil || *o.kube.APIServer == "")
	if noConfig || clientcmd.IsEmptyConfig(err) {
		if len(o.Manifests) > 0 {
			fmt.Fprintln(o.ErrOut, "drydock: no kubeconfig: scanning the --manifests files only")
			return nil
		}
		return exitcode.UsageError(errors.New("preflight: no kubeconfig: pass --kubeconfig or set KUBECONFIG, or give --manifests to scan files only"))
	}
	cfg, err := o.kube.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("preflight: load kubeconfig: %w (pass --kubeconfig, or --cluster=false with --manifests to scan files only)", err)
	}
	o.rest = kube.Resilient(cfg)
	return nil
}

// Run runs the checks and writes the report.
func (o *PreflightOptions) Run(ctx context.Context) error {
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
	if isTerminal(o.ErrOut) {
		in.Progress = func(s string) { fmt.Fprintln(o.ErrOut, "drydock: "+s) }
	}
	rep, err := preflight.Run(ctx, in, o.Checks)
	if err != nil {
		return err
	}
	if in.Cluster() {
		rep.Cluster = o.rest.Host
	}
	failOn := preflight.FailOn(o.FailOn)
	if err := preflight.Write(o.Out, o.Output, rep, failOn); err != nil {
		return err
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
