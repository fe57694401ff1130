# edgefw — see README.md. Kernel tests need root; they create their own
# network namespaces and never touch the machine's own.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
BIN       := bin
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION ?= v0.8.2

.PHONY: all build test deps kube-deps unit lint bench bench-deps bench-go monitoring-check clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/edgefwd ./cmd/edgefwd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/edgefwctl ./cmd/edgefwctl

# The whole suite, as the README's test command: installs the Debian tools
# the tests use when they are missing (scripts/test-deps.sh), lints, runs
# the packages that need no root under the race detector, then the kernel
# and end-to-end tests (they skip without root; with CI=true a missing
# tool or root fails them instead), and the monitoring checks.
RACE_PKGS   := ./policy/... ./daemon/... ./wg/... ./cmd/... ./internal/... ./journal/... ./audit/... ./report/... ./bench/... ./kube/...
KERNEL_PKGS := ./nft/... ./integration/...

test: deps lint build
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)
	$(GO) test -count=1 -timeout 20m $(KERNEL_PKGS)
	packaging/monitoring/check.sh

# What the tests need from Debian, installed when missing (root, Debian or
# Ubuntu); elsewhere it prints the apt-get command and stops. Then the
# real kube-apiserver and etcd of the fleet tests (kube-deps).
deps:
	scripts/test-deps.sh
	GO='$(GO)' scripts/kube-deps.sh

# kube-apiserver and etcd built from the Go module proxy into a cache
# outside the repository, keyed by version (EDGEFW_CACHE, default
# /var/cache/edgefw-test): about 13 minutes on a cold 2-core machine,
# seconds when warm.
kube-deps:
	GO='$(GO)' scripts/kube-deps.sh

# Tests that need no root and no kernel.
unit:
	$(GO) test -count=1 -short ./policy/ ./nft/ ./wg/ ./daemon/ ./cmd/...

# go.mod must be tidy: `go mod tidy -diff` prints what tidying would change
# and fails if anything would.
lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@command -v staticcheck >/dev/null 2>&1 || test -x $(GOBIN)/staticcheck || GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$(GOBIN):$$PATH" staticcheck ./...

# Benchmarks side by side with the reference tools (nft -f, nft add
# element, nft list counters, iptables, wg setconf) in the same run, as
# root, in network namespaces of its own (issue 13): writes
# bench/results/latest.md and latest.json. BENCH_FLAGS=-quick for a short
# run; -only and -sizes pick scenarios and set sizes (see -help). The
# in-process benchmarks stay with go test -bench (make bench-go).
BENCH_FLAGS ?=
bench: bench-deps build
	$(GO) run ./bench/cmd/edgefw-bench -out bench/results $(BENCH_FLAGS)

# The tools the bench measures against, installed when missing (root,
# Debian or Ubuntu).
bench-deps:
	scripts/bench-deps.sh

bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 5x -count 1 ./nft/ ./policy/

monitoring-check:
	packaging/monitoring/check.sh

# .deb and .rpm for each of ARCHS in dist/, with nfpm (packaging/build.sh).
# The package version comes from git describe (converted for deb and rpm);
# VERSION given on the command line or in the environment replaces it.
ARCHS        ?= amd64 arm64
NFPM_VERSION ?= v2.45.2
.PHONY: package
package:
	GO='$(GO)' ARCHS='$(ARCHS)' NFPM_VERSION='$(NFPM_VERSION)' \
	VERSION='$(if $(filter environment command line,$(origin VERSION)),$(VERSION))' \
	packaging/build.sh

clean:
	rm -rf $(BIN) dist

# The guided tour (README's first command): an edge host, its cluster
# gateway and an outside client in network namespaces of their own; rules,
# counters, the tunnel, drift repair and a rollback. Needs root. The
# machine's own firewall and links are not touched; everything is removed
# at the end. demo-shell leaves the lab up (remove it: demo/demo.sh --down).
.PHONY: demo demo-shell
demo: build
	demo/demo.sh

demo-shell: build
	demo/demo.sh --shell
