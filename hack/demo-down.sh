#!/usr/bin/env bash
# make demo-down: remove what a killed `make demo` left behind (its cluster, Velero and MinIO, the load
# generator).
set -uo pipefail
cd "$(dirname "$0")/.."
pkill -f 'simcluster (velero|load) --name drydock-demo' 2>/dev/null
pkill -f '/clusters/drydock-demo/realnet/loadgen' 2>/dev/null
go run ./internal/cmd/simcluster down --name drydock-demo
