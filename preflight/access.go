package preflight

import (
	"context"
	"maps"
	"slices"

	"github.com/drydock-dev/drydock/runbook"
)

// access is what each check reads.
var access = map[string][]runbook.Access{
	"api-scan": {
		{Verb: "list", Group: "*", Resource: "*", Why: "api-scan lists the metadata of the stored objects of every kind with a deprecated or removed version"},
		{Verb: "list", Resource: "secrets", Why: "api-scan reads Helm releases stored in Secrets (helm: false skips them)"},
		{Verb: "get", NonResourceURL: "/metrics", Why: "api-scan reads apiserver_requested_deprecated_apis"},
		{Verb: "list", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions", Why: "api-scan reads CRD versions"},
	},
	"pdb-check": {
		{Verb: "list", Resource: "pods", Why: "pdb-check reads the pods budgets select"},
		{Verb: "list", Group: "policy", Resource: "poddisruptionbudgets", Why: "pdb-check reads the budgets"},
		{Verb: "list", Group: "apps", Resource: "replicasets", Why: "pdb-check names the workloads"},
		{Verb: "list", Group: "apps", Resource: "deployments", Why: "pdb-check finds replicated workloads without a budget"},
		{Verb: "list", Group: "apps", Resource: "statefulsets", Why: "pdb-check finds replicated workloads without a budget"},
	},
	"traffic-check": {
		{Verb: "list", Resource: "services", Why: "traffic-check finds the Services and the pods they select"},
		{Verb: "list", Resource: "pods", Why: "traffic-check reads the probes, hooks and nodes of the pods behind Services"},
		{Verb: "list", Group: "apps", Resource: "replicasets", Why: "traffic-check names the Deployments"},
	},
	"skew-check": {
		{Verb: "list", Resource: "nodes", Why: "skew-check reads the kubelet versions"},
		{Verb: "list", Resource: "pods", Namespace: "kube-system", Why: "skew-check reads the apiserver pods' versions"},
	},
	"health-check": {
		{Verb: "list", Resource: "nodes", Why: "health-check finds NotReady nodes"},
		{Verb: "list", Resource: "pods", Namespace: "kube-system", Why: "health-check finds failing kube-system pods"},
		{Verb: "list", Group: "apiregistration.k8s.io", Resource: "apiservices", Why: "health-check reads APIService availability"},
		{Verb: "list", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", Why: "health-check finds webhooks without endpoints"},
		{Verb: "list", Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations", Why: "health-check finds webhooks without endpoints"},
		{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices", Why: "health-check finds webhooks without endpoints"},
	},
	"config-check": {
		{Verb: "list", Resource: "pods", Why: "config-check reads the control plane's static pods and pods' inline volumes"},
		{Verb: "get", Resource: "configmaps", Namespace: "kube-system", Name: "kubeadm-config", Why: "config-check reads kubeadm's ClusterConfiguration"},
		{Verb: "get", Resource: "configmaps", Namespace: "kube-system", Name: "kubelet-config", Why: "config-check reads kubeadm's KubeletConfiguration"},
		{Verb: "list", Resource: "nodes", Why: "config-check reads each kubelet's configuration"},
		{Verb: "get", Resource: "nodes", Subresource: "proxy", Why: "config-check reads each kubelet's /configz through the apiserver"},
		{Verb: "list", Resource: "persistentvolumes", Why: "config-check finds volumes whose in-tree plugin the target drops"},
		{Verb: "list", Group: "storage.k8s.io", Resource: "csidrivers", Why: "config-check checks the CSI drivers in-tree volumes migrate to"},
	},
	"addon-check": {
		{Verb: "list", Group: "apps", Resource: "daemonsets", Why: "addon-check recognizes add-ons by their images and labels"},
		{Verb: "list", Group: "apps", Resource: "deployments", Why: "addon-check recognizes add-ons by their images and labels"},
		{Verb: "list", Group: "apps", Resource: "statefulsets", Why: "addon-check recognizes add-ons by their images and labels"},
		{Verb: "list", Resource: "secrets", Why: "addon-check reads the charts of Helm releases (helm: false skips them)"},
	},
	"velero": {
		{Verb: "list", Group: "velero.io", Resource: "backupstoragelocations", Namespace: "velero", Why: "velero reads the storage locations"},
		{Verb: "list", Group: "velero.io", Resource: "backups", Namespace: "velero", Why: "velero finds the newest backup"},
	},
	"access-check": {
		{Verb: "create", Group: "authorization.k8s.io", Resource: "selfsubjectaccessreviews", Why: "access-check asks the apiserver"},
	},
}

// AccessFor lists what the named checks read (every check when none is named).
func AccessFor(checks ...string) []runbook.Access {
	if len(checks) == 0 {
		checks = slices.Sorted(maps.Keys(access))
	}
	var out []runbook.Access
	for _, c := range checks {
		out = append(out, access[c]...)
	}
	return out
}

// checkAccess asks the apiserver, one SelfSubjectAccessReview each, whether the user may do what
// the work needs: every permission missing is an error finding. (Creating a review writes nothing:
// it is answered, not stored.)
func checkAccess(ctx context.Context, in *Input) ([]Finding, error) {
	need := in.Access
	if len(need) == 0 {
		need = AccessFor()
	}
	missing, known, err := runbook.Allowed(ctx, in.Kube, need)
	if err != nil {
		return nil, err
	}
	if !known {
		return []Finding{{Severity: runbook.SeverityError, Object: "create selfsubjectaccessreviews.authorization.k8s.io", NotAllowed: true, CouldNotCheck: CouldNotForbidden,
			Message: "could not check access: the user may not ask the apiserver what it may do",
			Fix:     "allow create selfsubjectaccessreviews (every authenticated user has it by default, through system:basic-user)"}}, nil
	}
	var out []Finding
	for _, a := range missing {
		out = append(out, Finding{Severity: runbook.SeverityError, Object: a.String(), Message: "not allowed to " + a.String() + ": " + a.Why,
			Fix: "grant it to the user or service account drydock runs as (docs/permissions.md in the drydock repository lists what each command and step needs)"})
	}
	return out, nil
}
