# kadet: build, generate, test. `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(BIN)/controller-gen
CRD_REF_DOCS ?= $(BIN)/crd-ref-docs
# golangci-lint with the Kubernetes API linter built in (hack/lint pins both).
GOLANGCI_LINT ?= $(BIN)/golangci-lint-kal
# OpenBLAS's C header (Debian's libopenblas-dev) where it is installed, else empty.
CBLAS_HEADER = $(wildcard /usr/include/cblas.h /usr/include/*/cblas.h)
# oneDNN's (Debian's libdnnl-dev), which the OpenBLAS build links for its matrix products.
DNNL_HEADER = $(wildcard /usr/include/oneapi/dnnl/dnnl.h)

# Extra flags for go test, e.g. GO_TEST_FLAGS="-run Lifecycle -v".
GO_TEST_FLAGS ?=

.PHONY: all
all: build

##@ Build

.PHONY: build
build: ## Build bin/manager and bin/detector.
	go build -o $(BIN)/manager .
	go build -o $(BIN)/detector ./detector/cmd/detector

.PHONY: fmt
fmt: ## Format the Go code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...
	cd hack/localcluster && go vet ./...

$(GOLANGCI_LINT): hack/lint/go.mod hack/lint/go.sum
	cd hack/lint && go build -o $(GOLANGCI_LINT) sigs.k8s.io/kube-api-linter/cmd/golangci-lint-kube-api-linter

.PHONY: lint
lint: $(GOLANGCI_LINT) ## golangci-lint (.golangci.yml: errcheck, govet, staticcheck, revive, misspell, ...) and the Kubernetes API linter on api/.
	$(GOLANGCI_LINT) run ./...
	cd hack/localcluster && $(GOLANGCI_LINT) run ./...

IMG ?= ghcr.io/kadet-dev/kadet:dev

.PHONY: docker-build
docker-build: ## Build the image holding manager and detector (needs a Docker engine; none runs on the dev machines).
	docker build --build-arg VERSION=$(shell git describe --tags --always --dirty 2>/dev/null || echo dev) -t $(IMG) .

##@ Generated code

$(CONTROLLER_GEN): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen

$(CRD_REF_DOCS): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && go build -o $(CRD_REF_DOCS) github.com/elastic/crd-ref-docs

.PHONY: docs
docs: $(CRD_REF_DOCS) ## Generate the API field reference, docs/api-reference.md, from the API types.
	$(CRD_REF_DOCS) --source-path=./api --config=hack/docs/config.yaml --renderer=markdown \
		--output-path=docs/api-reference.md --log-level=error

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the API's DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs (config/crd/bases) and the manager's ClusterRole (config/rbac/role.yaml).
	$(CONTROLLER_GEN) crd:allowDangerousTypes=true rbac:roleName=kadet-manager-role \
		paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@# The Helm chart ships the same CRDs, manager rules and admission policy.
	mkdir -p charts/kadet/files/crds
	cp config/crd/bases/*.yaml charts/kadet/files/crds/
	cp config/rbac/role.yaml charts/kadet/files/manager-role.yaml
	cp config/admission/datasource-secrets-policy.yaml charts/kadet/files/

.PHONY: verify
verify: generate manifests docs ## Fail when generated files, go.mod or formatting are stale.
	go mod tidy
	@cd hack/tools && go mod tidy
	@cd hack/lint && go mod tidy
	@cd hack/localcluster && go mod tidy
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
		if [ -n "$$unformatted" ]; then echo "gofmt: these files need formatting:"; echo "$$unformatted"; exit 1; fi
	@if [ -n "$$(git status --porcelain)" ]; then \
		echo "generated files are stale: run 'make generate manifests' and 'go mod tidy', then commit:"; \
		git status --porcelain; git --no-pager diff --stat; exit 1; \
	fi

##@ Demo

.PHONY: demo
demo: ## Start a local cluster, the manager and two sample detectors, score anomalies (see README).
	hack/demo.sh

.PHONY: demo-down
demo-down: ## Stop what make demo started.
	hack/demo.sh down

##@ Test

.PHONY: controlplane
controlplane: ## Build (once per machine) etcd, kube-apiserver, kubectl, ...; print their folder.
	@hack/controlplane.sh

.PHONY: test
test: generate manifests vet ## Run every test against a real kube-apiserver + etcd (builds them, and helm, on first use) , a real Prometheus and headless Chromium (installs Debian's packages when missing), then the end-to-end tests.
	hack/prometheus.sh
	hack/chromium.sh
	KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$$(hack/controlplane.sh)}" KADET_HELM="$${KADET_HELM:-$$(hack/helm.sh)}" \
		go test -timeout 40m $(GO_TEST_FLAGS) ./...
	cd hack/localcluster && KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$$($(CURDIR)/hack/controlplane.sh)}" \
		go test -timeout 40m $(GO_TEST_FLAGS) ./...
	@# The detector engine again as the benchmarks build it: OpenBLAS orders its sums
	@# differently from Gonum, so results that hold in one build may not in the other.
	@if [ -n "$(CBLAS_HEADER)" ] && [ -n "$(DNNL_HEADER)" ]; then \
		echo "go test -tags openblas ./detector/..."; go test -tags openblas $(GO_TEST_FLAGS) ./detector/...; \
	else echo "skipping the OpenBLAS build's tests: libopenblas-dev or libdnnl-dev is not installed"; fi

.PHONY: test-e2e
test-e2e: ## Only the end-to-end tests: local cluster, the manager, real training and scoring pods (make test runs them too).
	KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$$(hack/controlplane.sh)}" KADET_HELM="$${KADET_HELM:-$$(hack/helm.sh)}" go test -timeout 40m $(GO_TEST_FLAGS) -v ./test/e2e/

##@ Benchmarks

# BLAS for benchmark builds: openblas (cgo, libopenblas-dev) or gonum (pure Go).
BLAS ?= openblas
# The SKAB data set (not shipped with kadet; see hack/bench/skab).
SKAB_DATA ?= ../shared/data/skab
# Real metrics in NAB's layout, scored by NAB's scorer (see hack/bench/realmetrics).
NAB_DATA ?= ../shared/data/nab-dev

.PHONY: bench-deps
bench-deps: ## Install what the benchmarks compare against and link with (Debian packages).
	@if ! /usr/bin/python3 -c 'import torch' 2>/dev/null || [ -z "$(CBLAS_HEADER)" ] || [ -z "$(DNNL_HEADER)" ] || ! command -v wrk >/dev/null || ! command -v promtool >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch libopenblas-dev libdnnl-dev wrk prometheus; fi

.PHONY: bench
bench: bench-deps ## Speed against PyTorch, a load test of detector serve, SKAB, generated metrics, real metrics (NAB), one-class MNIST accuracy and the watch loop against Prometheus.
	go build -tags $(BLAS) -o $(BIN)/detector-$(BLAS) ./detector/cmd/detector
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-2} go run -tags $(BLAS) ./hack/bench/speed --detector $(BIN)/detector-$(BLAS)
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-1} go run -tags $(BLAS) ./hack/bench/serve --detector $(BIN)/detector-$(BLAS)
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-2} go run -tags $(BLAS) ./hack/bench/skab --data $(SKAB_DATA)
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-2} go run -tags $(BLAS) ./hack/bench/metrics
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-2} go run -tags $(BLAS) ./hack/bench/realmetrics --nab-dir $(NAB_DATA) --retrain
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-2} go run -tags $(BLAS) ./hack/bench/mnist-oneclass
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-2} go run -tags $(BLAS) ./hack/bench/watch

.PHONY: bench-kernels
bench-kernels: ## BLAS kernels on this CPU: OpenBLAS as the environment has it, its AVX-512 sets, BLIS, oneDNN; each checked against gonum first.
	@if [ ! -e /usr/include/x86_64-linux-gnu/blis.h ] || [ -z "$(DNNL_HEADER)" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libblis-dev libdnnl-dev; fi
	go build -tags openblas -o $(BIN)/kernels-openblas ./hack/bench/kernels
	go build -tags blis -o $(BIN)/kernels-blis ./hack/bench/kernels
	go build -tags dnnl -o $(BIN)/kernels-dnnl ./hack/bench/kernels
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-2} BLIS_NUM_THREADS=$${BLIS_NUM_THREADS:-2} OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} \
		$(BIN)/kernels-openblas --blis $(BIN)/kernels-blis --dnnl $(BIN)/kernels-dnnl

.PHONY: bench-bf16
bench-bf16: ## bfloat16 against float32 products on oneDNN on this CPU (AVX512_BF16): timing only, kadet computes in float32.
	@if [ -z "$(DNNL_HEADER)" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libdnnl-dev; fi
	gcc -O2 -Wall -o $(BIN)/bf16 hack/bench/bf16/bf16.c -ldnnl
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/bf16

.PHONY: bench-scale
bench-scale: ## The manager under N Detectors on a real kube-apiserver: time to all Ready, RSS, writes, requests at rest (N=1000).
	KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$$(hack/controlplane.sh)}" go run ./hack/bench/operator-scale --detectors $${N:-1000}

.PHONY: fuzz
# A count (Nx), not a duration: with a duration Go 1.26's fuzz coordinator can report
# "context deadline exceeded" as a failure when the time runs out under load, with no
# crasher (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME ?= 100000x
fuzz: ## Fuzz every reader of outside input, FUZZTIME (100000x: inputs) each: model files, scoring requests, CSV, IDX, Prometheus responses.
	go test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./detector/artifact/
	go test -run '^$$' -fuzz '^FuzzDecodeDetect$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./detector/serve/
	go test -run '^$$' -fuzz '^FuzzReadCSV$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./detector/data/
	go test -run '^$$' -fuzz '^FuzzReadIDX$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./detector/data/
	go test -run '^$$' -fuzz '^FuzzPrometheusResponse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./detector/data/

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
