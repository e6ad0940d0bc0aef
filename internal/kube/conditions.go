// Package kube holds small helpers over Kubernetes objects that several drydock packages need.
package kube

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

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

// PodProblem says what is wrong with a pod that should be running, or "" when it is Ready (or done,
// or being deleted). stuck says the pod cannot get better by waiting: it is not scheduled and the
// scheduler said why, or a container cannot start (crash loop, image pull, bad config).
func PodProblem(p *corev1.Pod) (why string, stuck bool) {
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return "", false
	}
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName":
				return w.Reason + " (container " + cs.Name + ")", true
			}
		}
	}
	if p.Spec.NodeName == "" {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason != "" {
				msg := c.Reason
				if c.Message != "" {
					msg += ": " + c.Message
				}
				return "Pending (not scheduled: " + msg + ")", c.Reason == corev1.PodReasonUnschedulable
			}
		}
		return "Pending (not scheduled)", false
	}
	if PodReady(p) {
		return "", false
	}
	var notReady []string
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready {
			notReady = append(notReady, cs.Name)
		}
	}
	if len(notReady) > 0 {
		return "not Ready (container " + strings.Join(notReady, ", ") + " not ready)", false
	}
	return "not Ready", false
}
