package addons_test

import (
	"strings"
	"testing"

	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
	"github.com/drydock-dev/drydock/steps/addons"
)

// TestAddonClassOrder: CNI first, service mesh last, within a step and across steps, each problem at
// the add-on's line; a class comes from the runbook or from the known-chart table; allowAnyOrder
// turns the rule off.
func TestAddonClassOrder(t *testing.T) {
	t.Parallel()
	step := func(name string, addons ...string) string {
		s := "    - name: " + name + "\n      type: addons\n      with:\n        addons:\n"
		for _, a := range addons {
			s += "          - " + a + "\n"
		}
		return s
	}
	helm := func(name, chart string) string {
		return "{name: " + name + ", helm: {release: " + name + ", namespace: kube-system, chart: charts/" + chart + "}}"
	}
	for _, tc := range []struct {
		name, steps, want string
	}{
		{"in order", step("a", helm("cni", "cilium"), helm("dns", "coredns"), helm("ingress", "ingress-nginx"), helm("mesh", "istiod")), ""},
		{"mesh before cni", step("a", helm("mesh", "istiod-1.24.1.tgz"), helm("net", "calico")),
			`t.yaml:12:20: spec.steps[0].with.addons[1].name: the cni add-on "net" comes after the mesh add-on "mesh"`},
		{"declared classes", step("a", "{name: x, class: mesh, manifests: {paths: [m]}}", "{name: y, class: cni, manifests: {paths: [m]}}"),
			`the cni add-on "y" comes after the mesh add-on "x"`},
		{"across steps", step("a", helm("linkerd", "linkerd-control-plane")) + step("b", helm("net", "flannel")),
			`the cni add-on "net" comes after the mesh add-on "linkerd" in step "a"`},
		{"dns before kube-proxy", step("a", helm("dns", "coredns"), helm("proxy", "kube-proxy")), `the kube-proxy add-on "proxy" comes after the dns add-on "dns"`},
		{"others share a place with ingress", step("a", helm("app", "my-thing"), helm("ing", "traefik"), helm("other", "foo")), ""},
	} {
		for _, anyOrder := range []bool{false, true} {
			text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: v1.37.1\n"
			if anyOrder {
				text += "  allowAnyOrder: true\n"
			}
			text += "  steps:\n" + tc.steps
			_, err := runbook.Parse("t.yaml", []byte(text), steps.Registry)
			switch {
			case tc.want == "" || anyOrder:
				if err != nil {
					t.Errorf("%s (allowAnyOrder %v): %v", tc.name, anyOrder, err)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Errorf("%s: %v, want %q\n%s", tc.name, err, tc.want, text)
			}
		}
	}
}

// TestAddonSettings: each add-on one source, unique names.
func TestAddonSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addons, want string }{
		{"[{name: a}]", `add-on "a" has neither helm nor manifests`},
		{"[{name: a, helm: {release: a, namespace: n, chart: c}, manifests: {paths: [x]}}]", `add-on "a" has both helm and manifests`},
		{"[{name: a, manifests: {paths: [x]}}, {name: a, manifests: {paths: [y]}}]", `add-on "a" is listed twice`},
		{"[{name: a, timeout: 10ms, manifests: {paths: [x]}}]", "must be at least 1s"},
	} {
		text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: v1.37.1\n  steps:\n    - {name: a, type: addons, with: {addons: " + tc.addons + "}}\n"
		_, err := runbook.Parse("t.yaml", []byte(text), steps.Registry)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.addons, err, tc.want)
		}
	}
}

// TestKnownCharts: the class from the chart's or the release's name.
func TestKnownCharts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a    addons.Addon
		want string
	}{
		{addons.Addon{Name: "x", Helm: &addons.Helm{Release: "r", Chart: "charts/cilium-1.17.2.tgz"}}, "cni"},
		{addons.Addon{Name: "x", Helm: &addons.Helm{Release: "coredns", Chart: "./dns"}}, "dns"},
		{addons.Addon{Name: "x", Helm: &addons.Helm{Release: "r", Chart: "/opt/charts/istiod"}}, "mesh"},
		{addons.Addon{Name: "x", Class: "ingress", Helm: &addons.Helm{Release: "r", Chart: "cilium"}}, "ingress"},
		{addons.Addon{Name: "kube-proxy", Manifests: &addons.Manifests{Paths: []string{"p"}}}, "kube-proxy"},
		{addons.Addon{Name: "x", Helm: &addons.Helm{Release: "r", Chart: "mine"}}, "other"},
	} {
		if got := tc.a.ClassOf(); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.a, got, tc.want)
		}
	}
}
