#!/usr/bin/env bash
# Installs what the Stowage tests and the local demo need, idempotently:
#   - Debian packages: etcd-server (etcd), openssl (test PKI), util-linux (losetup, mount),
#     e2fsprogs / xfsprogs / btrfs-progs (mkfs.*), fio (bench:datapath), prometheus (promtool), smartmontools (smartctl)
#     containerd, runc, containernetworking-plugins, busybox-static (the real kubelet node)
#     libatomic1 (the pinned official Node.js binary links it)
#     docker-registry (the CNCF distribution registry on loopback, test/cluster/kubelet-registry.ts) and
#     skopeo (`make push`: the image into that registry, and a release's into its registry)
#     nodejs (the machine's own Node.js, which test/cli/krew-package.test.ts runs the krew package on)
#     ceph-mon, ceph-mgr, ceph-osd, ceph-common, ceph-mds: Debian's Ceph (bookworm: 16.2) for the
#     Ceph engine's tests (test/ceph/), daemons started by the tests themselves; see docs/ceph.md
#   - kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet v1.20.2 via
#     hack/build-control-plane.sh (cached outside the work tree), unless KUBEBUILDER_ASSETS is set.
#
# Packages are checked with `dpkg -s` first; `apt-get update` runs only when something is missing.
# Package installation never starts services (etcd, prometheus, ceph): a temporary policy-rc.d forbids it
# when the machine has none.
#
# Usage: hack/install-test-deps.sh
# Prints the directory holding the control-plane binaries on its last line.
set -euo pipefail

readonly PACKAGES=(etcd-server openssl util-linux e2fsprogs xfsprogs btrfs-progs fio prometheus smartmontools
  containerd runc containernetworking-plugins busybox-static tmux libatomic1 nodejs
  ceph-mon ceph-mgr ceph-osd ceph-common ceph-mds docker-registry skopeo)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '[install-test-deps] %s\n' "$*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
  # No `dpkg -s | grep -q` pipe: with pipefail, grep closing early makes dpkg die of SIGPIPE.
  status="$(dpkg -s "$p" 2>/dev/null || true)"
  if [[ "$status" != *"Status: install ok installed"* ]]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "not root and no sudo: install ${missing[*]} yourself"; exit 1; }
    sudo=(sudo)
  fi
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [ ! -e "$policy" ]; then
    # Keep dpkg from starting etcd/prometheus/ceph/docker-registry daemons on the machine.
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 0755 "$policy"
    added_policy=1
  fi
  cleanup() { if [ "$added_policy" = 1 ]; then "${sudo[@]}" rm -f "$policy"; fi; }
  trap cleanup EXIT
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  cleanup
  trap - EXIT
  log "installed: ${missing[*]}"
else
  log "Debian packages present: ${PACKAGES[*]}"
fi

for b in /usr/bin/etcd /usr/bin/openssl /usr/bin/promtool /usr/bin/ceph-mon /usr/bin/ceph-osd /usr/bin/ceph-mgr \
  /usr/bin/ceph-mds /usr/bin/ceph-authtool /usr/bin/monmaptool /usr/bin/rados /usr/bin/docker-registry /usr/bin/skopeo; do
  [ -x "$b" ] || { log "expected $b after installing packages"; exit 1; }
done

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  # Same lookup as test/cluster/control-plane.ts: KUBEBUILDER_ASSETS first, then the build cache
  # (envtest's asset bundles have no controller-manager or scheduler).
  cache_bin="${STOWAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stowage}/kubernetes-v1.20.2/bin"
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    if [ ! -x "$KUBEBUILDER_ASSETS/$b" ] && [ ! -x "$cache_bin/$b" ]; then
      log "no executable $b in KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS nor in $cache_bin;"
      log "add it there, or unset KUBEBUILDER_ASSETS so hack/build-control-plane.sh builds it"
      exit 1
    fi
  done
  log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
  echo "$KUBEBUILDER_ASSETS"
else
  # kubelet: the real node of test/cluster/kubelet-node.ts (tests in test/kubelet/).
  "$here/build-control-plane.sh" kubelet
fi
