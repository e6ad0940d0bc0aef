package config

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/preflight/apis"
)

var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9][a-z0-9-]*)`)

// flagsOf lists the flags a binary's --help names.
func flagsOf(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", bin, err, out)
	}
	var flags []string
	for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
		flags = append(flags, m[1])
	}
	sort.Strings(flags)
	return slices.Compact(flags)
}

// TestRemovedFlagsMatchTheBinaries generates what the removed-flag table says of the pinned minor
// from the real flag sets: every flag the previous minor's control-plane binary accepts and the
// pinned one does not is a RemovedFlags line of that release, and every such line is a flag the
// previous binary had (the binaries are the simulated cluster's, built from k8s.io/kubernetes at
// both pinned versions).
func TestRemovedFlagsMatchTheBinaries(t *testing.T) {
	simcluster.Need(t)
	cur, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	prev, err := simcluster.PrevBinDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, component := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		t.Run(component, func(t *testing.T) {
			before, after := flagsOf(t, filepath.Join(prev, component)), flagsOf(t, filepath.Join(cur, component))
			if len(before) < 30 || len(after) < 30 {
				t.Fatalf("%d and %d flags read from --help: the pattern no longer matches", len(before), len(after))
			}
			var gone []string
			for _, f := range before {
				if !slices.Contains(after, f) {
					gone = append(gone, f)
				}
			}
			var table []string
			for _, f := range RemovedFlags {
				if f.Component == component && f.Removed == apis.Pinned {
					table = append(table, f.Flag)
				}
			}
			sort.Strings(table)
			if !slices.Equal(gone, table) {
				t.Errorf("flags %s removes (--help of both binaries): %v; RemovedFlags says %v", apis.Pinned, gone, table)
			}
		})
	}
}
