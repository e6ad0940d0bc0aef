package simcluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/drydock-dev/drydock/internal/kube"
)

// NodeOptions describe a fake node.
type NodeOptions struct {
	Labels         map[string]string
	Taints         []corev1.Taint
	KubeletVersion string // default KubernetesVersion
	CPU, Memory    string // allocatable; default "32" and "128Gi"
	Pods           string // default "110"
	Unschedulable  bool
}

// NodeAnnotation is the annotation kwok adopts nodes by.
const NodeAnnotation = "kwok.x-k8s.io/node"

// CreateNode creates a node that kwok's simulated kubelet manages, and waits until it is Ready.
func (c *Cluster) CreateNode(ctx context.Context, name string, o NodeOptions) (*corev1.Node, error) {
	if o.KubeletVersion == "" {
		o.KubeletVersion = KubernetesVersion
	}
	if o.CPU == "" {
		o.CPU = "32"
	}
	if o.Memory == "" {
		o.Memory = "128Gi"
	}
	if o.Pods == "" {
		o.Pods = "110"
	}
	labels := map[string]string{
		"kubernetes.io/hostname": name,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     "amd64",
		"type":                   "kwok",
	}
	for k, v := range o.Labels {
		labels[k] = v
	}
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(o.CPU),
		corev1.ResourceMemory: resource.MustParse(o.Memory),
		corev1.ResourcePods:   resource.MustParse(o.Pods),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{NodeAnnotation: "fake"},
		},
		Spec: corev1.NodeSpec{Taints: o.Taints, Unschedulable: o.Unschedulable},
		Status: corev1.NodeStatus{
			Capacity:    res,
			Allocatable: res,
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:          o.KubeletVersion,
				Architecture:            "amd64",
				OperatingSystem:         "linux",
				ContainerRuntimeVersion: "containerd://2.1.0",
				OSImage:                 "drydock simulated node (kwok)",
			},
		},
	}
	created, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create node %q: %w", name, err)
	}
	if created.Status.NodeInfo.KubeletVersion != o.KubeletVersion {
		// The status of a new node is what the creator says it is; if the apiserver dropped it, set it.
		created.Status = node.Status
		if created, err = c.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return nil, fmt.Errorf("set status of node %q: %w", name, err)
		}
	}
	return c.WaitNodeReady(ctx, name)
}

// WaitNodeReady waits until the node reports Ready.
func (c *Cluster) WaitNodeReady(ctx context.Context, name string) (*corev1.Node, error) {
	var node *corev1.Node
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		node = n
		return kube.NodeReady(n), nil
	})
	if err != nil {
		return nil, fmt.Errorf("node %q not Ready after 60s: %w", name, err)
	}
	return node, nil
}

// Deployment returns a Deployment of replicas pods labelled app=name, ready to create. Its pods
// request a little CPU and memory, so that capacity matters to the scheduler.
func Deployment(namespace, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:  "app",
						Image: "registry.example/" + name + ":1",
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:    resource.MustParse("100m"),
							corev1.ResourceMemory: resource.MustParse("64Mi"),
						}},
					}},
				},
			},
		},
	}
}

// WaitDeploymentReady waits until every replica of the Deployment is updated and available.
func (c *Cluster) WaitDeploymentReady(ctx context.Context, namespace, name string, timeout time.Duration) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		return d.Status.ObservedGeneration >= d.Generation &&
			d.Status.UpdatedReplicas == want && d.Status.AvailableReplicas == want &&
			d.Status.Replicas == want, nil
	})
}

// PodReady says whether a pod has the Ready condition.
func PodReady(p *corev1.Pod) bool { return kube.PodReady(p) }

// Main is for a test package's TestMain: it starts a cluster, stores it in *c, runs the tests and
// stops the cluster whatever happened. A cluster that does not start fails the package; it never
// skips it.
//
//	var cluster *simcluster.Cluster
//	func TestMain(m *testing.M) { os.Exit(simcluster.Main(m, &cluster, simcluster.Options{})) }
//
// With -short (make test-fast) no cluster is started: the package's fast tests run, and each
// cluster test calls Need first, which skips it there. make test runs without -short: every
// cluster test runs in CI.
func Main(m interface{ Run() int }, c **Cluster, opts Options) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cl, err := Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start the simulated cluster: %v\n", err)
		return 1
	}
	defer func() { _ = cl.Stop() }()
	*c = cl
	code := m.Run()
	if err := cl.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: stop the simulated cluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Need marks a test of the cluster tier: under -short (the fast tier) it is skipped, since Main
// started no cluster.
func Need(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster tier: runs in make test, not in the fast tier (-short)") // only under testing.Short
	}
}

// NeedRealNodes marks a test of the cluster tier that starts real nodes: skipped under -short like
// Need, and failed — never skipped — where this machine cannot run them (make test-deps installs
// what they need), naming what is missing.
func NeedRealNodes(t testing.TB) {
	t.Helper()
	Need(t)
	if err := RealNodesSupported(); err != nil {
		t.Fatal(err)
	}
}

// SetUnschedulable cordons (true) or uncordons a node with a patch, so that it never conflicts
// with the simulated kubelet's status updates.
func (c *Cluster) SetUnschedulable(ctx context.Context, name string, on bool) error {
	patch := fmt.Sprintf(`{"spec":{"unschedulable":%v}}`, on)
	_, err := c.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// BudgetWatch records every PodDisruptionBudget status, in the namespaces armed, in which fewer
// pods are healthy than the budget demands: a broken budget. Arm a namespace once its workload is
// Ready (before, a budget is not met because its pods are still starting).
type BudgetWatch struct {
	mu     sync.Mutex
	armed  map[string]bool
	broken []brokenBudget
	excuse []window
	stop   chan struct{}
	f      informers.SharedInformerFactory
	client kubernetes.Interface
	store  cache.Store
}

// WatchBudgets starts a BudgetWatch on every namespace; Stop ends it.
func (c *Cluster) WatchBudgets() *BudgetWatch {
	w := &BudgetWatch{armed: map[string]bool{}, stop: make(chan struct{}), f: informers.NewSharedInformerFactory(c.Client, 0), client: c.Client}
	inf := w.f.Policy().V1().PodDisruptionBudgets().Informer()
	w.store = inf.GetStore()
	check := func(obj any) {
		p, ok := obj.(*policyv1.PodDisruptionBudget)
		if !ok {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.armed[p.Namespace] && p.Status.ObservedGeneration == p.Generation && p.Status.ExpectedPods > 0 && p.Status.CurrentHealthy < p.Status.DesiredHealthy {
			w.broken = append(w.broken, brokenBudget{at: time.Now(), ns: p.Namespace,
				text: fmt.Sprintf("%s/%s: %d healthy, %d needed", p.Namespace, p.Name, p.Status.CurrentHealthy, p.Status.DesiredHealthy)})
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: check, UpdateFunc: func(_, o any) { check(o) }})
	w.f.Start(w.stop)
	w.f.WaitForCacheSync(w.stop)
	return w
}

// brokenBudget is one status of a budget that was not met.
type brokenBudget struct {
	at       time.Time
	ns, text string
}

// window is a stretch of time in which a namespace's budgets may break for a cause the test
// made itself (Excuse).
type window struct {
	ns       string
	from, to time.Time
}

// Excuse says that the budgets of ns may break from from to to for a cause the test injected
// itself, not a drain: a kubelet restart makes its running pods not Ready until their probes pass
// again, an involuntary disruption that budgets do not guard. Broken leaves those out, and says so.
func (w *BudgetWatch) Excuse(ns string, from, to time.Time) {
	w.mu.Lock()
	w.excuse = append(w.excuse, window{ns: ns, from: from, to: to})
	w.mu.Unlock()
}

// Excused lists the broken statuses an Excuse covered.
func (w *BudgetWatch) Excused() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, b := range w.broken {
		if w.excused(b) {
			out = append(out, b.String())
		}
	}
	return out
}

func (w *BudgetWatch) excused(b brokenBudget) bool {
	for _, x := range w.excuse {
		if x.ns == b.ns && !b.at.Before(x.from) && !b.at.After(x.to) {
			return true
		}
	}
	return false
}

func (b brokenBudget) String() string { return b.at.Format("15:04:05.000") + " " + b.text }

// Arm starts judging the budgets of namespace ns.
func (w *BudgetWatch) Arm(ns string) {
	w.mu.Lock()
	w.armed[ns] = true
	w.mu.Unlock()
}

// CaughtUp waits until the watch has seen every budget as the apiserver has it now (same
// resourceVersion), so that Broken judges the last status too; no fixed sleep.
func (w *BudgetWatch) CaughtUp(ctx context.Context) error {
	list, err := w.client.PolicyV1().PodDisruptionBudgets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		for i := range list.Items {
			p := &list.Items[i]
			obj, ok, _ := w.store.Get(p)
			if !ok || !newer(obj.(*policyv1.PodDisruptionBudget).ResourceVersion, p.ResourceVersion) {
				return false, nil
			}
		}
		return true, nil
	})
}

// newer compares resourceVersions as etcd revisions (they are, on a real apiserver; tests only).
func newer(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && x >= y
}

// Broken lists every broken status seen so far that no Excuse covers.
func (w *BudgetWatch) Broken() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, b := range w.broken {
		if !w.excused(b) {
			out = append(out, b.String())
		}
	}
	return out
}

// Stop ends the watch.
func (w *BudgetWatch) Stop() {
	close(w.stop)
	w.f.Shutdown()
}

// Bin is the path of one of the cluster's binaries (kubectl, kwokctl, ...).
func (c *Cluster) Bin(name string) string { return filepath.Join(c.binDir, name) }
