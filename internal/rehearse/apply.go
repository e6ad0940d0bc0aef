package rehearse

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// readyDelay is kwok's annotation for how long a pod takes to become Ready.
const readyDelay = "pod-ready.stage.kwok.x-k8s.io/delay"

// Apply creates the state in the simulated cluster c, started with SimOptions: namespaces,
// PriorityClasses, nodes (simulated by kwok, with the live labels, taints, size and version), the
// claims and their volumes, the workloads with their measured start-up as the pods' ready delay, the
// pods of Deployments and ReplicaSets made running on the nodes their originals run on (stamp; then
// the held controllers are released), a StatefulSet's first pods bound there (placer), the pods no
// controller owns on their nodes, and the budgets; then the cordons as on the cluster; then it waits
// until every workload has as many pods Ready as on the cluster, or timeout.
func (s *State) Apply(ctx context.Context, c *simcluster.Cluster, timeout time.Duration) error {
	for _, ns := range s.Namespaces {
		_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: ns.Labels}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("rehearse: namespace %s: %w", ns.Name, err)
		}
	}
	for i := range s.PriorityClasses {
		if _, err := c.Client.SchedulingV1().PriorityClasses().Create(ctx, &s.PriorityClasses[i], metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("rehearse: PriorityClass %s: %w", s.PriorityClasses[i].Name, err)
		}
	}
	// Every node cordoned while the placer binds the first pods where they run on the cluster.
	if err := s.eachNode(ctx, func(ctx context.Context, n Node) error {
		o := simcluster.NodeOptions{Labels: n.Labels, Taints: n.Taints, KubeletVersion: n.KubeletVersion, Unschedulable: true}
		if q, ok := n.Allocatable[corev1.ResourceCPU]; ok {
			o.CPU = q.String()
		}
		if q, ok := n.Allocatable[corev1.ResourceMemory]; ok {
			o.Memory = q.String()
		}
		if q, ok := n.Allocatable[corev1.ResourcePods]; ok {
			o.Pods = q.String()
		}
		if _, err := c.CreateNode(ctx, n.Name, o); err != nil {
			return fmt.Errorf("rehearse: node %s: %w", n.Name, err)
		}
		return nil
	}); err != nil {
		return err
	}
	pl, err := newPlacer(c.Client, s.Workloads)
	if err != nil {
		return err
	}
	pctx, stopPlacing := context.WithCancel(ctx)
	defer stopPlacing()
	placed := make(chan struct{})
	go pl.run(pctx, placed)
	if err := s.applyVolumes(ctx, c); err != nil {
		return err
	}
	// Deployments and ReplicaSets: their pods made here, on their nodes (stamp).
	var pods []*corev1.Pod
	for _, w := range s.Workloads {
		t := *w.Template.DeepCopy()
		if w.Measured { // else the simulated cluster's default
			if t.Annotations == nil {
				t.Annotations = map[string]string{}
			}
			t.Annotations[readyDelay] = w.Startup.Round(100 * time.Millisecond).String()
		}
		meta := metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name}
		replicas := w.Replicas
		var err error
		switch w.Kind {
		case "Deployment":
			var d *appsv1.Deployment
			d, err = c.Client.AppsV1().Deployments(w.Namespace).Create(ctx, &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: w.Selector, Template: t}}, metav1.CreateOptions{})
			if err == nil {
				var made []*corev1.Pod
				made, err = stamp(ctx, c.Client, w, d)
				pods = append(pods, made...)
			}
		case "StatefulSet":
			_, err = c.Client.AppsV1().StatefulSets(w.Namespace).Create(ctx, &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Replicas: &replicas, Selector: w.Selector, Template: t, VolumeClaimTemplates: w.ClaimTemplates}}, metav1.CreateOptions{})
		case "DaemonSet":
			_, err = c.Client.AppsV1().DaemonSets(w.Namespace).Create(ctx, &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: w.Selector, Template: t}}, metav1.CreateOptions{})
		case "ReplicaSet":
			var rs *appsv1.ReplicaSet
			rs, err = c.Client.AppsV1().ReplicaSets(w.Namespace).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: w.Selector, Template: t}}, metav1.CreateOptions{})
			if err == nil {
				pods = append(pods, podsOf(w, rs)...)
			}
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("rehearse: %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
		}
	}
	for _, b := range s.Bare {
		pod := &corev1.Pod{ObjectMeta: b.Template.ObjectMeta, Spec: b.Template.Spec}
		pod.Namespace, pod.Name, pod.Spec.NodeName = b.Namespace, b.Name, b.Node
		pods = append(pods, running(pod))
	}
	if err := createPods(ctx, c.Client, pods); err != nil {
		return err
	}
	if err := c.ReleaseControllers(ctx); err != nil {
		return fmt.Errorf("rehearse: start the copy's Deployment and ReplicaSet controllers: %w", err)
	}
	select {
	case <-placed:
	case <-time.After(timeout):
		n, want, _ := pl.progress()
		return fmt.Errorf("rehearse: the copy did not place its pods within %s (%d of %d bound to their nodes)", timeout, n, want)
	case <-ctx.Done():
		return ctx.Err()
	}
	stopPlacing()
	if _, _, err := pl.progress(); err != nil {
		return err
	}
	// The cordons as on the cluster: from here the scheduler places every new pod.
	if err := s.eachNode(ctx, func(ctx context.Context, n Node) error {
		if n.Unschedulable {
			return nil
		}
		return c.SetUnschedulable(ctx, n.Name, false)
	}); err != nil {
		return fmt.Errorf("rehearse: uncordon the copy's nodes: %w", err)
	}
	for i := range s.Budgets {
		if _, err := c.Client.PolicyV1().PodDisruptionBudgets(s.Budgets[i].Namespace).Create(ctx, &s.Budgets[i], metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("rehearse: PodDisruptionBudget %s/%s: %w", s.Budgets[i].Namespace, s.Budgets[i].Name, err)
		}
	}
	return s.waitReady(ctx, c, timeout)
}

// HeldControllers are the controllers the copy's controller-manager starts without (SimOptions), until Apply
// has made the pods they would make: the copy's running pods are made on the nodes where they run on
// the cluster, already running, in two writes each (made, then Running and Ready), where the
// controllers and the scheduler would take five or more (made, scheduled, a failed attempt on
// cordoned nodes, bound, started, Ready) and place them anew.
var HeldControllers = []string{"deployment", "replicaset"}

// SimOptions are the simulated cluster's options for a copy of s, on the binaries of binDir.
func SimOptions(s *State, binDir string) simcluster.Options {
	o := simcluster.Options{BinDir: binDir, HoldControllers: HeldControllers}
	if s.PodCount() > largeCopy {
		// The copy's controller-manager and scheduler at their default rates (20 and 50 requests a
		// second), and kwok with its 4 workers, would make the copy, not the cluster, what paces
		// thousands of replacements; the event kwok writes for each pod it starts is read by nobody.
		o.APIQPS, o.PodWorkers, o.NoPodEvents = 200, 32, true
	}
	return o
}

// stamp makes a Deployment's ReplicaSet as the Deployment controller would (owned by it, its
// template with a pod-template-hash label: the controller, once released, takes it for its current
// ReplicaSet and makes no other), and returns its pods to make (podsOf).
func stamp(ctx context.Context, c kubernetes.Interface, w Workload, d *appsv1.Deployment) ([]*corev1.Pod, error) {
	b, err := json.Marshal(d.Spec.Template)
	if err != nil {
		return nil, err
	}
	h := fnv.New32a()
	_, _ = h.Write(b)
	hash := rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
	t := d.Spec.Template.DeepCopy()
	t.Labels = maps.Clone(t.Labels)
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	sel := d.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: d.Name + "-" + hash, Labels: t.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, MinReadySeconds: d.Spec.MinReadySeconds, Selector: sel, Template: *t},
	}
	made, err := c.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("rehearse: Deployment %s/%s: its ReplicaSet: %w", d.Namespace, d.Name, err)
	}
	return podsOf(w, made), nil
}

// podsOf are a ReplicaSet's pods as they run on the cluster: one on each node where one of the
// workload's pods runs there (at most its replicas; the controller makes the rest, as it would on the
// cluster), owned by the ReplicaSet, running at once (simcluster.RunningAnnotation).
func podsOf(w Workload, rs *appsv1.ReplicaSet) []*corev1.Pod {
	var out []*corev1.Pod
	ref := metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
	for i, place := range w.Pods {
		if i >= int(w.Replicas) {
			break
		}
		t := rs.Spec.Template.DeepCopy()
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: rs.Namespace, GenerateName: rs.Name + "-", Labels: t.Labels,
			Annotations: t.Annotations, OwnerReferences: []metav1.OwnerReference{*ref}}, Spec: t.Spec}
		pod.Spec.NodeName = place.Node
		out = append(out, running(pod))
	}
	return out
}

// running marks a pod to be made already running on its node.
func running(p *corev1.Pod) *corev1.Pod {
	p.Annotations = maps.Clone(p.Annotations)
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[simcluster.RunningAnnotation] = "true"
	return p
}

// createPods makes pods, a few at a time.
func createPods(ctx context.Context, c kubernetes.Interface, pods []*corev1.Pod) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, p := range pods {
		g.Go(func() error {
			if _, err := c.CoreV1().Pods(p.Namespace).Create(gctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("rehearse: pod %s/%s%s on %s: %w", p.Namespace, p.Name, p.GenerateName, p.Spec.NodeName, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// eachNode calls f for every node, a few at a time.
func (s *State) eachNode(ctx context.Context, f func(context.Context, Node) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, n := range s.Nodes {
		g.Go(func() error { return f(gctx, n) })
	}
	return g.Wait()
}

// applyVolumes creates each bound claim of the cluster bound to a volume with the same size, modes
// and node affinity; its source is a CSI driver nothing serves (kwok runs no container and mounts
// nothing), or a local volume where the cluster's is local or a host path (drains refuse those pods
// unless told, as on the cluster).
func (s *State) applyVolumes(ctx context.Context, c *simcluster.Cluster) error {
	none := ""
	for _, v := range s.Volumes {
		src := corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: "rehearsal.drydock.dev", VolumeHandle: v.PV}}
		if v.Local {
			src = corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: "/drydock-rehearsal/" + v.PV}}
		}
		pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: v.PV}, Spec: corev1.PersistentVolumeSpec{
			Capacity: v.Capacity, AccessModes: v.AccessModes, NodeAffinity: v.NodeAffinity,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &corev1.ObjectReference{Namespace: v.Namespace, Name: v.Claim},
			PersistentVolumeSource:        src,
		}}
		if _, err := c.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("rehearse: PersistentVolume %s: %w", v.PV, err)
		}
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: v.Namespace, Name: v.Claim}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: v.AccessModes, VolumeName: v.PV, StorageClassName: &none,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: v.Capacity[corev1.ResourceStorage]}},
		}}
		if _, err := c.Client.CoreV1().PersistentVolumeClaims(v.Namespace).Create(ctx, pvc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("rehearse: PersistentVolumeClaim %s/%s: %w", v.Namespace, v.Claim, err)
		}
	}
	return nil
}

// waitReady waits until every copied Deployment and StatefulSet has as many pods Ready as it had on
// the live cluster when the copy was taken (a workload short of Ready pods there is short here too),
// and every budget has a status.
func (s *State) waitReady(ctx context.Context, c *simcluster.Cluster, timeout time.Duration) error {
	var waiting string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ready := map[string]int32{} // kind/namespace/name -> Ready pods
		ds, err := c.Client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
		if err != nil {
			waiting = err.Error()
			return false, nil //nolint:nilerr // the copy's apiserver is busy: ask again
		}
		for _, d := range ds.Items {
			ready["Deployment/"+d.Namespace+"/"+d.Name] = d.Status.ReadyReplicas
		}
		ss, err := c.Client.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
		if err != nil {
			waiting = err.Error()
			return false, nil //nolint:nilerr // as above
		}
		for _, st := range ss.Items {
			ready["StatefulSet/"+st.Namespace+"/"+st.Name] = st.Status.ReadyReplicas
		}
		for _, w := range s.Workloads {
			if w.Kind != "Deployment" && w.Kind != "StatefulSet" {
				continue
			}
			if got := ready[w.Kind+"/"+w.Namespace+"/"+w.Name]; got < w.Ready {
				waiting = fmt.Sprintf("%s %s/%s: %d of the %d Ready on the cluster", w.Kind, w.Namespace, w.Name, got, w.Ready)
				return false, nil
			}
		}
		// The node controller taints a cordoned node, and takes the taint away some time after the
		// cordon: until it has, the scheduler (and drydock's plan) refuse the node.
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			waiting = err.Error()
			return false, nil //nolint:nilerr // as above
		}
		for _, n := range nodes.Items {
			if n.Spec.Unschedulable {
				continue
			}
			for _, t := range n.Spec.Taints {
				if t.Key == corev1.TaintNodeUnschedulable {
					waiting = "node " + n.Name + ": still tainted " + corev1.TaintNodeUnschedulable + " after its cordon was lifted"
					return false, nil
				}
			}
		}
		pdbs, err := c.Client.PolicyV1().PodDisruptionBudgets("").List(ctx, metav1.ListOptions{})
		if err != nil {
			waiting = err.Error()
			return false, nil //nolint:nilerr // as above
		}
		observed := map[string]bool{}
		for _, p := range pdbs.Items {
			observed[p.Namespace+"/"+p.Name] = p.Status.ObservedGeneration >= p.Generation && p.Generation > 0
		}
		for _, b := range s.Budgets {
			if !observed[b.Namespace+"/"+b.Name] {
				waiting = "PodDisruptionBudget " + b.Namespace + "/" + b.Name + ": no status yet"
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("rehearse: the copy did not settle within %s (%s): %w", timeout, waiting, err)
	}
	return nil
}
