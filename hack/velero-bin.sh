#!/usr/bin/env bash
# Builds the Velero test binaries once per machine and prints the directory that holds them.
#
#   velero                  github.com/vmware-tanzu/velero v1.18.3, built in tools/velero (its kopia replace)
#   velero-plugin-for-aws   github.com/vmware-tanzu/velero-plugin-for-aws, go install
#   minio                   github.com/minio/minio (the S3-compatible object store), go install
#
# Keyed like hack/cluster-bin.sh: tools/velero's go.mod/go.sum, this script and the Go version.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/tools/velero"
VELERO_VERSION=v1.18.3          # must match tools/velero/go.mod
AWS_PLUGIN_VERSION=v1.14.3
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

cache_root=${DRYDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/drydock}
key=$( { cat "$tools/go.mod" "$tools/go.sum" "$0"; go version; } | sha256sum | cut -c1-16)
dest="$cache_root/velero-bin/$key"

if [ -x "$dest/minio" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache_root/velero-bin"
exec 9>"$cache_root/velero-bin/.lock"
flock 9
if [ -x "$dest/minio" ]; then
  echo "$dest"
  exit 0
fi

tmp=$(mktemp -d "$cache_root/velero-bin/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

start=$(date +%s)
echo "velero-bin: building Velero $VELERO_VERSION, its AWS plugin and MinIO into $dest (first time on this machine: several minutes)" >&2
(
  cd "$tools"
  CGO_ENABLED=0 go build -ldflags "-X github.com/vmware-tanzu/velero/pkg/buildinfo.Version=$VELERO_VERSION" \
    -o "$tmp/velero" github.com/vmware-tanzu/velero/cmd/velero
)
(
  cd "$tmp"
  CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod go install \
    "github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws@$AWS_PLUGIN_VERSION"
  CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION"
)
echo "velero-bin: built in $(( $(date +%s) - start ))s" >&2

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
