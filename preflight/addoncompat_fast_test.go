package preflight

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
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
		{"linkerd", "unknown", runbook.SeverityInfo, "HelmRelease mesh/linkerd", "publishes no version table"},
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
