#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler and kubectl v1.20.2 once, from Debian
# bookworm's `kubernetes` source package (the only Debian source that is the whole upstream tree with
# vendor/), with Debian's golang-1.19, into a cache outside the work tree. Later runs reuse the cache.
#
# Usage: hack/build-control-plane.sh [extra cmd/... targets]
#   STOWAGE_CACHE_DIR  where binaries are kept (default: ~/.cache/stowage)
# Prints the directory holding the binaries on its last line.
set -euo pipefail

readonly K8S_SOURCE_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
readonly K8S_VERSION="v1.20.2"
readonly CACHE_DIR="${STOWAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stowage}"
readonly BIN_DIR="$CACHE_DIR/kubernetes-$K8S_VERSION/bin"
readonly DEFAULT_TARGETS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
targets=("${DEFAULT_TARGETS[@]}" "$@")

log() { printf '[build-control-plane] %s\n' "$*" >&2; }

missing=()
for t in "${targets[@]}"; do [ -x "$BIN_DIR/$t" ] || missing+=("$t"); done
if [ ${#missing[@]} -eq 0 ]; then
  log "cached: $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi
log "building ${missing[*]} (about 10-13 minutes on two cores the first time)"

# `apt-get source` needs a deb-src entry for bookworm; add one mirroring the machine's own deb entries.
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ]; then
    sed -E 's/^Types: deb$/Types: deb-src/' "$src" > /etc/apt/sources.list.d/stowage-deb-src.sources
  else
    sed -nE 's/^deb (.*)$/deb-src \1/p' /etc/apt/sources.list > /etc/apt/sources.list.d/stowage-deb-src.list
  fi
  log "added a deb-src entry; running apt-get update"
  apt-get update -qq
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends golang-1.19 dpkg-dev rsync \
  golang-github-modern-go-reflect2-dev ca-certificates >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/stowage-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
log "fetching source kubernetes=$K8S_SOURCE_VERSION"
apt-get source -qq "kubernetes=$K8S_SOURCE_VERSION" >/dev/null 2>&1 || apt-get source "kubernetes=$K8S_SOURCE_VERSION"
tree=$(find . -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n 1)
[ -n "$tree" ] || { log "source tree not found after apt-get source"; exit 1; }
cd "$tree"

# The vendored reflect2 1.0.1 crashes at run time with Go >= 1.18; 1.0.2 from Debian fixes it.
rsync -a --delete --exclude='*_test.go' /usr/share/gocode/src/github.com/modern-go/reflect2/ vendor/github.com/modern-go/reflect2/

export PATH="/usr/lib/go-1.19/bin:$PATH"
export GOFLAGS=-mod=vendor GO111MODULE=on GOPROXY=off GOTOOLCHAIN=local
export KUBE_GIT_VERSION="$K8S_VERSION" KUBE_GIT_TREE_STATE=clean KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20
whats=(); for t in "${missing[@]}"; do whats+=("cmd/$t"); done
make WHAT="${whats[*]}" >&2

mkdir -p "$BIN_DIR"
for t in "${missing[@]}"; do
  install -m 0755 "_output/local/go/bin/$t" "$BIN_DIR/$t.tmp" && mv "$BIN_DIR/$t.tmp" "$BIN_DIR/$t"
done
log "built into $BIN_DIR"
echo "$BIN_DIR"
