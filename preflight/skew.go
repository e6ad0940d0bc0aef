package preflight

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drydock-dev/drydock/preflight/apis"
	"github.com/drydock-dev/drydock/runbook"
)

// KubeletSkew is how many minors a kubelet may trail the apiserver (the version-skew policy since
// 1.28).
const KubeletSkew = 3

// checkSkew holds the target against the version-skew policy: the control plane moves one minor at
// a time and first; the kubelets follow, never newer than the apiserver nor more than three minors
// older.
func checkSkew(ctx context.Context, in *Input) ([]Finding, error) {
	var out []Finding
	server, target := in.Server, in.Target
	switch {
	case target.Major != server.Major || target.Minor < server.Minor:
		out = append(out, Finding{Severity: runbook.SeverityError, Object: "target " + target.String(),
			Message: fmt.Sprintf("older than the apiserver (%s): Kubernetes does not support downgrades", in.ServerVersion),
			Fix:     "set the runbook's targetVersion (or --target) to the release you are upgrading to"})
		return out, nil
	case target.Minor > server.Minor+1:
		out = append(out, Finding{Severity: runbook.SeverityError, Object: "target " + target.String(),
			Message: fmt.Sprintf("skips a minor release: the apiserver is at %s, so the next is %d.%d", in.ServerVersion, server.Major, server.Minor+1),
			Fix:     "upgrade one minor release at a time"})
		return out, nil
	case target.Minor == server.Minor+1:
		out = append(out, Finding{Severity: runbook.SeverityInfo, Object: "target " + target.String(),
			Message: fmt.Sprintf("a control-plane upgrade from %s: the apiservers go first, then the nodes", in.ServerVersion)})
	default:
		out = append(out, Finding{Severity: runbook.SeverityInfo, Object: "target " + target.String(),
			Message: fmt.Sprintf("the apiserver is at %s already: the nodes' turn", in.ServerVersion)})
	}

	// HA apiservers, where their pods are visible (kubeadm's static pods).
	pods, err := in.Kube.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "component=kube-apiserver"})
	if err != nil {
		return nil, fmt.Errorf("list kube-apiserver pods: %w", err)
	}
	versions := map[string][]string{}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			if i := strings.LastIndex(c.Image, ":"); i > 0 && c.Name == "kube-apiserver" {
				if r, err := apis.ParseRelease(c.Image[i+1:]); err == nil {
					versions[r.String()] = append(versions[r.String()], p.Name)
				}
			}
		}
	}
	if len(versions) > 1 {
		var rs []apis.Release
		for v := range versions {
			r, _ := apis.ParseRelease(v)
			rs = append(rs, r)
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].AtOrBefore(rs[j]) })
		lo, hi := rs[0], rs[len(rs)-1]
		sev := runbook.SeverityWarning
		msg := fmt.Sprintf("apiservers run different minors (%s): an upgrade is under way", describeVersions(versions))
		if hi.Minor-lo.Minor > 1 {
			sev = runbook.SeverityError
			msg = fmt.Sprintf("apiservers are more than one minor apart (%s), outside the skew policy", describeVersions(versions))
		}
		out = append(out, Finding{Severity: sev, Object: "kube-apiserver", Message: msg, Fix: "finish the control-plane upgrade: every apiserver at one minor"})
	}

	// Kubelets against the apiserver the target leaves behind.
	nodes, err := in.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	tooOld, tooNew := map[string]bool{}, map[string]bool{}
	for _, n := range nodes.Items {
		r, err := apis.ParseRelease(n.Status.NodeInfo.KubeletVersion)
		if err != nil {
			continue
		}
		switch {
		case r.Major != target.Major || r.Minor > target.Minor:
			tooNew[n.Name+" ("+n.Status.NodeInfo.KubeletVersion+")"] = true
		case target.Minor-r.Minor > KubeletSkew:
			tooOld[n.Name+" ("+n.Status.NodeInfo.KubeletVersion+")"] = true
		}
	}
	if len(tooOld) > 0 {
		out = append(out, Finding{Severity: runbook.SeverityError, Object: "nodes " + names(tooOld),
			Message: fmt.Sprintf("%d kubelets would be more than %d minors older than an apiserver at %s, outside the skew policy", len(tooOld), KubeletSkew, target),
			Fix:     fmt.Sprintf("upgrade these nodes to at least %d.%d before the control plane moves", target.Major, target.Minor-KubeletSkew)})
	}
	if len(tooNew) > 0 {
		out = append(out, Finding{Severity: runbook.SeverityError, Object: "nodes " + names(tooNew),
			Message: fmt.Sprintf("%d kubelets are newer than %s: a kubelet must never be newer than the apiserver", len(tooNew), target),
			Fix:     "upgrade the control plane first, or check the target"})
	}
	return out, nil
}

func describeVersions(v map[string][]string) string {
	var parts []string
	for r, pods := range v {
		parts = append(parts, r+": "+strings.Join(pods, ", "))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
