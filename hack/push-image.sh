#!/usr/bin/env bash
# `make push`: copies the OCI archive `make image` built (build/image/stowage-<version>.oci.tar) to a
# registry with skopeo, as REGISTRY/stowage:TAG for each tag, byte for byte: --preserve-digests
# refuses any conversion, so the digest the registry serves is the archive's own (the one
# `make release` pins in stowage.yaml), and the script checks it.
#
# Usage: hack/push-image.sh REGISTRY [TAG...]
#   REGISTRY   registry host and path, e.g. ghcr.io/stowage-dev or 127.0.0.1:5000/stowage-dev
#   TAG        default: the version in package.json
# Environment:
#   PUSH_TLS_VERIFY=false   plain HTTP / unverified TLS (a loopback registry in the tests)
#   IMAGE_OUT_DIR           where the archive is (default build/image)
# Credentials are skopeo's own (`skopeo login REGISTRY-HOST` first, or REGISTRY_AUTH_FILE).
# Prints one line per tag: `pushed REGISTRY/stowage:TAG@sha256:…`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

log() { printf '[push-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

registry="${1:-}"
[ -n "$registry" ] || die "no registry: make push REGISTRY=ghcr.io/stowage-dev (host and path; the image is REGISTRY/stowage:TAG)"
case "$registry" in
  */stowage|*/stowage:*|*@*) die "REGISTRY=$registry names the image; give the host and path only (e.g. ${registry%/stowage*}), the image is REGISTRY/stowage:TAG" ;;
esac
# As docker and containerd tell a registry host from a path: a dot, a port or localhost.
host="${registry%%/*}"
[[ "$host" == *.* || "$host" == *:* || "$host" == localhost ]] || die "REGISTRY=$registry does not start with a registry host (a name with a dot, a port, or localhost), e.g. ghcr.io/stowage-dev"
shift
command -v skopeo >/dev/null 2>&1 || die "skopeo missing: apt-get install skopeo (hack/install-test-deps.sh installs it)"

version="$(node -p "require('./package.json').version")"
out_dir="${IMAGE_OUT_DIR:-build/image}"
archive="$out_dir/stowage-$version.oci.tar"
[ -f "$archive" ] || die "$archive missing: run \`make image\` first"
digest="$(cat "$out_dir/stowage-$version.digest")"
tags=("$@")
[ ${#tags[@]} -gt 0 ] || tags=("$version")

tls=()
[ "${PUSH_TLS_VERIFY:-true}" = false ] && tls=(--dest-tls-verify=false)
digest_file="$(mktemp)"
trap 'rm -f "$digest_file"' EXIT
for tag in "${tags[@]}"; do
  [[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "\"$tag\" is not a valid image tag (letters, digits, _ . -; at most 128)"
  ref="$registry/stowage:$tag"
  log "skopeo copy $archive -> $ref"
  # The archive's one image is tagged with the version (build-image.sh's ref.name).
  skopeo copy --quiet --preserve-digests --digestfile "$digest_file" "${tls[@]}" "oci-archive:$archive:$version" "docker://$ref" >&2
  pushed="$(cat "$digest_file")"
  [ "$pushed" = "$digest" ] || die "the registry serves $ref as $pushed, not the archive's $digest"
  echo "pushed $ref@$pushed"
done
