// Package addons is the addons step: after the node groups, the cluster's add-ons are upgraded one
// at a time in a declared order (CNI first, service mesh last), each from a Helm chart (through Helm's
// own SDK and release storage, so `helm history` shows every revision) or from manifests (server-side
// apply with drydock's field manager). Each add-on's DaemonSets, Deployments and StatefulSets are
// watched until they have rolled out; one that does not roll out in time is rolled back to its
// previous Helm revision, or to the objects as they were before the apply, and the step fails.
package addons

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/drydock-dev/drydock/runbook"
)

// Kind registers the step.
var Kind = runbook.Kind{
	Name:        "addons",
	Description: "upgrade add-ons one at a time in order (CNI first, mesh last) from Helm charts or manifests, each watched until rolled out and rolled back if it is not",
	Phase:       runbook.PhaseAddons,
	New:         func() runbook.Step { return &Step{} },
}

// DefaultTimeout is how long an add-on's rollout may take when the runbook does not say.
const DefaultTimeout = 5 * time.Minute

// FieldManager is the server-side apply field manager of manifest add-ons.
const FieldManager = "drydock"

// Step is the addons step's settings.
type Step struct {
	// Addons in the order they are upgraded. The order must follow the classes: CNI first, then
	// kube-proxy, DNS, ingress and the others, service mesh last (spec.allowAnyOrder turns the rule off).
	Addons []Addon `json:"addons" jsonschema:"minItems=1"`
}

// Addon is one add-on: a Helm release or a set of manifests.
type Addon struct {
	// Name of the add-on in the journal, the plan and the TUI (unique in the runbook).
	Name string `json:"name" jsonschema:"pattern=^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"`
	// Class orders the add-on: cni, kube-proxy, dns, ingress, mesh or other. By default it comes from
	// a table of well-known charts (cilium and calico are CNIs, coredns is DNS, istiod is a mesh, ...),
	// looked up by the chart's and the release's name; an add-on it does not know is "other".
	Class string `json:"class,omitempty" jsonschema:"enum=cni,enum=kube-proxy,enum=dns,enum=ingress,enum=mesh,enum=other"`
	// Helm upgrades a Helm release to a chart.
	Helm *Helm `json:"helm,omitempty"`
	// Manifests applies YAML files with server-side apply.
	Manifests *Manifests `json:"manifests,omitempty"`
	// Timeout for the add-on's rollout (default 5m); past it the add-on is rolled back.
	Timeout runbook.Duration `json:"timeout,omitzero"`
}

// Helm is an add-on installed as a Helm release.
type Helm struct {
	// Release name.
	Release string `json:"release" jsonschema:"minLength=1"`
	// Namespace of the release.
	Namespace string `json:"namespace" jsonschema:"minLength=1"`
	// Chart is a chart directory or packaged chart (.tgz), relative to the directory drydock runs in.
	Chart string `json:"chart" jsonschema:"minLength=1"`
	// Version the chart must have (its Chart.yaml version): a chart of another version is refused
	// before anything changes.
	Version string `json:"version,omitempty"`
	// Values for the chart, over the values files.
	Values map[string]any `json:"values,omitempty"`
	// ValuesFiles are read in order, each over the one before (relative to the directory drydock
	// runs in).
	ValuesFiles []string `json:"valuesFiles,omitempty"`
	// ReuseValues keeps the values the release was last deployed with, the values here over them
	// (helm upgrade --reuse-values). By default the chart's defaults and the values here only.
	ReuseValues bool `json:"reuseValues,omitempty"`
	// Install the release when it does not exist yet (rolled back by uninstalling it). By default a
	// missing release is an error: the name may be wrong, and a second CNI is not what anyone wants.
	Install bool `json:"install,omitempty"`
}

// Manifests is an add-on applied from YAML files.
type Manifests struct {
	// Paths of YAML files or directories of them (*.yaml, *.yml, *.json), relative to the directory
	// drydock runs in.
	Paths []string `json:"paths" jsonschema:"minItems=1"`
	// Namespace of the namespaced objects that name none.
	Namespace string `json:"namespace,omitempty"`
	// ForceConflicts takes over the fields the manifests set that another field manager owns (a
	// GitOps controller, an HPA's spec.replicas, kubectl): server-side apply with force. By default
	// drydock applies without force, and an add-on whose manifests set such a field is refused
	// before any of its objects is applied, each conflict named with its field and manager.
	ForceConflicts bool `json:"forceConflicts,omitempty"`
}

// Name is the kind.
func (*Step) Name() string { return Kind.Name }

// classes in upgrade order; ingress and other share a place.
var classRank = map[string]int{"cni": 0, "kube-proxy": 1, "dns": 2, "ingress": 3, "other": 3, "mesh": 4}

// knownCharts classifies well-known add-ons by chart or release name.
var knownCharts = map[string]string{
	"cilium": "cni", "calico": "cni", "tigera-operator": "cni", "flannel": "cni", "aws-vpc-cni": "cni", "aws-node": "cni",
	"antrea": "cni", "weave-net": "cni", "kube-ovn": "cni", "canal": "cni", "kube-router": "cni", "multus": "cni",
	"kube-proxy": "kube-proxy",
	"coredns":    "dns", "kube-dns": "dns", "node-local-dns": "dns", "nodelocaldns": "dns", "external-dns": "dns",
	"ingress-nginx": "ingress", "nginx-ingress": "ingress", "traefik": "ingress", "contour": "ingress", "haproxy-ingress": "ingress",
	"aws-load-balancer-controller": "ingress", "kong": "ingress", "envoy-gateway": "ingress", "gateway-helm": "ingress",
	"istiod": "mesh", "istio-base": "mesh", "istio-cni": "mesh", "ztunnel": "mesh",
	"linkerd-control-plane": "mesh", "linkerd-crds": "mesh", "linkerd2": "mesh", "kuma": "mesh", "consul": "mesh",
}

// ClassOf is the add-on's declared class, or the known-chart table's, or "other".
func (a *Addon) ClassOf() string {
	if a.Class != "" {
		return a.Class
	}
	if a.Helm != nil {
		chart := strings.TrimSuffix(filepath.Base(a.Helm.Chart), ".tgz")
		if i := strings.LastIndex(chart, "-"); i > 0 && strings.ContainsAny(chart[i+1:], "0123456789") && strings.Contains(chart[i+1:], ".") {
			chart = chart[:i] // cilium-1.17.2.tgz
		}
		for _, n := range []string{chart, a.Helm.Release} {
			if c := knownCharts[n]; c != "" {
				return c
			}
		}
	}
	if c := knownCharts[a.Name]; c != "" {
		return c
	}
	return "other"
}

// AddonOrder gives the engine's order rule each add-on's class.
func (s *Step) AddonOrder() []runbook.AddonPlace {
	var out []runbook.AddonPlace
	for i := range s.Addons {
		a := &s.Addons[i]
		field := fmt.Sprintf("addons[%d].name", i)
		if a.Class != "" {
			field = fmt.Sprintf("addons[%d].class", i)
		}
		c := a.ClassOf()
		out = append(out, runbook.AddonPlace{Name: a.Name, Class: c, Rank: classRank[c], Field: field})
	}
	return out
}

// ValidateSettings: names unique, exactly one source each.
func (s *Step) ValidateSettings() []runbook.FieldError {
	var out []runbook.FieldError
	seen := map[string]bool{}
	for i, a := range s.Addons {
		base := fmt.Sprintf("addons[%d]", i)
		if seen[a.Name] {
			out = append(out, runbook.FieldError{Field: base + ".name", Message: fmt.Sprintf("add-on %q is listed twice", a.Name), Hint: "each add-on once: the journal keeps its revision by name"})
		}
		seen[a.Name] = true
		switch {
		case a.Helm == nil && a.Manifests == nil:
			out = append(out, runbook.FieldError{Field: base, Message: fmt.Sprintf("add-on %q has neither helm nor manifests", a.Name), Hint: "say where the new version comes from: helm: {release, namespace, chart} or manifests: {paths}"})
		case a.Helm != nil && a.Manifests != nil:
			out = append(out, runbook.FieldError{Field: base, Message: fmt.Sprintf("add-on %q has both helm and manifests", a.Name), Hint: "one source per add-on: split it into two add-ons"})
		}
		if !a.Timeout.IsZero() && a.Timeout.Duration < time.Second {
			out = append(out, runbook.FieldError{Field: base + ".timeout", Message: "must be at least 1s"})
		}
	}
	return out
}

func (a *Addon) timeout() time.Duration {
	if a.Timeout.IsZero() {
		return DefaultTimeout
	}
	return a.Timeout.Duration
}

// source is what an add-on is upgraded from: a Helm release or manifests.
type source interface {
	// plan says what upgrade will do.
	plan(ctx context.Context) ([]string, error)
	// upgrade makes the change (idempotent on re-entry: a resumed step does not upgrade twice) and
	// returns the workloads to wait for.
	upgrade(ctx context.Context) ([]workload, error)
	// rollback undoes the change and returns the workloads to wait for; what it cannot undo is a
	// runbook.Kept.
	rollback(ctx context.Context) ([]workload, *runbook.Kept, error)
}

func (s *Step) source(env *runbook.Env, a *Addon) (source, error) {
	if a.Helm != nil {
		return newHelmSource(env, a)
	}
	return newManifestSource(env, a)
}

// Plan lists each add-on's upgrade and rollout, in order.
func (s *Step) Plan(ctx context.Context, env *runbook.Env) ([]string, error) {
	var out []string
	for i := range s.Addons {
		a := &s.Addons[i]
		head := fmt.Sprintf("%d/%d %s (%s): ", i+1, len(s.Addons), a.Name, a.ClassOf())
		if env.Done("addon/" + a.Name) {
			out = append(out, head+"already upgraded")
			continue
		}
		var lines []string
		if env.REST != nil {
			src, err := s.source(env, a)
			if err != nil {
				return nil, err
			}
			if lines, err = src.plan(ctx); err != nil {
				return nil, fmt.Errorf("add-on %q: %w", a.Name, err)
			}
		} else if a.Helm != nil {
			lines = []string{fmt.Sprintf("helm upgrade %s in %s to %s", a.Helm.Release, a.Helm.Namespace, a.Helm.Chart)}
		} else {
			lines = []string{"server-side apply " + strings.Join(a.Manifests.Paths, ", ")}
		}
		lines[0] = head + lines[0]
		out = append(out, lines...)
		out = append(out, fmt.Sprintf("    then wait up to %s for its DaemonSets, Deployments and StatefulSets to roll out; if they do not, roll it back", a.timeout()))
	}
	return out, nil
}

// Run upgrades each add-on in turn and waits for its rollout; an add-on that does not roll out is
// rolled back and the step fails.
func (s *Step) Run(ctx context.Context, env *runbook.Env) error {
	if env.REST == nil {
		return errors.New("addons: needs a cluster")
	}
	dyn, err := dynamic.NewForConfig(env.REST)
	if err != nil {
		return err
	}
	for i := range s.Addons {
		a := &s.Addons[i]
		if env.Done("addon/" + a.Name) {
			continue
		}
		src, err := s.source(env, a)
		if err != nil {
			return fmt.Errorf("add-on %q: %w", a.Name, err)
		}
		env.Progress(fmt.Sprintf("%s (%s): upgrading", a.Name, a.ClassOf()), i, len(s.Addons))
		ws, err := src.upgrade(ctx)
		if err != nil {
			return fmt.Errorf("add-on %q: %w", a.Name, err)
		}
		if err := waitRollouts(ctx, env, dyn, a.Name, ws, a.timeout()); err != nil {
			if !errors.Is(err, errNotReady) {
				return fmt.Errorf("add-on %q: %w", a.Name, err)
			}
			// Not ready in time: back to what ran before, now, not at the end of the run.
			env.Logf("addons", "%s: %v: rolling it back", a.Name, err)
			back, kept, rerr := src.rollback(ctx)
			if rerr != nil {
				return fmt.Errorf("add-on %q: %w; and its rollback failed: %w", a.Name, err, rerr)
			}
			if kept != nil {
				return fmt.Errorf("add-on %q: %w; not rolled back: %s", a.Name, err, kept.Reason)
			}
			if werr := waitRollouts(ctx, env, dyn, a.Name, back, a.timeout()); werr != nil {
				return fmt.Errorf("add-on %q: %w; rolled back, but the previous version did not roll out either: %w", a.Name, err, werr)
			}
			if err := env.MarkDone(ctx, "rolledback/"+a.Name); err != nil {
				return err
			}
			return fmt.Errorf("add-on %q: %w: rolled back to the version before, which is ready again; see why the new version's pods are not ready (kubectl describe %s) and run again", a.Name, err, describeHint(ws))
		}
		if err := env.MarkDone(ctx, "addon/"+a.Name); err != nil {
			return err
		}
		env.Progress(fmt.Sprintf("%s (%s): upgraded and rolled out", a.Name, a.ClassOf()), i+1, len(s.Addons))
	}
	return nil
}

// describeHint names the first workload, for the hint.
func describeHint(ws []workload) string {
	if len(ws) == 0 {
		return "pods"
	}
	return fmt.Sprintf("-n %s %s/%s", ws[0].Namespace, strings.ToLower(ws[0].Kind), ws[0].Name)
}

// Rollback rolls every add-on the step upgraded back to the revision it had before, newest first.
func (s *Step) Rollback(ctx context.Context, env *runbook.Env) error {
	dyn, err := dynamic.NewForConfig(env.REST)
	if err != nil {
		return err
	}
	var errs []error
	for i := len(s.Addons) - 1; i >= 0; i-- {
		a := &s.Addons[i]
		if env.Done("rolledback/"+a.Name) || !s.touched(env, a) {
			continue
		}
		src, err := s.source(env, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("add-on %q: %w", a.Name, err))
			continue
		}
		env.Progress(a.Name+": rolling back", len(s.Addons)-1-i, len(s.Addons))
		back, kept, err := src.rollback(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("roll back add-on %q: %w", a.Name, err))
			continue
		}
		if kept != nil {
			if err := env.Keep(ctx, *kept); err != nil {
				return err
			}
			continue
		}
		if err := waitRollouts(ctx, env, dyn, a.Name, back, a.timeout()); err != nil {
			errs = append(errs, fmt.Errorf("roll back add-on %q: %w", a.Name, err))
			continue
		}
		if err := env.MarkDone(ctx, "rolledback/"+a.Name); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// touched: the step recorded a change for the add-on (it started upgrading it).
func (s *Step) touched(env *runbook.Env, a *Addon) bool {
	return slices.ContainsFunc(env.Changes(), func(c runbook.Change) bool { return c.Data["addon"] == a.Name })
}

// Access: Helm's release storage (Secrets in the release namespace) and whatever the charts and
// manifests hold, which is known only when they are rendered.
func (s *Step) Access() []runbook.Access {
	var out []runbook.Access
	for _, a := range s.Addons {
		if a.Helm != nil {
			for _, verb := range []string{"list", "get", "create", "update"} {
				out = append(out, runbook.Access{Verb: verb, Resource: "secrets", Namespace: a.Helm.Namespace, Why: "addons keeps Helm release " + a.Helm.Release + "'s revisions where Helm does"})
			}
		}
	}
	for _, verb := range []string{"get", "patch", "create", "delete", "watch"} {
		out = append(out, runbook.Access{Verb: verb, Group: "*", Resource: "*", Why: "addons applies the add-ons' objects (which they are is known when the charts and manifests are rendered)"})
	}
	return append(out, runbook.Access{Verb: "list", Resource: "nodes", Why: "the version-skew policy is checked again before addons moves versions"})
}
