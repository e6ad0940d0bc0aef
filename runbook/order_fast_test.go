package runbook

import (
	"strings"
	"testing"
)

// TestStepOrder: checks and backups, then the control plane, then the nodes, then the add-ons — each out-of-order step
// is a problem at its line, unless spec.allowAnyOrder.
func TestStepOrder(t *testing.T) {
	t.Parallel()
	reg := Registry{fakeKind("check", PhaseCheck), fakeKind("backup", PhaseBackup), fakeKind("cp", PhaseControlPlane), fakeKind("nodes", PhaseNodes), fakeKind("addons", PhaseAddons), fakeKind("fake", PhaseAny)}
	for _, tc := range []struct {
		steps, want string
	}{
		{"check, backup, fake, cp, fake, nodes", ""},
		{"nodes, cp", "the control plane is upgraded after a node step"},
		{"cp, check", "after the control-plane step"},
		{"cp, backup", "after the control-plane step"},
		{"nodes, check", "after a node step"},
		{"check, cp, nodes, addons, fake, addons", ""},
		{"addons, nodes", "a nodes step (nodes) after the add-ons step"},
		{"addons, cp", "a control plane step (cp) after the add-ons step"},
		{"nodes, addons, check", "a check step (check) after the add-ons step"},
	} {
		for _, extra := range []bool{false, true} {
			text := header
			if extra {
				text += "  allowAnyOrder: true\n"
			}
			text += "  steps:\n"
			for i, k := range strings.Split(tc.steps, ", ") {
				text += "    - {name: s" + string(rune('a'+i)) + ", type: " + k + "}\n"
			}
			_, err := Parse("t.yaml", []byte(text), reg)
			switch {
			case tc.want == "" || extra:
				if err != nil {
					t.Errorf("%s (allowAnyOrder %v): %v", tc.steps, extra, err)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Errorf("%s: %v, want %q", tc.steps, err, tc.want)
			}
		}
	}
}
