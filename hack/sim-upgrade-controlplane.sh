#!/usr/bin/env bash
# Upgrades the simulated cluster's control plane to the current minor, one member at a time: each
# component (kube-apiserver, then kube-controller-manager, then kube-scheduler) is restarted from the
# current minor's binary with the same flags on the same etcd data. The counterpart, for the control
# plane, of hack/sim-upgrade-node.sh; a runbook's controlplane step calls it per member.
#
#   hack/sim-upgrade-controlplane.sh [--name drydock-dev] [--component kube-apiserver]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${DRYDOCK_CLUSTER_BIN:-$("$root/hack/cluster-bin.sh")}
cd "$root"
DRYDOCK_CLUSTER_BIN="$bin" exec go run ./internal/cmd/simcluster upgrade-controlplane "$@"
