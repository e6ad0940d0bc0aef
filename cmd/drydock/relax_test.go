package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
	"github.com/drydock-dev/drydock/steps/drain"
)

// relaxScenario: two nodes; web (2 replicas) and a pod that can never be scheduled, under one budget
// (minAvailable 2: 0 disruptions allowed). It returns the namespace and a node with web pods.
func relaxScenario(t *testing.T, name string) (ns, node string) {
	t.Helper()
	ctx := context.Background()
	ns = name
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		if _, err := cluster.CreateNode(ctx, fmt.Sprintf("%s-%d", name, i), simcluster.NodeOptions{Labels: map[string]string{"suite": name}}); err != nil {
			t.Fatal(err)
		}
	}
	web := simcluster.Deployment(ns, "web", 2)
	web.Spec.Template.Labels["tier"] = "front"
	web.Spec.Template.Spec.NodeSelector = map[string]string{"suite": name}
	stuck := simcluster.Deployment(ns, "stuck", 1)
	stuck.Spec.Template.Labels["tier"] = "front"
	stuck.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": "nowhere"}
	for _, d := range []*appsv1.Deployment{web, stuck} {
		if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cluster.WaitDeploymentReady(ctx, ns, "web", time.Minute); err != nil {
		t.Fatal(err)
	}
	two := intstr.FromInt32(2)
	if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "front"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &two, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("web pods: %v", err)
	}
	return ns, pods.Items[0].Spec.NodeName
}

// relaxedUntil waits until the budget carries drydock's relaxation and returns its expiry.
func relaxedUntil(t *testing.T, ns string) time.Time {
	t.Helper()
	var expires time.Time
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pdb, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "front", metav1.GetOptions{})
		if err != nil || pdb.Labels[drain.LabelRelaxedBy] == "" {
			return false, nil //nolint:nilerr // not yet
		}
		var rec struct{ Expires time.Time }
		if err := json.Unmarshal([]byte(pdb.Annotations[drain.AnnotationRelaxed]), &rec); err != nil {
			return false, err
		}
		expires = rec.Expires
		return true, nil
	}); err != nil {
		t.Fatalf("the budget was never relaxed: %v", err)
	}
	return expires
}

// restored checks the budget is as it was: minAvailable 2, no mark of drydock.
func restored(t *testing.T, ns string) {
	t.Helper()
	pdb, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Get(context.Background(), "front", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Labels[drain.LabelRelaxedBy] != "" || pdb.Annotations[drain.AnnotationRelaxed] != "" {
		t.Fatalf("budget not restored: spec %+v, labels %v, annotations %v", pdb.Spec, pdb.Labels, pdb.Annotations)
	}
}

// TestBudgetRelaxAfterKill9: drydock relaxes a stalled budget (allowBudgetRelax) and is killed -9
// before it can restore it. Once the relaxation's expiry has passed, `drydock runs --repair` restores
// the budget; and so does the next drydock command that runs steps (here the rollback of the killed
// run, which also uncordons its node). Before the expiry, the repair leaves a relaxation alone, and
// the killed run's own rollback restores it from its journal.
func TestBudgetRelaxAfterKill9(t *testing.T) {
	simcluster.Need(t)
	for _, via := range []string{"runs --repair", "the next command", "the rollback"} {
		t.Run(via, func(t *testing.T) {
			name := map[string]string{"runs --repair": "relax-kill-repair", "the next command": "relax-kill-next", "the rollback": "relax-kill-undo"}[via]
			ns, node := relaxScenario(t, name)
			p := newProc(t)
			expiry := "4s"
			if via == "the rollback" {
				expiry = "10m"
			}
			cmd := p.command("drain", node, "--allow-budget-relax", "1", "--relax-expiry", expiry, "--stall-timeout", "2s", "--timeout", "5m")
			var buf bytes.Buffer
			out := &syncWriter{w: &buf}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			expires := relaxedUntil(t, ns)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			m := runIDRE.FindStringSubmatch(buf.String())
			if m == nil {
				t.Fatalf("no run id in output:\n%s", buf.String())
			}
			id := m[1]

			// Not expired yet: the repair names it and leaves it.
			if got, code := p.run("runs", "--repair"); code != 0 || !strings.Contains(got, "PDB "+ns+"/front is relaxed by run "+id) {
				t.Fatalf("runs --repair before the expiry: exit %d\n%s", code, got)
			}
			if pdb, _ := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Get(context.Background(), "front", metav1.GetOptions{}); pdb.Labels[drain.LabelRelaxedBy] == "" {
				t.Fatal("the repair restored a relaxation before its expiry")
			}
			if via == "the rollback" {
				// Not expired: the run's rollback restores what its journal says it relaxed.
				got, code := p.run("rollback", id, "--yes")
				if code != 0 || !strings.Contains(got, "PDB "+ns+"/front restored") {
					t.Fatalf("rollback before the expiry: exit %d\n%s", code, got)
				}
				restored(t, ns)
				if n, _ := cluster.Client.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{}); n.Spec.Unschedulable {
					t.Fatal("the rollback left the node cordoned")
				}
				return
			}
			time.Sleep(time.Until(expires) + time.Second)

			if via == "runs --repair" {
				got, code := p.run("runs", "--repair")
				if code != 0 || !strings.Contains(got, "PDB "+ns+"/front restored") {
					t.Fatalf("runs --repair: exit %d\n%s", code, got)
				}
				restored(t, ns)
			}
			got, code := p.run("rollback", id, "--yes")
			if code != 0 {
				t.Fatalf("rollback: exit %d\n%s", code, got)
			}
			if via != "runs --repair" && !strings.Contains(got, "PDB "+ns+"/front restored") {
				t.Fatalf("the next command did not restore the expired budget:\n%s", got)
			}
			restored(t, ns)
			if n, _ := cluster.Client.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{}); n.Spec.Unschedulable {
				t.Fatal("the rollback left the node cordoned")
			}
		})
	}
}

// TestExpiredRelaxationRepairSaysWhatItCannot: a budget drydock relaxed is past its expiry (the run
// that relaxed it died). A run by a user who may not list PodDisruptionBudgets in every namespace
// cannot look for it: the run says so, with the command that finishes the repair, and goes on. A
// user who may list them but not restore this one is told the exact kubectl patch, which restores
// the budget.
func TestExpiredRelaxationRepairSaysWhatItCannot(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ns := "relax-cannot"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := `{"run":"20260101-0000-dead","node":"gone","expires":"2026-01-01T00:30:00Z","count":1,"set":{"minAvailable":0},"restore":{"minAvailable":1},"what":"allows one more pod of the budget to be down"}`
	zero := intstr.FromInt32(0)
	if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "front", Labels: map[string]string{drain.LabelRelaxedBy: "20260101-0000-dead"},
			Annotations: map[string]string{drain.AnnotationRelaxed: rec}},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &zero, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rbFile := writeRunbook(t, "relax-cannot", "    - {name: look, type: exec, with: {command: [\"true\"]}}\n")
	rb, err := runbook.Load(rbFile, steps.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user  string
		extra []runbook.Access
		want  string
	}{
		{"relax-nolist", nil, "WARNING: poddisruptionbudgets: budgets drydock relaxed whose expiry has passed were not looked for, so none was restored: " +
			"this user may not list PodDisruptionBudgets in every namespace (fix: `drydock runs --repair` as a user who may list PodDisruptionBudgets in every namespace restores them"},
		{"relax-nopatch", []runbook.Access{{Verb: "list", Group: "policy", Resource: "poddisruptionbudgets"}},
			"WARNING: pdb/" + ns + "/front: relaxed by run 20260101-0000-dead (allows one more pod of the budget to be down) and expired at 2026-01-01T00:30:00Z, could not be restored"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			need := append(rb.Access(), tc.extra...)
			bindExactly(ctx, t, tc.user, need)
			cfg := rest.CopyConfig(cluster.Config)
			cfg.Impersonate.UserName = tc.user
			as, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
				missing, known, err := runbook.Allowed(ctx, as, need)
				return err == nil && known && len(missing) == 0, nil
			}); err != nil {
				t.Fatalf("the bound rules never took effect: %v", err)
			}
			out, code := newProc(t).run("run", rbFile, "--yes", "--as", tc.user)
			if code != 0 {
				t.Fatalf("run as %s: exit %d\n%s", tc.user, code, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("run as %s does not say what the repair could not do:\n%s\nwant %q", tc.user, out, tc.want)
			}
			pdb, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "front", metav1.GetOptions{})
			if err != nil || pdb.Spec.MinAvailable.IntValue() != 0 {
				t.Fatalf("the budget changed: %v (%v)", pdb.Spec.MinAvailable, err)
			}
			if tc.user != "relax-nopatch" {
				return
			}
			// The command said restores the budget as it was and takes drydock's marks off.
			patch := `{"metadata":{"annotations":{"drydock.dev/relaxed":null},"labels":{"drydock.dev/relaxed-by":null}},"spec":{"minAvailable":1}}`
			if cmd := "kubectl patch pdb front -n " + ns + " --type=merge -p '" + patch + "'"; !strings.Contains(out, "(fix: "+cmd) {
				t.Fatalf("the fix is not %s:\n%s", cmd, out)
			}
			if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, "front", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			pdb, err = cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "front", metav1.GetOptions{})
			if err != nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Labels[drain.LabelRelaxedBy] != "" || pdb.Annotations[drain.AnnotationRelaxed] != "" {
				t.Fatalf("the fix did not restore the budget: %+v (%v)", pdb, err)
			}
		})
	}
}
