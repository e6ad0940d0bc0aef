# drydock — two commands on a fresh machine: `make demo` and `make test`. Everything else is built here.
SHELL   := /bin/bash
GO      ?= go
PKG     := github.com/drydock-dev/drydock
VERSION ?= $(shell git describe --tags --match 'v*' --dirty 2>/dev/null || echo v0.1.0-dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -X $(PKG)/internal/buildinfo.Version=$(VERSION) -X $(PKG)/internal/buildinfo.Commit=$(COMMIT) \
           -X $(PKG)/internal/buildinfo.Date=$(shell date -u +%Y-%m-%dT%H:%M:%SZ)
# The simulated cluster's binaries, built once per machine (10-20 min the first time, then cached).
CLUSTER_BIN = $(shell hack/cluster-bin.sh)
# The previous minor's control plane, which a cluster can start at and be upgraded from (8-15 min more, once).
CLUSTER_BIN_PREV = $(shell hack/cluster-bin.sh prev)
VELERO_BIN  = $(shell hack/velero-bin.sh)
# What a real node runs: kubelet and kube-proxy (both minors), containerd with its runc shim, the CNI plugins
# (about 6 minutes more, once, with the control plane's build cache warm).
NODE_BIN      = $(shell hack/node-bin.sh)
NODE_BIN_PREV = $(shell hack/node-bin.sh prev)
# Prometheus and Alertmanager for the health-gate tests (several minutes more, once).
PROM_BIN    = $(shell hack/prom-bin.sh)
SIMCLUSTER  = $(GO) run ./internal/cmd/simcluster
TEST_TIMEOUT ?= 45m

.PHONY: lint release docs test-fast test-deps all build cluster-bin cluster-up cluster-down demo demo-down test vet clean bench bench-preflight bench-rehearse bench-service

all: build

## build: build bin/drydock (and bin/kubectl-drydock, the same binary as a kubectl plugin)
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/drydock ./cmd/drydock
	ln -sf drydock bin/kubectl-drydock

## cluster-bin: build kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kubectl, kwok, and
## the previous minor's control plane
cluster-bin:
	@hack/cluster-bin.sh
	@hack/cluster-bin.sh prev

## cluster-up: start a simulated cluster for people; prints its kubeconfig path
cluster-up:
	@DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) $(SIMCLUSTER) up --name drydock-dev --nodes 3

## cluster-down: stop the cluster cluster-up started, and every process of it
cluster-down:
	@DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) $(SIMCLUSTER) down --name drydock-dev

## demo: the main job on a local simulated cluster
demo: build
	@DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) DRYDOCK_CLUSTER_BIN_PREV=$(CLUSTER_BIN_PREV) DRYDOCK_VELERO_BIN=$(VELERO_BIN) hack/demo.sh

## release: cross-compile linux/darwin amd64/arm64 with version ldflags into dist/ (archives, checksums, krew manifest)
release:
	VERSION=$(VERSION) LDFLAGS="$(LDFLAGS)" hack/release.sh

## docs: the command reference (docs/commands), man pages (docs/man) and the runbook reference (docs/runbook-reference.md)
docs: build
	rm -rf docs/commands docs/man
	bin/drydock docs docs

## demo-down: remove what an interrupted demo left (its cluster, Velero, MinIO, the load generator)
demo-down:
	@DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) hack/demo-down.sh

vet:
	$(GO) vet ./...
	cd tools/cluster && $(GO) vet ./...

## lint: the house rules: golangci-lint (pinned in tools/lint/go.mod; .golangci.yml: depguard keeps the engine,
## steps and checks free of cobra, Bubble Tea and lipgloss, forbidigo of os.Std*, errorlint, bodyclose, ...),
## gofmt, and go mod tidy
lint:
	$(GO) tool -modfile=tools/lint/go.mod golangci-lint run ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt wants to change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) mod tidy -diff

TEST_ENV = DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) DRYDOCK_CLUSTER_BIN_PREV=$(CLUSTER_BIN_PREV) DRYDOCK_VELERO_BIN=$(VELERO_BIN) DRYDOCK_PROM_BIN=$(PROM_BIN) \
           DRYDOCK_NODE_BIN=$(NODE_BIN) DRYDOCK_NODE_BIN_PREV=$(NODE_BIN_PREV)
TEST_ALONE = ./internal/rehearse

## test: every test, against real simulated clusters. The packages in TEST_ALONE run after the others, with the
## machine to themselves: their proofs compare the durations of two runs (a rehearsal and the real run), which a
## neighbour package's control plane, busy during one of them only, would skew
test: vet test-deps
	@rc=0; \
	echo "$(TEST_ENV) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) (every package but $(TEST_ALONE))"; \
	$(TEST_ENV) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -vxF "$$($(GO) list $(TEST_ALONE))") || rc=$$?; \
	echo "$(TEST_ENV) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(TEST_ALONE)"; \
	$(TEST_ENV) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(TEST_ALONE) || rc=$$?; \
	exit $$rc

## test-fast: the fast tier only (no cluster: pure logic and fake clientsets), for the inner loop
test-fast:
	$(GO) test -short -count=1 ./...

## test-deps: the Debian packages the tests run: tmux (the terminal UI's end-to-end test), curl (MinIO's bucket),
## GNU time (a command's own peak memory: os/exec's rusage counts the parent's), and runc and iptables (real nodes:
## containerd's runtime, kube-proxy's rules)
test-deps:
	@command -v tmux >/dev/null && command -v curl >/dev/null && test -x /usr/bin/time && command -v runc >/dev/null && \
	  command -v iptables-restore >/dev/null || \
	  { echo "installing tmux, curl, time, runc and iptables (Debian packages) for the tests" >&2; \
	    apt-get update -qq && apt-get install -y -qq tmux curl time runc iptables >/dev/null; }

clean:
	rm -rf bin dist

## bench: drydock drain against kubectl drain (time, and requests lost on real nodes), and drydock preflight against kubectl get,
## side by side on simulated clusters (ratios)
bench: build test-deps
	DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) $(GO) run ./internal/cmd/drainbench -drydock bin/drydock
	DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) $(GO) run ./internal/cmd/preflightbench -drydock bin/drydock
	DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) $(GO) run ./internal/cmd/rehearsebench -drydock bin/drydock
	DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) DRYDOCK_NODE_BIN=$(NODE_BIN) $(GO) run ./internal/cmd/servicebench -drydock bin/drydock

## bench-service: only the requests lost while draining a real node, drydock drain against kubectl drain (a few minutes)
bench-service: build test-deps
	DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) DRYDOCK_NODE_BIN=$(NODE_BIN) $(GO) run ./internal/cmd/servicebench -drydock bin/drydock

## bench-rehearse: only drydock rehearse at scale (500 nodes, 15,000 pods; about 20 minutes)
bench-rehearse: build test-deps
	DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) $(GO) run ./internal/cmd/rehearsebench -drydock bin/drydock

## bench-preflight: only the pre-flight benchmark (about a minute)
bench-preflight: build test-deps
	DRYDOCK_CLUSTER_BIN=$(CLUSTER_BIN) $(GO) run ./internal/cmd/preflightbench -drydock bin/drydock
