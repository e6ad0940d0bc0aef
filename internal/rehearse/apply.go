package rehearse

import (
	"context"
	"fmt"
	"time"

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
// by kwok, with the live labels, taints, size, version and cordons), the workloads with their
// measured start-up as the pods' ready delay, and the budgets; then waits until every workload has
// its pods Ready, or timeout.
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
	for _, n := range s.Nodes {
		o := simcluster.NodeOptions{Labels: n.Labels, Taints: n.Taints, KubeletVersion: n.KubeletVersion, Unschedulable: n.Unschedulable}
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
	}
	for _, w := range s.Workloads {
		t := *w.Template.DeepCopy()
		if w.Startup > 0 {
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
			_, err = c.Client.AppsV1().StatefulSets(w.Namespace).Create(ctx, &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Replicas: &replicas, Selector: w.Selector, Template: t}}, metav1.CreateOptions{})
		case "DaemonSet":
			_, err = c.Client.AppsV1().DaemonSets(w.Namespace).Create(ctx, &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Selector: w.Selector, Template: t}}, metav1.CreateOptions{})
		case "ReplicaSet":
			_, err = c.Client.AppsV1().ReplicaSets(w.Namespace).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: w.Selector, Template: t}}, metav1.CreateOptions{})
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("rehearse: %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
		}
	}
	for i := range s.Budgets {
		if _, err := c.Client.PolicyV1().PodDisruptionBudgets(s.Budgets[i].Namespace).Create(ctx, &s.Budgets[i], metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("rehearse: PodDisruptionBudget %s/%s: %w", s.Budgets[i].Namespace, s.Budgets[i].Name, err)
		}
	}
	return s.waitReady(ctx, c, timeout)
}

// waitReady waits until every copied Deployment and StatefulSet has its replicas Ready and every
// budget has a status, as on the live cluster when the copy was taken.
func (s *State) waitReady(ctx context.Context, c *simcluster.Cluster, timeout time.Duration) error {
	var waiting string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, w := range s.Workloads {
			ready := w.Replicas
			switch w.Kind {
			case "Deployment":
				d, err := c.Client.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
				if err != nil {
					return false, nil //nolint:nilerr // not there yet
				}
				ready = d.Status.ReadyReplicas
			case "StatefulSet":
				st, err := c.Client.AppsV1().StatefulSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
				if err != nil {
					return false, nil //nolint:nilerr // not there yet
				}
				ready = st.Status.ReadyReplicas
			}
			if ready < w.Replicas {
				waiting = fmt.Sprintf("%s %s/%s: %d of %d Ready", w.Kind, w.Namespace, w.Name, ready, w.Replicas)
				return false, nil
			}
		}
		for _, b := range s.Budgets {
			p, err := c.Client.PolicyV1().PodDisruptionBudgets(b.Namespace).Get(ctx, b.Name, metav1.GetOptions{})
			if err != nil || p.Status.ObservedGeneration < p.Generation {
				waiting = "PodDisruptionBudget " + b.Namespace + "/" + b.Name + ": no status yet"
				return false, nil //nolint:nilerr // not there yet
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("rehearse: the copy did not settle within %s (%s): %w", timeout, waiting, err)
	}
	return nil
}
