package addons_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
)

var cluster *simcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(simcluster.Main(m, &cluster, simcluster.Options{PodReadyDelay: 300 * time.Millisecond, PodDeleteDelay: 200 * time.Millisecond}))
}

var charts = filepath.Join("..", "..", "testdata", "charts")

func engine(t *testing.T) (*runbook.Engine, *printer.Recorder) {
	rec := &printer.Recorder{}
	return &runbook.Engine{Registry: steps.Registry, Sink: rec, Kube: cluster.Client, REST: cluster.Config, StateDir: t.TempDir(), NoMirror: true}, rec
}

func parse(t *testing.T, ns, body string) *runbook.Runbook {
	t.Helper()
	text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: " + simcluster.KubernetesVersion +
		"\n  state: {namespace: " + ns + "}\n  steps:\n" + body
	rb, err := runbook.Parse(t.Name()+".yaml", []byte(text), steps.Registry)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return rb
}

func helmConfig(t *testing.T, ns string) *action.Configuration {
	t.Helper()
	g, err := kube.NewRESTGetter(cluster.Config, ns)
	if err != nil {
		t.Fatal(err)
	}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(g, ns, "secret"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// history reads a release's revisions as Helm keeps them: "1:superseded:fake-cni-1.0.0 2:deployed:...".
func history(t *testing.T, ns, name string) string {
	t.Helper()
	h, err := simcluster.HelmHistory(cluster.Config, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func images(t *testing.T, ns, selector string) string {
	t.Helper()
	pods, err := cluster.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			seen[p.Spec.Containers[0].Image]++
		}
	}
	return fmt.Sprint(seen)
}

// TestAddonsUpgradeInOrderAndRollBackOneThatNeverBecomesReady: a CNI-like DaemonSet and a mesh-like
// Deployment, installed a version before, are upgraded CNI first, each watched until rolled out, as
// Helm revisions `helm history` shows; a manifest add-on is applied with server-side apply. Then a
// mesh version that never becomes ready (its pods fit no node) is rolled back to the revision
// before, by itself, and the step fails saying so; `drydock rollback` of the first run takes every
// add-on back to the revision it had before the run.
func TestAddonsUpgradeInOrderAndRollBackOneThatNeverBecomesReady(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	for i := range 3 {
		if _, err := cluster.CreateNode(ctx, fmt.Sprintf("addons-%d", i), simcluster.NodeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ns := "addons-a"
	for _, c := range []string{"fake-cni", "fake-mesh"} {
		if err := simcluster.InstallChart(ctx, cluster.Config, filepath.Join(charts, c), c, ns, "1.0.0", nil); err != nil {
			t.Fatal(err)
		}
	}
	// A DNS-like Deployment, created by hand before, that the manifests add-on takes over
	// (forceConflicts: its image is the creator's field).
	dns := simcluster.Deployment(ns, "fake-dns", 2)
	if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, dns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"fake-mesh-control", "fake-dns"} {
		if err := cluster.WaitDeploymentReady(ctx, ns, d, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	manifest := filepath.Join(dir, "dns.yaml")
	text := `apiVersion: apps/v1
kind: Deployment
metadata: {name: fake-dns}
spec:
  replicas: 2
  selector: {matchLabels: {app: fake-dns}}
  template:
    metadata: {labels: {app: fake-dns}}
    spec: {containers: [{name: app, image: registry.example/fake-dns:2}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: fake-dns-config}
data: {Corefile: ".:53 {forward . 8.8.8.8}"}
`
	if err := os.WriteFile(manifest, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`    - name: addons
      type: addons
      with:
        addons:
          - {name: cni, helm: {release: fake-cni, namespace: %[1]s, chart: %[2]s/fake-cni, version: 1.1.0}, class: cni}
          - {name: dns, class: dns, manifests: {paths: [%[3]s], namespace: %[1]s, forceConflicts: true}}
          - {name: mesh, class: mesh, helm: {release: fake-mesh, namespace: %[1]s, chart: %[2]s/fake-mesh}}
`, ns, charts, manifest)
	e, rec := engine(t)
	st, err := e.Start(ctx, parse(t, ns, body))
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	for name, want := range map[string]string{
		"fake-cni":  "1:superseded:fake-cni-1.0.0 2:deployed:fake-cni-1.1.0",
		"fake-mesh": "1:superseded:fake-mesh-1.0.0 2:deployed:fake-mesh-1.1.0",
	} {
		if got := history(t, ns, name); got != want {
			t.Errorf("helm history %s: %s, want %s", name, got, want)
		}
	}
	if got := images(t, ns, "app.kubernetes.io/name=fake-cni"); got != "map[registry.example/fake-cni:1.1.0:3]" {
		t.Errorf("CNI pods after the upgrade: %s (want the new version on every node)", got)
	}
	if got := images(t, ns, "app=fake-dns"); got != "map[registry.example/fake-dns:2:2]" {
		d, _ := cluster.Client.AppsV1().Deployments(ns).Get(ctx, "fake-dns", metav1.GetOptions{})
		t.Errorf("DNS pods after the apply: %s (deployment %s %+v)", got, image(d), d.Status)
	}
	lines := rec.Text()
	if i, j := strings.Index(lines, "cni (cni): upgraded"), strings.Index(lines, "mesh (mesh): upgrading"); i < 0 || j < 0 || i > j {
		t.Errorf("want the CNI rolled out before the mesh starts:\n%s", lines)
	}

	// A mesh version whose pods fit no node: never ready, rolled back by the step itself.
	bad := fmt.Sprintf(`    - name: addons
      type: addons
      with:
        addons:
          - name: mesh
            timeout: 8s
            helm: {release: fake-mesh, namespace: %s, chart: %s/fake-mesh, values: {nodeSelector: {drydock.dev/nowhere: "true"}}}
`, ns, charts)
	e2, rec2 := engine(t)
	_, err = e2.Start(ctx, parse(t, ns, bad))
	if err == nil || !strings.Contains(err.Error(), "rolled back to the version before") {
		t.Fatalf("want the step to fail, rolled back: %v\n%s", err, rec2.Text())
	}
	if got, want := history(t, ns, "fake-mesh"), "1:superseded:fake-mesh-1.0.0 2:superseded:fake-mesh-1.1.0 3:superseded:fake-mesh-1.1.0 4:deployed:fake-mesh-1.1.0"; got != want {
		t.Errorf("helm history after the rollback: %s, want %s", got, want)
	}
	if err := cluster.WaitDeploymentReady(ctx, ns, "fake-mesh-control", time.Minute); err != nil {
		t.Errorf("the mesh is not ready after its rollback: %v", err)
	}
	d, err := cluster.Client.AppsV1().Deployments(ns).Get(ctx, "fake-mesh-control", metav1.GetOptions{})
	if err != nil || len(d.Spec.Template.Spec.NodeSelector) != 0 {
		t.Errorf("the rolled-back mesh still has the bad nodeSelector: %v %v", d.Spec.Template.Spec.NodeSelector, err)
	}

	// drydock rollback of the first run: every add-on back to the revision before the run, newest first.
	rb, err := e.Rollback(ctx, st, "")
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, rec.Text())
	}
	if rb.Status != runbook.RunRolledBack {
		t.Errorf("run after the rollback: %s", rb.Status)
	}
	if got := history(t, ns, "fake-cni"); !strings.HasSuffix(got, "3:deployed:fake-cni-1.0.0") {
		t.Errorf("CNI after the rollback: %s", got)
	}
	if got := history(t, ns, "fake-mesh"); !strings.HasSuffix(got, "5:deployed:fake-mesh-1.0.0") {
		t.Errorf("mesh after the rollback: %s", got)
	}
	d, err = cluster.Client.AppsV1().Deployments(ns).Get(ctx, "fake-dns", metav1.GetOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != dns.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("fake-dns after the rollback: %v (%v), want the image it had before", image(d), err)
	}
	if _, err := cluster.Client.CoreV1().ConfigMaps(ns).Get(ctx, "fake-dns-config", metav1.GetOptions{}); err == nil {
		t.Error("the ConfigMap the apply created is still there after the rollback")
	}
}

func image(d *appsv1.Deployment) string {
	if d == nil {
		return ""
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

// TestAddonsKill9AndResume: drydock is killed (-9) during the add-on step, while it waits for the
// upgraded mesh to roll out (its new pods wait for a node label the test sets after the kill); one
// `drydock resume` finishes it without upgrading the release a second time. Then the same with the
// revision left pending-upgrade, as Helm leaves it when the process dies inside the upgrade call:
// the resume marks it failed and upgrades again.
func TestAddonsKill9AndResume(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ns := "addons-k"
	if _, err := cluster.CreateNode(ctx, "addons-k", simcluster.NodeOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	drydock := filepath.Join(dir, "drydock")
	if out, err := exec.Command("go", "build", "-o", drydock, "github.com/drydock-dev/drydock/cmd/drydock").CombinedOutput(); err != nil {
		t.Fatalf("build drydock: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "state")
	for _, tc := range []struct {
		release string
		pending bool // the kill left the new revision pending-upgrade
		// the revision before left superseded (killed between Helm's two status writes), so that
		// there is no deployed revision to upgrade from
		superseded bool
		want       string
	}{
		{"mesh-k1", false, false, "1:superseded:fake-mesh-1.0.0 2:deployed:fake-mesh-1.1.0"},
		{"mesh-k2", true, false, "1:superseded:fake-mesh-1.0.0 2:failed:fake-mesh-1.1.0 3:deployed:fake-mesh-1.1.0"},
		{"mesh-k3", true, true, "1:superseded:fake-mesh-1.0.0 2:failed:fake-mesh-1.1.0 3:superseded:fake-mesh-1.0.0 4:deployed:fake-mesh-1.1.0"},
	} {
		if err := simcluster.InstallChart(ctx, cluster.Config, filepath.Join(charts, "fake-mesh"), tc.release, ns, "1.0.0", nil); err != nil {
			t.Fatal(err)
		}
		gate := "drydock.dev/gate-" + tc.release
		rb := filepath.Join(dir, tc.release+".yaml")
		text := fmt.Sprintf(`apiVersion: drydock.dev/v1alpha1
kind: Runbook
metadata: {name: addons-kill}
spec:
  targetVersion: %s
  state: {namespace: %s}
  steps:
    - name: addons
      type: addons
      with:
        addons:
          - name: mesh
            timeout: 3m
            helm: {release: %s, namespace: %s, chart: %s, values: {nodeSelector: {%s: go}}}
`, simcluster.KubernetesVersion, ns, tc.release, ns, filepath.Join(charts, "fake-mesh"), gate)
		if err := os.WriteFile(rb, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		run := exec.Command(drydock, "run", rb, "--kubeconfig", cluster.Kubeconfig, "--state-dir", state, "--no-mirror", "--yes")
		var out strings.Builder
		run.Stdout, run.Stderr = &out, &out
		if err := run.Start(); err != nil {
			t.Fatal(err)
		}
		// Killed once Helm has made revision 2 and drydock waits for its rollout.
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
			return strings.Contains(history(t, ns, tc.release), "2:deployed"), nil
		}); err != nil {
			_ = run.Process.Kill()
			t.Fatalf("%s: revision 2 never appeared: %s\n%s", tc.release, history(t, ns, tc.release), out.String())
		}
		_ = run.Process.Kill()
		var ee *exec.ExitError
		if err := run.Wait(); !errors.As(err, &ee) || ee.ExitCode() != -1 {
			t.Fatalf("%s: want drydock killed by the signal, got %v:\n%s", tc.release, err, out.String())
		}
		if tc.pending {
			cfg := helmConfig(t, ns)
			r, err := cfg.Releases.Get(tc.release, 2)
			if err != nil {
				t.Fatal(err)
			}
			rel := r.(*release.Release)
			rel.SetStatus(rcommon.StatusPendingUpgrade, "Preparing upgrade")
			if err := cfg.Releases.Update(rel); err != nil {
				t.Fatal(err)
			}
			if r, err = cfg.Releases.Get(tc.release, 1); err != nil {
				t.Fatal(err)
			}
			rel = r.(*release.Release)
			if !tc.superseded {
				rel.SetStatus(rcommon.StatusDeployed, "Install complete")
			}
			if err := cfg.Releases.Update(rel); err != nil {
				t.Fatal(err)
			}
		}
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"go"}}}`, gate)
		if _, err := cluster.Client.CoreV1().Nodes().Patch(ctx, "addons-k", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		runs, err := runbook.ListRuns(state)
		if err != nil {
			t.Fatal(err)
		}
		id := ""
		for _, r := range runs {
			if r.Status == runbook.RunRunning {
				id = r.ID
			}
		}
		resume := exec.Command(drydock, "resume", id, "--kubeconfig", cluster.Kubeconfig, "--state-dir", state, "--no-mirror", "--yes")
		if b, err := resume.CombinedOutput(); err != nil {
			t.Fatalf("%s: resume %s: %v\n%s", tc.release, id, err, b)
		}
		if got := history(t, ns, tc.release); got != tc.want {
			t.Errorf("%s: helm history after the resume: %s, want %s", tc.release, got, tc.want)
		}
		if err := cluster.WaitDeploymentReady(ctx, ns, tc.release+"-control", 10*time.Second); err != nil {
			t.Errorf("%s: %v", tc.release, err)
		}
	}
}
