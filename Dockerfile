# Stowage: one image for every role (`stowage operator`, `stowage node`, `stowage csi-controller`).
#
#   make docker-build IMG=registry.example.com/stowage:0.1.0
#
# Runtime: Node.js 26 "Lithium", the Active LTS line since 2026-10-28, on Debian 12 (bookworm), the
# distribution the node tools are tested with. The build stage compiles TypeScript and drops the
# dev dependencies; the runtime stage adds only what the roles run:
#   util-linux      lsblk, blkid, wipefs, losetup, mount (inventory, preparation, Block volumes)
#   e2fsprogs       mkfs.ext4 (Local pools, fsType ext4)
#   xfsprogs        mkfs.xfs (Local pools, fsType xfs)
#   btrfs-progs     mkfs.btrfs, btrfs (Dynamic pools: the node engine)
#   smartmontools   smartctl --json (disk health)
#   udev            udevadm monitor / info (block device events, stable /dev/disk links)
# The image runs as the non-root user 65532 by default, which is what the operator and the CSI
# controller use; the node DaemonSet's container asks for root (runAsUser: 0) and privilege because
# formatting and mounting need them.

ARG NODE_IMAGE=node:26-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY hack/bundle-client-node.mjs ./hack/
RUN npx tsc -p tsconfig.build.json \
 && node hack/bundle-client-node.mjs \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends util-linux e2fsprogs xfsprogs btrfs-progs smartmontools udev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/stowage
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# tsc does not copy the CSI .proto files; src/csi/grpc.ts looks for them here (Apache-2.0, LICENSE beside them).
COPY --from=build /src/src/csi/proto ./src/csi/proto
ENV NODE_ENV=production
USER 65532:65532
ENTRYPOINT ["node", "/opt/stowage/dist/src/cli/main.js"]
CMD ["--help"]
