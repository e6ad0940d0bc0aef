package simcluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
)

// Velero is a real Velero server with its AWS plugin and a MinIO object store, run as local
// processes against a simulated cluster, as the Velero issue describes. Velero always binds :8080
// for its controller metrics, so one runs per machine at a time: StartVelero holds a machine-wide
// lock until Stop.
type Velero struct {
	Namespace string // velero
	S3URL     string // MinIO's address
	Bucket    string

	c       *Cluster
	bin     string
	dir     string
	creds   string
	s3Port  int
	minio   *exec.Cmd
	server  *exec.Cmd
	log     io.Writer
	unlock  func()
	stopped sync.Once
}

// VeleroOptions configure StartVelero.
type VeleroOptions struct {
	// ValidationFrequency of the BackupStorageLocation (default 2s, so availability changes show fast).
	ValidationFrequency time.Duration
	// Log receives MinIO's and Velero's output (default: a file in the work directory).
	Log io.Writer
}

const (
	minioUser   = "drydock"
	minioSecret = "drydock-secret"
)

// workDir makes a temporary directory for processes a test starts, and their log: log when given,
// else a file logName in the directory (returned as own too, for the caller to close).
func workDir(prefix, logName string, log io.Writer) (dir string, w io.Writer, own io.Closer, err error) {
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", nil, nil, err
	}
	if log != nil {
		return dir, log, nil, nil
	}
	f, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		return dir, nil, nil, err
	}
	return dir, f, f, nil
}

func lockVelero(ctx context.Context) (func(), error) {
	return flockWait(ctx, "drydock-velero.lock", "wait for another test's Velero server to stop")
}

// StartVelero starts MinIO, installs Velero's CRDs, a BackupStorageLocation and the velero
// Deployment stub (replicas 0: the server runs as a process here, but restores need the
// Deployment), and starts the Velero server. It returns once the location is Available.
func (c *Cluster) StartVelero(ctx context.Context, opts VeleroOptions) (v *Velero, err error) {
	if opts.ValidationFrequency == 0 {
		opts.ValidationFrequency = 2 * time.Second
	}
	bin, err := VeleroBinDir()
	if err != nil {
		return nil, err
	}
	unlock, err := lockVelero(ctx)
	if err != nil {
		return nil, err
	}
	v = &Velero{Namespace: "velero", Bucket: "velero", c: c, bin: bin, unlock: unlock, log: opts.Log}
	defer func() {
		if err != nil {
			v.Stop()
		}
	}()
	if v.dir, v.log, _, err = workDir("drydock-velero-", "velero.log", opts.Log); err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	v.s3Port = ports[0]
	v.S3URL = fmt.Sprintf("http://127.0.0.1:%d", v.s3Port)
	if err := v.StartMinIO(ctx, ports[1]); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, "curl", "-sS", "--fail", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", minioUser+":"+minioSecret,
		"-X", "PUT", v.S3URL+"/"+v.Bucket).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("simcluster: create bucket: %w: %s", err, out)
	}
	v.creds = filepath.Join(v.dir, "credentials")
	if err := os.WriteFile(v.creds, []byte(fmt.Sprintf("[default]\naws_access_key_id=%s\naws_secret_access_key=%s\n", minioUser, minioSecret)), 0o600); err != nil {
		return nil, err
	}

	// CRDs, as Velero itself prints them.
	crds, err := exec.CommandContext(ctx, filepath.Join(bin, "velero"), "install", "--crds-only", "--dry-run", "-o", "yaml").Output()
	if err != nil {
		return nil, fmt.Errorf("simcluster: velero install --crds-only: %w", err)
	}
	kubectl := exec.CommandContext(ctx, filepath.Join(c.binDir, "kubectl"), "--kubeconfig", c.Kubeconfig, "apply", "--server-side", "-f", "-")
	kubectl.Stdin = bytes.NewReader(crds)
	if out, err := kubectl.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("simcluster: apply Velero CRDs: %w: %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, filepath.Join(c.binDir, "kubectl"), "--kubeconfig", c.Kubeconfig, "wait", "--for=condition=Established",
		"--timeout=60s", "crd", "-l", "component=velero").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("simcluster: wait for Velero CRDs: %w: %s", err, out)
	}

	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: v.Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	// Restores look up this Deployment; without it every restore ends PartiallyFailed with nothing.
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "velero", Namespace: v.Namespace},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"deploy": "velero"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"deploy": "velero"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "velero", Image: "velero/velero:v1.18.3"}}}}}}
	if _, err := c.Client.AppsV1().Deployments(v.Namespace).Create(ctx, dep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	if err := v.SetStorageLocation(ctx, v.Bucket, opts.ValidationFrequency); err != nil {
		return nil, err
	}
	if err := v.StartServer(ctx, ports[2], ports[3]); err != nil {
		return nil, err
	}
	return v, v.WaitLocation(ctx, "Available", time.Minute)
}

func (v *Velero) start(name string, env []string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = v.dir
	cmd.Stdout, cmd.Stderr = v.log, v.log
	// Its own process group (Stop kills the plugins too), and gone if the test process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("simcluster: start %s: %w", name, err)
	}
	return cmd, nil
}

func stopGroup(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// StartMinIO (re)starts the object store; consolePort is only for MinIO's console.
func (v *Velero) StartMinIO(ctx context.Context, consolePort int) error {
	data := filepath.Join(v.dir, "minio-data")
	cmd, err := v.start("minio", []string{"MINIO_ROOT_USER=" + minioUser, "MINIO_ROOT_PASSWORD=" + minioSecret, "MINIO_BROWSER=off"},
		filepath.Join(v.bin, "minio"), "server", data, "--address", fmt.Sprintf("127.0.0.1:%d", v.s3Port),
		"--console-address", fmt.Sprintf("127.0.0.1:%d", consolePort), "--quiet")
	if err != nil {
		return err
	}
	v.minio = cmd
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(v.S3URL + "/minio/health/live")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// StopMinIO stops the object store (the location turns Unavailable at its next validation).
func (v *Velero) StopMinIO() { stopGroup(v.minio); v.minio = nil }

// StartServer (re)starts the Velero server, by absolute path (it re-executes itself for its
// built-in plugins).
func (v *Velero) StartServer(ctx context.Context, metricsPort, profilerPort int) error {
	plugins := filepath.Join(v.dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		return err
	}
	link := filepath.Join(plugins, "velero-plugin-for-aws")
	if _, err := os.Lstat(link); err != nil {
		if err := os.Symlink(filepath.Join(v.bin, "velero-plugin-for-aws"), link); err != nil {
			return err
		}
	}
	if metricsPort == 0 {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		metricsPort, profilerPort = ports[0], ports[1]
	}
	cmd, err := v.start("velero server", []string{"AWS_SHARED_CREDENTIALS_FILE=" + v.creds},
		filepath.Join(v.bin, "velero"), "server", "--kubeconfig", v.c.Kubeconfig, "--namespace", v.Namespace, "--plugin-dir", plugins,
		"--metrics-address", fmt.Sprintf("127.0.0.1:%d", metricsPort), "--profiler-address", fmt.Sprintf("127.0.0.1:%d", profilerPort),
		"--log-level", "info", "--features=")
	if err != nil {
		return err
	}
	v.server = cmd
	return nil
}

// StopServer stops the Velero server: backups stay in whatever phase they were.
func (v *Velero) StopServer() { stopGroup(v.server); v.server = nil }

var bslGVR = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "backupstoragelocations"}

// SetStorageLocation creates or updates the default BackupStorageLocation to use bucket.
func (v *Velero) SetStorageLocation(ctx context.Context, bucket string, every time.Duration) error {
	dyn, err := dynamic.NewForConfig(v.c.Config)
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
		"metadata": map[string]any{"name": "default", "namespace": v.Namespace},
		"spec": map[string]any{"provider": "aws", "default": true, "validationFrequency": every.String(),
			"objectStorage": map[string]any{"bucket": bucket},
			"config":        map[string]any{"region": "minio", "s3ForcePathStyle": "true", "s3Url": v.S3URL}},
	}}
	_, err = dyn.Resource(bslGVR).Namespace(v.Namespace).Apply(ctx, "default", obj, metav1.ApplyOptions{FieldManager: "simcluster", Force: true})
	return err
}

// WaitLocation waits until the default location reports phase.
func (v *Velero) WaitLocation(ctx context.Context, phase string, timeout time.Duration) error {
	dyn, err := dynamic.NewForConfig(v.c.Config)
	if err != nil {
		return err
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		u, err := dyn.Resource(bslGVR).Namespace(v.Namespace).Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last, _, _ = unstructured.NestedString(u.Object, "status", "phase")
		return last == phase, nil
	})
	if err != nil {
		return fmt.Errorf("simcluster: BackupStorageLocation default is %q, not %s, after %s (Velero's log: %s)", last, phase, timeout, filepath.Join(v.dir, "velero.log"))
	}
	return nil
}

// Stop stops Velero and MinIO and removes their files; the cluster keeps Velero's objects.
func (v *Velero) Stop() {
	v.stopped.Do(func() {
		v.StopServer()
		v.StopMinIO()
		if c, ok := v.log.(io.Closer); ok && v.log != os.Stderr {
			_ = c.Close()
		}
		if v.dir != "" {
			_ = os.RemoveAll(v.dir)
		}
		if v.unlock != nil {
			v.unlock()
		}
	})
}
