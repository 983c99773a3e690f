# Stowage — kubebuilder-style targets. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

NODE_MODULES_STAMP := node_modules/.package-lock.json
# Tests log nothing unless asked (STOWAGE_LOG_LEVEL=debug make test).
STOWAGE_LOG_LEVEL ?= silent
MOCHA_ARGS ?=

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund

.PHONY: deps
deps: $(NODE_MODULES_STAMP) ## Install npm dependencies.

.PHONY: build
build: deps ## Compile TypeScript (type errors fail the build) and bundle client-node (faster start-up).
	npx tsc -p tsconfig.json
	node hack/bundle-client-node.mjs

.PHONY: manifests
manifests: build ## Regenerate config/crd/ from src/crds/, config/prometheus/ from src/observability/, the graph in docs/architecture.md.
	node dist/hack/gen-manifests.js
	node dist/hack/gen-observability.js
	node dist/hack/architecture.js write

.PHONY: lint-deps
lint-deps: build ## Check the layering of src/ (.dependency-cruiser.cjs): no import cycles, no import against the layers.
	node dist/hack/architecture.js check

.PHONY: architecture
architecture: build ## Regenerate the import graph in docs/architecture.md from the code.
	node dist/hack/architecture.js write

.PHONY: test-deps
test-deps: ## Install Debian packages and build (once, cached) the local control plane.
	bash hack/install-test-deps.sh >/dev/null

.PHONY: test
test: test-deps build lint-deps ## Run all tests (the layering check, unit, and integration against a real local control plane).
	STOWAGE_TEST_HYGIENE=1 STOWAGE_LOG_LEVEL=$(STOWAGE_LOG_LEVEL) npx mocha $(MOCHA_ARGS)

.PHONY: run
run: test-deps build ## Start a local control plane (unless KUBECONFIG points elsewhere), install CRDs, run the operator, apply samples/.
	node dist/hack/run-local.js

.PHONY: install
install: build ## Install the CRDs into the cluster your kubeconfig points at (CEL rules only on 1.23+).
	node dist/hack/install-crds.js

# The image of every role (Dockerfile). Needs a container engine (docker, podman or buildah's
# `bud`); CONTAINER_TOOL=podman make docker-build IMG=registry.example.com/stowage:0.1.0
IMG ?= localhost/stowage:$(shell node -p "require('./package.json').version")
CONTAINER_TOOL ?= docker

.PHONY: docker-build
docker-build: ## Build the container image $(IMG) with $(CONTAINER_TOOL) (needs a running container engine).
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: clean
clean: ## Remove build output.
	rm -rf dist
