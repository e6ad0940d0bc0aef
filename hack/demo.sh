#!/usr/bin/env bash
# make demo: start a simulated cluster (control plane v1.37.1, nine nodes in three groups with kubelets
# one minor behind, workloads under PodDisruptionBudgets), run the upgrade runbook examples/demo.yaml
# against it, and remove the cluster again whatever happens (success, failure or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DRYDOCK_CLUSTER_BIN:?run through make demo}"

name=drydock-demo
export DRYDOCK_STATE_DIR=${DRYDOCK_STATE_DIR:-$(mktemp -d -t drydock-demo-state-XXXXXX)}
go build -o bin/simcluster ./internal/cmd/simcluster
bin/simcluster down --name "$name" 2>/dev/null || true   # a demo interrupted earlier
trap 'bin/simcluster down --name "$name"' EXIT

export KUBECONFIG=$(bin/simcluster up --name "$name" --groups system=2,general=4,batch=3 --kubelet-version v1.36.3)
export KUBECTL="$DRYDOCK_CLUSTER_BIN/kubectl"
k() { "$KUBECTL" "$@"; }

k create namespace shop >/dev/null
k create namespace batch >/dev/null
k -n shop create deployment web --image=registry.example/web:1 --replicas=8 >/dev/null
k -n shop create deployment api --image=registry.example/api:1 --replicas=4 >/dev/null
k -n batch create deployment worker --image=registry.example/worker:1 --replicas=6 >/dev/null
k -n shop create pdb web --selector=app=web --max-unavailable=1 >/dev/null
k -n shop create pdb api --selector=app=api --min-available=3 >/dev/null
k -n batch create pdb worker --selector=app=worker --max-unavailable=25% >/dev/null
k -n shop rollout status deployment/web --timeout=2m >/dev/null
k -n shop rollout status deployment/api --timeout=2m >/dev/null
k -n batch rollout status deployment/worker --timeout=2m >/dev/null

echo
echo "\$ drydock version"
bin/drydock version
echo
echo "\$ kubectl get nodes"
k get nodes -L drydock.dev/group
echo
echo "\$ drydock plan examples/demo.yaml"
bin/drydock plan examples/demo.yaml
echo
yes=()
[ -t 0 ] || yes=(--yes)   # nobody can answer the canary's pause point: say continue
echo "\$ drydock run examples/demo.yaml ${yes[*]}"
bin/drydock run examples/demo.yaml "${yes[@]}"
echo
echo "\$ kubectl get nodes"
k get nodes -L drydock.dev/group
