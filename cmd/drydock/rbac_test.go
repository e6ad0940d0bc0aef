package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/preflight"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
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
	run := func(want exitcode.Code) []preflight.Finding {
		t.Helper()
		out, errOut, code := preflightRun(t, cluster.Kubeconfig, "--as", as, "-o", "json", "--fail-on", "never")
		if code != int(want) {
			t.Fatalf("exit %d, want %d\n%s", code, want, errOut)
		}
		var rep preflight.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		return rep.Findings()
	}
	for _, f := range run(exitcode.OK) {
		if f.NotAllowed || f.CouldNotCheck == preflight.CouldNotForbidden || f.Check == "access-check" && f.Severity == runbook.SeverityError {
			t.Errorf("the role does not suffice: %s %s: %s", f.Severity, f.Object, f.Message)
		}
	}

	// Without the /metrics rule, access-check says so, the scan notes what it could not read, and
	// the report is incomplete: exit 6, whatever --fail-on says.
	role, err := cluster.Client.RbacV1().ClusterRoles().Get(context.Background(), "drydock-preflight", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	metrics := -1
	for i, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 && r.NonResourceURLs[0] == "/metrics" {
			metrics = i
		}
	}
	if metrics < 0 {
		t.Fatal("deploy/preflight's role has no /metrics rule")
	}
	patch := fmt.Sprintf(`[{"op":"remove","path":"/rules/%d"}]`, metrics)
	if _, err := cluster.Client.RbacV1().ClusterRoles().Patch(context.Background(), "drydock-preflight", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range run(exitcode.Forbidden) {
		if f.Check == "access-check" && f.Object == "get /metrics" && strings.Contains(f.Message, "not allowed to get /metrics") {
			found = true
		}
	}
	if !found {
		t.Error("access-check did not report the missing /metrics rule")
	}
}

// bindExactly grants user exactly the permissions need (a ClusterRole for the cluster-wide ones, a
// Role per namespace for the others), and returns a function that takes one permission away.
func bindExactly(ctx context.Context, t *testing.T, user string, need []runbook.Access) (revoke func(runbook.Access)) {
	t.Helper()
	rules := map[string][]rbacv1.PolicyRule{} // namespace ("" cluster-wide) -> rules
	ruleOf := func(a runbook.Access) rbacv1.PolicyRule {
		if a.NonResourceURL != "" {
			return rbacv1.PolicyRule{Verbs: []string{a.Verb}, NonResourceURLs: []string{a.NonResourceURL}}
		}
		res := a.Resource
		if a.Subresource != "" {
			res += "/" + a.Subresource
		}
		return rbacv1.PolicyRule{Verbs: []string{a.Verb}, APIGroups: []string{a.Group}, Resources: []string{res}}
	}
	for _, a := range runbook.Dedupe(need) {
		rules[a.Namespace] = append(rules[a.Namespace], ruleOf(a))
	}
	name := "drydock-test-" + user
	subjects := []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}}
	must := func(err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	// Roles are created by an update (their strategy allows it); bindings are created once.
	apply := func() {
		for ns, rs := range rules {
			if ns == "" {
				_, err := cluster.Client.RbacV1().ClusterRoles().Update(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rs}, metav1.UpdateOptions{})
				must(err)
				_, err = cluster.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
					RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name}, Subjects: subjects}, metav1.CreateOptions{})
				must(err)
				continue
			}
			_, err := cluster.Client.RbacV1().Roles(ns).Update(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: rs}, metav1.UpdateOptions{})
			must(err)
			_, err = cluster.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name}, Subjects: subjects}, metav1.CreateOptions{})
			must(err)
		}
	}
	apply()
	return func(a runbook.Access) {
		want := ruleOf(a)
		rs := rules[a.Namespace]
		for i := range rs {
			if equality.Semantic.DeepEqual(rs[i], want) {
				rules[a.Namespace] = append(rs[:i:i], rs[i+1:]...)
				apply()
				return
			}
		}
		t.Fatalf("no rule for %s", a)
	}
}

// TestDrainAsUserWithExactlyTheDeclaredRules: a user bound to exactly the permissions the code
// declares for a drain can drain; without the eviction permission, the drain is refused before
// anything is cordoned (exit 3), naming what is missing.
func TestDrainAsUserWithExactlyTheDeclaredRules(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ns := "rbac-drain"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"rbac-1", "rbac-2"} {
		if _, err := cluster.CreateNode(ctx, n, simcluster.NodeOptions{Labels: map[string]string{"suite": "rbac"}}); err != nil {
			t.Fatal(err)
		}
	}
	d := simcluster.Deployment(ns, "web", 2)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"suite": "rbac"}
	if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WaitDeploymentReady(ctx, ns, "web", time.Minute); err != nil {
		t.Fatal(err)
	}
	// What `drydock drain` declares: its one-step runbook's access.
	rb, err := runbook.Parse("drain", []byte("apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: drain}\nspec:\n  targetVersion: v1.37.1\n  steps:\n    - {name: drain, type: drain, with: {nodes: [rbac-1]}}\n"), steps.Registry)
	if err != nil {
		t.Fatal(err)
	}
	user := "drainer"
	revoke := bindExactly(ctx, t, user, rb.Access())
	// RBAC reaches the authorizer through its informers: wait until it answers yes for the user.
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate.UserName = user
	as, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		missing, known, err := runbook.Allowed(ctx, as, rb.Access())
		if err != nil || !known {
			return false, err
		}
		return len(missing) == 0, nil
	}); err != nil {
		t.Fatalf("the bound rules never took effect: %v", err)
	}
	p := newProc(t)
	out, code := p.run("drain", "rbac-1", "--as", user)
	if code != 0 {
		t.Fatalf("drain as a user with exactly the declared rules: exit %d\n%s", code, out)
	}
	// The other commands of a run, as the same user: rollback (uncordons), runs, plan, run and
	// resume of a runbook with the same step and a pause point.
	id := runIDRE.FindStringSubmatch(out)[1]
	if out, code := p.run("rollback", id, "--yes", "--as", user); code != 0 {
		t.Fatalf("rollback as the user: exit %d\n%s", code, out)
	}
	if n, _ := cluster.Client.CoreV1().Nodes().Get(ctx, "rbac-1", metav1.GetOptions{}); n.Spec.Unschedulable {
		t.Fatal("rollback as the user did not uncordon the node")
	}
	if out, code := p.run("runs", "--from-cluster", "--as", user); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("runs --cluster as the user: exit %d\n%s", code, out)
	}
	rbFile := writeRunbook(t, "rbac", "    - {name: look, type: pause, with: {message: look first}}\n    - {name: drain, type: drain, with: {nodes: [rbac-1]}}\n")
	if out, err := exec.Command(drydockBinary(t), "plan", rbFile, "--as", user, "--kubeconfig", cluster.Kubeconfig).CombinedOutput(); err != nil {
		t.Fatalf("plan as the user: %v\n%s", err, out)
	}
	out, code = p.run("run", rbFile, "--as", user)
	if code != 5 {
		t.Fatalf("run as the user: exit %d, want 5 (paused)\n%s", code, out)
	}
	if out, code := p.run("resume", runIDRE.FindStringSubmatch(out)[1], "--yes", "--as", user); code != 0 {
		t.Fatalf("resume as the user: exit %d\n%s", code, out)
	}
	if _, err := cluster.Client.CoreV1().Nodes().Patch(ctx, "rbac-1", types.MergePatchType, []byte(`{"spec":{"unschedulable":false}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	revoke(runbook.Access{Verb: "create", Resource: "pods", Subresource: "eviction"})
	out, code = p.run("drain", "rbac-2", "--as", user)
	if code != int(exitcode.Forbidden) || !strings.Contains(out, "create pods/eviction") || !strings.Contains(out, "nothing was changed") {
		t.Fatalf("drain without the eviction permission: exit %d, want 6 naming it\n%s", code, out)
	}
	n, err := cluster.Client.CoreV1().Nodes().Get(ctx, "rbac-2", metav1.GetOptions{})
	if err != nil || n.Spec.Unschedulable {
		t.Fatalf("the refused drain cordoned the node (%v)", err)
	}
}

// TestPreflightAsNobody: `drydock preflight --as` a user with almost no rights (authenticated, no
// role) reports what each check could not examine, with the reason — never a clean check and never
// an upgrade finding — and exits 6 whatever --fail-on says.
func TestPreflightAsNobody(t *testing.T) {
	simcluster.Need(t)
	out, errOut, code := preflightRun(t, cluster.Kubeconfig, "--as", "drydock-test-nobody", "-o", "json", "--fail-on", "warning", "--checks", "api-scan,pdb-check,skew-check,health-check")
	if code != int(exitcode.Forbidden) {
		t.Fatalf("exit %d, want 6\n%s", code, errOut)
	}
	var rep preflight.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		forbidden := 0
		for _, f := range r.Findings {
			if f.CouldNotCheck == preflight.CouldNotForbidden && f.NotAllowed && f.Fix != "" {
				forbidden++
			}
			if f.CouldNotCheck == "" && preflight.FailOnWarning.Fails(f) {
				t.Errorf("%s: an upgrade finding from a user who may read nothing: %s: %s", r.Check, f.Object, f.Message)
			}
		}
		if forbidden == 0 {
			t.Errorf("%s: no could-not-check finding (a check that read nothing must not look clean): %+v", r.Check, r.Findings)
		}
	}
	if len(rep.Results) != 4 {
		t.Errorf("checks reported: %d, want 4", len(rep.Results))
	}
	if _, _, code := preflightRun(t, cluster.Kubeconfig, "--as", "drydock-test-nobody", "--fail-on", "never", "--checks", "skew-check"); code != int(exitcode.Forbidden) {
		t.Errorf("--fail-on never: exit %d, want 6 (the report is incomplete)", code)
	}
}

// boundKinds is, for every step kind in docs/permissions.md's table, a step of that kind (its
// `with:` and its own settings) that does real work on the test cluster, run as a user bound to
// exactly what its runbook declares.
func boundKinds(t *testing.T, ns string) map[string]string {
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	// The node steps' action brings its own credentials (the admin's kubeconfig), as a real one does.
	action := fmt.Sprintf(`[%q, --kubeconfig, %q, patch, node, "{{.Node.Name}}", --subresource=status, -p, '{"status":{"nodeInfo":{"kubeletVersion":"{{.TargetVersion}}"}}}']`,
		filepath.Join(bin, "kubectl"), cluster.Kubeconfig)
	manifest := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bound-addon, namespace: "+ns+"}\ndata: {k: v}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	health := fmt.Sprintf("{namespaces: [%s], timeout: 1m}", ns)
	return map[string]string{
		"exec":              `{command: ["true"]}`,
		"pause":             `{message: "bound user"}`,
		"wait":              `{for: nodesReady, nodes: "suite=bound"}`,
		"health-gate":       fmt.Sprintf(`{soak: 1s, health: %s}`, health),
		"drain":             `{nodes: [bound-drain]}`,
		"controlplane":      `{members: [{name: noop, exec: ["true"]}], readyTimeout: 1m}`,
		"storage-migration": `{resources: [configmaps], skipCRDs: true}`,
		"canary":            fmt.Sprintf(`{node: bound-canary, action: {exec: %s}, soak: 1s, health: %s}`, action, health),
		"nodegroups":        fmt.Sprintf(`{groupBy: bound-pool, selector: suite=bound, action: {exec: %s}, health: %s}`, action, health),
		"addons":            fmt.Sprintf(`{addons: [{name: cm, manifests: {paths: [%q]}}]}`, manifest),
		"api-scan":          `{failOn: never}`,
		"pdb-check":         `{failOn: never}`,
		"traffic-check":     `{failOn: never}`,
		"skew-check":        `{failOn: never}`,
		"health-check":      `{failOn: never}`,
		"config-check":      `{failOn: never}`,
		"addon-check":       `{failOn: never}`,
		"velero-check":      `{failOn: never}`,
		"access-check":      `{failOn: never}`,
		"preflight":         `{failOn: never}`,
		"velero-backup":     fmt.Sprintf(`{includedNamespaces: [%s]}`, ns),
	}
}

// TestEveryStepKindAsUserWithExactlyTheDeclaredRules: for every step kind of docs/permissions.md's
// permission table (every kind in the registry: a new kind without a case here fails), a user bound
// to exactly the permissions its one-step runbook declares (the run's lock and journal, and the
// step's Access) runs it to the end: exit 0, and no request refused. Velero runs for the Velero
// kinds; the node steps' action, like a real one, brings its own credentials.
func TestEveryStepKindAsUserWithExactlyTheDeclaredRules(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	ns := "bound"
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := cluster.StartVelero(ctx, veleroOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	for name, o := range map[string]simcluster.NodeOptions{
		"bound-drain":  {Labels: map[string]string{"suite": "bound"}},
		"bound-canary": {KubeletVersion: "v1.36.3", Labels: map[string]string{"suite": "bound"}},
		"bound-pool-1": {KubeletVersion: "v1.36.3", Labels: map[string]string{"suite": "bound", "bound-pool": "a"}},
		"bound-spare":  {Labels: map[string]string{"suite": "bound"}},
	} {
		if _, err := cluster.CreateNode(ctx, name, o); err != nil {
			t.Fatal(err)
		}
	}
	d := simcluster.Deployment(ns, "web", 2)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"suite": "bound"}
	if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WaitDeploymentReady(ctx, ns, "web", time.Minute); err != nil {
		t.Fatal(err)
	}
	kinds := boundKinds(t, ns)
	for _, k := range steps.Registry {
		if _, ok := kinds[k.Name]; !ok {
			t.Errorf("step kind %s has no case: add one to boundKinds", k.Name)
		}
	}
	p := newProc(t)
	for _, k := range steps.Registry {
		with, ok := kinds[k.Name]
		if !ok {
			continue
		}
		t.Run(k.Name, func(t *testing.T) {
			step := fmt.Sprintf("    - name: s\n      type: %s\n      pause: none\n      timeout: 3m\n      with: %s\n", k.Name, with)
			text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: bound}\nspec:\n  targetVersion: v1.37.1\n  steps:\n" + step
			rb, err := runbook.Parse("bound.yaml", []byte(text), steps.Registry)
			if err != nil {
				t.Fatal(err)
			}
			user := "bound-" + k.Name
			bindExactly(ctx, t, user, rb.Access())
			waitAllowed(ctx, t, user, rb.Access())
			out, code := p.run("run", writeRunbook(t, "bound", step), "--yes", "--as", user)
			if code != 0 || strings.Contains(strings.ToLower(out), "forbidden") {
				t.Fatalf("step %s as a user with exactly the declared rules: exit %d\n%s", k.Name, code, out)
			}
		})
	}
	// Leave the nodes as the other tests expect them.
	for _, n := range []string{"bound-drain", "bound-canary", "bound-pool-1"} {
		_ = cluster.SetUnschedulable(ctx, n, false)
	}
}

// waitAllowed waits until the authorizer answers yes to user for every permission in need (RBAC
// reaches it through its informers).
func waitAllowed(ctx context.Context, t *testing.T, user string, need []runbook.Access) {
	t.Helper()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate.UserName = user
	as, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		missing, known, err := runbook.Allowed(ctx, as, need)
		if err != nil || !known {
			return false, err
		}
		return len(missing) == 0, nil
	}); err != nil {
		t.Fatalf("the bound rules never took effect for %s: %v", user, err)
	}
}
