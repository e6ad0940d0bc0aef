package rollout_test

// The failure rule of canary and nodegroups (uncordon and forget, or keepCordoned: keep cordoned
// and recorded; an admin's cordon always kept), the cleanup that names what it could not undo, and
// a lost lock after which drydock touches nothing, not even to uncordon.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/faults"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps/drain"
)

// heldSuite is a suite of nodes (label suite=name) whose pods on some nodes no budget lets go for
// now, and a spare node where they may go once it does.
type heldSuite struct {
	t     *testing.T
	name  string
	spare string
}

// newHeldSuite makes the namespace name, a spare node at the target (in no group), and a pod of
// the budget pinned to the spare that never gets Ready.
func newHeldSuite(t *testing.T, name string) *heldSuite {
	t.Helper()
	namespace(t, name)
	namespace(t, name+"-gates") // the health gates watch an empty namespace: the held budget is the test's
	s := &heldSuite{t: t, name: name, spare: name + "-spare"}
	if _, err := cluster.CreateNode(context.Background(), s.spare, simcluster.NodeOptions{KubeletVersion: "v1.37.1",
		Labels: map[string]string{"suite": name}}); err != nil {
		t.Fatal(err)
	}
	d := simcluster.Deployment(name, "slow", 1)
	d.Spec.Template.Labels["tier"] = "held"
	d.Spec.Template.Annotations = map[string]string{"pod-ready.stage.kwok.x-k8s.io/delay": "1h"}
	d.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": s.spare}
	if _, err := cluster.Client.AppsV1().Deployments(name).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// hold puts one Ready pod on each of nodes (the scheduler places it while the suite's other nodes
// are cordoned; it may move to the spare after), all under one budget that allows no disruption
// while the spare's pod is not Ready: a wait, not a certain blocker. unblock deletes the budget.
func (s *heldSuite) hold(all, nodes []string) (unblock func()) {
	ctx := context.Background()
	for _, n := range nodes {
		for _, o := range append(slices.Clone(all), s.spare) {
			if err := cluster.SetUnschedulable(ctx, o, o != n); err != nil {
				s.t.Fatal(err)
			}
		}
		d := simcluster.Deployment(s.name, "held-"+n, 1)
		d.Spec.Template.Labels["tier"] = "held"
		d.Spec.Template.Spec.NodeSelector = map[string]string{"suite": s.name}
		if _, err := cluster.Client.AppsV1().Deployments(s.name).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			s.t.Fatal(err)
		}
		if err := cluster.WaitDeploymentReady(ctx, s.name, d.Name, time.Minute); err != nil {
			s.t.Fatal(err)
		}
	}
	for _, o := range append(slices.Clone(all), s.spare) {
		if err := cluster.SetUnschedulable(ctx, o, false); err != nil {
			s.t.Fatal(err)
		}
	}
	minAvailable := intstr.FromInt32(int32(len(nodes))) // len(nodes) Ready + the spare's never Ready: 0 allowed
	if _, err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.name).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.name, Name: "held"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvailable, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "held"}}},
	}, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	return func() {
		if err := cluster.Client.PolicyV1().PodDisruptionBudgets(s.name).Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
			s.t.Fatal(err)
		}
	}
}

// cordonedBy says who holds node cordoned: the run's id, "admin" (cordoned without drydock's
// mark) or "" (schedulable).
func cordonedBy(t *testing.T, name string) string {
	n := node(t, name)
	switch {
	case !n.Spec.Unschedulable:
		return ""
	case n.Annotations[drain.AnnotationCordonedBy] != "":
		return n.Annotations[drain.AnnotationCordonedBy]
	}
	return "admin"
}

// recorded says whether the step's journal records cordoning node, and whether it says drained.
func recorded(st *runbook.RunState, step, node string) (cordon, drained bool) {
	s := st.Step(step)
	for _, c := range s.Changes {
		cordon = cordon || c.Kind == "cordon" && c.Object == "node/"+node
	}
	return cordon, slices.Contains(s.Checkpoints, "drained/"+node)
}

// TestCanaryFailureRule: the canary's drain fails (its node's pod is held by a budget past the
// drain's nodeTimeout) and the canary is rolled back (exit 4). By default the node drydock cordoned
// is uncordoned and its drain forgotten; with keepCordoned it stays cordoned by the run, recorded,
// and named with the command that lets it go; a canary an admin had cordoned stays cordoned either
// way, unmarked.
func TestCanaryFailureRule(t *testing.T) {
	simcluster.Need(t)
	for _, c := range []struct {
		name  string
		keep  bool
		admin bool
	}{
		{"uncordon and forget", false, false},
		{"keepCordoned", true, false},
		{"an admin's cordon", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			suite := fmt.Sprintf("cfr%d", map[bool]int{false: 0, true: 1}[c.keep]+map[bool]int{false: 0, true: 2}[c.admin])
			s := newHeldSuite(t, suite)
			canary := nodes(t, suite, 1, nil)[0]
			s.hold([]string{canary}, []string{canary})
			if c.admin {
				if err := cluster.SetUnschedulable(context.Background(), canary, true); err != nil {
					t.Fatal(err)
				}
			}
			e, rec := engine(t, runbook.AlwaysContinue)
			rb := parseSpec(t, "v1.37.1", fmt.Sprintf(`  defaults: {timeout: 2m}
  steps:
    - name: canary
      type: canary
      pause: none
      with:
        node: %s
        action: {exec: %s}
        soak: 1s
        keepCordoned: %v
        drain: {nodeTimeout: 4s}
        health: {namespaces: [%s-gates], timeout: 30s}
`, canary, upgradeAction(t), c.keep, suite))
			st, err := e.Start(context.Background(), rb)
			if exitcode.For(err) != exitcode.Aborted || st.Step("canary").Status != runbook.StatusRolledBack {
				t.Fatalf("exit %d (%v), canary %s; want 4, rolled back\n%s", exitcode.For(err), err, st.Step("canary").Status, rec.Text())
			}
			by := cordonedBy(t, canary)
			switch {
			case c.admin:
				if by != "admin" {
					t.Fatalf("the admin's cordon on %s: cordoned by %q after the failure", canary, by)
				}
			case c.keep:
				if by != st.ID || !strings.Contains(rec.Text(), "drydock uncordon "+canary) || !strings.Contains(err.Error(), "stays cordoned") {
					t.Fatalf("keepCordoned: %s cordoned by %q (want %s), the command to let it go named: %v\n%v\n%s",
						canary, by, st.ID, strings.Contains(rec.Text(), "drydock uncordon "+canary), err, rec.Text())
				}
				if cordon, _ := recorded(st, "canary", canary); !cordon {
					t.Fatalf("keepCordoned: the journal does not record the cordon of %s: %+v", canary, st.Step("canary").Changes)
				}
			default:
				if by != "" {
					t.Fatalf("%s stays cordoned by %q after the failure", canary, by)
				}
				if _, drained := recorded(st, "canary", canary); drained {
					t.Fatalf("the journal says %s is drained while it is schedulable", canary)
				}
			}
		})
	}
}

// TestNodeGroupsFailureRule: a batch of three (one an admin cordoned) fails in its drains (budget
// held past nodeTimeout). By default the two nodes drydock cordoned are uncordoned and forgotten
// (not drained); with keepCordoned they stay cordoned by the run and recorded, named with the
// commands, and a resume after the budget is lifted goes on from them without cordoning them again.
// The admin's node stays cordoned, unmarked, either way.
func TestNodeGroupsFailureRule(t *testing.T) {
	simcluster.Need(t)
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keepCordoned ", keep), func(t *testing.T) {
			suite := fmt.Sprintf("ngfr%d", map[bool]int{false: 0, true: 1}[keep])
			s := newHeldSuite(t, suite)
			group := nodes(t, suite, 3, map[string]string{"pool": "a"})
			mine, admin := group[:2], group[2]
			unblock := s.hold(group, group)
			if err := cluster.SetUnschedulable(context.Background(), admin, true); err != nil {
				t.Fatal(err)
			}
			e, rec := engine(t, runbook.AlwaysContinue)
			rb := parseSpec(t, "v1.37.1", fmt.Sprintf(`  defaults: {timeout: 2m}
  steps:
    - name: fleet
      type: nodegroups
      with:
        groupBy: pool
        selector: suite=%s
        maxUnavailable: 3
        action: {exec: %s}
        keepCordoned: %v
        drain: {nodeTimeout: 5s}
        health: {namespaces: [%s-gates], timeout: 30s}
`, suite, upgradeAction(t), keep, suite))
			st, err := e.Start(context.Background(), rb)
			if err == nil || st.Step("fleet").Status != runbook.StatusFailed {
				t.Fatalf("the held batch: %v, step %s; want it failed\n%s", err, st.Step("fleet").Status, rec.Text())
			}
			if by := cordonedBy(t, admin); by != "admin" {
				t.Fatalf("the admin's cordon on %s: cordoned by %q after the failure", admin, by)
			}
			for _, n := range mine {
				by := cordonedBy(t, n)
				cordon, drained := recorded(st, "fleet", n)
				switch {
				case keep && (by != st.ID || !cordon):
					t.Fatalf("keepCordoned: %s cordoned by %q (want %s), journal records the cordon: %v\n%s", n, by, st.ID, cordon, rec.Text())
				case !keep && (by != "" || drained):
					t.Fatalf("%s after the failure: cordoned by %q, journal says drained %v\n%s", n, by, drained, rec.Text())
				}
			}
			if !keep {
				return
			}
			if want := "drydock uncordon " + strings.Join(mine, " "); !strings.Contains(rec.Text(), want) || !strings.Contains(rec.Text(), "drydock resume "+st.ID) {
				t.Fatalf("keepCordoned: the warning does not name the nodes and commands (%q, resume):\n%s", want, rec.Text())
			}
			unblock()
			before := cordons(rec.Text(), mine[0])
			if st, err = e.Resume(context.Background(), st); err != nil {
				t.Fatalf("resume: %v\n%s", err, rec.Text())
			}
			if cordons(rec.Text(), mine[0]) != before {
				t.Fatalf("resume cordoned %s again although it stayed cordoned and drained:\n%s", mine[0], rec.Text())
			}
			for _, n := range mine {
				if by := cordonedBy(t, n); by != "" || node(t, n).Status.NodeInfo.KubeletVersion != "v1.37.1" {
					t.Fatalf("%s after resume: cordoned by %q, kubelet %s", n, by, node(t, n).Status.NodeInfo.KubeletVersion)
				}
			}
			if by := cordonedBy(t, admin); by != "admin" {
				t.Fatalf("the admin's cordon on %s after resume: cordoned by %q", admin, by)
			}
		})
	}
}

// cordons counts the events of drydock cordoning node.
func cordons(text, node string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if (strings.Contains(line, "node "+node+":") || strings.Contains(line, "node "+node+" (")) && strings.HasSuffix(strings.TrimSpace(line), ": cordoned") {
			n++
		}
	}
	return n
}

// TestCleanupNamesWhatItCouldNotUndo: a batch fails and every patch that would uncordon its nodes
// gets a 503 (injected: the apiserver is failing). The cleanup gives up within its bound
// (drain.CleanupTimeout, not the step's timeout), and the error names each node it left cordoned
// with the command that undoes it.
func TestCleanupNamesWhatItCouldNotUndo(t *testing.T) {
	simcluster.Need(t)
	s := newHeldSuite(t, "cln")
	group := nodes(t, "cln", 2, map[string]string{"pool": "a"})
	s.hold(group, group)
	in := faults.New(faults.Config{Rate: 1, Kinds: []faults.Kind{faults.Status503}, Only: isUncordon})
	cfg := in.Wrap(cluster.Config)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, rec := engine(t, runbook.AlwaysContinue)
	e.Kube = client
	rb := parseSpec(t, "v1.37.1", fmt.Sprintf(`  defaults: {timeout: 10m}
  steps:
    - name: fleet
      type: nodegroups
      with:
        groupBy: pool
        selector: suite=cln
        maxUnavailable: 2
        action: {exec: %s}
        drain: {nodeTimeout: 4s}
        health: {namespaces: [cln-gates], timeout: 30s}
`, upgradeAction(t)))
	start := time.Now()
	st, err := e.Start(context.Background(), rb)
	took := time.Since(start)
	if err == nil {
		t.Fatalf("the held batch succeeded\n%s", rec.Text())
	}
	counts, _ := in.Counts()
	if counts[faults.Status503] == 0 {
		t.Fatalf("no uncordon was attempted: the test proves nothing\n%s", rec.Text())
	}
	for _, n := range group {
		if by := cordonedBy(t, n); by != st.ID {
			t.Fatalf("%s: cordoned by %q; the injected 503s should have left it cordoned by the run", n, by)
		}
	}
	want := "`drydock uncordon " + strings.Join(group, " ") + "` undoes it"
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), strings.Join(group, ", ")+" stay cordoned") {
		t.Fatalf("the error does not name the nodes left cordoned and the command (%s):\n%v", want, err)
	}
	if bound := drain.CleanupTimeout + 45*time.Second; took > bound {
		t.Fatalf("the run took %s: the cleanup is not bounded (%s)", took, drain.CleanupTimeout)
	}
	t.Logf("the cleanup gave up after %d injected 503s; the run took %s", counts[faults.Status503], took.Round(time.Second))
	for _, n := range group {
		if err := cluster.SetUnschedulable(context.Background(), n, false); err != nil {
			t.Fatal(err)
		}
	}
}

// isUncordon matches the patch that makes a node schedulable again.
func isUncordon(r *http.Request) bool {
	if r.Method != http.MethodPatch || !strings.HasPrefix(r.URL.Path, "/api/v1/nodes/") || r.GetBody == nil {
		return false
	}
	b, err := r.GetBody()
	if err != nil {
		return false
	}
	body, _ := io.ReadAll(b)
	return bytes.Contains(body, []byte(`"unschedulable":false`))
}

// request is one request drydock's client sent, with when it was sent and answered.
type request struct {
	method, path, body string
	sent, answered     time.Time
}

// requestLog records every request of a client.
type requestLog struct {
	mu   sync.Mutex
	reqs []request
}

func (l *requestLog) wrap(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) {
			q := request{method: r.Method, path: r.URL.Path, sent: time.Now()}
			if r.GetBody != nil {
				if b, err := r.GetBody(); err == nil {
					body, _ := io.ReadAll(b)
					q.body = string(body)
				}
			}
			resp, err := rt.RoundTrip(r)
			q.answered = time.Now()
			l.mu.Lock()
			l.reqs = append(l.reqs, q)
			l.mu.Unlock()
			return resp, err
		})
	})
	return c
}

func (l *requestLog) all() []request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

// TestLockLostTouchesNothing: another holder takes the cluster's Lease while a node group's batch
// is cordoned and draining. From the moment drydock sees it (its next renewal reads the Lease),
// drydock's client writes nothing: no eviction, no uncordon, no event, no lease or journal copy
// write, no pruning of old runs' copies. The run stops saying the lock was lost, and names the nodes it left cordoned with the
// command that finishes them.
func TestLockLostTouchesNothing(t *testing.T) {
	simcluster.Need(t)
	s := newHeldSuite(t, "lost")
	group := nodes(t, "lost", 2, map[string]string{"pool": "a"})
	s.hold(group, group)
	// Two finished runs' journal copies in the state namespace: a run that prunes old copies as it
	// ends (KeepRuns 1 below) would delete one, a write, if it did so after losing the lock.
	for i := 0; i < 2; i++ {
		old, rec := engine(t, runbook.AlwaysContinue)
		old.NoMirror, old.KeepRuns = false, -1
		if _, err := old.Start(context.Background(), parseSpec(t, "v1.37.1", "  steps:\n    - {name: x, type: exec, with: {command: [\"true\"]}}\n")); err != nil {
			t.Fatalf("%v\n%s", err, rec.Text())
		}
	}
	var log requestLog
	client, err := kubernetes.NewForConfig(log.wrap(cluster.Config))
	if err != nil {
		t.Fatal(err)
	}
	e, rec := engine(t, runbook.AlwaysContinue)
	e.Kube, e.NoMirror, e.KeepRuns, e.LockDuration = client, false, 1, 3*time.Second // renewed every second
	rb := parseSpec(t, "v1.37.1", fmt.Sprintf(`  defaults: {timeout: 5m}
  steps:
    - name: fleet
      type: nodegroups
      with:
        groupBy: pool
        selector: suite=lost
        maxUnavailable: 2
        action: {exec: %s}
        health: {namespaces: [lost-gates], timeout: 30s}
`, upgradeAction(t)))
	type result struct {
		st  *runbook.RunState
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := e.Start(context.Background(), rb)
		done <- result{st, err}
	}()
	// Both nodes cordoned and their drains waiting on the budget.
	deadline := time.Now().Add(time.Minute)
	for strings.Count(rec.Text(), ": draining: evicting") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the drains never started:\n%s", rec.Text())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	leases := cluster.Client.CoordinationV1().Leases("kube-system")
	t.Cleanup(func() { _ = leases.Delete(context.Background(), runbook.LockName, metav1.DeleteOptions{}) })
	lease, err := leases.Get(context.Background(), runbook.LockName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := "someone-else"
	lease.Spec.HolderIdentity = &other
	lease.Annotations["drydock.dev/run-id"], lease.Annotations["drydock.dev/operator"] = "other-run", "other-operator"
	if _, err := leases.Update(context.Background(), lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	taken := time.Now()
	var r result
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the run went on for 2 minutes after losing its lock:\n%s", rec.Text())
	}
	// When drydock saw the loss: the answer to its first read of the Lease sent after the takeover.
	var seen time.Time
	reqs := log.all()
	for _, q := range reqs {
		if q.method == http.MethodGet && strings.HasSuffix(q.path, "/leases/"+runbook.LockName) && q.sent.After(taken) {
			seen = q.answered
			break
		}
	}
	if seen.IsZero() {
		t.Fatalf("drydock never read the Lease after the takeover (%d requests)", len(reqs))
	}
	for _, q := range reqs {
		write := q.method != http.MethodGet && q.method != http.MethodHead
		switch {
		case q.method == http.MethodPatch && strings.Contains(q.body, `"unschedulable":false`):
			t.Errorf("drydock uncordoned at %s (the loss was seen at %s): %s %s", q.sent.Format(time.StampMilli), seen.Format(time.StampMilli), q.method, q.path)
		case write && q.sent.After(seen):
			t.Errorf("drydock wrote after it saw the lock lost (%s after): %s %s", q.sent.Sub(seen), q.method, q.path)
		}
	}
	text := rec.Text() + "\n" + fmt.Sprint(r.err)
	for _, n := range group {
		if by := cordonedBy(t, n); by != r.st.ID {
			t.Errorf("%s: cordoned by %q; drydock must leave it as it was when it lost the lock", n, by)
		}
	}
	if r.err == nil || !strings.Contains(text, "took the Lease") || !strings.Contains(text, "drydock uncordon "+strings.Join(group, " ")) {
		t.Fatalf("the run must say it lost the lock and name what it left with the command: %v\n%s", r.err, rec.Text())
	}
	t.Logf("exit %d: %v", exitcode.For(r.err), r.err)
	for _, n := range group {
		if err := cluster.SetUnschedulable(context.Background(), n, false); err != nil {
			t.Fatal(err)
		}
	}
}
