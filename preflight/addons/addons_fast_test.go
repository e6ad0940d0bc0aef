package addons

import (
	"strings"
	"testing"

	"github.com/drydock-dev/drydock/preflight/apis"
)

// TestTableHasSources refuses the table as it is when a line has no source, overlaps another or
// cannot be read.
func TestTableHasSources(t *testing.T) {
	if err := Validate(Table); err != nil {
		t.Fatal(err)
	}
	for _, s := range KubeadmShipped {
		if !strings.HasPrefix(s.Source, "https://") {
			t.Errorf("kubeadm line %s %s for %s has no source", s.Addon, s.Version, s.Release)
		}
	}
}

func TestValidateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		line Line
		want string
	}{
		{"no source", Line{Addon: "cilium", Versions: "9.9.x", Min: r(30), Below: Unsupported}, "no source"},
		{"not a link", Line{Addon: "cilium", Versions: "9.9.x", Min: r(30), Below: Unsupported, Source: "the docs"}, "no source"},
		{"unknown add-on", Line{Addon: "nope", Versions: "1.x", Source: "https://x"}, "not in the catalog"},
		{"bad versions", Line{Addon: "cilium", Versions: ">>1", Source: "https://x"}, "versions"},
		{"upside down", Line{Addon: "cilium", Versions: "9.9.x", Min: r(33), Max: r(30), Below: Unsupported, Above: Untested, Source: "https://x"}, "upside down"},
		{"no meaning", Line{Addon: "cilium", Versions: "9.9.x", Min: r(30), Source: "https://x"}, "outside"},
		{"overlap", Line{Addon: "cilium", Versions: "1.20.3", Min: r(30), Below: Unsupported, Source: "https://x"}, "overlaps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(append(append([]Line{}, Table...), tc.line))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.15.3": "1.15.3", "1.20.2": "1.20.2", "v1.11.1-eksbuild.1": "1.11.1", "stable-2.14.10": "2.14.10",
		"v1.13.0@sha256:abc": "1.13.0", "0.37": "0.37.0", "latest": "", "": "",
	} {
		got := ""
		if v := ParseVersion(in); v != nil {
			got = v.String()
		}
		if got != want {
			t.Errorf("ParseVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		addon, version string
		k              apis.Release
		ok             bool
		why            Outside
		known          bool
	}{
		{"cilium", "1.20.2", r(36), true, "", true},
		{"cilium", "1.20.2", r(37), false, Untested, true},
		{"cilium", "1.15.6", r(25), false, Unsupported, true},
		{"cilium", "1.17.0", r(37), false, "", false},
		{"metrics-server", "0.6.4", r(37), true, "", true},
		{"metrics-server", "0.3.6", r(25), false, Unsupported, true},
		{"karpenter", "1.12.0", r(36), false, Unsupported, true},
		{"karpenter", "1.13.2", r(37), false, Untested, true},
		{"kube-proxy", "1.34.2", r(37), true, "", true},
		{"kube-proxy", "1.33.0", r(37), false, Unsupported, true},
		{"kube-proxy", "1.38.0", r(37), false, Unsupported, true},
		{"ingress-nginx", "1.10.0", r(30), false, Untested, true},
		{"ingress-nginx", "1.10.1", r(30), true, "", true},
	} {
		v := Judge(tc.addon, ParseVersion(tc.version), tc.k)
		if (v.Line != nil) != tc.known || v.OK != tc.ok || v.Why != tc.why {
			t.Errorf("Judge(%s %s, %s) = known %v ok %v why %q; want known %v ok %v why %q", tc.addon, tc.version, tc.k, v.Line != nil, v.OK, v.Why, tc.known, tc.ok, tc.why)
		}
	}
}

func TestSupportingNewestFirst(t *testing.T) {
	got := Supporting("metrics-server", r(33), r(34))
	if len(got) == 0 || got[0].Versions != "0.8.x" {
		t.Fatalf("Supporting(metrics-server, 1.33, 1.34) = %v, want 0.8.x first", got)
	}
}

func TestShippedWith(t *testing.T) {
	for k, want := range map[int]string{32: "1.11.3", 36: "1.14.2", 37: "1.14.6"} {
		if s, ok := ShippedWith("coredns", r(k)); !ok || s.Version != want {
			t.Errorf("kubeadm's CoreDNS for 1.%d: %v %+v, want %s", k, ok, s, want)
		}
	}
	if _, ok := ShippedWith("coredns", r(34)); ok {
		t.Error("a release without a line has a kubeadm CoreDNS")
	}
}
