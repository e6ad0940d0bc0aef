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
}
