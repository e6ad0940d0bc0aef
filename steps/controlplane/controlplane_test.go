package controlplane_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
	"github.com/drydock-dev/drydock/steps/controlplane"
)

// TestControlPlaneStep upgrades a simulated control plane that starts at the previous minor, member
// by member (the apiserver, the controller-manager, the scheduler, each restarted from the current
// minor's binary on the same etcd), after an "etcd snapshot"; each member is proven whole before the
// next. A member whose upgrade changes nothing fails the step, naming what is wrong. Rolling back does
// not downgrade: the run ends partly rolled back, saying how to restore the snapshot.
func TestControlPlaneStep(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	c, err := simcluster.Start(ctx, simcluster.Options{Previous: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()
	if _, err := c.CreateNode(ctx, "cp-node-1", simcluster.NodeOptions{KubeletVersion: simcluster.PreviousVersion}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sim := filepath.Join(dir, "simcluster")
	if out, err := exec.Command("go", "build", "-o", sim, "github.com/drydock-dev/drydock/internal/cmd/simcluster").CombinedOutput(); err != nil {
		t.Fatalf("build simcluster: %v\n%s", err, out)
	}
	member := func(name, component string) string {
		return `          - {name: ` + name + `, exec: ["` + sim + `", upgrade-controlplane, --name, "` + c.Name + `", --work-dir, "` + c.WorkDir + `", --component, ` + component + `]}` + "\n"
	}
	snap := filepath.Join(dir, "etcd.snap")
	engine := func(rec *printer.Recorder) *runbook.Engine {
		return &runbook.Engine{Registry: steps.Registry, Kube: c.Client, REST: c.Config, StateDir: t.TempDir(), NoMirror: true, Decider: runbook.AlwaysContinue, Sink: rec}
	}
	parse := func(members string, extra string) *runbook.Runbook {
		rb, err := runbook.Parse("cp.yaml", []byte(`apiVersion: drydock.dev/v1alpha1
kind: Runbook
metadata: {name: cp}
spec:
  targetVersion: `+simcluster.KubernetesVersion+`
  steps:
    - name: control-plane
      type: controlplane
      with:
`+extra+`        members:
`+members), steps.Registry)
		if err != nil {
			t.Fatal(err)
		}
		return rb
	}

	// A member whose "upgrade" changes nothing: the step fails, saying what it waited for.
	rec := &printer.Recorder{}
	_, err = engine(rec).Start(ctx, parse(`          - {name: noop, exec: ["true"]}`+"\n", "        readyTimeout: 3s\n"))
	if err == nil || !strings.Contains(err.Error(), "/version answers "+simcluster.PreviousVersion+", not "+simcluster.KubernetesVersion) {
		t.Fatalf("a member that did not upgrade: %v\n%s", err, rec.Text())
	}

	// The real upgrade, member by member, after the snapshot, with a pause point between members:
	// nobody answers, so the run stops after the first member; resumed, it goes on from the second.
	rec = &printer.Recorder{}
	e := engine(rec)
	e.Decider = runbook.StopAtPause
	st, err := e.Start(ctx, parse(member("apiserver", "kube-apiserver")+member("controller-manager", "kube-controller-manager")+member("scheduler", "kube-scheduler"),
		"        pauseBetweenMembers: true\n        snapshot: {exec: [sh, -c, 'echo snapshot > "+snap+"'], path: "+snap+"}\n"))
	if !errors.Is(err, runbook.ErrPaused) || !strings.Contains(rec.Text(), "control-plane member apiserver is at "+simcluster.KubernetesVersion+"; next: controller-manager") {
		t.Fatalf("want a pause after the first member: %v\n%s", err, rec.Text())
	}
	e.Decider = runbook.AlwaysContinue
	if st, err = e.Resume(ctx, st); err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	v, err := c.Client.Discovery().ServerVersion()
	if err != nil || v.GitVersion != simcluster.KubernetesVersion {
		t.Fatalf("after the step the apiserver answers %v (%v), want %s", v, err, simcluster.KubernetesVersion)
	}
	if _, err := os.Stat(snap); err != nil {
		t.Errorf("the snapshot action did not run: %v", err)
	}
	if p := st.RollbackPoint(controlplane.RollbackPointEtcdSnapshot); p == nil || p.Name != snap {
		t.Errorf("rollback point %+v", p)
	}
	text := rec.Text()
	for _, want := range []string{"member apiserver: at " + simcluster.KubernetesVersion + ", ready, leases renewed", "member scheduler: at"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}

	// The skew policy, stricter than upstream's: a kubelet two minors behind the apiserver blocks the
	// step after the member, naming the node.
	if _, err := c.CreateNode(ctx, "old-kubelet", simcluster.NodeOptions{KubeletVersion: "v1.35.4"}); err != nil {
		t.Fatal(err)
	}
	rec = &printer.Recorder{}
	// (The member names its apiserver's endpoint, as each member of a real control plane does.)
	_, err = engine(rec).Start(ctx, parse(`          - {name: again, endpoint: "`+c.Config.Host+`", exec: ["true"]}`+"\n", "        maxKubeletSkew: 1\n        readyTimeout: 1m\n"))
	if !errors.Is(err, runbook.ErrBlocked) || !strings.Contains(err.Error(), "kubelets more than 1 minors behind the newest apiserver") || !strings.Contains(err.Error(), "old-kubelet (v1.35.4)") {
		t.Fatalf("maxKubeletSkew 1 with a v1.35 kubelet: %v\n%s", err, rec.Text())
	}
	if err := c.Client.CoreV1().Nodes().Delete(ctx, "old-kubelet", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// Rolling back does not downgrade: partly rolled back, with how to restore the snapshot.
	_, err = e.Rollback(ctx, st, "")
	if !errors.Is(err, runbook.ErrRolledBack) || !strings.Contains(err.Error(), "upstream does not support a control-plane downgrade") || !strings.Contains(err.Error(), snap) {
		t.Fatalf("rollback: %v", err)
	}
	if v, _ := c.Client.Discovery().ServerVersion(); v == nil || v.GitVersion != simcluster.KubernetesVersion {
		t.Errorf("the rollback changed the control plane: %v", v)
	}
}

// TestControlPlaneKill9AndResume: drydock is killed (-9) in the middle of the control-plane step,
// inside the second member's upgrade; one `drydock resume` finishes the step: the member done before
// is not upgraded again, the one in flight is, and the control plane ends at the target.
func TestControlPlaneKill9AndResume(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	c, err := simcluster.Start(ctx, simcluster.Options{Previous: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()
	dir := t.TempDir()
	sim, drydock := filepath.Join(dir, "simcluster"), filepath.Join(dir, "drydock")
	for bin, pkg := range map[string]string{sim: "github.com/drydock-dev/drydock/internal/cmd/simcluster", drydock: "github.com/drydock-dev/drydock/cmd/drydock"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	count, killed := filepath.Join(dir, "count"), filepath.Join(dir, "killed")
	upgrade := func(component string) string {
		return `"` + sim + `" upgrade-controlplane --name "` + c.Name + `" --work-dir "` + c.WorkDir + `" --component ` + component
	}
	rb := filepath.Join(dir, "cp.yaml")
	text := `apiVersion: drydock.dev/v1alpha1
kind: Runbook
metadata: {name: cp-kill}
spec:
  targetVersion: ` + simcluster.KubernetesVersion + `
  state: {namespace: default}
  steps:
    - name: control-plane
      type: controlplane
      with:
        members:
          - {name: apiserver, exec: [sh, -c, 'echo apiserver >> ` + count + ` && ` + upgrade("kube-apiserver") + `']}
          - {name: controller-manager, exec: [sh, -c, 'test -e ` + killed + ` || { touch ` + killed + `; kill -9 $PPID; sleep 30; }; echo controller-manager >> ` + count + ` && ` + upgrade("kube-controller-manager") + `']}
          - {name: scheduler, exec: [sh, -c, 'echo scheduler >> ` + count + ` && ` + upgrade("kube-scheduler") + `']}
`
	if err := os.WriteFile(rb, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	drydockRun := func(args ...string) (string, error) {
		cmd := exec.Command(drydock, append(args, "--kubeconfig", c.Kubeconfig, "--state-dir", state, "--no-mirror")...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := drydockRun("run", rb)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("want drydock killed by a signal during the second member, got %v:\n%s", err, out)
	}
	runs, err := runbook.ListRuns(state)
	if err != nil || len(runs) != 1 {
		t.Fatalf("journals after the kill: %d (%v)", len(runs), err)
	}
	if out, err := drydockRun("resume", runs[0].ID); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	v, err := c.Client.Discovery().ServerVersion()
	if err != nil || v.GitVersion != simcluster.KubernetesVersion {
		t.Fatalf("after the resume the apiserver answers %v (%v)", v, err)
	}
	b, _ := os.ReadFile(count)
	if got := strings.Fields(string(b)); strings.Join(got, ",") != "apiserver,controller-manager,scheduler" {
		t.Errorf("members upgraded: %v; want each once, in order (the one done before the kill not again)", got)
	}
}
