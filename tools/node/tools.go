//go:build tools

// Package node pins what a real node of the simulated cluster runs besides the kubelet and
// kube-proxy (which come from tools/cluster and tools/cluster-prev, at the control plane's
// minors): containerd v2 with its runc shim, and the CNI plugins. hack/node-bin.sh builds them.
package node

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/meta/portmap"
)
