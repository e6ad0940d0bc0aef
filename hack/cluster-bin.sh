#!/usr/bin/env bash
# Builds the simulated cluster's binaries once per machine and prints the directory that holds them.
#
#   kube-apiserver kube-controller-manager kube-scheduler kubectl  from k8s.io/kubernetes (tools/cluster/go.mod)
#   etcd                                                           from go.etcd.io/etcd/server/v3 (tools/cluster/etcd)
#   kwok kwokctl                                                   from sigs.k8s.io/kwok, with its own dependencies
#
# The cache directory is keyed by the tools module's go.mod/go.sum, this script and the Go version, so a change
# to any of them builds afresh; a finished build is renamed into place, so an interrupted one is never used.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/tools/cluster"
KUBE_VERSION=v1.37.1   # must match k8s.io/kubernetes in tools/cluster/go.mod
KWOK_VERSION=v0.8.0

cache_root=${DRYDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/drydock}
key=$( { cat "$tools/go.mod" "$tools/go.sum" "$tools/etcd/main.go" "$0"; go version; } | sha256sum | cut -c1-16)
dest="$cache_root/cluster-bin/$key"

if [ -x "$dest/kwokctl" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache_root/cluster-bin"
exec 9>"$cache_root/cluster-bin/.lock"
flock 9
if [ -x "$dest/kwokctl" ]; then   # another build finished while we waited
  echo "$dest"
  exit 0
fi

tmp=$(mktemp -d "$cache_root/cluster-bin/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

start=$(date +%s)
echo "cluster-bin: building Kubernetes $KUBE_VERSION, etcd and kwok $KWOK_VERSION into $dest (first time on this machine: 10-20 min)" >&2
(
  cd "$tools"
  CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
  CGO_ENABLED=0 go build -o "$tmp/etcd" ./etcd
)
(
  cd "$tmp"
  CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod go install \
    -ldflags "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
)
echo "cluster-bin: built in $(( $(date +%s) - start ))s" >&2

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
