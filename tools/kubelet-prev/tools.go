//go:build tools

// Package kubeletprev pins the kubelet and kube-proxy of a real node at the release of
// k8s.io/kubernetes in go.mod (the control plane's, as in tools/cluster-prev); hack/node-bin.sh builds them.
package kubeletprev

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
