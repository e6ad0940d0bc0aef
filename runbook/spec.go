// Package runbook holds drydock's declarative upgrade runbook: its Go types (the single source of the
// JSON Schema), strict decoding with file:line:col errors, semantic validation, and the engine that
// runs it with a journal, a cluster lock, pause points and rollback.
package runbook

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/invopop/jsonschema"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// APIVersion and Kind of a runbook file.
const (
	APIVersion  = "drydock.dev/v1alpha1"
	KindRunbook = "Runbook"
)

// Runbook is a runbook file.
type Runbook struct {
	APIVersion string   `json:"apiVersion" jsonschema:"enum=drydock.dev/v1alpha1"`
	Kind       string   `json:"kind" jsonschema:"enum=Runbook"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`

	// Source is where the runbook was read from (not part of the file).
	Source *Source `json:"-"`
}

// Metadata names the runbook.
type Metadata struct {
	Name   string            `json:"name" jsonschema:"minLength=1,maxLength=63,pattern=^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Spec is what the runbook does.
type Spec struct {
	// TargetVersion is the Kubernetes version the cluster is upgraded to, e.g. v1.37.2.
	TargetVersion string `json:"targetVersion" jsonschema:"pattern=^v?[0-9]+\\.[0-9]+(\\.[0-9]+)?$"`
	// Defaults apply to every step that does not set its own.
	Defaults Defaults `json:"defaults,omitzero"`
	// State says where the run's journal mirror and lock live in the cluster.
	State StateSpec `json:"state,omitzero"`
	// OnFailure: stop (default) leaves the cluster as the failed step left it, for a person to decide
	// (`drydock rollback` undoes); rollback undoes the completed steps at once, newest first.
	OnFailure string `json:"onFailure,omitempty" jsonschema:"enum=stop,enum=rollback"`
	// AllowAnyOrder turns off the order rules: checks and backups first, then the control plane, the
	// node steps, and the add-ons last (CNI first, service mesh last).
	AllowAnyOrder bool `json:"allowAnyOrder,omitempty"`
	// Notify lists webhooks told how the run ends: paused, blocked, failed, rolled back, succeeded
	// (`--notify URL` adds one from the command line). A webhook that fails never fails the run.
	Notify []NotifySpec `json:"notify,omitempty"`
	// Steps run in order.
	Steps []StepSpec `json:"steps" jsonschema:"minItems=1"`
}

// NotifySpec is one webhook.
type NotifySpec struct {
	// URL of the webhook (http or https), by reference: webhook URLs are credentials, and the
	// runbook is copied into the run's journal and its ConfigMap in the cluster, so the URL itself
	// is refused. `{env: SLACK_WEBHOOK}`, `{file: /run/secrets/webhook}` or `{secretKeyRef:
	// {namespace: drydock, name: webhooks, key: slack}}` (or give it with --notify).
	URL SecretRef `json:"url"`
	// Format of the body: cloudevents (default: a CloudEvents 1.0 JSON event, data holding the
	// outcome, run, runbook, cluster, status and message) or slack ({"text": "..."}).
	Format string `json:"format,omitempty" jsonschema:"enum=cloudevents,enum=slack"`
	// On lists the outcomes to send (default: every one).
	On []string `json:"on,omitempty" jsonschema:"enum=paused,enum=blocked,enum=failed,enum=rolled-back,enum=succeeded"`
}

// Defaults for every step.
type Defaults struct {
	// Timeout of a step that sets none (default 30m).
	Timeout Duration `json:"timeout,omitzero"`
}

// StateSpec places the cluster side of a run.
type StateSpec struct {
	// Namespace of the journal ConfigMaps (default kube-system). The lock Lease is not here: a
	// cluster has one, kube-system/drydock-lock, whatever the state namespace.
	Namespace string `json:"namespace,omitempty" jsonschema:"pattern=^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"`
}

// StepSpec is one step of the runbook file.
type StepSpec struct {
	// Name is unique in the runbook; the journal and `rollback --to` use it.
	Name string `json:"name" jsonschema:"minLength=1,maxLength=63,pattern=^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"`
	// Type is the step kind; `with` holds that kind's settings.
	Type string `json:"type"`
	// Pause asks a person before or after the step (a pause point).
	Pause string `json:"pause,omitempty" jsonschema:"enum=before,enum=after,enum=none"`
	// Timeout of the step (default: spec.defaults.timeout).
	Timeout Duration `json:"timeout,omitzero"`
	// OnBlocked, for a node step (drain, canary, nodegroups): when the plan made before the run
	// starts finds a certain blocker in this step (a budget that never allows an eviction, a pod
	// that cannot move), stop (default) refuses the run before the first node moves; proceed starts
	// anyway, and the step refuses the node when it gets there unless the blocker has cleared.
	OnBlocked string `json:"onBlocked,omitempty" jsonschema:"enum=stop,enum=proceed"`
	// With holds the kind's settings.
	With json.RawMessage `json:"with,omitempty"`

	// Step is the decoded step: its kind with the settings from With.
	Step Step `json:"-"`
}

// Pause points.
const (
	PauseBefore = "before"
	PauseAfter  = "after"
	PauseNone   = "none"
	// PauseInside is a pause point a step makes itself (between node groups, or asked for with p).
	PauseInside = "inside"
)

// Duration is a Go duration written as a string: 90s, 5m, 1h30m.
type Duration struct{ time.Duration }

// DurationPattern is the pattern of a Duration in the schema.
const DurationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`

// IsZero reports an unset duration.
func (d Duration) IsZero() bool { return d.Duration == 0 }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as 90s, 5m or 1h30m")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration: use a number with a unit, such as 90s, 5m or 1h30m", s)
	}
	d.Duration = v
	return nil
}

// JSONSchema describes a Duration.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     DurationPattern,
		Description: "a duration such as 90s, 5m or 1h30m",
		Examples:    []any{"90s", "5m", "1h30m"},
	}
}

// IntOrPercent is a count (2) or a percentage ("25%"), as in maxUnavailable.
type IntOrPercent struct{ intstr.IntOrString }

// MarshalJSON writes 2 or "25%".
func (v IntOrPercent) MarshalJSON() ([]byte, error) { return v.IntOrString.MarshalJSON() }

// UnmarshalJSON reads 2 or "25%".
func (v *IntOrPercent) UnmarshalJSON(b []byte) error { return v.IntOrString.UnmarshalJSON(b) }

// IsZero reports an unset value.
func (v IntOrPercent) IsZero() bool { return v.Type == intstr.Int && v.IntVal == 0 }

// Scaled resolves the value against total, rounding a percentage up, and never below 1.
func (v IntOrPercent) Scaled(total int) int {
	n, err := intstr.GetScaledValueFromIntOrPercent(&v.IntOrString, total, true)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// PercentPattern is a percentage from 1% to 100%: more than all of a group is all of it, and 0% none.
const PercentPattern = `^([1-9][0-9]?|100)%$`

// JSONSchema describes a count or a percentage. A value that is neither gets one problem that says
// which it should be (intOrPercentProblem), not one per branch of the oneOf.
func (IntOrPercent) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		OneOf: []*jsonschema.Schema{
			{Type: "integer", Minimum: json.Number("1")},
			{Type: "string", Pattern: PercentPattern},
		},
		Description: "a count of at least 1 (2) or a percentage from 1% to 100% (\"25%\")",
	}
}
