// Package preflight holds the read-only check step kinds: api-scan, pdb-check, traffic-check, skew-check,
// health-check, access-check, and preflight, which runs them all. They run the checks of the
// top-level preflight package, send each finding as an event, and fail the step (exit 3) when a
// finding reaches failOn. The six kinds share this one package because they are one thing with
// different selections.
//
//   - name: preflight
//     type: preflight
//     with: {failOn: removed, manifests: [deploy/]}
package preflight

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/drydock-dev/drydock/preflight"
	"github.com/drydock-dev/drydock/preflight/apis"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/velero"
)

// Kinds registers the step kinds.
var (
	APIScanKind   = runbook.Kind{Name: "api-scan", Description: "scan for deprecated and removed APIs before the target version", Phase: runbook.PhaseCheck, New: func() runbook.Step { return &APIScan{} }}
	PDBKind       = checkKind("pdb-check", "pdb-check", "find PodDisruptionBudgets that block drains or protect nothing")
	TrafficKind   = checkKind("traffic-check", "traffic-check", "find workloads behind Services that lose requests when their pods are drained")
	SkewKind      = checkKind("skew-check", "skew-check", "hold the target against the version-skew policy")
	HealthKind    = checkKind("health-check", "health-check", "find NotReady nodes, failing kube-system pods, unavailable APIServices and webhooks")
	ConfigKind    = checkKind("config-check", "config-check", "find flags, feature gates, kubeadm configuration and volume plugins the target breaks")
	AddonKind     = checkKind("addon-check", "addon-check", "hold the installed add-ons against the Kubernetes versions each supports")
	AccessKind    = checkKind("access-check", "access-check", "ask whether the user may do everything the runbook needs")
	VeleroKind    = checkKind("velero-check", "velero", "check that Velero is installed, its storage is Available and a backup is recent")
	PreflightKind = runbook.Kind{Name: "preflight", Description: "run every pre-flight check", Phase: runbook.PhaseCheck, New: func() runbook.Step { return &All{} }}
)

func checkKind(name, check, desc string) runbook.Kind {
	return runbook.Kind{Name: name, Description: desc, Phase: runbook.PhaseCheck, New: func() runbook.Step { return &Check{kind: name, check: check} }}
}

// Common are the settings every check step has.
type Common struct {
	// FailOn is the level at which findings fail the step: removed (error findings), deprecated
	// (and deprecated APIs), warning (and every warning), never (report only).
	FailOn string `json:"failOn,omitempty" jsonschema:"enum=removed,enum=deprecated,enum=warning,enum=never,default=removed"`
}

// Scan are the api-scan settings.
type Scan struct {
	// Manifests are files or directories to scan too.
	Manifests []string `json:"manifests,omitempty"`
	// Helm scans Helm releases stored in the cluster (default true).
	Helm *bool `json:"helm,omitempty"`
}

// APIScan is the api-scan step.
type APIScan struct {
	Common
	Scan
}

// Check is pdb-check, traffic-check, skew-check, health-check, config-check, addon-check, velero-check or access-check.
type Check struct {
	Common
	kind, check string
}

// All is the preflight step: every check.
type All struct {
	Common
	Scan
	// Skip leaves these checks out.
	Skip []string `json:"skip,omitempty" jsonschema:"enum=api-scan,enum=pdb-check,enum=traffic-check,enum=skew-check,enum=health-check,enum=config-check,enum=addon-check,enum=velero,enum=access-check"`
}

func (*APIScan) Name() string { return APIScanKind.Name }
func (c *Check) Name() string { return c.kind }
func (*All) Name() string     { return PreflightKind.Name }

func (c Common) failOn() preflight.FailOn {
	if c.FailOn == "" {
		return preflight.FailOnRemoved
	}
	return preflight.FailOn(c.FailOn)
}

func (s Scan) helm() bool { return s.Helm == nil || *s.Helm }

// Access says what the checks read.
func (s *APIScan) Access() []runbook.Access { return preflight.AccessFor("api-scan") }
func (c *Check) Access() []runbook.Access   { return preflight.AccessFor(c.check) }
func (s *All) Access() []runbook.Access     { return preflight.AccessFor(s.checks()...) }

func (s *All) checks() []string {
	var names []string
	for _, n := range preflight.Names() {
		if !slices.Contains(s.Skip, n) {
			names = append(names, n)
		}
	}
	return names
}

func (s *APIScan) Run(ctx context.Context, env *runbook.Env) error {
	return run(ctx, env, s.Common, s.Scan, []string{"api-scan"})
}

func (c *Check) Run(ctx context.Context, env *runbook.Env) error {
	return run(ctx, env, c.Common, Scan{}, []string{c.check})
}

func (s *All) Run(ctx context.Context, env *runbook.Env) error {
	return run(ctx, env, s.Common, s.Scan, s.checks())
}

func run(ctx context.Context, env *runbook.Env, c Common, scan Scan, checks []string) error {
	if env.REST == nil {
		return fmt.Errorf("the checks need the cluster's REST config")
	}
	in, err := preflight.NewInput(env.REST)
	if err != nil {
		return err
	}
	in.Manifests, in.Helm = scan.Manifests, scan.helm()
	in.Access = env.Runbook.Access()
	for _, st := range env.Runbook.Spec.Steps {
		if vb, ok := st.Step.(*velero.Step); ok {
			in.Velero.Required = true // the run will back up: Velero must be there
			in.Velero.Namespace = vb.Namespace
			in.Velero.Namespaces = append(in.Velero.Namespaces, vb.IncludedNamespaces...)
		}
	}
	in.Progress = func(s string) { env.Progress(s, 0, 0) }
	v, err := in.Kube.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("read the server version: %w", err)
	}
	in.ServerVersion = v.GitVersion
	if in.Server, err = apis.ParseRelease(v.GitVersion); err != nil {
		return err
	}
	if in.Target, err = apis.ParseRelease(env.Target); err != nil {
		return err
	}
	rep, err := preflight.Run(ctx, in, checks)
	if err != nil {
		return err
	}
	failOn := c.failOn()
	var first []string
	for _, f := range rep.Findings() {
		env.Find(f.Runbook())
		if failOn.Fails(f) && len(first) < 3 {
			first = append(first, f.Object+": "+f.Message)
		}
	}
	if n := failOn.Failing(rep.Findings()); n > 0 {
		more := ""
		if n > len(first) {
			more = fmt.Sprintf("; and %d more", n-len(first))
		}
		return runbook.Blocked(fmt.Errorf("%d findings at or above failOn %s: %s%s (fix them, or set failOn to let the run go on)", n, failOn, strings.Join(first, "; "), more))
	}
	env.Progress(fmt.Sprintf("%d findings, none at or above failOn %s", len(rep.Findings()), failOn), 0, 0)
	return nil
}
