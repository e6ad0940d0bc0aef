package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/utils/ptr"

	"github.com/drydock-dev/drydock/internal/exitcode"
)

// TestDrainTakesKubectlFlags: kubectl drain's command line works: --dry-run takes kubectl's values
// (bare is client), the flags that mean something to drydock set its drain, one that is drydock's
// default anyway is taken with a warning, and one that cannot mean anything is refused with what
// drydock does instead (exit 2, before anything runs). --force never goes past a budget.
func TestDrainTakesKubectlFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want func(t *testing.T, o *DrainOptions)
		code exitcode.Code
		says string // in the refusal, or in the warnings
	}{
		{name: "bare --dry-run is client", args: []string{"n1", "--dry-run"}, want: func(t *testing.T, o *DrainOptions) {
			if !o.DryRun || o.DryRunStrategy != cmdutil.DryRunClient {
				t.Errorf("dry run %v %v", o.DryRun, o.DryRunStrategy)
			}
		}},
		{name: "--dry-run=client", args: []string{"n1", "--dry-run=client", "-o", "json"}, want: func(t *testing.T, o *DrainOptions) {
			if !o.DryRun || o.planPrint().Text() {
				t.Errorf("dry run %v, text %v", o.DryRun, o.planPrint().Text())
			}
		}},
		{name: "--dry-run=true (kubectl's old form)", args: []string{"n1", "--dry-run=true"}, want: func(t *testing.T, o *DrainOptions) {
			if !o.DryRun {
				t.Error("not a dry run")
			}
		}},
		{name: "--dry-run=none drains", args: []string{"n1", "--dry-run=none"}, want: func(t *testing.T, o *DrainOptions) {
			if o.DryRun || o.DryRunStrategy != cmdutil.DryRunNone {
				t.Errorf("dry run %v %v", o.DryRun, o.DryRunStrategy)
			}
		}},
		{name: "no --dry-run drains", args: []string{"n1"}, want: func(t *testing.T, o *DrainOptions) {
			if o.DryRun || len(o.warnings) > 0 || o.Settings.GracePeriodSeconds != nil {
				t.Errorf("%+v", o)
			}
		}},
		{name: "--dry-run=server", args: []string{"n1", "--dry-run=server"}, code: exitcode.Usage, says: "--dry-run=server is not supported: the apiserver answers a dry-run eviction for each pod alone"},
		{name: "--dry-run=maybe", args: []string{"n1", "--dry-run=maybe"}, code: exitcode.Usage, says: "--dry-run=maybe is not none, client or server"},
		{name: "--grace-period", args: []string{"n1", "--grace-period", "45"}, want: func(t *testing.T, o *DrainOptions) {
			if g := o.Settings.GracePeriodSeconds; g == nil || *g != 45 || len(o.warnings) > 0 {
				t.Errorf("grace period %v, warnings %q", g, o.warnings)
			}
		}},
		{name: "--grace-period=0", args: []string{"n1", "--grace-period=0"}, want: func(t *testing.T, o *DrainOptions) {
			if g := o.Settings.GracePeriodSeconds; g == nil || *g != 0 {
				t.Errorf("grace period %v", g)
			}
		}},
		{name: "--grace-period=-1 is the default", args: []string{"n1", "--grace-period=-1"}, says: "--grace-period with a negative value is not needed", want: func(t *testing.T, o *DrainOptions) {
			if o.Settings.GracePeriodSeconds != nil {
				t.Errorf("grace period %v", *o.Settings.GracePeriodSeconds)
			}
		}},
		{name: "--ignore-daemonsets", args: []string{"n1", "--ignore-daemonsets"}, says: "--ignore-daemonsets is not needed: drydock always leaves DaemonSet pods", want: func(*testing.T, *DrainOptions) {}},
		{name: "--ignore-daemonsets=false", args: []string{"n1", "--ignore-daemonsets=false"}, code: exitcode.Usage, says: "--ignore-daemonsets=false is not supported"},
		{name: "--pod-selector", args: []string{"n1", "--pod-selector", "app=web"}, code: exitcode.Usage, says: "--pod-selector is not supported: drydock drains every pod it can move"},
		{name: "--skip-wait-for-delete-timeout", args: []string{"n1", "--skip-wait-for-delete-timeout", "30"}, code: exitcode.Usage, says: "waits until every evicted pod is gone, up to --node-timeout or --timeout"},
		{name: "--skip-wait-for-delete-timeout=0", args: []string{"n1", "--skip-wait-for-delete-timeout=0"}, says: "--skip-wait-for-delete-timeout=0 is not needed", want: func(*testing.T, *DrainOptions) {}},
		{name: "--timeout 0 (kubectl: no limit)", args: []string{"n1", "--timeout", "0"}, code: exitcode.Usage, says: "give a long one such as 24h"},
		{name: "--force honours budgets", args: []string{"n1", "--force"}, want: func(t *testing.T, o *DrainOptions) {
			if !o.Settings.Force || o.Settings.DisableEviction {
				t.Errorf("force %v, disable eviction %v", o.Settings.Force, o.Settings.DisableEviction)
			}
		}},
		{
			name: "a kubectl drain command line", args: []string{"n1", "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--grace-period=60", "--timeout=5m", "--disable-eviction", "--dry-run=client"},
			says: "--ignore-daemonsets is not needed",
			want: func(t *testing.T, o *DrainOptions) {
				s := o.Settings
				if !o.DryRun || !s.DeleteEmptyDirData || !s.Force || !s.DisableEviction || s.GracePeriodSeconds == nil || *s.GracePeriodSeconds != 60 || o.Timeout.Minutes() != 5 {
					t.Errorf("%+v", o)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, _, _ := testFactory(t)
			var ran *DrainOptions
			err := execCmd(t, NewDrainCommand(f, func(o *DrainOptions) error { ran = o; return nil }), tc.args...)
			if tc.code != 0 {
				if got := exitcode.For(err); got != tc.code || ran != nil || !strings.Contains(err.Error(), tc.says) || !strings.HasPrefix(err.Error(), "drain: ") {
					t.Fatalf("exit %d (%v), ran %v; want exit %d before Run, saying %q", got, err, ran != nil, tc.code, tc.says)
				}
				return
			}
			if err != nil || ran == nil {
				t.Fatalf("err %v, ran %v", err, ran != nil)
			}
			if w := strings.Join(ran.warnings, "\n"); !strings.Contains(w, tc.says) || (tc.says == "" && w != "") {
				t.Errorf("warnings %q, want %q", w, tc.says)
			}
			tc.want(t, ran)
		})
	}
}

// drainFactory is a Factory whose cluster is a fake clientset holding objs, that allows every
// access review; nobody is at a terminal.
func drainFactory(t *testing.T, objs ...runtime.Object) (*Factory, *bytes.Buffer, *bytes.Buffer, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset(objs...)
	client.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: "v1.37.1"}
	client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview).DeepCopy()
		r.Status.Allowed = true
		return true, r, nil
	})
	var out, errOut bytes.Buffer
	f := NewFactory(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, genericclioptions.NewConfigFlags(true))
	f.RESTConfig = func() (*rest.Config, error) { return &rest.Config{Host: "https://fake"}, nil }
	f.KubeClient = func() (kubernetes.Interface, error) { return client, nil }
	return f, &out, &errOut, client
}

// TestRefusedDrainSaysEachBlockerAndItsFix: a drain its plan refuses (a pod with no controller),
// without a terminal, prints the blocker and its fix, and the error that follows points only at
// what was printed; a kubectl flag it does not need is said once, on stderr. With --dry-run=client
// the plan says the same and nothing is cordoned either.
func TestRefusedDrainSaysEachBlockerAndItsFix(t *testing.T) {
	t.Parallel()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	solo := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "solo", UID: "u1"},
		Spec:   corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	const fix = "BLOCK n1 pod/shop/solo: shop/solo has no controller: nothing recreates it if it is evicted (fix: --force (force: true) to evict it anyway)"
	for _, tc := range []struct {
		name       string
		args       []string
		out, error string
	}{
		{"drain", []string{"n1", "--ignore-daemonsets", "--state-dir", "STATE"}, fix, "1 certain blocker(s), each listed above (BLOCK) with its fix; nothing was cordoned"},
		{"dry run", []string{"n1", "--dry-run=client", "--ignore-daemonsets"}, "BLOCK", "blocked: 1 blocker(s) above"},
		// JSON lines are for programs: the error itself says the blocker and its fix.
		{"json", []string{"n1", "-o", "json", "--ignore-daemonsets", "--state-dir", "STATE"}, `"type":"run.planned"`,
			"blocked before the first node moved: step \"drain\": pod/shop/solo: shop/solo has no controller: nothing recreates it if it is evicted (fix: --force (force: true) to evict it anyway)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, out, errOut, client := drainFactory(t, node.DeepCopy(), solo.DeepCopy())
			args := append([]string(nil), tc.args...)
			for i, a := range args {
				if a == "STATE" {
					args[i] = t.TempDir()
				}
			}
			cmd := NewDrainCommand(f, nil)
			cmd.SetArgs(args)
			cmd.SilenceErrors, cmd.SilenceUsage = true, true
			err := cmd.ExecuteContext(context.Background())
			if exitcode.For(err) != exitcode.Blocked || !strings.Contains(err.Error(), tc.error) {
				t.Fatalf("exit %d: %v\nwant exit 3 saying %q", exitcode.For(err), err, tc.error)
			}
			if terminal := out.String() + err.Error(); !strings.Contains(out.String(), tc.out) || !strings.Contains(terminal, "(fix: --force (force: true) to evict it anyway)") {
				t.Errorf("stdout:\n%s\nwant %q, and the fix on stdout or in the error", out, tc.out)
			}
			if n := strings.Count(errOut.String(), "drydock: warning: drain: --ignore-daemonsets is not needed"); n != 1 {
				t.Errorf("the warning said %d times on stderr:\n%s", n, errOut)
			}
			if n, _ := client.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{}); n.Spec.Unschedulable {
				t.Error("the node was cordoned")
			}
		})
	}
}

// TestDrainGracePeriodReachesTheEviction: --grace-period is read where it matters, in each
// eviction's DeleteOptions (kubectl's meaning), not only parsed.
func TestDrainGracePeriodReachesTheEviction(t *testing.T) {
	t.Parallel()
	ready := corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		Allocatable: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")}}
	n1 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: ready}
	n2 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}, Status: ready}
	web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", UID: "u1",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "rs", Controller: ptr.To(true)}}},
		Spec:   corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	f, _, errOut, client := drainFactory(t, n1, n2, web)
	var mu sync.Mutex
	var grace []*int64
	client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		mu.Lock()
		grace = append(grace, ev.DeleteOptions.GracePeriodSeconds)
		mu.Unlock()
		return true, nil, client.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), ev.Namespace, ev.Name)
	})
	cmd := NewDrainCommand(f, nil)
	cmd.SetArgs([]string{"n1", "--grace-period", "7", "--state-dir", t.TempDir(), "--timeout", "30s"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("drain: %v\n%s", err, errOut)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(grace) != 1 || grace[0] == nil || *grace[0] != 7 {
		t.Fatalf("evictions' grace periods %v, want one of 7s", grace)
	}
}

// TestPlanRefusalPointsAtWhatWasPrinted: `drydock plan` refused by a certain blocker says "listed
// above" only when it printed the BLOCK lines (text); with -o yaml (an object for programs) the
// error names the blocker and its fix itself.
func TestPlanRefusalPointsAtWhatWasPrinted(t *testing.T) {
	t.Parallel()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	solo := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "solo", UID: "u1"},
		Spec:   corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	path := filepath.Join(t.TempDir(), "up.yaml")
	rb := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: up}\nspec:\n  targetVersion: v1.37.1\n  steps:\n    - {name: d, type: drain, with: {nodes: [n1]}}\n"
	if err := os.WriteFile(path, []byte(rb), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ output, out, error string }{
		{"", "BLOCK n1 pod/shop/solo", "1 certain blocker(s), each listed above (BLOCK) with its fix"},
		{"yaml", "object: pod/shop/solo", `step "d": pod/shop/solo: shop/solo has no controller: nothing recreates it if it is evicted (fix: --force (force: true) to evict it anyway)`},
	} {
		t.Run("output "+tc.output, func(t *testing.T) {
			t.Parallel()
			f, out, _, _ := drainFactory(t, node.DeepCopy(), solo.DeepCopy())
			args := []string{path, "--state-dir", t.TempDir()}
			if tc.output != "" {
				args = append(args, "-o", tc.output)
			}
			cmd := NewPlanCommand(f, nil)
			cmd.SetArgs(args)
			cmd.SilenceErrors, cmd.SilenceUsage = true, true
			err := cmd.ExecuteContext(context.Background())
			if exitcode.For(err) != exitcode.Blocked || !strings.Contains(err.Error(), tc.error) {
				t.Fatalf("exit %d: %v\nwant exit 3 saying %q", exitcode.For(err), err, tc.error)
			}
			if !strings.Contains(out.String(), tc.out) {
				t.Errorf("stdout:\n%s\nwant %q", out, tc.out)
			}
		})
	}
}
