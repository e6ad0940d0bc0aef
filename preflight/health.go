package preflight

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"

	"github.com/drydock-dev/drydock/internal/kube"
	"github.com/drydock-dev/drydock/runbook"
)

// checkHealth finds what breaks an upgrade before it starts: NotReady nodes, kube-system pods that
// do not run, APIServices that are not Available and admission webhooks nobody answers. (Budgets
// at zero are pdb-check's.)
func checkHealth(ctx context.Context, in *Input) ([]Finding, error) {
	var out []Finding
	nodes, err := in.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if !kube.NodeReady(n) {
			out = append(out, Finding{Severity: runbook.SeverityError, ObjectRef: Ref("Node", "", n.Name),
				Message: "NotReady: its pods are already down, and budgets count them as disrupted, so drains elsewhere may block",
				Fix:     "repair the node, or cordon it and take it out of the upgrade"})
		}
	}

	pods, err := in.Kube.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list kube-system pods: %w", err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Status.Phase == corev1.PodPending {
			out = append(out, Finding{Severity: runbook.SeverityError, ObjectRef: Ref("Pod", "kube-system", p.Name),
				Message: "Pending: " + pendingReason(p), Fix: "kubectl -n kube-system describe pod " + p.Name})
			continue
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
				out = append(out, Finding{Severity: runbook.SeverityError, ObjectRef: Ref("Pod", "kube-system", p.Name),
					Message: fmt.Sprintf("container %s is in CrashLoopBackOff (%d restarts)", cs.Name, cs.RestartCount),
					Fix:     fmt.Sprintf("kubectl -n kube-system logs %s -c %s --previous", p.Name, cs.Name)})
			}
		}
	}

	svcs, err := in.Aggregator.ApiregistrationV1().APIServices().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list APIServices: %w", err)
	}
	for _, s := range svcs.Items {
		for _, c := range s.Status.Conditions {
			if c.Type == apiregv1.Available && c.Status != apiregv1.ConditionTrue {
				out = append(out, Finding{Severity: runbook.SeverityError, ObjectRef: Ref("APIService", "", s.Name),
					Message: fmt.Sprintf("not Available (%s: %s): discovery is incomplete, and namespace deletion and garbage collection stall", c.Reason, c.Message),
					Fix:     "fix the service behind it, or delete the APIService if nothing uses it"})
			}
		}
	}

	type hook struct {
		config, name string
		svc          *admissionv1.ServiceReference
		policy       *admissionv1.FailurePolicyType
	}
	var hooks []hook
	vwc, err := in.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list ValidatingWebhookConfigurations: %w", err)
	}
	for _, c := range vwc.Items {
		for _, h := range c.Webhooks {
			hooks = append(hooks, hook{"ValidatingWebhookConfiguration " + c.Name, h.Name, h.ClientConfig.Service, h.FailurePolicy})
		}
	}
	mwc, err := in.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list MutatingWebhookConfigurations: %w", err)
	}
	for _, c := range mwc.Items {
		for _, h := range c.Webhooks {
			hooks = append(hooks, hook{"MutatingWebhookConfiguration " + c.Name, h.Name, h.ClientConfig.Service, h.FailurePolicy})
		}
	}
	for _, h := range hooks {
		if h.svc == nil {
			continue // a URL: not ours to probe
		}
		ready, err := readyEndpoints(ctx, in, h.svc.Namespace, h.svc.Name)
		if err != nil {
			return nil, err
		}
		if ready > 0 {
			continue
		}
		f := Finding{Severity: runbook.SeverityError, Object: h.config,
			Message: fmt.Sprintf("webhook %s calls service %s/%s, which has no ready endpoints: with failurePolicy Fail every matching request is refused, and evicted pods may not come back", h.name, h.svc.Namespace, h.svc.Name),
			Fix:     "bring the webhook's pods back, or set its failurePolicy to Ignore for the upgrade"}
		if h.policy != nil && *h.policy == admissionv1.Ignore {
			f.Severity = runbook.SeverityWarning
			f.Message = fmt.Sprintf("webhook %s calls service %s/%s, which has no ready endpoints (failurePolicy Ignore: requests pass unchecked, each after a timeout)", h.name, h.svc.Namespace, h.svc.Name)
			f.Fix = "bring the webhook's pods back"
		}
		out = append(out, f)
	}
	return out, nil
}

func pendingReason(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return c.Message
		}
	}
	return "not started"
}

func readyEndpoints(ctx context.Context, in *Input, ns, svc string) (int, error) {
	slices, err := in.Kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return 0, fmt.Errorf("list EndpointSlices of %s/%s: %w", ns, svc, err)
	}
	n := 0
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				n++
			}
		}
	}
	return n, nil
}
