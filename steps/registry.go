// Package steps lists every step kind a runbook may use. Each kind lives in its own package.
package steps

import (
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/addons"
	"github.com/drydock-dev/drydock/steps/canary"
	"github.com/drydock-dev/drydock/steps/controlplane"
	"github.com/drydock-dev/drydock/steps/drain"
	"github.com/drydock-dev/drydock/steps/exec"
	"github.com/drydock-dev/drydock/steps/gate"
	"github.com/drydock-dev/drydock/steps/nodegroups"
	"github.com/drydock-dev/drydock/steps/pause"
	"github.com/drydock-dev/drydock/steps/preflight"
	"github.com/drydock-dev/drydock/steps/storagemigration"
	"github.com/drydock-dev/drydock/steps/velero"
	"github.com/drydock-dev/drydock/steps/wait"
)

// Registry holds the step kinds, one line each.
var Registry = runbook.Registry{
	exec.Kind,             // exec: run a command once or per node, with templates; rollback command optional
	wait.Kind,             // wait: watch until nodes are Ready / report a kubelet version, or pods are Ready
	pause.Kind,            // pause: a manual gate that stops the run until a person answers
	gate.Kind,             // health-gate: wait until healthy, then soak on evidence (pods, budgets, probe, Prometheus, Alertmanager)
	drain.Kind,            // drain: cordon and evict without breaking a budget; blockers named before anything moves
	controlplane.Kind,     // controlplane: members one at a time, each proven whole (version, readyz, leases, skew); etcd snapshot first
	storagemigration.Kind, // storage-migration: rewrite objects stored at an older version, trim CRD storedVersions
	canary.Kind,           // canary: upgrade the least disruptive node, check health, soak, pause
	nodegroups.Kind,       // nodegroups: upgrade groups one at a time, maxUnavailable nodes at once
	addons.Kind,           // addons: Helm releases and manifests one at a time, CNI first and mesh last, each rolled out or rolled back

	preflight.APIScanKind,   // api-scan: deprecated/removed APIs in objects, Helm releases, files, requests, CRDs
	preflight.PDBKind,       // pdb-check: budgets that block every drain, allow nothing now, overlap or are missing
	preflight.TrafficKind,   // traffic-check: workloads behind Services that lose requests when drained
	preflight.SkewKind,      // skew-check: the target against the version-skew policy (apiservers, kubelets)
	preflight.HealthKind,    // health-check: NotReady nodes, failing kube-system pods, APIServices, webhooks
	preflight.ConfigKind,    // config-check: flags and feature gates the target removes or locks, kubeadm config, in-tree volumes
	preflight.AddonKind,     // addon-check: installed add-ons against the Kubernetes versions each supports (vendor tables)
	preflight.VeleroKind,    // velero-check: Velero installed, storage locations Available, a recent Completed backup
	preflight.AccessKind,    // access-check: SelfSubjectAccessReview for everything the runbook will do
	preflight.PreflightKind, // preflight: every check above in one step

	velero.Kind, // velero-backup: back up with Velero, restore a sample into sandboxes and compare; the rollback point
}
