package runbook

import (
	"context"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/kubernetes"
)

// MaxKubeletSkew is how many minors the upstream policy lets a kubelet be behind the apiserver
// (three since v1.28).
const MaxKubeletSkew = 3

// changesVersions says whether steps of the phase move a version (so that the skew policy is checked
// again before each).
func changesVersions(p Phase) bool {
	return p == PhaseControlPlane || p == PhaseNodes || p == PhaseAddons
}

// CheckSkew is the version-skew policy at a step boundary: no kubelet newer than the apiserver, none
// more than MaxKubeletSkew minors behind it. A broken policy is ErrBlocked, naming the nodes. An
// apiserver that reports no version (a development build, v0.0.0) cannot be checked: checked is
// false and the caller says so.
func CheckSkew(ctx context.Context, client kubernetes.Interface) (checked bool, err error) {
	v, err := client.Discovery().ServerVersion()
	if err != nil {
		return false, fmt.Errorf("skew check: read the apiserver's version: %w", err)
	}
	server, err := version.ParseGeneric(v.GitVersion)
	if err != nil || server.Major() == 0 {
		return false, nil
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return false, fmt.Errorf("skew check: list nodes: %w", err)
	}
	var tooNew, tooOld []string
	for _, n := range nodes.Items {
		k, err := version.ParseGeneric(n.Status.NodeInfo.KubeletVersion)
		if err != nil || k.Major() != server.Major() {
			continue
		}
		switch {
		case k.Minor() > server.Minor():
			tooNew = append(tooNew, n.Name+" ("+n.Status.NodeInfo.KubeletVersion+")")
		case int(server.Minor())-int(k.Minor()) > MaxKubeletSkew:
			tooOld = append(tooOld, n.Name+" ("+n.Status.NodeInfo.KubeletVersion+")")
		}
	}
	slices.Sort(tooNew)
	slices.Sort(tooOld)
	switch {
	case len(tooNew) > 0:
		return true, Blocked(fmt.Errorf("skew check: kubelets newer than the apiserver %s: %s: a kubelet must never be newer than the apiserver; upgrade the control plane first", v.GitVersion, strings.Join(tooNew, ", ")))
	case len(tooOld) > 0:
		return true, Blocked(fmt.Errorf("skew check: kubelets more than %d minors behind the apiserver %s: %s: upgrade them first", MaxKubeletSkew, v.GitVersion, strings.Join(tooOld, ", ")))
	}
	return true, nil
}
