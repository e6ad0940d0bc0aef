package preflight

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/drydock-dev/drydock/preflight/addons"
	"github.com/drydock-dev/drydock/preflight/apis"
	"github.com/drydock-dev/drydock/runbook"
)

func ds(ns, name string, labels map[string]string, images ...string) *appsv1.DaemonSet {
	d := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
	for _, img := range images {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "c", Image: img})
	}
	return d
}

func deploy(ns, name string, labels map[string]string, images ...string) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
	for _, img := range images {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: "c", Image: img})
	}
	return d
}

// helmSecret stores a release the way Helm does: JSON, gzip, base64, in a Secret labelled owner=helm.
func helmSecret(t *testing.T, ns, name, chart, version, appVersion, status string) *corev1.Secret {
	t.Helper()
	rel := map[string]any{"name": name, "namespace": ns, "version": 1, "info": map[string]any{"status": status},
		"chart": map[string]any{"metadata": map[string]any{"name": chart, "version": version, "appVersion": appVersion}}, "manifest": ""}
	js, err := json.Marshal(rel)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(js)
	_ = zw.Close()
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sh.helm.release.v1." + name + ".v1", Labels: map[string]string{"owner": "helm", "name": name, "status": status, "version": "1"}},
		Type:       "helm.sh/release.v1",
		Data:       map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(gz.Bytes()))},
	}
}

// TestAddonCheck: add-ons found from images, from labels alone (a mirrored image) and from Helm
// releases; each judged against the target with the table's range, source and a fix that says
// when to move it; a release whose workload runs is reported once, by what runs; nothing written.
func TestAddonCheck(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset(
		ds("kube-system", "cilium", nil, "quay.io/cilium/cilium:v1.15.6@sha256:0123"),
		deploy("kube-system", "cilium-operator", nil, "quay.io/cilium/operator-generic:v1.15.6", "quay.io/cilium/cilium:v1.15.6"),
		ds("kube-system", "kube-proxy", map[string]string{"k8s-app": "kube-proxy"}, "registry.k8s.io/kube-proxy:v1.36.3"),
		deploy("kube-system", "coredns", map[string]string{"k8s-app": "kube-dns"}, "registry.k8s.io/coredns/coredns:v1.11.1"),
		deploy("monitoring", "metrics", map[string]string{"app.kubernetes.io/name": "metrics-server", "app.kubernetes.io/version": "0.3.7"}, "mirror.example.com/ms:stable"),
		deploy("ingress", "ingress-nginx-controller", nil, "registry.k8s.io/ingress-nginx/controller:v1.9.4"),
		deploy("karpenter", "karpenter", nil, "public.ecr.aws/karpenter/controller:latest"),
		deploy("shop", "web", nil, "nginx:1.27"), // not an add-on
		helmSecret(t, "cert-manager", "cert-manager", "cert-manager", "v1.13.2", "v1.13.2", "deployed"),
		helmSecret(t, "ingress", "ingress-nginx", "ingress-nginx", "4.8.3", "1.9.4", "deployed"),
		helmSecret(t, "mesh", "linkerd", "linkerd-control-plane", "1.16.11", "stable-2.14.10", "deployed"),
	)
	in := &Input{Kube: client, Helm: true, Server: apis.Release{Major: 1, Minor: 36}, Target: apis.Release{Major: 1, Minor: 37}}
	rep, err := Run(context.Background(), in, []string{"addon-check"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Finding{}
	for _, f := range rep.Findings() {
		if f.Addon == nil {
			t.Fatalf("finding without its add-on: %+v", f)
		}
		if _, dup := got[f.Addon.Name]; dup {
			t.Errorf("%s reported twice", f.Addon.Name)
		}
		got[f.Addon.Name] = f
	}
	for _, tc := range []struct {
		addon, verdict string
		sev            runbook.Severity
		object, has    string
	}{
		{"cilium", "untested", runbook.SeverityWarning, "DaemonSet kube-system/cilium", "supports Kubernetes 1.26–1.29"},
		{"kube-proxy", "supported", runbook.SeverityInfo, "DaemonSet kube-system/kube-proxy", "1.36–1.39"},
		{"coredns", "behind", runbook.SeverityWarning, "Deployment kube-system/coredns", "1.14.6"},
		{"metrics-server", "unsupported", runbook.SeverityError, "Deployment monitoring/metrics", "label app.kubernetes.io/version=0.3.7"},
		{"ingress-nginx", "untested", runbook.SeverityWarning, "Deployment ingress/ingress-nginx-controller", "retired"},
		{"karpenter", "unknown", runbook.SeverityInfo, "Deployment karpenter/karpenter", `"latest" could not be read`},
		{"cert-manager", "untested", runbook.SeverityWarning, "HelmRelease cert-manager/cert-manager", "chart cert-manager-v1.13.2"},
		{"linkerd", "untested", runbook.SeverityWarning, "HelmRelease mesh/linkerd", "supports Kubernetes 1.21–1.28"},
	} {
		f, ok := got[tc.addon]
		if !ok {
			t.Errorf("%s not found; findings: %+v", tc.addon, rep.Findings())
			continue
		}
		if f.Addon.Verdict != tc.verdict || f.Severity != tc.sev || f.Object != tc.object || !strings.Contains(f.Message, tc.has) {
			t.Errorf("%s: %s %s %s %q, want %s %s %s containing %q", tc.addon, f.Addon.Verdict, f.Severity, f.Object, f.Message, tc.verdict, tc.sev, tc.object, tc.has)
		}
		if f.Severity != runbook.SeverityInfo && (f.Fix == "" || !strings.HasPrefix(f.Addon.Source, "https://")) {
			t.Errorf("%s: no fix or no source: %+v", tc.addon, f)
		}
	}
	if len(got) != 8 {
		t.Errorf("%d add-ons reported, want 8: %v", len(got), got)
	}
	if fix := got["metrics-server"].Fix; !strings.Contains(fix, "upgrade metrics-server to 0.9.x") || !strings.Contains(fix, "before the control plane") {
		t.Errorf("metrics-server fix: %q", fix)
	}
	if fix := got["cilium"].Fix; !strings.Contains(fix, "no Cilium version in drydock's table supports 1.37") {
		t.Errorf("cilium fix: %q", fix)
	}
	if got["karpenter"].CouldNotCheck == "" {
		t.Errorf("an unreadable version is not said to be something not checked: %+v", got["karpenter"])
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "list" {
			t.Errorf("addon-check did %s %s: it must only read", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

// TestAddonCheckCouldNot: a list it may not make is said, and the rest is still checked.
func TestAddonCheckCouldNot(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset(deploy("kube-system", "coredns", nil, "registry.k8s.io/coredns/coredns:v1.14.6"))
	client.PrependReactor("list", "daemonsets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "daemonsets"}, "", errors.New("no"))
	})
	in := &Input{Kube: client, Helm: true, Server: apis.Release{Major: 1, Minor: 36}, Target: apis.Release{Major: 1, Minor: 37}}
	rep, err := Run(context.Background(), in, []string{"addon-check"})
	if err != nil {
		t.Fatal(err)
	}
	fs := rep.Findings()
	cnc := CouldNot(fs)
	if len(cnc) != 1 || cnc[0].CouldNotCheck != CouldNotForbidden || cnc[0].Object != "DaemonSets" {
		t.Errorf("could not check: %+v", cnc)
	}
	if len(fs) != 2 {
		t.Errorf("findings: %+v; want the forbidden list and CoreDNS", fs)
	}
}

// TestAddonTableVerdicts: each add-on the catalog detects, at a version the table supports the target
// with, one it does not (below or above its range), and one outside every line: the last is
// "unknown" with the fix to check the add-on's own matrix, never a guess.
func TestAddonTableVerdicts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addon, version string
		target         int
		verdict        string
		sev            runbook.Severity
		says           string
	}{
		{"calico", "v3.32.1", 36, "supported", runbook.SeverityInfo, "supports Kubernetes 1.32–1.36"},
		{"calico", "v3.31.2", 37, "untested", runbook.SeverityWarning, "not tested by its vendor on 1.37"},
		{"calico", "v3.33.0", 37, "unknown", runbook.SeverityInfo, "no line for this version"},
		{"calico", "v3.26.4", 37, "unknown", runbook.SeverityWarning, "older than every version the table knows"},
		{"cilium", "v1.20.2", 36, "supported", runbook.SeverityInfo, "supports Kubernetes 1.33–1.36"},
		{"cilium", "v1.18.3", 37, "untested", runbook.SeverityWarning, "1.30–1.33"},
		{"cilium", "v1.17.4", 37, "unknown", runbook.SeverityInfo, "no line for this version"},
		{"istio", "1.26.2", 33, "supported", runbook.SeverityInfo, "supports Kubernetes 1.29–1.33"},
		{"istio", "1.24.1", 27, "unsupported", runbook.SeverityError, "does not support 1.27"},
		{"istio", "1.22.0", 37, "untested", runbook.SeverityWarning, "1.27–1.30"},
		{"istio", "1.29.0", 37, "unknown", runbook.SeverityInfo, "no line for this version"},
		{"linkerd", "stable-2.18.2", 32, "supported", runbook.SeverityInfo, "1.22–1.32"},
		{"linkerd", "enterprise-2.19.1", 37, "untested", runbook.SeverityWarning, "1.22–1.34"},
		{"linkerd", "stable-2.12.0", 20, "unsupported", runbook.SeverityError, "does not support 1.20"},
		{"linkerd", "edge-25.7.6", 37, "unknown", runbook.SeverityInfo, "no line for this version"},
		{"csi-snapshotter", "v8.2.0", 37, "supported", runbook.SeverityInfo, "supports Kubernetes 1.25+"},
		{"csi-snapshotter", "v8.2.0", 24, "unsupported", runbook.SeverityError, "does not support 1.24"},
		{"csi-snapshotter", "v8.6.0", 37, "unknown", runbook.SeverityInfo, "no line for this version"},
		{"ingress-nginx", "v1.15.0", 35, "supported", runbook.SeverityInfo, "1.31–1.35"},
		{"ingress-nginx", "v1.15.0", 37, "untested", runbook.SeverityWarning, "retired"},
		{"cert-manager", "v1.21.0", 36, "supported", runbook.SeverityInfo, "1.33–1.36"},
		{"cert-manager", "v1.20.1", 37, "untested", runbook.SeverityWarning, "1.32–1.35"},
		{"metrics-server", "v0.8.0", 37, "supported", runbook.SeverityInfo, "1.31+"},
		{"metrics-server", "v0.3.7", 37, "unsupported", runbook.SeverityError, "1.8–1.21"},
		{"coredns", "v1.14.6", 37, "supported", runbook.SeverityInfo, "at or past the 1.14.6 kubeadm installs"},
		{"coredns", "v1.11.1", 36, "behind", runbook.SeverityWarning, "older than the 1.14.2"},
		{"flannel", "v0.26.1", 37, "unknown", runbook.SeverityInfo, "publishes no Kubernetes version table"},
		{"antrea", "v2.3.0", 37, "unknown", runbook.SeverityInfo, "without a published table"},
	} {
		t.Run(tc.addon+"@"+tc.version+"/1."+strconv.Itoa(tc.target), func(t *testing.T) {
			t.Parallel()
			a, ok := addons.ByID(tc.addon)
			if !ok {
				t.Fatalf("%s not in the catalog", tc.addon)
			}
			d := detection{addon: a, raw: tc.version, version: addons.ParseVersion(tc.version), ref: Ref("DaemonSet", "kube-system", tc.addon), from: "image x:" + tc.version}
			f := judgeAddon(d, apis.Release{Major: 1, Minor: tc.target - 1}, apis.Release{Major: 1, Minor: tc.target})
			if f.Addon.Verdict != tc.verdict || f.Severity != tc.sev || !strings.Contains(f.Message, tc.says) {
				t.Errorf("%s %s for 1.%d: %s %s %q; want %s %s saying %q", tc.addon, tc.version, tc.target, f.Addon.Verdict, f.Severity, f.Message, tc.verdict, tc.sev, tc.says)
			}
			if tc.verdict == "unknown" && !strings.Contains(f.Fix, "check the add-on's own matrix") {
				t.Errorf("unknown without the fix to check the add-on's own matrix: %q", f.Fix)
			}
			if tc.verdict != "unknown" && tc.verdict != "behind" && tc.verdict != "supported" && (f.Fix == "" || !strings.HasPrefix(f.Addon.Source, "https://")) {
				t.Errorf("no fix or no source: %+v", f)
			}
		})
	}
}

// TestAddonDetectedByItsImage: the images of the add-ons the table now judges are recognized, and
// the tigera-operator's own version is never read as Calico's.
func TestAddonDetectedByItsImage(t *testing.T) {
	t.Parallel()
	for image, want := range map[string]string{
		"quay.io/calico/node:v3.30.2":                            "calico",
		"docker.io/istio/pilot:1.26.2":                           "istio",
		"cr.l5d.io/linkerd/controller:stable-2.14.10":            "linkerd",
		"registry.k8s.io/sig-storage/snapshot-controller:v8.2.0": "csi-snapshotter",
		"registry.k8s.io/sig-storage/csi-snapshotter:v8.1.0":     "csi-snapshotter",
		"ghcr.io/flannel-io/flannel:v0.26.1":                     "flannel",
		"antrea/antrea-agent-ubuntu:v2.3.0":                      "antrea",
		"quay.io/tigera/operator:v1.38.3":                        "",
	} {
		d, ok := detectWorkload(podWorkload{ref: Ref("Deployment", "x", "y"), pod: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}}})
		got := ""
		if ok {
			got = d.addon.ID
		}
		if got != want {
			t.Errorf("%s detected as %q, want %q", image, got, want)
		}
	}
}
