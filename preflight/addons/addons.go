// Package addons knows the add-ons drydock recognizes in a cluster (from Helm releases, images and
// labels) and the Kubernetes versions each add-on version supports, as its vendor publishes them.
//
// Table is kept like the API overlay: one line per range of add-on versions with its source (a
// versioned link to the vendor's own table), and a test refuses a line without one. A version the
// table has no line for is said to be unknown, never assumed compatible.
package addons

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/drydock-dev/drydock/preflight/apis"
)

// Addon is one add-on drydock recognizes.
type Addon struct {
	ID    string
	Name  string
	Class string // cni, dns, kube-proxy, ingress, mesh, other (as the addons step classifies)
	// Charts are Helm chart names; Images repository suffixes ("cilium/cilium" matches
	// quay.io/cilium/cilium); Labels values of app.kubernetes.io/name (or k8s-app).
	Charts, Images, Labels []string
	// Page is where the vendor says which Kubernetes versions it supports.
	Page string
	// Note is said with every finding about the add-on (a retirement, a policy).
	Note string
}

// Catalog lists the add-ons drydock recognizes.
var Catalog = []Addon{
	{ID: "coredns", Name: "CoreDNS", Class: "dns", Charts: []string{"coredns"}, Images: []string{"coredns/coredns", "eks/coredns", "coredns"}, Labels: []string{"coredns", "kube-dns"},
		Page: "https://github.com/coredns/deployment/blob/master/kubernetes/CoreDNS-k8s_version.md"},
	{ID: "kube-proxy", Name: "kube-proxy", Class: "kube-proxy", Images: []string{"kube-proxy", "eks/kube-proxy"}, Labels: []string{"kube-proxy"},
		Page: "https://kubernetes.io/releases/version-skew-policy/#kube-proxy"},
	{ID: "cilium", Name: "Cilium", Class: "cni", Charts: []string{"cilium"}, Images: []string{"cilium/cilium"}, Labels: []string{"cilium", "cilium-agent"},
		Page: "https://docs.cilium.io/en/stable/network/kubernetes/requirements/"},
	// Calico by calico/node: the tigera-operator's own image carries the operator's version, not Calico's
	// (its Helm chart's appVersion is Calico's).
	{ID: "calico", Name: "Calico", Class: "cni", Charts: []string{"tigera-operator", "calico"}, Images: []string{"calico/node"}, Labels: []string{"calico-node"},
		Page: "https://docs.tigera.io/calico/latest/getting-started/kubernetes/requirements"},
	{ID: "flannel", Name: "Flannel", Class: "cni", Charts: []string{"flannel"}, Images: []string{"flannel/flannel", "flannel-io/flannel", "coreos/flannel"}, Labels: []string{"flannel"},
		Page: "https://github.com/flannel-io/flannel/blob/master/Documentation/kubernetes.md",
		Note: "Flannel publishes no Kubernetes version table (its docs say flanneld \"should work with any version of Kubernetes\")"},
	{ID: "antrea", Name: "Antrea", Class: "cni", Charts: []string{"antrea"}, Images: []string{"antrea/antrea-agent-ubuntu", "antrea/antrea-ubuntu", "antrea/antrea-controller-ubuntu"}, Labels: []string{"antrea"},
		Page: "https://github.com/antrea-io/antrea/blob/main/docs/versioning.md#supported-k8s-versions",
		Note: "Antrea supports the Kubernetes releases maintained when each Antrea minor was released, without a published table"},
	{ID: "ingress-nginx", Name: "ingress-nginx", Class: "ingress", Charts: []string{"ingress-nginx"}, Images: []string{"ingress-nginx/controller"}, Labels: []string{"ingress-nginx"},
		Page: "https://github.com/kubernetes/ingress-nginx#supported-versions-table",
		Note: "ingress-nginx is retired (no releases after March 2026, https://kubernetes.io/blog/2025/11/11/ingress-nginx-retirement/): plan a move to a Gateway API implementation"},
	{ID: "cert-manager", Name: "cert-manager", Class: "other", Charts: []string{"cert-manager"}, Images: []string{"jetstack/cert-manager-controller"}, Labels: []string{"cert-manager"},
		Page: "https://cert-manager.io/docs/releases/"},
	{ID: "metrics-server", Name: "metrics-server", Class: "other", Charts: []string{"metrics-server"}, Images: []string{"metrics-server/metrics-server"}, Labels: []string{"metrics-server"},
		Page: "https://github.com/kubernetes-sigs/metrics-server#compatibility-matrix"},
	{ID: "istio", Name: "Istio", Class: "mesh", Charts: []string{"istiod", "base"}, Images: []string{"istio/pilot"}, Labels: []string{"istiod"},
		Page: "https://istio.io/latest/docs/releases/supported-releases/"},
	{ID: "linkerd", Name: "Linkerd", Class: "mesh", Charts: []string{"linkerd-control-plane", "linkerd2"}, Images: []string{"linkerd/controller", "linkerd/proxy-identity"}, Labels: []string{"linkerd-controller"},
		Page: "https://linkerd.io/2/reference/k8s-versions/"},
	{ID: "csi-snapshotter", Name: "CSI external-snapshotter", Class: "other", Charts: []string{"snapshot-controller"},
		Images: []string{"sig-storage/snapshot-controller", "sig-storage/csi-snapshotter"}, Labels: []string{"snapshot-controller"},
		Page: "https://kubernetes-csi.github.io/docs/snapshot-controller.html"},
	{ID: "karpenter", Name: "Karpenter", Class: "other", Charts: []string{"karpenter"}, Images: []string{"karpenter/controller"}, Labels: []string{"karpenter"},
		Page: "https://karpenter.sh/docs/upgrading/compatibility/"},
	{ID: "cluster-autoscaler", Name: "Cluster Autoscaler", Class: "other", Charts: []string{"cluster-autoscaler"}, Images: []string{"autoscaling/cluster-autoscaler"}, Labels: []string{"cluster-autoscaler", "aws-cluster-autoscaler"},
		Page: "https://github.com/kubernetes/autoscaler/tree/master/cluster-autoscaler#releases"},
	{ID: "argo-cd", Name: "Argo CD", Class: "other", Charts: []string{"argo-cd"}, Images: []string{"argoproj/argocd"}, Labels: []string{"argocd-server", "argocd-application-controller"},
		Page: "https://argo-cd.readthedocs.io/en/stable/operator-manual/tested-kubernetes-versions/"},
	{ID: "velero", Name: "Velero", Class: "other", Charts: []string{"velero"}, Images: []string{"velero/velero"}, Labels: []string{"velero"},
		Page: "https://github.com/vmware-tanzu/velero#velero-compatibility-matrix"},
}

// ByID finds an add-on of the catalog.
func ByID(id string) (Addon, bool) {
	for _, a := range Catalog {
		if a.ID == id {
			return a, true
		}
	}
	return Addon{}, false
}

// Outside says what a Kubernetes version outside a line's range means.
type Outside string

const (
	// Unsupported: the vendor says the add-on does not work there (or refuses to start).
	Unsupported Outside = "unsupported"
	// Untested: the vendor did not test it there; it may work.
	Untested Outside = "untested"
)

// Line is one line of the compatibility table: the add-on versions it covers and the Kubernetes
// versions they support.
type Line struct {
	Addon string
	// Versions are the add-on versions, as a semver constraint ("1.20.x", ">= 1.13").
	Versions string
	// Min and Max bound the Kubernetes versions (Max zero: no upper bound).
	Min, Max apis.Release
	// Below and Above say what a Kubernetes version outside the range means.
	Below, Above Outside
	Source       string
}

// Range is the line's Kubernetes range as people write it: "1.33–1.36", "1.34+".
func (l Line) Range() string {
	switch {
	case l.Max.IsZero():
		return l.Min.String() + "+"
	case l.Min == l.Max:
		return l.Min.String()
	case l.Min.IsZero():
		return "up to " + l.Max.String()
	}
	return l.Min.String() + "–" + l.Max.String()
}

// Covers says whether the line's Kubernetes range holds k.
func (l Line) Covers(k apis.Release) bool {
	return (l.Min.IsZero() || l.Min.AtOrBefore(k)) && (l.Max.IsZero() || k.AtOrBefore(l.Max))
}

// Matches says whether the line covers add-on version v.
func (l Line) Matches(v *semver.Version) bool {
	c, err := semver.NewConstraint(l.Versions)
	return err == nil && c.Check(v)
}

func r(minor int) apis.Release { return apis.Release{Major: 1, Minor: minor} }

// Table is the compatibility table. Keep one line per range of add-on versions with its source.
var Table = append([]Line{
	// metrics-server: "Supported Kubernetes version" of its README's compatibility matrix.
	{Addon: "metrics-server", Versions: "0.9.x", Min: r(34), Below: Unsupported, Source: "https://github.com/kubernetes-sigs/metrics-server/blob/v0.9.0/README.md#compatibility-matrix"},
	{Addon: "metrics-server", Versions: "0.8.x", Min: r(31), Below: Unsupported, Source: "https://github.com/kubernetes-sigs/metrics-server/blob/v0.9.0/README.md#compatibility-matrix"},
	{Addon: "metrics-server", Versions: "0.7.x", Min: r(27), Below: Unsupported, Source: "https://github.com/kubernetes-sigs/metrics-server/blob/v0.9.0/README.md#compatibility-matrix"},
	{Addon: "metrics-server", Versions: "0.6.x", Min: r(25), Below: Unsupported, Source: "https://github.com/kubernetes-sigs/metrics-server/blob/v0.9.0/README.md#compatibility-matrix"},
	{Addon: "metrics-server", Versions: ">= 0.4.0, < 0.6.0", Min: r(8), Below: Unsupported, Source: "https://github.com/kubernetes-sigs/metrics-server/blob/v0.9.0/README.md#compatibility-matrix"},
	{Addon: "metrics-server", Versions: "0.3.x", Min: r(8), Max: r(21), Below: Unsupported, Above: Unsupported, Source: "https://github.com/kubernetes-sigs/metrics-server/blob/v0.9.0/README.md#compatibility-matrix"},

	// Velero: "Expected Kubernetes version compatibility" of its README (1.18-latest).
	{Addon: "velero", Versions: ">= 1.14.0, < 1.19.0", Min: r(18), Below: Unsupported, Source: "https://github.com/vmware-tanzu/velero/blob/v1.18.3/README.md#velero-compatibility-matrix"},

	// Cilium: the Kubernetes versions each release is e2e tested on; "older Kubernetes versions not
	// listed here do not have Cilium support", newer ones "depend on the backward compatibility".
	{Addon: "cilium", Versions: "1.15.x", Min: r(26), Max: r(29), Below: Unsupported, Above: Untested, Source: "https://github.com/cilium/cilium/blob/v1.15.19/Documentation/network/kubernetes/requirements.rst"},
	{Addon: "cilium", Versions: "1.18.x", Min: r(30), Max: r(33), Below: Unsupported, Above: Untested, Source: "https://github.com/cilium/cilium/blob/v1.18.14/Documentation/network/kubernetes/compatibility.rst"},
	{Addon: "cilium", Versions: "1.20.x", Min: r(33), Max: r(36), Below: Unsupported, Above: Untested, Source: "https://github.com/cilium/cilium/blob/v1.20.2/Documentation/network/kubernetes/requirements.rst"},

	// ingress-nginx: the README's supported versions table (E2E tested; "may work on older versions").
	{Addon: "ingress-nginx", Versions: "1.15.x", Min: r(31), Max: r(35), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: "1.14.x", Min: r(30), Max: r(34), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: "1.13.x", Min: r(29), Max: r(33), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: "1.12.x", Min: r(28), Max: r(32), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: ">= 1.10.1, < 1.12.0", Min: r(26), Max: r(30), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: "1.10.0", Min: r(26), Max: r(29), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: "1.9.6", Min: r(25), Max: r(29), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: ">= 1.9.0, < 1.9.6", Min: r(25), Max: r(28), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: ">= 1.7.0, < 1.9.0", Min: r(24), Max: r(27), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: "1.6.x", Min: r(23), Max: r(26), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: "1.5.x", Min: r(23), Max: r(25), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: "1.4.x", Min: r(22), Max: r(25), Below: Untested, Above: Untested, Source: ingressNginxTable},
	{Addon: "ingress-nginx", Versions: "1.3.x", Min: r(20), Max: r(24), Below: Untested, Above: Untested, Source: ingressNginxTable},

	// cert-manager: "Compatible Kubernetes versions" of the supported and old releases.
	{Addon: "cert-manager", Versions: "1.21.x", Min: r(33), Max: r(36), Below: Unsupported, Above: Untested, Source: certManagerReleases},
	{Addon: "cert-manager", Versions: "1.20.x", Min: r(32), Max: r(35), Below: Unsupported, Above: Untested, Source: certManagerReleases},
	{Addon: "cert-manager", Versions: "1.19.x", Min: r(31), Max: r(35), Below: Unsupported, Above: Untested, Source: certManagerReleases},
	{Addon: "cert-manager", Versions: ">= 1.17.0, < 1.19.0", Min: r(29), Max: r(33), Below: Unsupported, Above: Untested, Source: certManagerReleases},
	{Addon: "cert-manager", Versions: ">= 1.15.0, < 1.17.0", Min: r(25), Max: r(32), Below: Unsupported, Above: Untested, Source: certManagerReleases},
	{Addon: "cert-manager", Versions: "1.14.x", Min: r(24), Max: r(31), Below: Unsupported, Above: Untested, Source: certManagerReleases},
	{Addon: "cert-manager", Versions: "1.13.x", Min: r(21), Max: r(27), Below: Unsupported, Above: Untested, Source: certManagerReleases},
	{Addon: "cert-manager", Versions: "1.12.x", Min: r(22), Max: r(32), Below: Unsupported, Above: Untested, Source: certManagerReleases},

	// Calico: "We test Calico vX.Y against the following Kubernetes versions. Other versions may
	// work, but we are not actively testing them", and it "will not work on Kubernetes v1.20 or
	// below" (v1.21 up to the range "may work, but is no longer tested"): untested either side.
	{Addon: "calico", Versions: "3.32.x", Min: r(32), Max: r(36), Below: Untested, Above: Untested, Source: calicoReqs + "f871584d2158cc1180ee03ac72da008750da29c8/calico_versioned_docs/version-3.32/_includes/partials/_system-requirements.mdx"},
	{Addon: "calico", Versions: "3.31.x", Min: r(32), Max: r(34), Below: Untested, Above: Untested, Source: calicoReqs + "28b16b1a8bba01b38bc963c1e43726f3150b6c2c/calico_versioned_docs/version-3.31/_includes/partials/_system-requirements.mdx"},
	{Addon: "calico", Versions: "3.30.x", Min: r(31), Max: r(33), Below: Untested, Above: Untested, Source: calicoReqs + "1bbcbaeda8a66d00cc5e69c9973412eeb550522b/calico_versioned_docs/version-3.30/_includes/partials/_system-requirements.mdx"},
	{Addon: "calico", Versions: "3.29.x", Min: r(29), Max: r(32), Below: Untested, Above: Untested, Source: calicoReqs + "fb70a7793965a92973ec83c479003d77b51c31c5/calico_versioned_docs/version-3.29/_includes/partials/_system-requirements.mdx"},

	// Istio: "Supported Kubernetes Versions" of each release (older ones only "tested, but not
	// supported"; istioctl precheck refuses a Kubernetes older than the minimum, IST0142).
	{Addon: "istio", Versions: "1.26.x", Min: r(29), Max: r(33), Below: Unsupported, Above: Untested, Source: istioLatest},
	{Addon: "istio", Versions: "1.25.x", Min: r(29), Max: r(32), Below: Unsupported, Above: Untested, Source: istioLatest},
	{Addon: "istio", Versions: "1.24.x", Min: r(28), Max: r(31), Below: Unsupported, Above: Untested, Source: istioLatest},
	{Addon: "istio", Versions: "1.23.x", Min: r(27), Max: r(30), Below: Unsupported, Above: Untested, Source: istioLatest},
	{Addon: "istio", Versions: "1.22.x", Min: r(27), Max: r(30), Below: Unsupported, Above: Untested, Source: istioStatus},
	{Addon: "istio", Versions: "1.21.x", Min: r(26), Max: r(29), Below: Unsupported, Above: Untested, Source: istioStatus},
	{Addon: "istio", Versions: "1.20.x", Min: r(25), Max: r(29), Below: Unsupported, Above: Untested, Source: istioStatus},

	// Linkerd: minimum and maximum Kubernetes version of each stable release ("later versions of
	// Kubernetes end up making changes that cause older versions of Linkerd to not work: we will
	// update the chart"): below the minimum it does not install, above the maximum it is untested.
	{Addon: "linkerd", Versions: "2.19.x", Min: r(22), Max: r(34), Below: Unsupported, Above: Untested, Source: linkerdVersions},
	{Addon: "linkerd", Versions: "2.18.x", Min: r(22), Max: r(32), Below: Unsupported, Above: Untested, Source: linkerdVersions},
	{Addon: "linkerd", Versions: "2.17.x", Min: r(22), Max: r(31), Below: Unsupported, Above: Untested, Source: linkerdVersions},
	{Addon: "linkerd", Versions: ">= 2.15.0, < 2.17.0", Min: r(22), Max: r(29), Below: Unsupported, Above: Untested, Source: linkerdVersions},
	{Addon: "linkerd", Versions: ">= 2.13.0, < 2.15.0", Min: r(21), Max: r(28), Below: Unsupported, Above: Untested, Source: linkerdVersions},
	{Addon: "linkerd", Versions: "2.12.x", Min: r(21), Max: r(24), Below: Unsupported, Above: Untested, Source: linkerdVersions},

	// CSI external-snapshotter (snapshot-controller and the csi-snapshotter sidecar): "Min K8s
	// Version" of each release, no maximum ("-").
	{Addon: "csi-snapshotter", Versions: ">= 8.0.0, < 8.3.0", Min: r(25), Below: Unsupported, Source: snapshotterVersions},
	{Addon: "csi-snapshotter", Versions: ">= 6.0.0, < 6.4.0", Min: r(20), Below: Unsupported, Source: snapshotterVersions},

	// Karpenter: its generated compatibility matrix gives the oldest Karpenter for each Kubernetes
	// version (Karpenter refuses a Kubernetes version newer than it supports); beyond 1.36 the
	// matrix does not say yet.
	{Addon: "karpenter", Versions: ">= 1.13.0", Max: r(36), Above: Untested, Source: karpenterMatrix},
	{Addon: "karpenter", Versions: ">= 1.9.0, < 1.13.0", Max: r(35), Above: Unsupported, Source: karpenterMatrix},
	{Addon: "karpenter", Versions: ">= 1.6.0, < 1.9.0", Max: r(34), Above: Unsupported, Source: karpenterMatrix},
	{Addon: "karpenter", Versions: "1.5.x", Max: r(33), Above: Unsupported, Source: karpenterMatrix},
	{Addon: "karpenter", Versions: ">= 1.2.0, < 1.5.0", Max: r(32), Above: Unsupported, Source: karpenterMatrix},
	{Addon: "karpenter", Versions: ">= 1.0.5, < 1.2.0", Max: r(31), Above: Unsupported, Source: karpenterMatrix},
	{Addon: "karpenter", Versions: ">= 0.37.0, < 1.0.5", Max: r(30), Above: Unsupported, Source: karpenterMatrix},

	// Argo CD: the Kubernetes versions each release is tested on (docs/operator-manual/tested-kubernetes-versions.md of each release branch).
	{Addon: "argo-cd", Versions: "3.5.x", Min: r(33), Max: r(36), Below: Untested, Above: Untested, Source: "https://github.com/argoproj/argo-cd/blob/961ee40cc32717bad323629284085b9f2cd7173f/docs/operator-manual/tested-kubernetes-versions.md"},
	{Addon: "argo-cd", Versions: "3.4.x", Min: r(32), Max: r(35), Below: Untested, Above: Untested, Source: "https://github.com/argoproj/argo-cd/blob/924ab35b93689ddba28731bdaa45a189ac653ddc/docs/operator-manual/tested-kubernetes-versions.md"},
	{Addon: "argo-cd", Versions: "3.3.x", Min: r(32), Max: r(35), Below: Untested, Above: Untested, Source: "https://github.com/argoproj/argo-cd/blob/ec1fc4524dea1880e03b4d0a31d39d7fe441ddd9/docs/operator-manual/tested-kubernetes-versions.md"},
	{Addon: "argo-cd", Versions: ">= 3.1.0, < 3.3.0", Min: r(31), Max: r(34), Below: Untested, Above: Untested, Source: "https://github.com/argoproj/argo-cd/blob/5b7b039c974790b72e5aed6d82ced7844ae8cc57/docs/operator-manual/tested-kubernetes-versions.md"},
	{Addon: "argo-cd", Versions: "3.0.x", Min: r(29), Max: r(32), Below: Untested, Above: Untested, Source: "https://github.com/argoproj/argo-cd/blob/7cedae735ca5c68fc24520b42da339aa388b9d25/docs/operator-manual/tested-kubernetes-versions.md"},
	{Addon: "argo-cd", Versions: "2.14.x", Min: r(28), Max: r(31), Below: Untested, Above: Untested, Source: "https://github.com/argoproj/argo-cd/blob/206a6eeca509bbf7f239301f3d3fa498c23251a4/docs/operator-manual/tested-kubernetes-versions.md"},
	{Addon: "argo-cd", Versions: "2.13.x", Min: r(27), Max: r(30), Below: Untested, Above: Untested, Source: "https://github.com/argoproj/argo-cd/blob/a70b2293a06be06dbb5fb30d0925331e72a6de14/docs/operator-manual/tested-kubernetes-versions.md"},
	{Addon: "argo-cd", Versions: "2.12.x", Min: r(26), Max: r(29), Below: Untested, Above: Untested, Source: "https://github.com/argoproj/argo-cd/blob/a70b2293a06be06dbb5fb30d0925331e72a6de14/docs/operator-manual/tested-kubernetes-versions.md"},
	{Addon: "argo-cd", Versions: "2.11.x", Min: r(25), Max: r(29), Below: Untested, Above: Untested, Source: "https://github.com/argoproj/argo-cd/blob/a70b2293a06be06dbb5fb30d0925331e72a6de14/docs/operator-manual/tested-kubernetes-versions.md"},
}, ruleLines()...)

const (
	ingressNginxTable   = "https://github.com/kubernetes/ingress-nginx/blob/dbb11b92ddb77bee9c35e462479129354c84f939/README.md#supported-versions-table"
	certManagerReleases = "https://github.com/cert-manager/website/blob/776e5dba56510fc9de84206b806b568447077f25/content/docs/releases/README.md"
	karpenterMatrix     = "https://github.com/aws/karpenter-provider-aws/blob/1d927085dd81a9df9301e613f371dac5b4d16bfe/website/content/en/docs/upgrading/compatibility.md#compatibility-matrix"
	skewPolicy          = "https://kubernetes.io/releases/version-skew-policy/#kube-proxy"
	calicoReqs          = "https://github.com/tigera/docs/blob/"
	istioStatus         = "https://github.com/istio/istio.io/blob/0a759c7fabfea45ce4e62701df28f684a96987cc/data/compatibility/supportStatus.yml"
	istioLatest         = "https://istio.io/latest/zh/docs/releases/supported-releases/ (the table as it listed 1.23–1.26)"
	linkerdVersions     = "https://github.com/linkerd/website/blob/df68cad36c85117f48176d38095f16857728439e/linkerd.io/content/2-edge/reference/k8s-versions.md"
	snapshotterVersions = "https://kubernetes-csi.github.io/docs/snapshot-controller.html (Supported and Unsupported Versions tables)"
	autoscalerReleases  = "https://github.com/kubernetes/autoscaler/tree/master/cluster-autoscaler#releases"
)

// ruleLines are the add-ons whose versions follow Kubernetes' own: kube-proxy (the skew policy: not
// newer than the apiserver, at most three minors older) and the Cluster Autoscaler (one minor per
// Kubernetes minor, "meant" for it). One line per minor drydock knows.
func ruleLines() []Line {
	var out []Line
	for m := 25; m <= apis.Pinned.Minor+1; m++ {
		v := fmt.Sprintf("1.%d.x", m)
		out = append(out,
			Line{Addon: "kube-proxy", Versions: v, Min: r(m), Max: r(m + 3), Below: Unsupported, Above: Unsupported, Source: skewPolicy},
			Line{Addon: "cluster-autoscaler", Versions: v, Min: r(m), Max: r(m), Below: Untested, Above: Untested, Source: autoscalerReleases})
	}
	return out
}

// Shipped is a component version kubeadm installs with a Kubernetes release: an installed one older
// than the target's is behind what the target was released and tested with.
type Shipped struct {
	Addon   string
	Release apis.Release
	Version string
	Source  string
}

// KubeadmShipped lists the CoreDNS kubeadm installs per Kubernetes release.
var KubeadmShipped = []Shipped{
	{Addon: "coredns", Release: r(25), Version: "1.9.3", Source: corednsTable},
	{Addon: "coredns", Release: r(26), Version: "1.9.3", Source: corednsTable},
	{Addon: "coredns", Release: r(27), Version: "1.10.1", Source: corednsTable},
	{Addon: "coredns", Release: r(28), Version: "1.10.1", Source: corednsTable},
	{Addon: "coredns", Release: r(29), Version: "1.11.1", Source: corednsTable},
	{Addon: "coredns", Release: r(30), Version: "1.11.1", Source: corednsTable},
	{Addon: "coredns", Release: r(31), Version: "1.11.3", Source: corednsTable},
	{Addon: "coredns", Release: r(32), Version: "1.11.3", Source: corednsTable},
	{Addon: "coredns", Release: r(36), Version: "1.14.2", Source: "https://github.com/kubernetes/kubernetes/blob/v1.36.3/cmd/kubeadm/app/constants/constants.go (CoreDNSVersion)"},
	{Addon: "coredns", Release: r(37), Version: "1.14.6", Source: "https://github.com/kubernetes/kubernetes/blob/v1.37.1/cmd/kubeadm/app/constants/constants.go (CoreDNSVersion)"},
}

const corednsTable = "https://github.com/coredns/deployment/blob/7853d4a19c9c3463044a5e39f8de3c9a48691854/kubernetes/CoreDNS-k8s_version.md"

// ShippedWith finds what kubeadm installs of addon with release k.
func ShippedWith(addon string, k apis.Release) (Shipped, bool) {
	for _, s := range KubeadmShipped {
		if s.Addon == addon && s.Release == k {
			return s, true
		}
	}
	return Shipped{}, false
}

// LinesFor lists the table's lines for addon, newest add-on versions first.
func LinesFor(addon string) []Line {
	var out []Line
	for _, l := range Table {
		if l.Addon == addon {
			out = append(out, l)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Lowest().GreaterThan(out[j].Lowest()) })
	return out
}

// Lowest is the lowest add-on version the line admits.
func (l Line) Lowest() *semver.Version {
	m := versionRe.FindString(l.Versions)
	v, err := semver.NewVersion(m)
	if err != nil {
		return semver.MustParse("0.0.0")
	}
	return v
}

// ParseVersion reads an add-on version from an image tag, a label or a chart's appVersion:
// "v1.15.3", "1.20.2", "v1.11.1-eksbuild.1", "stable-2.14.10", "v1.13.0@sha256:…". It returns nil
// when there is none ("latest").
func ParseVersion(s string) *semver.Version {
	s, _, _ = strings.Cut(s, "@")
	m := versionRe.FindStringSubmatch(s)
	if m == nil {
		return nil
	}
	v, err := semver.NewVersion(m[1])
	if err != nil {
		return nil
	}
	plain, _ := semver.NewVersion(fmt.Sprintf("%d.%d.%d", v.Major(), v.Minor(), v.Patch())) // builds and pre-releases of a vendor (eksbuild) count as the release
	return plain
}

var versionRe = regexp.MustCompile(`(\d+\.\d+(?:\.\d+)?)`)

// Verdict is the table's answer for one add-on version and one Kubernetes version.
type Verdict struct {
	Line  *Line   // the line covering the add-on version; nil: the table does not know it
	OK    bool    // the Kubernetes version is in the line's range
	Why   Outside // when not OK: unsupported or untested
	Below bool    // the Kubernetes version is below the range (else above)
}

// Judge looks up add-on version v of addon for Kubernetes version k.
func Judge(addon string, v *semver.Version, k apis.Release) Verdict {
	for _, l := range LinesFor(addon) {
		if !l.Matches(v) {
			continue
		}
		l := l
		switch {
		case l.Covers(k):
			return Verdict{Line: &l, OK: true}
		case !l.Min.IsZero() && !l.Min.AtOrBefore(k):
			return Verdict{Line: &l, Why: l.Below, Below: true}
		default:
			return Verdict{Line: &l, Why: l.Above}
		}
	}
	return Verdict{}
}

// Supporting lists the table's lines of addon that cover every one of ks, newest first: the add-on
// versions to move to.
func Supporting(addon string, ks ...apis.Release) []Line {
	var out []Line
	for _, l := range LinesFor(addon) {
		all := true
		for _, k := range ks {
			all = all && l.Covers(k)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

// Validate refuses a table whose lines cannot be trusted: a line without a source (a link to the
// vendor's own table), an add-on the catalog does not know, a version constraint that does not
// parse, a Kubernetes range upside down or without its meaning outside it, or two lines that claim
// the same add-on version.
func Validate(lines []Line) error {
	var errs []string
	for i, l := range lines {
		where := fmt.Sprintf("line %d (%s %s)", i, l.Addon, l.Versions)
		if !strings.HasPrefix(l.Source, "https://") {
			errs = append(errs, where+": no source: give the link to the vendor's table it comes from")
		}
		if _, ok := ByID(l.Addon); !ok {
			errs = append(errs, where+": add-on not in the catalog")
		}
		if _, err := semver.NewConstraint(l.Versions); err != nil {
			errs = append(errs, where+": versions: "+err.Error())
			continue
		}
		if !l.Min.IsZero() && !l.Max.IsZero() && !l.Min.AtOrBefore(l.Max) {
			errs = append(errs, where+": Kubernetes range "+l.Range()+" is upside down")
		}
		if !l.Min.IsZero() && l.Below == "" || !l.Max.IsZero() && l.Above == "" {
			errs = append(errs, where+": say what a Kubernetes version outside "+l.Range()+" means (Unsupported or Untested)")
		}
		for j, o := range lines[:i] {
			if o.Addon == l.Addon && (o.Matches(l.Lowest()) || l.Matches(o.Lowest())) {
				errs = append(errs, fmt.Sprintf("%s overlaps line %d (%s)", where, j, o.Versions))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("add-on compatibility table:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}
