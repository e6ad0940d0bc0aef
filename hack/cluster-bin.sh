#!/usr/bin/env bash
# Builds the simulated cluster's binaries once per machine and prints the directory that holds them.
#
#   kube-apiserver kube-controller-manager kube-scheduler kubectl  from k8s.io/kubernetes (tools/cluster/go.mod)
#   etcd                                                           from go.etcd.io/etcd/server/v3 (tools/cluster/etcd)
#   kwok kwokctl                                                   from sigs.k8s.io/kwok, with its own dependencies
#
# `hack/cluster-bin.sh prev` builds the control plane of the previous minor instead (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl from tools/cluster-prev/go.mod), which the simulated
# cluster can start at and then be upgraded from, component by component (hack/sim-upgrade-controlplane.sh).
#
# The cache directory is keyed by the tools module's go.mod/go.sum, this script and the Go version, so a change
# to any of them builds afresh; a finished build is renamed into place, so an interrupted one is never used.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-current}
KWOK_VERSION=v0.8.0
case "$mode" in
  current)
    tools="$root/tools/cluster"
    KUBE_VERSION=v1.37.1   # must match k8s.io/kubernetes in tools/cluster/go.mod
    bin=cluster-bin
    marker=kwokctl
    keyfiles=("$tools/go.mod" "$tools/go.sum" "$tools/etcd/main.go")
    ;;
  prev)
    tools="$root/tools/cluster-prev"
    KUBE_VERSION=v1.36.3   # must match k8s.io/kubernetes in tools/cluster-prev/go.mod
    bin=cluster-bin-prev
    marker=kube-apiserver
    keyfiles=("$tools/go.mod" "$tools/go.sum")
    ;;
  *) echo "usage: $0 [current|prev]" >&2; exit 2 ;;
esac

cache_root=${DRYDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/drydock}
key=$( { cat "${keyfiles[@]}" "$0"; go version; } | sha256sum | cut -c1-16)
dest="$cache_root/$bin/$key"

if [ -x "$dest/$marker" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache_root/$bin"
exec 9>"$cache_root/$bin/.lock"
flock 9
if [ -x "$dest/$marker" ]; then   # another build finished while we waited
  echo "$dest"
  exit 0
fi

tmp=$(mktemp -d "$cache_root/$bin/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

start=$(date +%s)
if [ "$mode" = prev ]; then
  echo "cluster-bin: building the previous minor's control plane, Kubernetes $KUBE_VERSION, into $dest (first time on this machine: 8-15 min)" >&2
else
  echo "cluster-bin: building Kubernetes $KUBE_VERSION, etcd and kwok $KWOK_VERSION into $dest (first time on this machine: 10-20 min)" >&2
fi
(
  cd "$tools"
  CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
  if [ "$mode" = current ]; then
    CGO_ENABLED=0 go build -o "$tmp/etcd" ./etcd
  fi
)
if [ "$mode" = current ]; then
(
  cd "$tmp"
  CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod go install \
    -ldflags "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
)
fi
echo "cluster-bin: built in $(( $(date +%s) - start ))s" >&2

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
