# kadet: build, generate, test.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(BIN)/controller-gen
GO_TEST_FLAGS ?=

.PHONY: all
all: build

##@ Build

.PHONY: build
build: ## Build bin/manager and bin/detector.
	go build -o $(BIN)/manager .
	go build -o $(BIN)/detector ./detector/cmd/detector

.PHONY: fmt
fmt:
	go fmt ./...

.PHONY: vet
vet:
	go vet ./...

##@ Generated code

$(CONTROLLER_GEN): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC.
	$(CONTROLLER_GEN) crd:allowDangerousTypes=true rbac:roleName=kadet-manager-role \
		paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: verify
verify: generate manifests ## Fail when generated files or go.mod are stale.
	go mod tidy
	@if [ -n "$$(git status --porcelain -- api config go.mod go.sum)" ]; then \
		echo "generated files are stale; run 'make generate manifests' and 'go mod tidy', then commit:"; \
		git status --porcelain -- api config go.mod go.sum; git --no-pager diff --stat -- api config go.mod go.sum; exit 1; \
	fi

##@ Test

.PHONY: controlplane
controlplane: ## Build (once per machine) etcd, kube-apiserver, kubectl and friends; print their folder.
	@hack/controlplane.sh

.PHONY: test
test: verify vet ## Run every test against a real kube-apiserver + etcd.
	KUBEBUILDER_ASSETS="$${KUBEBUILDER_ASSETS:-$$(hack/controlplane.sh)}" go test $(GO_TEST_FLAGS) ./...

.PHONY: help
help:
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
