// Package kube holds small helpers over Kubernetes objects that several drydock packages need.
package kube

import corev1 "k8s.io/api/core/v1"

// NodeReady says whether a node reports the Ready condition True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodReady says whether a pod reports the Ready condition True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
