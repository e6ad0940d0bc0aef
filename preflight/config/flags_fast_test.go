package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/drydock-dev/drydock/preflight/apis"
)

// TestFlagsCheckedCoversPinned: the removed-flag table covers every control-plane component at both
// pinned minors, each line with its source.
func TestFlagsCheckedCoversPinned(t *testing.T) {
	prev := apis.Release{Major: apis.Pinned.Major, Minor: apis.Pinned.Minor - 1}
	for _, component := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		for _, rel := range []apis.Release{prev, apis.Pinned} {
			if got := UncheckedFlagReleases(component, apis.Release{}, rel); len(got) != 0 {
				t.Errorf("%s %s: not covered by FlagsChecked", component, rel)
			}
		}
	}
	for _, c := range FlagsChecked {
		if !strings.HasPrefix(c.Source, "https://") {
			t.Errorf("%s %s: no source", c.Component, c.Release)
		}
	}
}

func TestUncheckedFlagReleases(t *testing.T) {
	for _, tc := range []struct {
		component       string
		current, target int
		want            []string
	}{
		{"kube-apiserver", 36, 37, nil},
		{"kube-apiserver", 35, 37, nil},
		{"kube-apiserver", 37, 38, []string{"1.38"}},
		{"kube-scheduler", 36, 39, []string{"1.38", "1.39"}},
		{"kube-controller-manager", 0, 38, []string{"1.38"}},
		{"kube-controller-manager", 33, 35, []string{"1.34", "1.35"}},
	} {
		var cur apis.Release
		if tc.current > 0 {
			cur = r(tc.current)
		}
		var got []string
		for _, rel := range UncheckedFlagReleases(tc.component, cur, r(tc.target)) {
			got = append(got, rel.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s %d→%d: %v, want %v", tc.component, tc.current, tc.target, got, tc.want)
		}
	}
}
