package runbook

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/version"
)

// DefaultTimeout is a step's timeout when neither the step nor spec.defaults sets one.
const DefaultTimeout = 30 * time.Minute

// DefaultStateNamespace holds the journal mirror and the lock when spec.state.namespace is unset.
const DefaultStateNamespace = "kube-system"

// Validate checks the rules the schema cannot say: unique step names, a readable target version,
// positive timeouts, the step order, and each kind's own settings rules.
func Validate(rb *Runbook, reg Registry) Problems {
	var problems Problems
	add := func(field, msg, hint string) { problems = append(problems, rb.problem(field, msg, hint)) }

	if _, err := version.ParseGeneric(rb.Spec.TargetVersion); err != nil {
		add("spec.targetVersion", fmt.Sprintf("%q is not a Kubernetes version", rb.Spec.TargetVersion), "write it as v1.37 or v1.37.2")
	}
	if d := rb.Spec.Defaults.Timeout; d.Duration < 0 || (!d.IsZero() && d.Duration < time.Second) {
		add("spec.defaults.timeout", "must be at least 1s", "")
	}

	problems = append(problems, checkNotify(rb)...)
	return append(problems, checkSteps(rb, reg)...)
}

// checkSteps checks step names and order, and each decoded step's own settings rules.
func checkSteps(rb *Runbook, reg Registry) Problems {
	src := rb.source()
	var problems Problems
	add := func(field, msg, hint string) { problems = append(problems, rb.problem(field, msg, hint)) }
	firstName := map[string]int{}
	firstNodes, firstCP, firstAddons := -1, -1, -1
	var lastAddon *AddonPlace // the add-on with the highest rank so far
	lastAddonStep := -1
	for i, s := range rb.Spec.Steps {
		base := fmt.Sprintf("spec.steps[%d]", i)
		// A step without a name (the schema said so) is still checked: its timeout, its order, its settings.
		if j, dup := firstName[s.Name]; s.Name != "" && dup {
			line := 0
			if n := src.lookup(parseFieldPath(fmt.Sprintf("spec.steps[%d].name", j)), false); n != nil {
				line = n.Line
			}
			add(base+".name", fmt.Sprintf("duplicate step name %q (first used on line %d)", s.Name, line), "step names must be unique: the journal and `rollback --to` use them")
		} else if s.Name != "" {
			firstName[s.Name] = i
		}
		if !s.Timeout.IsZero() && s.Timeout.Duration < time.Second {
			add(base+".timeout", "must be at least 1s", "")
		}
		k, ok := reg.Lookup(s.Type)
		if !ok {
			continue
		}
		switch {
		case k.Phase == PhaseNodes && firstNodes < 0:
			firstNodes = i
		case (k.Phase == PhaseCheck || k.Phase == PhaseBackup) && firstNodes >= 0 && !rb.Spec.AllowAnyOrder:
			add(base+".type", fmt.Sprintf("a %s step (%s) after a node step (%q, spec.steps[%d])", k.Phase, s.Type, rb.Spec.Steps[firstNodes].Name, firstNodes),
				"checks and backups run before any node is drained: move this step up, or set spec.allowAnyOrder: true")
		case k.Phase == PhaseControlPlane && firstNodes >= 0 && !rb.Spec.AllowAnyOrder:
			add(base+".type", fmt.Sprintf("the control plane is upgraded after a node step (%q, spec.steps[%d])", rb.Spec.Steps[firstNodes].Name, firstNodes),
				"the control plane goes first: a kubelet must never be newer than the apiserver; move this step above the node steps, or set spec.allowAnyOrder: true")
		case (k.Phase == PhaseCheck || k.Phase == PhaseBackup) && firstCP >= 0 && !rb.Spec.AllowAnyOrder:
			add(base+".type", fmt.Sprintf("a %s step (%s) after the control-plane step (%q, spec.steps[%d])", k.Phase, s.Type, rb.Spec.Steps[firstCP].Name, firstCP),
				"checks and backups run before the control plane is upgraded: move this step up, or set spec.allowAnyOrder: true")
		}
		if firstAddons >= 0 && !rb.Spec.AllowAnyOrder && k.Phase != PhaseAny && k.Phase != PhaseAddons {
			add(base+".type", fmt.Sprintf("a %s step (%s) after the add-ons step (%q, spec.steps[%d])", k.Phase, s.Type, rb.Spec.Steps[firstAddons].Name, firstAddons),
				"add-ons are upgraded last, after the control plane and the node groups (an add-on's new version may need the new kubelets): move this step above the add-ons, or set spec.allowAnyOrder: true")
		}
		if k.Phase == PhaseControlPlane && firstCP < 0 {
			firstCP = i
		}
		if k.Phase == PhaseAddons && firstAddons < 0 {
			firstAddons = i
		}
		if o, ok := s.Step.(AddonOrderer); ok && s.Step != nil && !rb.Spec.AllowAnyOrder {
			for _, p := range o.AddonOrder() {
				if lastAddon != nil && p.Rank < lastAddon.Rank {
					where := ""
					if lastAddonStep != i {
						where = fmt.Sprintf(" in step %q", rb.Spec.Steps[lastAddonStep].Name)
					}
					add(base+".with."+p.Field, fmt.Sprintf("the %s add-on %q comes after the %s add-on %q%s", p.Class, p.Name, lastAddon.Class, lastAddon.Name, where),
						"add-ons go in this order: CNI first, then kube-proxy, DNS, ingress and the others, service mesh last (a mesh runs on the CNI); reorder them, set the right class, or set spec.allowAnyOrder: true")
					continue
				}
				if lastAddon == nil || p.Rank > lastAddon.Rank {
					lastAddon, lastAddonStep = &p, i
				}
			}
		}
		if _, ok := s.Step.(NodePlanner); s.OnBlocked != "" && s.Step != nil && !ok {
			add(base+".onBlocked", fmt.Sprintf("onBlocked applies to node steps; %s does not drain nodes", s.Type), "remove it, or put it on the drain, canary or nodegroups step")
		}
		if v, ok := s.Step.(SettingsValidator); ok {
			for _, fe := range v.ValidateSettings() {
				field := base + ".with"
				if fe.Field != "" {
					field += "." + strings.TrimPrefix(fe.Field, ".")
				}
				problems = append(problems, rb.fieldProblem(field, fe))
			}
		}
	}
	return problems
}

func (rb *Runbook) source() *Source {
	if rb.Source == nil {
		return &Source{Path: "<runbook>"}
	}
	return rb.Source
}

// problem places a problem with field (spec.steps[2].with.x) in the runbook's file.
func (rb *Runbook) problem(field, msg, hint string) Problem {
	src := rb.source()
	return src.problemAt(src.lookup(parseFieldPath(field), false), field, msg, hint)
}

// TimeoutOf is the timeout that applies to step s.
func (rb *Runbook) TimeoutOf(s StepSpec) time.Duration {
	switch {
	case !s.Timeout.IsZero():
		return s.Timeout.Duration
	case !rb.Spec.Defaults.Timeout.IsZero():
		return rb.Spec.Defaults.Timeout.Duration
	}
	return DefaultTimeout
}

// StateNamespace is where the run's lock and journal mirror live.
func (rb *Runbook) StateNamespace() string {
	if rb.Spec.State.Namespace != "" {
		return rb.Spec.State.Namespace
	}
	return DefaultStateNamespace
}

// CheckTarget refuses a target version that downgrades the cluster or skips a minor version:
// Kubernetes upgrades one minor at a time, control plane first.
func CheckTarget(target, server string) error {
	t, err := version.ParseGeneric(target)
	if err != nil {
		return fmt.Errorf("target version %q: %w", target, err)
	}
	s, err := version.ParseGeneric(server)
	if err != nil {
		return fmt.Errorf("server version %q: %w", server, err)
	}
	switch {
	case t.Major() != s.Major():
		return fmt.Errorf("target %s and the cluster's %s differ in major version", target, server)
	case t.Minor() < s.Minor() || (t.Minor() == s.Minor() && t.Patch() < s.Patch() && len(strings.Split(strings.TrimPrefix(target, "v"), ".")) == 3):
		return fmt.Errorf("target %s is older than the cluster's %s: drydock does not downgrade; restore from a backup instead", target, server)
	case t.Minor() > s.Minor()+1:
		return fmt.Errorf("target %s skips a minor version: the cluster runs %s, and Kubernetes upgrades one minor at a time: upgrade to v%d.%d first",
			target, server, s.Major(), s.Minor()+1)
	}
	return nil
}
