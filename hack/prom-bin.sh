#!/usr/bin/env bash
# Builds Prometheus and Alertmanager once per machine, for the health-gate tests, and prints the
# directory that holds them.
#
#   prometheus    github.com/prometheus/prometheus (3.x; its module versions are v0.3xx), go install,
#                 with -tags remove_all_sd: the tests scrape static targets, and the cloud service
#                 discoveries are most of the build
#   alertmanager  github.com/prometheus/alertmanager, built from a copy of its module: the module holds
#                 no built web UI (ui/app/dist, made with npm), which it embeds; a one-page stand-in
#                 takes its place (the tests use the API only)
#
# Keyed like hack/cluster-bin.sh: this script (which pins the versions) and the Go version.
set -euo pipefail

PROMETHEUS_VERSION=v0.316.0   # Prometheus 3.16.0
ALERTMANAGER_VERSION=v0.35.0

cache_root=${DRYDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/drydock}
key=$( { cat "$0"; go version; } | sha256sum | cut -c1-16)
dest="$cache_root/prom-bin/$key"

if [ -x "$dest/alertmanager" ]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache_root/prom-bin"
exec 9>"$cache_root/prom-bin/.lock"
flock 9
if [ -x "$dest/alertmanager" ]; then
  echo "$dest"
  exit 0
fi

tmp=$(mktemp -d "$cache_root/prom-bin/.build-XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

start=$(date +%s)
echo "prom-bin: building Prometheus $PROMETHEUS_VERSION and Alertmanager $ALERTMANAGER_VERSION into $dest (first time on this machine: several minutes)" >&2
ver=github.com/prometheus/common/version
(
  cd "$tmp"
  CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod go install -tags remove_all_sd \
    -ldflags "-X $ver.Version=3.${PROMETHEUS_VERSION#v0.}" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
)
(
  cd "$tmp"
  src=$(GOFLAGS=-mod=mod go mod download -json "github.com/prometheus/alertmanager@$ALERTMANAGER_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  cp -r "$src" "$tmp/alertmanager-src"
  chmod -R u+w "$tmp/alertmanager-src"
  for ui in elm mantine; do
    mkdir -p "$tmp/alertmanager-src/ui/app/dist/$ui"
    echo '<!doctype html><title>Alertmanager</title><p>drydock test build: no web UI, the API is at /api/v2/.' \
      > "$tmp/alertmanager-src/ui/app/dist/$ui/index.html"
  done
  cd "$tmp/alertmanager-src"
  CGO_ENABLED=0 go build -ldflags "-X $ver.Version=${ALERTMANAGER_VERSION#v}" -o "$tmp/alertmanager" ./cmd/alertmanager
  cd "$tmp"
  rm -rf "$tmp/alertmanager-src"
)
echo "prom-bin: built in $(( $(date +%s) - start ))s" >&2

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
