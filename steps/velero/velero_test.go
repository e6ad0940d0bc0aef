package velero_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	velerov1 "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/internal/exitcode"
	"github.com/drydock-dev/drydock/internal/printer"
	"github.com/drydock-dev/drydock/internal/simcluster"
	"github.com/drydock-dev/drydock/internal/velero"
	"github.com/drydock-dev/drydock/preflight"
	"github.com/drydock-dev/drydock/preflight/apis"
	"github.com/drydock-dev/drydock/runbook"
	"github.com/drydock-dev/drydock/steps"
	veleroStep "github.com/drydock-dev/drydock/steps/velero"
)

var (
	cluster *simcluster.Cluster
	vel     *simcluster.Velero
)

// TestMain starts a simulated cluster and a real Velero server (with MinIO) for the package, and
// stops both whatever happens.
func TestMain(m *testing.M) {
	os.Exit(simcluster.Main(stopVeleroAfter{m}, &cluster, simcluster.Options{PodReadyDelay: 500 * time.Millisecond}))
}

// stopVeleroAfter runs the tests, then stops Velero before the cluster goes.
type stopVeleroAfter struct{ m *testing.M }

func (s stopVeleroAfter) Run() int {
	code := s.m.Run()
	if vel != nil {
		vel.Stop()
	}
	return code
}

func startVelero(t *testing.T) *simcluster.Velero {
	t.Helper()
	if vel == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		v, err := cluster.StartVelero(ctx, simcluster.VeleroOptions{})
		if err != nil {
			t.Fatal(err)
		}
		vel = v
	}
	return vel
}

func run(t *testing.T, stepsYAML string) (*runbook.RunState, *printer.Recorder, error) {
	t.Helper()
	text := "apiVersion: drydock.dev/v1alpha1\nkind: Runbook\nmetadata: {name: t}\nspec:\n  targetVersion: v1.37.1\n  steps:\n" + stepsYAML
	rb, err := runbook.Parse(t.Name()+".yaml", []byte(text), steps.Registry)
	if err != nil {
		t.Fatal(err)
	}
	rec := &printer.Recorder{}
	e := &runbook.Engine{Registry: steps.Registry, Sink: rec, Decider: runbook.AlwaysContinue, Kube: cluster.Client, REST: cluster.Config,
		StateDir: t.TempDir(), NoMirror: true}
	st, err := e.Start(context.Background(), rb)
	return st, rec, err
}

func namespace(t *testing.T, name string, objects ...func(ns string) error) {
	t.Helper()
	ctx := context.Background()
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, o := range objects {
		if err := o(name); err != nil {
			t.Fatal(err)
		}
	}
}

func app(ns string) error {
	ctx := context.Background()
	c := cluster.Client
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, simcluster.Deployment(ns, "web", 1), metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := c.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"mode": "prod"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := c.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"password": "s3cret"}}, metav1.CreateOptions{})
	return err
}

func gone(t *testing.T, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		if _, err := cluster.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("sandbox namespace %s is still there (err %v)", ns, err)
		}
	}
}

func veleroClient(t *testing.T) *velero.Client {
	vc, err := velero.New(cluster.Config, "velero")
	if err != nil {
		t.Fatal(err)
	}
	return vc
}

// TestBackupAndRestoreCheck: a namespace with a Deployment, Service, ConfigMap and Secret is backed
// up, restored into a sandbox, compared and cleaned up; the backup is the run's rollback point.
func TestBackupAndRestoreCheck(t *testing.T) {
	simcluster.Need(t)
	startVelero(t)
	namespace(t, "shop", app)
	st, rec, err := run(t, `    - name: backup
      type: velero-backup
      timeout: 3m
      with: {includedNamespaces: [shop]}
`)
	if err != nil {
		t.Fatalf("%v\n%s", err, rec.Text())
	}
	text := rec.Text()
	for _, want := range []string{"created backup drydock-" + st.ID, "Completed", "restore check: shop: ", "restore check passed"} {
		if !strings.Contains(text, want) {
			t.Errorf("events lack %q:\n%s", want, text)
		}
	}
	if p := st.Steps[0].RollbackPoint; p == nil || *p != (runbook.RollbackPoint{Kind: runbook.RollbackPointVeleroBackup, Namespace: "velero", Name: "drydock-" + st.ID}) {
		t.Errorf("rollback point %q", st.Steps[0].RollbackPoint)
	}
	gone(t, veleroStep.SandboxName("shop", st.ID))
	vc := veleroClient(t)
	b, err := vc.Backup(context.Background(), "drydock-"+st.ID)
	if err != nil || b.Status.Phase != velerov1.BackupPhaseCompleted || b.Labels[velero.LabelRunID] != st.ID {
		t.Errorf("backup: %v %+v", err, b)
	}
	if _, err := vc.Restore(context.Background(), "drydock-"+st.ID+"-verify"); !apierrors.IsNotFound(err) {
		t.Errorf("the check's restore is still there: %v", err)
	}

	// A second run reuses the fresh backup instead of making one.
	st2, rec, err := run(t, `    - name: backup
      type: velero-backup
      with: {includedNamespaces: [shop], reuseMaxAge: 1h, restoreCheck: {skip: true}}
`)
	if err != nil || !strings.Contains(rec.Text(), "reusing backup drydock-"+st.ID) || st2.RollbackPoint(runbook.RollbackPointVeleroBackup) == nil || st2.RollbackPoint(runbook.RollbackPointVeleroBackup).Name != "drydock-"+st.ID {
		t.Errorf("reuse: %v, rollback point %q\n%s", err, st2.Steps[0].RollbackPoint, rec.Text())
	}
	if _, err := vc.Backup(context.Background(), "drydock-"+st2.ID); !apierrors.IsNotFound(err) {
		t.Errorf("a reused backup was made anew: %v", err)
	}

	// The pre-flight check sees Velero healthy with a fresh backup.
	in, err := preflight.NewInput(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	in.Target, in.Server = apis.Release{Major: 1, Minor: 38}, apis.Release{Major: 1, Minor: 37}
	in.Velero.Required = true
	rep, err := preflight.Run(context.Background(), in, []string{"velero"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings() {
		t.Errorf("healthy Velero has a finding: %s %s: %s", f.Severity, f.Object, f.Message)
	}
	// Scoped to a namespace no backup covers, it says so.
	in.Velero.Namespaces = []string{"elsewhere"}
	if rep, err = preflight.Run(context.Background(), in, []string{"velero"}); err != nil {
		t.Fatal(err)
	}
	if fs := rep.Findings(); len(fs) != 1 || !strings.Contains(fs[0].Message, "no Completed Velero backup covers elsewhere") {
		t.Errorf("scoped check: %+v", fs)
	}
}

// TestRestoreCheckCatchesMissingObject: an object Velero left out (labelled to be excluded) is
// missing from the sandbox: the step fails and names it, and still cleans up.
func TestRestoreCheckCatchesMissingObject(t *testing.T) {
	simcluster.Need(t)
	startVelero(t)
	namespace(t, "gap", app, func(ns string) error {
		_, err := cluster.Client.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "feature-flags",
			Labels: map[string]string{"velero.io/exclude-from-backup": "true"}}}, metav1.CreateOptions{})
		return err
	})
	st, rec, err := run(t, `    - name: backup
      type: velero-backup
      timeout: 3m
      with: {includedNamespaces: [gap]}
`)
	if err == nil || !strings.Contains(err.Error(), "gap came back without ConfigMap feature-flags") {
		t.Fatalf("err = %v, want the missing ConfigMap named\n%s", err, rec.Text())
	}
	if !strings.Contains(rec.Text(), "missing from the restore: ConfigMap feature-flags") {
		t.Errorf("no finding names it:\n%s", rec.Text())
	}
	gone(t, veleroStep.SandboxName("gap", st.ID))
}

// TestPartiallyFailedBackup: file-system backup of a pod volume with no node agent on the node
// ends PartiallyFailed: the step fails by default and passes with allowPartial.
func TestPartiallyFailedBackup(t *testing.T) {
	simcluster.Need(t)
	startVelero(t)
	ctx := context.Background()
	if _, err := cluster.CreateNode(ctx, "velero-node", simcluster.NodeOptions{}); err != nil {
		t.Fatal(err)
	}
	namespace(t, "partial", func(ns string) error {
		_, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db"},
			Spec: corev1.PodSpec{NodeName: "velero-node", Containers: []corev1.Container{{Name: "db", Image: "db", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
				Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}}}, metav1.CreateOptions{})
		return err
	})
	if err := simclusterWaitPod(ctx, "partial", "db"); err != nil {
		t.Fatal(err)
	}
	_, rec, err := run(t, `    - name: backup
      type: velero-backup
      timeout: 3m
      with: {includedNamespaces: [partial], defaultVolumesToFsBackup: true, restoreCheck: {skip: true}}
`)
	if err == nil || !strings.Contains(err.Error(), "ended PartiallyFailed") || !strings.Contains(err.Error(), "allowPartial: true") {
		t.Fatalf("err = %v, want PartiallyFailed\n%s", err, rec.Text())
	}
	_, rec, err = run(t, `    - name: backup
      type: velero-backup
      timeout: 3m
      with: {includedNamespaces: [partial], defaultVolumesToFsBackup: true, allowPartial: true, restoreCheck: {skip: true}}
`)
	if err != nil || !strings.Contains(rec.Text(), "PartiallyFailed") || !strings.Contains(rec.Text(), "allowed by allowPartial") {
		t.Fatalf("allowPartial: %v\n%s", err, rec.Text())
	}
}

func simclusterWaitPod(ctx context.Context, ns, name string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return context.DeadlineExceeded
}

// TestStorageLocationUnavailable: with the bucket gone the pre-flight check and the step fail with
// Velero's message before any backup is created.
func TestStorageLocationUnavailable(t *testing.T) {
	simcluster.Need(t)
	v := startVelero(t)
	ctx := context.Background()
	if err := v.SetStorageLocation(ctx, "no-such-bucket", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.SetStorageLocation(ctx, v.Bucket, 2*time.Second); err != nil {
			t.Error(err)
		}
		if err := v.WaitLocation(ctx, "Available", time.Minute); err != nil {
			t.Error(err)
		}
	})
	if err := v.WaitLocation(ctx, "Unavailable", time.Minute); err != nil {
		t.Fatal(err)
	}
	in, err := preflight.NewInput(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := preflight.Run(ctx, in, []string{"velero"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range rep.Findings() {
		if f.Severity == runbook.SeverityError && f.Object == "BackupStorageLocation velero/default" && strings.Contains(f.Message, "Unavailable: ") && strings.Contains(f.Message, "NoSuchBucket") {
			found = true
		}
	}
	if !found {
		t.Errorf("no error finding quoting Velero's message: %+v", rep.Findings())
	}

	st, rec, err := run(t, `    - name: velero
      type: velero-check
    - name: backup
      type: velero-backup
      with: {includedNamespaces: [default]}
`)
	if exitcode.For(err) != exitcode.Blocked || !strings.Contains(err.Error(), "BackupStorageLocation velero/default") {
		t.Fatalf("err = %v, want the check to block\n%s", err, rec.Text())
	}
	if st.Steps[1].Status != runbook.StatusPending {
		t.Errorf("the backup step ran: %s", st.Steps[1].Status)
	}

	// The step alone refuses too, before creating anything.
	st, rec, err = run(t, `    - name: backup
      type: velero-backup
      with: {includedNamespaces: [default]}
`)
	if err == nil || !strings.Contains(err.Error(), "BackupStorageLocation velero/default is Unavailable") || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Fatalf("err = %v\n%s", err, rec.Text())
	}
	if _, err := veleroClient(t).Backup(ctx, "drydock-"+st.ID); !apierrors.IsNotFound(err) {
		t.Errorf("a backup was created: %v", err)
	}
}

// TestBackupTimeout: with the Velero server stopped, a backup never leaves New: the step gives up
// after its timeout and says which phase it was stuck in.
func TestBackupTimeout(t *testing.T) {
	simcluster.Need(t)
	v := startVelero(t)
	v.StopServer()
	t.Cleanup(func() {
		if err := v.StartServer(context.Background(), 0, 0); err != nil {
			t.Error(err)
		}
	})
	_, rec, err := run(t, `    - name: backup
      type: velero-backup
      timeout: 3s
      with: {includedNamespaces: [default], restoreCheck: {skip: true}}
`)
	if err == nil || !strings.Contains(err.Error(), "did not finish: still New (not picked up by the Velero server yet)") {
		t.Fatalf("err = %v\n%s", err, rec.Text())
	}
}
