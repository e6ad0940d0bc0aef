// Package controlplane is the controlplane step: it upgrades the control-plane members one at a
// time, and after each proves the control plane whole again before the next: every apiserver, each
// at its own address (not whatever a load balancer answers), answers /readyz ok and, once its
// member is upgraded, /version with the target; the controller-manager and the scheduler renew
// their leases again; and the skew policy holds across every apiserver still running: no kubelet
// newer than the oldest apiserver, none further behind the newest than the policy allows, and the
// apiservers within one minor of each other (gate.go).
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/exec"
)

// Kind registers the step.
var Kind = runbook.Kind{
	Name:        "controlplane",
	Description: "upgrade the control-plane members one at a time, each proven healthy (version, readyz, leases, skew) before the next; an optional etcd snapshot first",
	Phase:       runbook.PhaseControlPlane,
	New:         func() runbook.Step { return &Step{} },
}

// Step is the controlplane step's settings.
type Step struct {
	// Members are the control-plane members in the order they are upgraded.
	Members []Member `json:"members" jsonschema:"minItems=1"`
	// Snapshot runs once before the first member (e.g. etcdctl snapshot save); its path is the
	// run's rollback point for the control plane.
	Snapshot *Snapshot `json:"snapshot,omitempty"`
	// PauseBetweenMembers asks a person after each member but the last.
	PauseBetweenMembers bool `json:"pauseBetweenMembers,omitempty"`
	// ReadyTimeout bounds the wait for a member to answer at the target, ready (default 10m).
	ReadyTimeout runbook.Duration `json:"readyTimeout,omitzero"`
	// MaxKubeletSkew is how many minors a kubelet may be behind the apiserver (default 3, the
	// upstream policy since v1.28; a stricter fleet says 1 or 2).
	MaxKubeletSkew int `json:"maxKubeletSkew,omitempty" jsonschema:"minimum=1,maximum=3"`
}

// Member is one control-plane member.
type Member struct {
	// Name of the member (a host, or the managed service's name); templates see it as .Member.
	Name string `json:"name" jsonschema:"minLength=1"`
	// Exec upgrades the member: a command template, e.g. [ssh, "{{.Member}}", sudo, kubeadm, upgrade,
	// apply, -y, "{{.TargetVersion}}"] on the first and [..., kubeadm, upgrade, node] on the others.
	Exec []string `json:"exec" jsonschema:"minItems=1"`
	// Endpoint is this member's apiserver (https://host:6443), checked for /version and /readyz;
	// default: the kubeconfig's server.
	Endpoint string `json:"endpoint,omitempty" jsonschema:"pattern=^https?://"`
}

// Snapshot is the etcd snapshot taken before the first member.
type Snapshot struct {
	// Exec takes it, e.g. [ssh, cp-1, sudo, etcdctl, snapshot, save, /var/lib/etcd-snap/{{.RunID}}.db].
	Exec []string `json:"exec" jsonschema:"minItems=1"`
	// Path is where it is, as a person restoring it needs it.
	Path string `json:"path" jsonschema:"minLength=1"`
}

// RollbackPointEtcdSnapshot is an etcd snapshot; restoring it is a person's decision.
const RollbackPointEtcdSnapshot = "etcd-snapshot"

// Name is the kind.
func (*Step) Name() string { return Kind.Name }

// ValidateSettings checks names and templates.
func (s *Step) ValidateSettings() []runbook.FieldError {
	var errs []runbook.FieldError
	seen := map[string]bool{}
	for i, m := range s.Members {
		if seen[m.Name] {
			errs = append(errs, runbook.FieldError{Field: fmt.Sprintf("members[%d].name", i), Message: fmt.Sprintf("member %q twice", m.Name), Hint: "each member is upgraded once"})
		}
		seen[m.Name] = true
		errs = append(errs, exec.CheckTemplates(fmt.Sprintf("members[%d].exec", i), m.Exec)...)
	}
	if s.Snapshot != nil {
		errs = append(errs, exec.CheckTemplates("snapshot.exec", s.Snapshot.Exec)...)
	}
	return errs
}

func (s *Step) readyTimeout() time.Duration {
	if s.ReadyTimeout.IsZero() {
		return 10 * time.Minute
	}
	return s.ReadyTimeout.Duration
}

func (s *Step) maxSkew() int {
	if s.MaxKubeletSkew == 0 {
		return 3
	}
	return s.MaxKubeletSkew
}

// Plan lists the snapshot and the members in order.
func (s *Step) Plan(_ context.Context, env *runbook.Env) ([]string, error) {
	var out []string
	if s.Snapshot != nil {
		out = append(out, "etcd snapshot to "+s.Snapshot.Path+" (the rollback point)")
	}
	for i, m := range s.Members {
		argv, err := exec.RenderMember(env, m.Exec, m.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("member %d/%d %s: %s; then every apiserver at its own address: /readyz, /version at %s once upgraded; leases renewed, skew", i+1, len(s.Members), m.Name, strings.Join(argv, " "), env.Target))
	}
	return out, nil
}

// Run upgrades the members not done yet, one at a time.
func (s *Step) Run(ctx context.Context, env *runbook.Env) error {
	if env.REST == nil || env.Kube == nil {
		return errors.New("controlplane: needs a cluster")
	}
	if s.Snapshot != nil && !env.Done("snapshot") {
		argv, err := exec.RenderMember(env, s.Snapshot.Exec, "")
		if err != nil {
			return err
		}
		env.Progress("etcd snapshot: "+strings.Join(argv, " "), 0, len(s.Members))
		if err := exec.RunCommand(ctx, env, argv, nil, "", nil); err != nil {
			return fmt.Errorf("etcd snapshot: %w", err)
		}
		if err := env.SetRollbackPoint(ctx, runbook.RollbackPoint{Kind: RollbackPointEtcdSnapshot, Name: s.Snapshot.Path}); err != nil {
			return err
		}
		if err := env.MarkDone(ctx, "snapshot"); err != nil {
			return err
		}
	}
	if !env.Done("member/" + s.Members[0].Name) {
		s.inventory(ctx, env)
	}
	for i, m := range s.Members {
		if env.Done("member/" + m.Name) {
			continue
		}
		if err := env.Record(ctx, runbook.Change{Kind: "controlplane", Object: "member/" + m.Name}); err != nil {
			return err
		}
		argv, err := exec.RenderMember(env, m.Exec, m.Name)
		if err != nil {
			return err
		}
		env.Progress(fmt.Sprintf("member %s: %s", m.Name, strings.Join(argv, " ")), i, len(s.Members))
		before := time.Now()
		if err := exec.RunCommand(ctx, env, argv, nil, "", nil); err != nil {
			return fmt.Errorf("member %s: %w", m.Name, err)
		}
		if err := s.proveWhole(ctx, env, i, before); err != nil {
			return fmt.Errorf("member %s: %w", m.Name, err)
		}
		if err := env.MarkDone(ctx, "member/"+m.Name); err != nil {
			return err
		}
		env.Progress(fmt.Sprintf("member %s: at %s, ready, leases renewed, skew within policy", m.Name, env.Target), i+1, len(s.Members))
		if s.PauseBetweenMembers && i < len(s.Members)-1 {
			if err := env.Pause(ctx, "member/"+m.Name, fmt.Sprintf("control-plane member %s is at %s; next: %s", m.Name, env.Target, s.Members[i+1].Name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameRelease: got is the target (the target's minor, and its patch when it names one).
func sameRelease(got, target string) bool {
	g, err1 := version.ParseGeneric(got)
	t, err2 := version.ParseGeneric(target)
	if err1 != nil || err2 != nil || g.Major() != t.Major() || g.Minor() != t.Minor() {
		return false
	}
	return strings.Count(strings.TrimPrefix(target, "v"), ".") < 2 || g.Patch() == t.Patch()
}

// WontUndo: upstream does not support downgrading a control plane.
func (s *Step) WontUndo() string {
	how := "restore an etcd snapshot by your distribution's procedure"
	if s.Snapshot != nil {
		how = "restoring the etcd snapshot " + s.Snapshot.Path + " (etcdutl snapshot restore, by your distribution's procedure) goes back"
	}
	return "the upgraded control-plane members stay upgraded: upstream does not support a control-plane downgrade; " + how
}

// Rollback does not downgrade: it says what stays and how to go back, and the run ends partly
// rolled back.
func (s *Step) Rollback(ctx context.Context, env *runbook.Env) error {
	var done []string
	for _, c := range env.Changes() {
		if c.Kind == "controlplane" {
			done = append(done, c.Object)
		}
	}
	if len(done) == 0 {
		return runbook.ErrNothingToUndo
	}
	for _, member := range done {
		if err := env.Keep(ctx, runbook.Kept{Object: member, Reason: s.WontUndo()}); err != nil {
			return err
		}
	}
	return nil
}

// Access: the checks read nodes and leases; /version and /readyz (at each apiserver's address) are
// open to authenticated users.
func (s *Step) Access() []runbook.Access {
	return []runbook.Access{
		{Verb: "list", Resource: "nodes", Why: "controlplane re-checks the kubelets' skew after each member"},
		{Verb: "get", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system", Why: "controlplane sees the controller-manager and scheduler renew their leases"},
		{Verb: "list", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system", Why: "controlplane counts the running apiservers (their identity leases) against the addresses it checks"},
		{Verb: "get", NonResourceURL: "/readyz", Why: "controlplane checks each apiserver is ready"},
	}
}
