package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
)

// TestRollbackSaysWhatItCannotUndo: a canary whose action has no rollback command upgrades a node;
// `drydock rollback` says before it asks that the node stays upgraded, uncordons what it cordoned,
// and ends partly-rolled-back (exit 4) naming the node — never "the completed steps were undone".
func TestRollbackSaysWhatItCannotUndo(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	if _, err := cluster.CreateNode(ctx, "honest-1", simcluster.NodeOptions{KubeletVersion: "v1.36.3", Labels: map[string]string{"suite": "honest"}}); err != nil {
		t.Fatal(err)
	}
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	action := fmt.Sprintf(`[%q, --kubeconfig, %q, patch, node, "{{.Node.Name}}", --subresource=status, -p, '{"status":{"nodeInfo":{"kubeletVersion":"{{.TargetVersion}}"}}}']`,
		filepath.Join(bin, "kubectl"), cluster.Kubeconfig)
	rb := writeRunbook(t, "honest", fmt.Sprintf("    - {name: canary, type: canary, with: {node: honest-1, soak: 1s, action: {exec: %s, readyTimeout: 1m}}}\n", action))
	p := newProc(t)
	out, code := p.run("run", rb)
	if code != int(exitcode.Paused) {
		t.Fatalf("run: exit %d, want 5 after the canary:\n%s", code, out)
	}
	id := runIDRE.FindStringSubmatch(out)[1]

	out, code = p.run("rollback", id) // nobody to answer: refused, after saying what it would and would not undo
	if code != int(exitcode.Usage) || !strings.Contains(out, "not undone: step canary: the nodes it upgraded stay upgraded: the action has no rollback command") {
		t.Fatalf("rollback without --yes: exit %d, want 2 and the preview:\n%s", code, out)
	}
	out, code = p.run("rollback", id, "--yes")
	if code != int(exitcode.Aborted) || !strings.Contains(out, "partly-rolled-back") || !strings.Contains(out, "node/honest-1: left at v1.37.1: the upgrade action has no rollback command") ||
		strings.Contains(out, "the completed steps were undone") {
		t.Fatalf("rollback: exit %d, want 4, partly rolled back, naming the node:\n%s", code, out)
	}
	st, err := runbook.ReadRun(p.stateDir, id)
	if err != nil || st.Status != runbook.RunPartlyRolledBack || len(st.Step("canary").Kept) != 1 {
		t.Fatalf("journal: %v, %+v", err, st)
	}
	n, err := cluster.Client.CoreV1().Nodes().Get(ctx, "honest-1", metav1.GetOptions{})
	if err != nil || n.Spec.Unschedulable || n.Status.NodeInfo.KubeletVersion != "v1.37.1" {
		t.Fatalf("node: %v, unschedulable %v, kubelet %s (it stays upgraded and schedulable)", err, n.Spec.Unschedulable, n.Status.NodeInfo.KubeletVersion)
	}
	out, _ = runPlain(t, "status", id, "--state-dir", p.stateDir)
	if !strings.Contains(out, "not undone: node/honest-1: left at v1.37.1") || !strings.Contains(out, "it needs a person") {
		t.Errorf("status:\n%s", out)
	}
}
