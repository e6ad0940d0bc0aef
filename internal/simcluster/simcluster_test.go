package simcluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

const readyDelay = 3 * time.Second

var cluster *simcluster.Cluster

func TestMain(m *testing.M) {
	if os.Getenv("DRYDOCK_SIM_HELPER") != "" {
		os.Exit(m.Run()) // a child process of TestWatchdogStopsClusterOfKilledProcess
	}
	os.Exit(simcluster.Main(m, &cluster, simcluster.Options{PodReadyDelay: readyDelay}))
}

func TestServerReportsPinnedVersion(t *testing.T) {
	simcluster.Need(t)
	v, err := cluster.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != simcluster.KubernetesVersion {
		t.Fatalf("server version %q, want %q (are the version ldflags set in hack/cluster-bin.sh?)", v.GitVersion, simcluster.KubernetesVersion)
	}
}

// TestEvictionHonoursBudgets proves the cluster is real: the controller-manager computes the budget,
// the apiserver refuses an eviction that would break it, the ReplicaSet controller and the scheduler
// replace an evicted pod on another node, and the replacement takes the configured delay to be Ready.
func TestEvictionHonoursBudgets(t *testing.T) {
	simcluster.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := cluster.Client
	const ns = "default"

	for i := 1; i <= 3; i++ {
		if _, err := cluster.CreateNode(ctx, fmt.Sprintf("evict-%d", i), simcluster.NodeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, simcluster.Deployment(ns, "web", 6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	all := intstr.FromString("100%")
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &all,
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		},
	}
	if _, err := c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WaitDeploymentReady(ctx, ns, "web", time.Minute); err != nil {
		t.Fatalf("deployment web not ready: %v", err)
	}
	waitBudget(ctx, t, ns, "web", func(s policyv1.PodDisruptionBudgetStatus) bool {
		return s.ExpectedPods == 6 && s.CurrentHealthy == 6 && s.DisruptionsAllowed == 0
	})

	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 6 {
		t.Fatalf("list pods: %v (%d pods)", err, len(pods.Items))
	}
	victim := pods.Items[0]
	err = evict(ctx, victim)
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("eviction under minAvailable: 100%% returned %v, want 429 Too Many Requests", err)
	}

	// Now allow one disruption and drain-like: cordon the victim's node, then evict.
	one := intstr.FromInt32(1)
	cur, err := c.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.MinAvailable, cur.Spec.MaxUnavailable = nil, &one
	if _, err := c.PolicyV1().PodDisruptionBudgets(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBudget(ctx, t, ns, "web", func(s policyv1.PodDisruptionBudgetStatus) bool { return s.DisruptionsAllowed == 1 })
	if err := cluster.SetUnschedulable(ctx, victim.Spec.NodeName, true); err != nil {
		t.Fatal(err)
	}

	w, err := c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=web", ResourceVersion: pods.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := evict(ctx, victim); err != nil {
		t.Fatalf("eviction with maxUnavailable: 1 failed: %v", err)
	}

	known := map[string]bool{}
	for _, p := range pods.Items {
		known[p.Name] = true
	}
	var created, ready time.Time
	var replacement *corev1.Pod
	victimGone := false
	for replacement == nil || ready.IsZero() || !victimGone {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out: replacement=%v ready=%v victim gone=%v", replacement != nil, !ready.IsZero(), victimGone)
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed")
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			switch {
			case p.Name == victim.Name && ev.Type == watch.Deleted:
				victimGone = true
			case !known[p.Name]:
				if created.IsZero() {
					created = time.Now()
				}
				replacement = p
				if ready.IsZero() && simcluster.PodReady(p) {
					ready = time.Now()
				}
			}
		}
	}
	if replacement.Spec.NodeName == victim.Spec.NodeName {
		t.Errorf("replacement %s scheduled onto the cordoned node %s", replacement.Name, victim.Spec.NodeName)
	}
	if took := ready.Sub(created); took < readyDelay-300*time.Millisecond {
		t.Errorf("replacement became Ready %v after it was created; the simulated kubelet should take %v", took, readyDelay)
	} else {
		t.Logf("replacement %s on %s Ready after %v (configured %v)", replacement.Name, replacement.Spec.NodeName, took.Round(time.Millisecond), readyDelay)
	}
}

func evict(ctx context.Context, p corev1.Pod) error {
	return cluster.Client.PolicyV1().Evictions(p.Namespace).Evict(ctx, &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}},
	})
}

func waitBudget(ctx context.Context, t *testing.T, ns, name string, ok func(policyv1.PodDisruptionBudgetStatus) bool) {
	t.Helper()
	var last policyv1.PodDisruptionBudgetStatus
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pdb, err := cluster.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = pdb.Status
		return pdb.Status.ObservedGeneration == pdb.Generation && ok(pdb.Status), nil
	})
	if err != nil {
		t.Fatalf("budget %s/%s never reached the expected status; last %+v", ns, name, last)
	}
}

// TestPodDeletionTakesTerminationDelay checks the other half of realistic timing: a deleted pod
// lingers while its containers stop, as on a real kubelet.
func TestPodDeletionTakesTerminationDelay(t *testing.T) {
	simcluster.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := cluster.Client
	if _, err := cluster.CreateNode(ctx, "delete-1", simcluster.NodeOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "slow-stop", Annotations: map[string]string{
			"pod-ready.stage.kwok.x-k8s.io/delay":  "100ms",
			"pod-delete.stage.kwok.x-k8s.io/delay": "2s",
		}},
		Spec: corev1.PodSpec{NodeName: "delete-1", Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}
	if _, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods("default").Get(ctx, "slow-stop", metav1.GetOptions{})
		return err == nil && simcluster.PodReady(p), nil
	}); err != nil {
		t.Fatal("pod never became Ready")
	}
	w, err := c.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "slow-stop").String()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	start := time.Now()
	if err := c.CoreV1().Pods("default").Delete(ctx, "slow-stop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for ev := range w.ResultChan() {
		if ev.Type == watch.Deleted {
			break
		}
	}
	if took := time.Since(start); took < 1700*time.Millisecond {
		t.Fatalf("pod gone %v after delete; the simulated kubelet should take 2s", took)
	}
}

// TestWatchdogStopsClusterOfKilledProcess kills (SIGKILL, no deferred cleanup) a process that
// started a cluster and checks that none of the cluster's processes outlive it.
func TestWatchdogStopsClusterOfKilledProcess(t *testing.T) {
	simcluster.Need(t)
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperStartsCluster$", "-test.v")
	helper.Env = append(os.Environ(), "DRYDOCK_SIM_HELPER=1")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = helper.Process.Kill(); _ = helper.Wait() }()
	var workDir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if dir, ok := strings.CutPrefix(sc.Text(), "WORKDIR="); ok {
			workDir = dir
			break
		}
	}
	if workDir == "" {
		t.Fatal("helper did not start a cluster")
	}
	if n := processesUsing(workDir); n == 0 {
		t.Fatalf("no process uses %s while the helper's cluster runs: cannot test the watchdog", workDir)
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for processesUsing(workDir) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("processes of the killed helper's cluster still run after 60s: %v", processList(workDir))
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The watchdog removes the work directory right after the processes are gone.
	for {
		_, err := os.Stat(workDir)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("work directory %s left behind (%v)", workDir, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestHelperStartsCluster(t *testing.T) {
	simcluster.Need(t)
	if os.Getenv("DRYDOCK_SIM_HELPER") == "" {
		return // only a step of TestWatchdogStopsClusterOfKilledProcess
	}
	c, err := simcluster.Start(context.Background(), simcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("WORKDIR=%s\n", c.WorkDir)
	time.Sleep(5 * time.Minute) // killed by the parent long before
}

// TestStopLeavesNoProcess starts a second cluster and stops it.
func TestStopLeavesNoProcess(t *testing.T) {
	simcluster.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := simcluster.Start(ctx, simcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if processesUsing(c.WorkDir) == 0 {
		t.Fatal("no process found for a running cluster: the check below would prove nothing")
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if procs := processList(c.WorkDir); len(procs) > 0 {
		t.Fatalf("processes left after Stop: %v", procs)
	}
}

func processesUsing(dir string) int { return len(processList(dir)) }

// processList returns the command lines of the processes whose arguments mention dir.
func processList(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, dir) && !strings.Contains(cmdline, "/bin/sh -c while kill") {
			found = append(found, e.Name()+": "+cmdline[:min(len(cmdline), 120)])
		}
	}
	return found
}

// TestUpgradeControlPlaneComponentByComponent starts a cluster whose control plane runs the
// previous minor, then upgrades the apiserver, the controller-manager and the scheduler one at a
// time on the same etcd data: objects written before are there after, and the upgraded controllers
// and scheduler still bring a Deployment up.
func TestUpgradeControlPlaneComponentByComponent(t *testing.T) {
	simcluster.Need(t)
	ctx := context.Background()
	c, err := simcluster.Start(ctx, simcluster.Options{Previous: true, PodReadyDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Stop() }()
	version := func() string {
		t.Helper()
		v, err := c.Client.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		return v.GitVersion
	}
	if v := version(); v != simcluster.PreviousVersion {
		t.Fatalf("started at %s, want %s", v, simcluster.PreviousVersion)
	}
	if _, err := c.Client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateNode(ctx, "up-1", simcluster.NodeOptions{KubeletVersion: simcluster.PreviousVersion}); err != nil {
		t.Fatal(err)
	}
	bin, err := simcluster.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range simcluster.ControlPlane {
		if err := c.UpgradeComponent(ctx, comp, bin); err != nil {
			t.Fatalf("upgrade %s: %v", comp, err)
		}
	}
	if v := version(); v != simcluster.KubernetesVersion {
		t.Fatalf("after the upgrade the apiserver answers %s, want %s", v, simcluster.KubernetesVersion)
	}
	if cm, err := c.Client.CoreV1().ConfigMaps("default").Get(ctx, "before", metav1.GetOptions{}); err != nil || cm.Data["k"] != "v" {
		t.Fatalf("the object written before the upgrade: %v %v", cm, err)
	}
	if _, err := c.Client.AppsV1().Deployments("default").Create(ctx, simcluster.Deployment("default", "after", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitDeploymentReady(ctx, "default", "after", 2*time.Minute); err != nil {
		t.Fatalf("the upgraded controller-manager and scheduler: %v", err)
	}
	if err := c.UpgradeComponent(ctx, "etcd", bin); err == nil {
		t.Error("etcd is not a control-plane member UpgradeComponent takes")
	}
}

// TestHeldControllersAndRunningPods (on a cluster with 8 kwok pod workers, which kwok must be
// given every option it defaults for, and no pod events): with the Deployment and ReplicaSet controllers held, a
// Deployment makes no ReplicaSet; a pod made bound with RunningAnnotation is Running and Ready at
// once (long before the cluster's ready delay) in one status write; a pod made without it is not;
// once the controllers are released, the Deployment gets its ReplicaSet.
func TestHeldControllersAndRunningPods(t *testing.T) {
	simcluster.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := simcluster.Start(ctx, simcluster.Options{PodReadyDelay: time.Hour, HoldControllers: []string{"deployment", "replicaset"}, PodWorkers: 8, NoPodEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	if _, err := c.CreateNode(ctx, "held-1", simcluster.NodeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitNodeReady(ctx, "held-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.AppsV1().Deployments("default").Create(ctx, simcluster.Deployment("default", "held", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := func(name string, running bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: "held-1", Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
		if running {
			p.Annotations = map[string]string{simcluster.RunningAnnotation: "true"}
		}
		return p
	}
	w, err := c.Client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", "copied").String()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for name, running := range map[string]bool{"copied": true, "new": false} {
		if _, err := c.Client.CoreV1().Pods("default").Create(ctx, pod(name, running), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Made, then one status write, which makes it Running and Ready.
	writes := 0
	timeout := time.After(30 * time.Second)
	for ready := false; !ready; {
		select {
		case ev := <-w.ResultChan():
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type != watch.Modified {
				continue
			}
			writes++
			ready = p.Status.Phase == corev1.PodRunning && podReady(p)
		case <-timeout:
			t.Fatalf("the pod made running is not Running and Ready within 30s (ready delay 1h); %d writes", writes)
		}
	}
	if writes != 1 {
		t.Errorf("the pod made running took %d writes after its creation to be Ready, want 1", writes)
	}
	if p, err := c.Client.CoreV1().Pods("default").Get(ctx, "new", metav1.GetOptions{}); err != nil || podReady(p) {
		t.Errorf("a pod made without the annotation is Ready before its delay: %v", err)
	}
	if rs, err := c.Client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{}); err != nil || len(rs.Items) != 0 {
		t.Fatalf("the held Deployment controller made ReplicaSets: %v %d", err, len(rs.Items))
	}
	if err := c.ReleaseControllers(ctx); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		rs, err := c.Client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{})
		return err == nil && len(rs.Items) == 1 && rs.Items[0].Status.Replicas == 1, nil
	}); err != nil {
		t.Fatalf("after ReleaseControllers the Deployment has no ReplicaSet with its pod: %v", err)
	}
	// NoPodEvents: kwok started "new" long ago, without its event.
	if evs, err := c.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=new,reason=Created"}); err != nil || len(evs.Items) > 0 {
		t.Errorf("events for a started pod with NoPodEvents: %v %d", err, len(evs.Items))
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
