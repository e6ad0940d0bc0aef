package preflight

import (
	"context"
	"fmt"
	"maps"
	"slices"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/runbook"
)

// access is what each check reads.
var access = map[string][]runbook.Access{
	"api-scan": {
		{Verb: "list", Group: "*", Resource: "*", Why: "api-scan lists the metadata of every stored object"},
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
// the work needs. (Creating a review writes nothing: it is answered, not stored.)
func checkAccess(ctx context.Context, in *Input) ([]Finding, error) {
	need := in.Access
	if len(need) == 0 {
		need = AccessFor()
	}
	var out []Finding
	seen := map[string]bool{}
	for _, a := range need {
		if seen[a.String()] {
			continue
		}
		seen[a.String()] = true
		review := &authv1.SelfSubjectAccessReview{}
		if a.NonResourceURL != "" {
			review.Spec.NonResourceAttributes = &authv1.NonResourceAttributes{Path: a.NonResourceURL, Verb: a.Verb}
		} else {
			review.Spec.ResourceAttributes = &authv1.ResourceAttributes{Verb: a.Verb, Group: a.Group, Resource: a.Resource,
				Subresource: a.Subresource, Namespace: a.Namespace}
		}
		res, err := in.Kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("ask whether allowed to %s: %w", a, err)
		}
		if res.Status.Allowed {
			continue
		}
		msg := "not allowed to " + a.String() + ": " + a.Why
		if res.Status.Reason != "" {
			msg += " (" + res.Status.Reason + ")"
		}
		out = append(out, Finding{Severity: runbook.SeverityError, Object: a.String(), Message: msg,
			Fix: "grant it to the user or service account drydock runs as (see the RBAC section of the README)"})
	}
	return out, nil
}
