#!/usr/bin/env bash
# make demo: start a simulated cluster, show drydock working against it, and remove the cluster again
# whatever happens (on success, failure or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DRYDOCK_CLUSTER_BIN:?run through make demo}"

name=drydock-demo
go build -o bin/simcluster ./internal/cmd/simcluster
bin/simcluster down --name "$name" 2>/dev/null || true   # a demo interrupted earlier
trap 'bin/simcluster down --name "$name"' EXIT

kubeconfig=$(bin/simcluster up --name "$name" --groups system=1,general=2)
echo
echo "\$ drydock version --kubeconfig $kubeconfig"
bin/drydock version --kubeconfig "$kubeconfig"
echo
echo "\$ kubectl get nodes"
"$DRYDOCK_CLUSTER_BIN/kubectl" --kubeconfig "$kubeconfig" get nodes -L drydock.dev/group
