#!/usr/bin/env bash
# The simulated cluster's node upgrade. On a real node (label simcluster.drydock.dev/real-node=true) the
# kubelet is stopped and the current minor's kubelet started with the same configuration and data, as
# `kubeadm upgrade node` and a kubelet package upgrade do: the node reports the new version because its
# kubelet is that version, and running containers stay. On a kwok node its kubelet starts reporting the
# new version. On a real cluster this is kubeadm and the kubelet package, or the platform's node
# replacement. Usage: sim-upgrade-node.sh NODE VERSION (needs KUBECTL and KUBECONFIG).
set -euo pipefail
node=$1 version=$2
root=$(cd "$(dirname "$0")/.." && pwd)
real=$("${KUBECTL:-kubectl}" get node "$node" -o 'jsonpath={.metadata.labels.simcluster\.drydock\.dev/real-node}')
if [ "$real" = true ]; then
  cd "$root"
  exec go run ./internal/cmd/simcluster upgrade-node --work-dir "$(dirname "$KUBECONFIG")" "$node"
fi
sleep "${SIM_UPGRADE_SECONDS:-1}"   # an upgrade takes a moment
"${KUBECTL:-kubectl}" patch node "$node" --subresource=status \
  -p "{\"status\":{\"nodeInfo\":{\"kubeletVersion\":\"$version\"}}}" >/dev/null
echo "node $node: kubelet now reports $version (simulated)"
