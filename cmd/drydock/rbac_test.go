package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/preflight"
)

// TestPreflightRoleSuffices applies deploy/preflight (the CronJob's ServiceAccount and read-only
// ClusterRole) to the simulated cluster and runs `drydock preflight --as` that ServiceAccount: the
// role is enough for every check; with a rule removed, access-check names what is missing.
func TestPreflightRoleSuffices(t *testing.T) {
	simcluster.Need(t)
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(bin, "kubectl"), "--kubeconfig", cluster.Kubeconfig, "apply", "-k", "../../deploy/preflight").CombinedOutput(); err != nil {
		t.Fatalf("apply deploy/preflight: %v\n%s", err, out)
	}
	as := "system:serviceaccount:drydock:drydock-preflight"
	run := func() []preflight.Finding {
		t.Helper()
		out, errOut, code := preflightRun(t, cluster.Kubeconfig, "--as", as, "-o", "json", "--fail-on", "never")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		var rep preflight.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		return rep.Findings()
	}
	for _, f := range run() {
		if strings.Contains(f.Message, "not allowed") || strings.Contains(f.Message, "could not read") || strings.Contains(f.Message, "forbidden") {
			t.Errorf("the role does not suffice: %s %s: %s", f.Severity, f.Object, f.Message)
		}
	}

	// Without the /metrics rule, access-check says so (and the scan notes what it could not read).
	patch := `[{"op":"remove","path":"/rules/1"}]`
	if _, err := cluster.Client.RbacV1().ClusterRoles().Patch(context.Background(), "drydock-preflight", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range run() {
		if f.Check == "access-check" && f.Object == "get /metrics" && strings.Contains(f.Message, "not allowed to get /metrics") {
			found = true
		}
	}
	if !found {
		t.Error("access-check did not report the missing /metrics rule")
	}
}
