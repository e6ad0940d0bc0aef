package rehearse

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

// readyDelay is kwok's annotation for how long a pod takes to become Ready.
const readyDelay = "pod-ready.stage.kwok.x-k8s.io/delay"

// Apply creates the state in the simulated cluster: namespaces, PriorityClasses, nodes (simulated
// by kwok, with the live labels, taints, size and version), the claims and their volumes, the
// workloads with their measured start-up as the pods' ready delay, each first pod bound to the node
// its original runs on (placer), the pods no controller owns on their nodes, and the budgets; then
// the cordons as on the cluster; then it waits until every workload has as many pods Ready as on the
// cluster, or timeout.
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
			_, err = c.Client.AppsV1().Deployments(w.Namespace).Create(ctx, &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: w.Selector, Template: t}}, metav1.CreateOptions{})
		case "StatefulSet":
			_, err = c.Client.AppsV1().StatefulSets(w.Namespace).Create(ctx, &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Replicas: &replicas, Selector: w.Selector, Template: t, VolumeClaimTemplates: w.ClaimTemplates}}, metav1.CreateOptions{})
		case "DaemonSet":
			_, err = c.Client.AppsV1().DaemonSets(w.Namespace).Create(ctx, &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: w.Selector, Template: t}}, metav1.CreateOptions{})
		case "ReplicaSet":
			_, err = c.Client.AppsV1().ReplicaSets(w.Namespace).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: w.Selector, Template: t}}, metav1.CreateOptions{})
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("rehearse: %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
		}
	}
	for _, b := range s.Bare {
		pod := &corev1.Pod{ObjectMeta: b.Template.ObjectMeta, Spec: b.Template.Spec}
		pod.Namespace, pod.Name, pod.Spec.NodeName = b.Namespace, b.Name, b.Node
		if _, err := c.Client.CoreV1().Pods(b.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("rehearse: pod %s/%s: %w", b.Namespace, b.Name, err)
		}
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
