//go:generate go run ../../internal/cmd/genapis -o zz_generated.lifecycle.go

package apis

// Overlay holds the kinds whose group-versions are gone from k8s.io/api and the other generating
// modules, so their lifecycle cannot be generated. Keep one line per kind with its source; a test
// fails if a line duplicates a generated entry.
var Overlay = []Lifecycle{
	{Group: "extensions", Version: "v1beta1", Kind: "PodSecurityPolicy", Deprecated: Release{1, 11}, Removed: Release{1, 16}, Replacement: "policy/v1beta1 PodSecurityPolicy", Source: "https://kubernetes.io/blog/2019/07/18/api-deprecations-in-1-16/"},
	{Group: "policy", Version: "v1beta1", Kind: "PodSecurityPolicy", Deprecated: Release{1, 21}, Removed: Release{1, 25}, Source: "https://kubernetes.io/docs/reference/using-api/deprecation-guide/#psp-v125", Note: "no replacement API: enforce pod security with Pod Security Admission (namespace labels) or a policy engine, then delete the PodSecurityPolicy"},
	{Group: "autoscaling", Version: "v2beta1", Kind: "HorizontalPodAutoscaler", Deprecated: Release{1, 22}, Removed: Release{1, 25}, Replacement: "autoscaling/v2 HorizontalPodAutoscaler", Source: "https://kubernetes.io/docs/reference/using-api/deprecation-guide/#horizontalpodautoscaler-v125"},
	{Group: "autoscaling", Version: "v2beta2", Kind: "HorizontalPodAutoscaler", Deprecated: Release{1, 23}, Removed: Release{1, 26}, Replacement: "autoscaling/v2 HorizontalPodAutoscaler", Source: "https://kubernetes.io/docs/reference/using-api/deprecation-guide/#horizontalpodautoscaler-v126"},
	{Group: "flowcontrol.apiserver.k8s.io", Version: "v1alpha1", Kind: "FlowSchema", Removed: Release{1, 21}, Replacement: "flowcontrol.apiserver.k8s.io/v1 FlowSchema", Source: "https://github.com/kubernetes/kubernetes/pull/95718"},
	{Group: "flowcontrol.apiserver.k8s.io", Version: "v1alpha1", Kind: "PriorityLevelConfiguration", Removed: Release{1, 21}, Replacement: "flowcontrol.apiserver.k8s.io/v1 PriorityLevelConfiguration", Source: "https://github.com/kubernetes/kubernetes/pull/95718"},
	{Group: "settings.k8s.io", Version: "v1alpha1", Kind: "PodPreset", Removed: Release{1, 20}, Source: "https://github.com/kubernetes/kubernetes/pull/94090", Note: "no replacement API: set the fields in the pod templates, or use a mutating admission webhook"},
	{Group: "batch", Version: "v2alpha1", Kind: "CronJob", Removed: Release{1, 21}, Replacement: "batch/v1 CronJob", Source: "https://github.com/kubernetes/kubernetes/pull/96987"},
}
