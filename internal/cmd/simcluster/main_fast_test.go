package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpRealNodesRefusedAtOnce: --real-nodes on a machine without what a real node runs (here: a
// PATH with no runc, iptables, ip, nsenter or unshare) fails before anything starts, naming each
// missing program and how to install it, and leaves no work directory behind.
func TestUpRealNodesRefusedAtOnce(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	work := filepath.Join(t.TempDir(), "cluster")
	err := run([]string{"up", "--name", "refused", "--work-dir", work, "--real-nodes", "1"})
	if err == nil {
		t.Fatal("up --real-nodes on a machine without runc: no error")
	}
	for _, want := range []string{"--real-nodes 1", "runc", "iptables", "apt-get install"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, serr := os.Stat(work); !os.IsNotExist(serr) {
		t.Errorf("work directory %s exists after the refusal: %v", work, serr)
	}
	err = run([]string{"up", "--name", "refused", "--work-dir", work, "--groups", "general=2", "--real-groups", "general"})
	if err == nil || !strings.HasPrefix(err.Error(), "--real-groups general: ") || !strings.Contains(err.Error(), "runc") {
		t.Errorf("up --real-groups on a machine without runc: %v", err)
	}
	if _, serr := os.Stat(work); !os.IsNotExist(serr) {
		t.Errorf("work directory %s exists after the refusal: %v", work, serr)
	}
}

// TestNodePlanRealGroups: --real-groups makes the first node of each named group real; a group that
// --groups does not have, or --real-groups without --groups, is an error naming it.
func TestNodePlanRealGroups(t *testing.T) {
	plan, err := nodePlan("system=2,general=3,batch=1", 0, []string{"general", "batch"})
	if err != nil {
		t.Fatal(err)
	}
	var real []string
	for _, n := range plan {
		if n.real {
			real = append(real, n.name)
		}
	}
	if len(plan) != 6 || strings.Join(real, ",") != "general-1,batch-1" {
		t.Errorf("plan: %d nodes, real %v; want 6, general-1,batch-1", len(plan), real)
	}
	for _, tc := range []struct {
		groups string
		real   []string
		want   string
	}{
		{"system=2", []string{"edge"}, `"edge" is not a group of --groups`},
		{"", []string{"general"}, "give the groups with --groups"},
	} {
		if _, err := nodePlan(tc.groups, 3, tc.real); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("nodePlan(%q, %v): %v, want an error saying %q", tc.groups, tc.real, err, tc.want)
		}
	}
}
