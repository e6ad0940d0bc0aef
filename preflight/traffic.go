package preflight

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/drydock-dev/drydock/runbook"
)

// servedWorkload is a workload whose pods a Service selects, with those pods and the Services.
type servedWorkload struct {
	ref      ObjectRef
	pods     []*corev1.Pod
	services map[string]bool // names, in the workload's namespace
}

// checkTraffic finds the workloads behind Services that lose requests when their pods are drained:
// no readiness probe, no preStop delay, no termination grace, every replica on one node, one replica.
func checkTraffic(ctx context.Context, in *Input) ([]Finding, error) {
	served, err := listServed(ctx, in)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, w := range served {
		out = append(out, trafficFindings(w)...)
	}
	return out, nil
}

// listServed groups the active pods every Service with a selector selects by their workload.
func listServed(ctx context.Context, in *Input) ([]*servedWorkload, error) {
	svcs, err := in.Kube.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Services: %w", err)
	}
	pods, err := in.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	rss, err := in.Kube.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list ReplicaSets: %w", err)
	}
	deployments := map[string]string{} // "ns/ReplicaSet" -> Deployment name
	for _, rs := range rss.Items {
		if c := metav1.GetControllerOf(&rs); c != nil && c.Kind == "Deployment" {
			deployments[rs.Namespace+"/"+rs.Name] = c.Name
		}
	}
	byRef := map[ObjectRef]*servedWorkload{}
	for _, svc := range svcs.Items {
		if len(svc.Spec.Selector) == 0 {
			continue // endpoints managed by hand: no pods to judge
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Namespace != svc.Namespace || !active(p) || !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			ref := workloadRef(p, deployments)
			w := byRef[ref]
			if w == nil {
				w = &servedWorkload{ref: ref, services: map[string]bool{}}
				byRef[ref] = w
			}
			if !hasPod(w.pods, p) {
				w.pods = append(w.pods, p)
			}
			w.services[svc.Name] = true
		}
	}
	out := make([]*servedWorkload, 0, len(byRef))
	for _, w := range byRef {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ref.String() < out[j].ref.String() })
	return out, nil
}

func hasPod(pods []*corev1.Pod, p *corev1.Pod) bool {
	for _, q := range pods {
		if q.UID == p.UID {
			return true
		}
	}
	return false
}

// workloadRef is the pod's Deployment, other controller, or the pod itself.
func workloadRef(p *corev1.Pod, deployments map[string]string) ObjectRef {
	c := metav1.GetControllerOf(p)
	switch {
	case c == nil:
		return Ref("Pod", p.Namespace, p.Name)
	case c.Kind == "ReplicaSet" && deployments[p.Namespace+"/"+c.Name] != "":
		return Ref("Deployment", p.Namespace, deployments[p.Namespace+"/"+c.Name])
	}
	return Ref(c.Kind, p.Namespace, c.Name)
}

// trafficFindings judges one served workload by its first pod (a workload's pods share a template)
// and by where its pods run.
func trafficFindings(w *servedWorkload) []Finding {
	var names []string
	for s := range w.services {
		names = append(names, w.ref.Namespace+"/"+s)
	}
	sort.Strings(names)
	svc := "Service " + strings.Join(names, ", ")
	p := w.pods[0]
	var out []Finding
	add := func(msg, fix string) {
		out = append(out, Finding{Severity: runbook.SeverityWarning, ObjectRef: w.ref, Message: msg, Fix: fix})
	}
	if !anyContainer(p, func(c corev1.Container) bool { return c.ReadinessProbe != nil }) {
		add(fmt.Sprintf("no readiness probe, behind %s: a replacement gets requests the moment its container starts, before it can answer", svc),
			"add a readinessProbe that answers only once the server serves")
	}
	if g := p.Spec.TerminationGracePeriodSeconds; g != nil && *g == 0 {
		add(fmt.Sprintf("terminationGracePeriodSeconds: 0, behind %s: an evicted pod is killed at once, with its requests in flight", svc),
			"give it time to finish its requests: terminationGracePeriodSeconds of at least the longest request plus the preStop delay (the default is 30)")
	} else if !anyContainer(p, func(c corev1.Container) bool { return c.Lifecycle != nil && c.Lifecycle.PreStop != nil }) {
		add(fmt.Sprintf("no preStop delay, behind %s: an evicted pod stops listening at once, while kube-proxy still sends it new connections for a moment (refused)", svc),
			"add a preStop hook that waits a few seconds before the process is told to stop (lifecycle.preStop.sleep.seconds: 5, or an exec of sleep 5)")
	}
	nodes := map[string]bool{}
	for _, q := range w.pods {
		nodes[q.Spec.NodeName] = true
	}
	switch {
	case len(w.pods) == 1:
		add(fmt.Sprintf("one pod, on node %s, behind %s: every drain of its node interrupts the Service unless a replacement is Ready first (drydock's Service guard restarts a Deployment that surges; a StatefulSet's or a bare pod's blocks the drain)", p.Spec.NodeName, svc),
			"run at least 2 replicas on different nodes")
	case len(nodes) == 1 && p.Spec.NodeName != "":
		add(fmt.Sprintf("all %d pods on node %s, behind %s: a drain of that node takes every replica (kubectl drain at once; drydock's Service guard one at a time)", len(w.pods), p.Spec.NodeName, svc),
			"spread the replicas: a topologySpreadConstraint or pod anti-affinity on kubernetes.io/hostname")
	}
	return out
}

func anyContainer(p *corev1.Pod, ok func(corev1.Container) bool) bool {
	for _, c := range p.Spec.Containers {
		if ok(c) {
			return true
		}
	}
	return false
}
