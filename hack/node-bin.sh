#!/usr/bin/env bash
# Builds what a real node of the simulated cluster runs, once per machine, and prints the directory:
#
#   kubelet kube-proxy                       from k8s.io/kubernetes at the control plane's release
#                                            (tools/kubelet/go.mod; `prev`: tools/kubelet-prev/go.mod)
#   containerd containerd-shim-runc-v2 ctr   from github.com/containerd/containerd/v2 (tools/node/go.mod)
#   cni/bridge cni/host-local cni/loopback   from github.com/containernetworking/plugins (tools/node/go.mod)
#   cni/portmap
#
# runc and iptables are Debian's (make test-deps installs them). `hack/node-bin.sh prev` builds the
# previous minor's kubelet and kube-proxy with the same containerd and plugins: a real node starts at the
# cluster's minor and its upgrade starts the next minor's kubelet. Cached like hack/cluster-bin.sh: keyed
# by the modules, this script and the Go version; a finished build is renamed into place.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-current}
case "$mode" in
  current) kube="$root/tools/kubelet"; KUBE_VERSION=v1.37.1; bin=node-bin ;;       # as hack/cluster-bin.sh
  prev)    kube="$root/tools/kubelet-prev"; KUBE_VERSION=v1.36.3; bin=node-bin-prev ;;
  *) echo "usage: $0 [current|prev]" >&2; exit 2 ;;
esac
node="$root/tools/node"
marker=kubelet

cache_root=${DRYDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/drydock}
key=$( { cat "$kube/go.mod" "$kube/go.sum" "$node/go.mod" "$node/go.sum" "$0"; go version; } | sha256sum | cut -c1-16)
dest="$cache_root/$bin/$key"
if [ -x "$dest/$marker" ]; then echo "$dest"; exit 0; fi

mkdir -p "$cache_root/$bin"
exec 9>"$cache_root/$bin/.lock"
flock 9
if [ -x "$dest/$marker" ]; then echo "$dest"; exit 0; fi
tmp=$(mktemp -d "$cache_root/$bin/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
ctrd=$(cd "$node" && go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)

start=$(date +%s)
echo "node-bin: building kubelet and kube-proxy $KUBE_VERSION, containerd $ctrd and the CNI plugins into $dest (first time on this machine: 10-20 min)" >&2
(cd "$kube" && CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$tmp/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
(
  cd "$node"
  # No btrfs or devmapper snapshotters (they need C headers), as containerd's own static builds.
  CGO_ENABLED=0 go build -tags "urfave_cli_no_docs no_btrfs no_devmapper no_zfs" \
    -ldflags "-X github.com/containerd/containerd/v2/version.Version=$ctrd" -o "$tmp/" \
    github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
    github.com/containerd/containerd/v2/cmd/ctr
  mkdir -p "$tmp/cni"
  CGO_ENABLED=0 go build -o "$tmp/cni/" \
    github.com/containernetworking/plugins/plugins/main/bridge github.com/containernetworking/plugins/plugins/main/loopback \
    github.com/containernetworking/plugins/plugins/ipam/host-local github.com/containernetworking/plugins/plugins/meta/portmap
)
echo "node-bin: built in $(( $(date +%s) - start ))s" >&2
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
