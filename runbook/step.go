package runbook

import (
	"context"
	"fmt"
	"sort"
)

// Step is one kind of work a runbook can do. Its exported fields are the kind's settings, decoded
// from the step's `with:` (so they define the kind's part of the JSON Schema).
//
// A Step must be idempotent on re-entry: after a crash the engine runs the step that was in flight
// again, and the step uses Env.Done/MarkDone and Env.Changes to skip what it already did.
type Step interface {
	// Name is the step kind, e.g. "exec".
	Name() string
	// Run does the work. It returns when the work is done, failed, or ctx is cancelled.
	Run(ctx context.Context, env *Env) error
}

// Rollbacker is a Step that can undo what it did, from the changes it recorded with Env.Record.
type Rollbacker interface {
	Rollback(ctx context.Context, env *Env) error
}

// UndoPreviewer is a Rollbacker that can say, from its settings alone, what its rollback will not
// undo ("the nodes it upgraded stay at the target: the action has no rollback command"), so that
// `drydock rollback` says so before it asks. "" means everything it records is undone.
type UndoPreviewer interface {
	WontUndo() string
}

// UndoDescriber is a Rollbacker that can say, from the changes it recorded, what its rollback
// will do, object by object (each node, and the command run on it), so that `drydock rollback`
// names them before it asks, and `rollback --dry-run` prints them.
type UndoDescriber interface {
	WillUndo(changes []Change, target, runID, step string) []string
}

// Skipper is a Step that can tell, before running, that there is nothing to do.
type Skipper interface {
	Skip(ctx context.Context, env *Env) (skip bool, reason string, err error)
}

// Planner is a Step that can say what it will do without doing it (drydock plan, --dry-run).
type Planner interface {
	Plan(ctx context.Context, env *Env) ([]string, error)
}

// SettingsValidator is a Step whose settings have rules beyond the schema. Problems are returned
// with paths relative to the step's `with:` (e.g. "maxUnavailable").
type SettingsValidator interface {
	ValidateSettings() []FieldError
}

// Phase orders step kinds: node steps come after the checks and the backup (spec.allowAnyOrder
// turns the rule off).
type Phase int

const (
	PhaseAny    Phase = iota // may stand anywhere (exec, wait, pause)
	PhaseCheck               // read-only checks (api-scan, preflight, ...)
	PhaseBackup              // backups (velero-backup)
	PhaseNodes               // steps that drain or upgrade nodes (canary, nodegroups)
	// PhaseControlPlane upgrades the control plane: after the checks and the backup, before any node
	// step (a kubelet must never be newer than the apiserver).
	PhaseControlPlane
	// PhaseAddons upgrades add-ons: after the node groups (an add-on's new version may need the new
	// kubelets), and nothing but PhaseAny steps after it.
	PhaseAddons
)

func (p Phase) String() string {
	return [...]string{"any", "check", "backup", "nodes", "control plane", "add-ons"}[p]
}

// AddonPlace is one add-on of a step, with its class and the class's place in the upgrade order
// (CNI 0, kube-proxy 1, DNS 2, ingress and others 3, service mesh 4).
type AddonPlace struct {
	Name  string
	Class string
	Rank  int
	// Field is the path under the step's `with:` that a problem points at.
	Field string
}

// AddonOrderer is a step that upgrades add-ons: validation checks, across all such steps, that the
// classes come in the upgrade order (a mesh never before the CNI it runs on).
type AddonOrderer interface {
	AddonOrder() []AddonPlace
}

// Kind registers a step kind.
type Kind struct {
	Name        string      // the runbook's `type:`
	Description string      // one line, for the schema and `drydock plan`
	Phase       Phase       // where it may stand
	New         func() Step // a new step with zero settings (a pointer: `with:` is decoded into it)
}

// Registry is the set of step kinds a runbook may use.
type Registry []Kind

// Lookup returns the kind named name.
func (r Registry) Lookup(name string) (Kind, bool) {
	for _, k := range r {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// Names lists the kinds, sorted.
func (r Registry) Names() []string {
	var names []string
	for _, k := range r {
		names = append(names, k.Name)
	}
	sort.Strings(names)
	return names
}

// Check reports a registry with a duplicate or malformed kind; the engine refuses one.
func (r Registry) Check() error {
	seen := map[string]bool{}
	for _, k := range r {
		if k.Name == "" || k.New == nil {
			return fmt.Errorf("runbook: step kind %q has no name or no New", k.Name)
		}
		if seen[k.Name] {
			return fmt.Errorf("runbook: step kind %q registered twice", k.Name)
		}
		seen[k.Name] = true
		if got := k.New().Name(); got != k.Name {
			return fmt.Errorf("runbook: step kind %q: New().Name() is %q", k.Name, got)
		}
	}
	return nil
}

// Access is one permission a step needs, asked about before the run starts (access-check).
type Access struct {
	Verb        string `json:"verb"`
	Group       string `json:"group,omitempty"`
	Resource    string `json:"resource,omitempty"`
	Subresource string `json:"subresource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	// Name narrows it to one object (a role may grant only that one, with resourceNames).
	Name string `json:"name,omitempty"`
	// NonResourceURL instead of a resource, e.g. /metrics.
	NonResourceURL string `json:"nonResourceURL,omitempty"`
	// Why the step needs it, for the finding when it is missing.
	Why string `json:"why"`
}

func (a Access) String() string {
	if a.NonResourceURL != "" {
		return a.Verb + " " + a.NonResourceURL
	}
	r := a.Resource
	if a.Group != "" {
		r += "." + a.Group
	}
	if a.Subresource != "" {
		r += "/" + a.Subresource
	}
	if a.Name != "" {
		r += " " + a.Name
	}
	if a.Namespace != "" {
		r += " in namespace " + a.Namespace
	}
	return a.Verb + " " + r
}

// AccessNeeder is a Step that says which permissions it needs.
type AccessNeeder interface {
	Access() []Access
}

// Access lists what a run of the runbook needs: the engine's own lock Lease and journal ConfigMap,
// what each step says it needs, and `get` on each Secret a credential reference names (notify:, a
// gate's http:).
func (rb *Runbook) Access() []Access {
	out := append(EngineAccess(rb.StateNamespace()), notifyAccess(rb)...)
	for _, s := range rb.Spec.Steps {
		if a, ok := s.Step.(AccessNeeder); ok {
			out = append(out, a.Access()...)
		}
		out = append(out, stepCredentialAccess(s.Step)...)
	}
	return Dedupe(out)
}

// EngineAccess is what every run needs, whatever its steps: the cluster's one lock Lease (in
// LockNamespace, wherever the state lives) and the journal's ConfigMaps in the state namespace ns
// (written, read back by resume on another machine, pruned).
func EngineAccess(ns string) []Access {
	var out []Access
	for _, v := range []string{"get", "create", "update"} {
		out = append(out, Access{Verb: v, Group: "coordination.k8s.io", Resource: "leases", Namespace: LockNamespace, Why: "the cluster's run lock"})
	}
	for _, v := range []string{"get", "list", "create", "update", "delete"} {
		out = append(out, Access{Verb: v, Resource: "configmaps", Namespace: ns, Why: "the journal's copy in the cluster (delete: pruning finished runs)"})
	}
	return out
}

// Dedupe keeps the first of each permission, in order.
func Dedupe(list []Access) []Access {
	seen := map[string]bool{}
	var out []Access
	for _, a := range list {
		if k := a.String(); !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out
}
