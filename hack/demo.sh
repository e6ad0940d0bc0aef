#!/usr/bin/env bash
# make demo: the main job on a simulated cluster, for real from one minor to the next. It starts a
# control plane at v1.36.3 (the previous minor's binaries) with 16 nodes whose kubelets are v1.36 too
# (system x3, general x8, batch x4, edge x1), workloads under PodDisruptionBudgets (one of them a
# minAvailable: 100% trap), a StatefulSet, DaemonSets, an object applied through an API v1.37 no longer
# serves, a Helm release whose stored manifest still uses a removed API, two add-ons installed with Helm
# a version ago (a CNI-like DaemonSet and a mesh-like Deployment), and a real Velero server with MinIO;
# then it runs drydock preflight, plans and rehearses (on a simulated copy) and runs the upgrade runbook
# examples/demo.yaml, and prints the versions before and after. Where this machine can run real nodes
# (simcluster real-nodes-check), general-1 (the canary) and batch-1 are real: kubelets that run
# containers, upgraded by replacing the kubelet; the shop's web Deployment runs the webserver image on
# them behind its Service, a load generator sends requests through the Service's ClusterIP during the
# whole run, and the demo prints what each phase sent, lost and its p99 latency. Everything is removed
# again at the end, whatever happens (make demo-down cleans up after a demo that was killed).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DRYDOCK_CLUSTER_BIN:?run through make demo}"
: "${DRYDOCK_VELERO_BIN:?run through make demo}"
: "${DRYDOCK_CLUSTER_BIN_PREV:?run through make demo}"

name=drydock-demo
export DRYDOCK_STATE_DIR=${DRYDOCK_STATE_DIR:-$(mktemp -d -t drydock-demo-state-XXXXXX)}
go build -o bin/simcluster ./internal/cmd/simcluster
hack/demo-down.sh >/dev/null 2>&1 || true   # a demo interrupted earlier

velero_pid="" load_pid=""
cleanup() {
  for p in $load_pid $velero_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  bin/simcluster down --name "$name"
}
trap cleanup EXIT

# Real nodes where this machine can run them (root, runc, iptables, cgroups, overlayfs): the first node
# of general and of batch. They are tainted, so that only the web pods come to them (and the CNI-like
# DaemonSet, which tolerates every taint: its images run there as the pause image).
real=()
if why=$(bin/simcluster real-nodes-check 2>&1); then
  DRYDOCK_NODE_BIN=$(hack/node-bin.sh) DRYDOCK_NODE_BIN_PREV=$(hack/node-bin.sh prev)
  export DRYDOCK_NODE_BIN DRYDOCK_NODE_BIN_PREV
  real=(--real-groups general,batch --placeholder-images registry.example/fake-cni:1.0.0,registry.example/fake-cni:1.1.0)
else
  echo "demo: every node is simulated, and no request is measured: ${why#simcluster: }"
fi

export KUBECONFIG=$(bin/simcluster up --name "$name" --previous --runtime-config storage.k8s.io/v1beta1=true \
  --groups system=3,general=8,batch=4,edge=1 --kubelet-version v1.36.3 "${real[@]}")
ready=$(mktemp -u -t drydock-demo-velero-XXXXXX)
bin/simcluster velero --name "$name" --ready-file "$ready" &
velero_pid=$!

export KUBECTL="$DRYDOCK_CLUSTER_BIN/kubectl"
kubectl() { "$KUBECTL" "$@"; }
k() { "$KUBECTL" "$@"; }

k create namespace shop >/dev/null
k create namespace batch >/dev/null
k create namespace ledger >/dev/null
k create namespace monitoring >/dev/null
k -n shop create configmap web-config --from-literal=mode=production >/dev/null
k -n shop create secret generic api-credentials --from-literal=token=demo >/dev/null
k -n shop create service clusterip web --tcp=80:8080 >/dev/null
# The workloads and their budgets (the proof that rehearsals predict the demo applies the same file).
k apply -f hack/demo/workloads.yaml >/dev/null

# A Helm release as Helm v3 stores it (JSON, gzip, base64, in a Secret): its manifest still renders an
# Ingress through networking.k8s.io/v1beta1, removed in 1.22. Helm could not upgrade it after the upgrade.
manifest='---\n# Source: storefront/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: storefront\n---\n# Source: storefront/templates/ingress.yaml\napiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata:\n  name: storefront\n'
release=$(printf '{"name":"storefront","namespace":"shop","version":3,"info":{"status":"deployed"},"chart":{"metadata":{"name":"storefront","version":"2.4.1"}},"manifest":"%s"}' "$manifest" | gzip -c | base64 -w0)
k -n shop create secret generic sh.helm.release.v1.storefront.v3 --type=helm.sh/release.v1 --from-literal=release="$release" >/dev/null
k -n shop label secret sh.helm.release.v1.storefront.v3 owner=helm name=storefront version=3 status=deployed >/dev/null

# An object applied through storage.k8s.io/v1beta1, which v1.37 no longer serves.
k apply -f hack/demo/gold-storage-class-v1beta1.yaml >/dev/null 2>&1
# The add-ons as Helm installed them a version ago (1.0.0); the runbook upgrades them to the charts in
# testdata/charts (1.1.0).
bin/simcluster helm-install --name "$name" --chart testdata/charts/fake-cni --release fake-cni --namespace kube-system --chart-version 1.0.0 2>/dev/null
bin/simcluster helm-install --name "$name" --chart testdata/charts/fake-mesh --release fake-mesh --namespace mesh-system --chart-version 1.0.0 2>/dev/null

k -n kube-system rollout status daemonset/fake-cni-agent --timeout=2m >/dev/null
k -n mesh-system rollout status deployment/fake-mesh-control --timeout=2m >/dev/null
for d in shop/web shop/api batch/worker ledger/ledger; do
  k -n "${d%/*}" rollout status "deployment/${d#*/}" --timeout=2m >/dev/null
done
k -n shop rollout status statefulset/db --timeout=2m >/dev/null
# On real nodes, the shop's web pods are real: the webserver image with a readiness probe and a 2 s
# preStop, three replicas on general-1 and batch-1.
[ ${#real[@]} -eq 0 ] || bin/simcluster web --name "$name" --namespace shop --replicas 3 web
for _ in $(seq 1 240); do
  [ -e "$ready" ] && break
  kill -0 "$velero_pid" 2>/dev/null || { echo "demo: Velero did not start" >&2; exit 1; }
  sleep 0.5
done
[ -e "$ready" ] || { echo "demo: Velero did not come up within 2 minutes" >&2; exit 1; }
rm -f "$ready"

show() { echo; echo "\$ $*"; "$@"; }
versions() {
  echo
  echo "== versions $1 =="
  k version 2>/dev/null | grep Server
  echo "kubelets: $(k get nodes -o jsonpath='{range .items[*]}{.status.nodeInfo.kubeletVersion}{"\n"}{end}' | sort | uniq -c | xargs)"
  k get daemonset,deployment -A -l 'app.kubernetes.io/name in (fake-cni,fake-mesh)' -L app.kubernetes.io/version
}
show bin/drydock version
versions before
show kubectl get nodes -L drydock.dev/group -L simcluster.drydock.dev/real-node
[ ${#real[@]} -eq 0 ] || show kubectl -n shop get pods -l app=web -o wide
echo
echo "\$ drydock preflight --target v1.37.1 --checks api-scan,pdb-check,skew-check,velero      # what CI would gate on"
bin/drydock preflight --target v1.37.1 --checks api-scan,pdb-check,skew-check,velero && code=0 || code=$?
echo "(exit $code: 3 means a finding reached --fail-on: a CI gate would stop here)"
yes=()
[ -t 0 ] && [ -t 1 ] || yes=(--yes)   # nobody can answer the canary's pause point: say continue
echo
echo "\$ drydock run examples/demo.yaml      # refused: the ledger budget would block a drain"
bin/drydock run examples/demo.yaml "${yes[@]}" && code=0 || code=$?
echo "(exit $code: drydock plans every node before it takes the lock; a certain blocker stops it before anything moves)"
echo
echo "# The operator applies the fixes pre-flight named: the storage class through storage.k8s.io/v1, the"
echo "# ledger's budget one pod at a time."
show kubectl apply -f hack/demo/fixes.yaml
show bin/drydock plan examples/demo.yaml
echo
echo "# Before the change window: the node steps played on a simulated copy of this cluster."
show bin/drydock rehearse examples/demo.yaml --sim-bin "$DRYDOCK_CLUSTER_BIN" --no-tui
load_file=$(mktemp -t drydock-demo-load-XXXXXX)
if [ ${#real[@]} -gt 0 ]; then
  rm -f "$ready"
  bin/simcluster load --name "$name" --service shop/web --rate 20 --out "$load_file" --ready-file "$ready" &
  load_pid=$!
  for _ in $(seq 1 200); do [ -e "$ready" ] || ! kill -0 "$load_pid" 2>/dev/null && break; sleep 0.4; done
  [ -e "$ready" ] || { echo "demo: the load generator did not start" >&2; exit 1; }
  echo
  echo "# Meanwhile, 20 requests a second go to the shop's web Service through its ClusterIP, for the whole run."
fi
show bin/drydock run examples/demo.yaml "${yes[@]}" && code=0 || code=$?
versions after
if [ -n "$load_pid" ]; then
  kill "$load_pid"; wait "$load_pid" || echo "demo: the load generator failed" >&2; load_pid=""
  echo
  echo "== requests to Service shop/web during the run (web on the real nodes general-1 and batch-1) =="
  bin/simcluster load-report --seconds "$load_file" --state-dir "$DRYDOCK_STATE_DIR"
fi
rm -f "$load_file"
exit "$code"
