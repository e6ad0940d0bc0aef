#!/usr/bin/env bash
# The simulated cluster's "upgrade": the node's (kwok) kubelet starts reporting the new version.
# On a real cluster this is `kubeadm upgrade node` and a kubelet package upgrade, or the platform's
# node replacement. Usage: sim-upgrade-node.sh NODE VERSION (needs KUBECTL and KUBECONFIG).
set -euo pipefail
node=$1 version=$2
sleep "${SIM_UPGRADE_SECONDS:-1}"   # an upgrade takes a moment
"${KUBECTL:-kubectl}" patch node "$node" --subresource=status \
  -p "{\"status\":{\"nodeInfo\":{\"kubeletVersion\":\"$version\"}}}" >/dev/null
echo "node $node: kubelet now reports $version (simulated)"
