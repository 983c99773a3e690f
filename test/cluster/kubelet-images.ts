// Container images for the real kubelet node, built here without any registry (nothing may leave the
// machine): a pause image from images/pause/main.go compiled statically with Debian's Go, and a
// busybox image from Debian's busybox-static. Each is written as an OCI image-layout tarball (one
// uncompressed, reproducible layer made with GNU tar) and imported into containerd's `k8s.io`
// namespace with `ctr images import`, where the CRI plugin sees it. Pods use them with
// `imagePullPolicy: Never`; the `.test` registry domain can never resolve, so an accidental pull fails.

import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { STOWAGE_REPOSITORY } from '../../src/operator/driver-stack/images.js';

const exec = promisify(execFile);

export const PAUSE_IMAGE = 'stowage.test/pause:3.2';
export const BUSYBOX_IMAGE = 'stowage.test/busybox:1.35';

const BUSYBOX_BINARY = '/bin/busybox';
const GO_CANDIDATES = ['/usr/lib/go-1.19/bin/go', '/usr/lib/go/bin/go', '/usr/bin/go'];
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PAUSE_SOURCE = path.join(REPO_ROOT, 'images', 'pause', 'main.go');
/** Fixed timestamps keep layers and configs byte-for-byte reproducible. */
const EPOCH = '1970-01-01T00:00:00Z';

export interface ImageSpec {
  /** Full reference, e.g. stowage.test/busybox:1.35 */
  ref: string;
  /** Files of the single layer: path inside the image -> a host file to copy, or a symlink target. */
  files: Array<{ path: string; from?: string; symlink?: string; mode?: number; content?: string }>;
  dirs?: string[];
  entrypoint?: string[];
  cmd?: string[];
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function cacheDir(): string {
  const base = process.env.STOWAGE_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'stowage');
  return path.join(base, 'kubelet-images');
}

/** Compiles images/pause/main.go into a static binary, cached by the source's hash. */
export async function buildPauseBinary(): Promise<string> {
  const source = await fsp.readFile(PAUSE_SOURCE);
  const go = GO_CANDIDATES.find((g) => fs.existsSync(g));
  if (!go) {
    throw new Error(
      `kubelet-images: no Go toolchain (looked for ${GO_CANDIDATES.join(', ')}) to build the pause image. ` +
        "Run hack/install-test-deps.sh (its kubelet build installs Debian's golang-1.19).",
    );
  }
  const out = path.join(cacheDir(), `pause-${sha256(source).slice(0, 16)}`);
  if (fs.existsSync(out)) return out;
  await fsp.mkdir(cacheDir(), { recursive: true });
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'stowage-pause-build-'));
  try {
    await exec(go, ['build', '-trimpath', '-ldflags=-s -w', '-o', path.join(work, 'pause'), PAUSE_SOURCE], {
      cwd: work,
      env: {
        ...process.env,
        CGO_ENABLED: '0',
        GO111MODULE: 'off',
        GOFLAGS: '',
        GOPROXY: 'off',
        GOCACHE: path.join(work, 'gocache'),
        HOME: work,
      },
    });
    await fsp.rename(path.join(work, 'pause'), `${out}.tmp`).catch(async () => {
      await fsp.copyFile(path.join(work, 'pause'), `${out}.tmp`);
    });
    await fsp.chmod(`${out}.tmp`, 0o755);
    await fsp.rename(`${out}.tmp`, out);
    return out;
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

/** The busybox image: the static binary at /bin/busybox plus a symlink for every applet. */
export async function busyboxSpec(): Promise<ImageSpec> {
  if (!fs.existsSync(BUSYBOX_BINARY))
    throw new Error(`kubelet-images: ${BUSYBOX_BINARY} missing; install Debian's busybox-static (hack/install-test-deps.sh)`);
  const { stdout } = await exec(BUSYBOX_BINARY, ['--list-full']);
  const applets = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && l !== 'bin/busybox');
  return {
    ref: BUSYBOX_IMAGE,
    dirs: ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'tmp', 'root', 'var', 'proc', 'sys', 'dev'],
    files: [
      { path: 'bin/busybox', from: BUSYBOX_BINARY, mode: 0o755 },
      ...applets.map((a) => ({ path: a, symlink: '/bin/busybox' })),
      { path: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' },
      { path: 'etc/group', content: 'root:x:0:\nnogroup:x:65534:\n' },
    ],
    cmd: ['sh'],
  };
}

export async function pauseSpec(): Promise<ImageSpec> {
  return { ref: PAUSE_IMAGE, files: [{ path: 'pause', from: await buildPauseBinary(), mode: 0o755 }], entrypoint: ['/pause'] };
}

/** Writes `spec` as an OCI image-layout tarball at `tarball`. Returns the manifest digest. */
export async function writeImageTarball(spec: ImageSpec, tarball: string): Promise<string> {
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'stowage-image-'));
  try {
    const rootfs = path.join(work, 'rootfs');
    await fsp.mkdir(rootfs);
    for (const d of spec.dirs ?? []) await fsp.mkdir(path.join(rootfs, d), { recursive: true });
    for (const f of spec.files) {
      const dest = path.join(rootfs, f.path);
      await fsp.mkdir(path.dirname(dest), { recursive: true });
      if (f.symlink) await fsp.symlink(f.symlink, dest);
      else if (f.from) await fsp.copyFile(f.from, dest);
      else await fsp.writeFile(dest, f.content ?? '');
      if (!f.symlink) await fsp.chmod(dest, f.mode ?? 0o644);
    }
    await fsp.chmod(path.join(rootfs), 0o755);
    if (fs.existsSync(path.join(rootfs, 'tmp'))) await fsp.chmod(path.join(rootfs, 'tmp'), 0o1777);

    const layerFile = path.join(work, 'layer.tar');
    await exec('tar', [
      '--sort=name',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      `--mtime=${EPOCH}`,
      '--format=gnu',
      '-C',
      rootfs,
      '-cf',
      layerFile,
      '.',
    ]);
    const layer = await fsp.readFile(layerFile);
    const layerDigest = sha256(layer);

    const config = Buffer.from(
      JSON.stringify({
        created: EPOCH,
        architecture: 'amd64',
        os: 'linux',
        config: {
          Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
          ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
          ...(spec.cmd ? { Cmd: spec.cmd } : {}),
          WorkingDir: '/',
        },
        rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
        history: [{ created: EPOCH, created_by: 'stowage test harness (test/cluster/kubelet-images.ts)' }],
      }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: layer.length }],
      }),
    );
    const manifestDigest = `sha256:${sha256(manifest)}`;
    const tag = spec.ref.slice(spec.ref.lastIndexOf(':') + 1);
    const index = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { 'io.containerd.image.name': spec.ref, 'org.opencontainers.image.ref.name': tag },
        },
      ],
    };

    const layout = path.join(work, 'layout');
    const blobs = path.join(layout, 'blobs', 'sha256');
    await fsp.mkdir(blobs, { recursive: true });
    await fsp.rename(layerFile, path.join(blobs, layerDigest));
    await fsp.writeFile(path.join(blobs, sha256(config)), config);
    await fsp.writeFile(path.join(blobs, manifestDigest.slice('sha256:'.length)), manifest);
    await fsp.writeFile(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await fsp.writeFile(path.join(layout, 'index.json'), JSON.stringify(index));
    await exec('tar', [
      '--sort=name',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      `--mtime=${EPOCH}`,
      '-C',
      layout,
      '-cf',
      tarball,
      'oci-layout',
      'index.json',
      'blobs',
    ]);
    return manifestDigest;
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

/** Builds the pause and busybox images and imports them into containerd at `socket` (namespace k8s.io). */
export async function importTestImages(socket: string, workDir: string): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const spec of [await pauseSpec(), await busyboxSpec()]) {
    const tarball = path.join(workDir, `${spec.ref.replace(/[^a-z0-9.]+/gi, '_')}.tar`);
    digests[spec.ref] = await writeImageTarball(spec, tarball);
    try {
      await exec('ctr', ['--address', socket, '--namespace', 'k8s.io', 'images', 'import', '--platform', 'linux/amd64', tarball], {
        timeout: 120_000,
      });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`kubelet-images: ctr images import ${spec.ref} failed: ${err.stderr || err.message}`, { cause: e });
    } finally {
      await fsp.rm(tarball, { force: true });
    }
  }
  return digests;
}

/**
 * Where `make image` (hack/build-image.sh) writes Stowage's image, for this tree's version. The real
 * node gets it the way a cluster does: `make push` to a loopback registry and a pull from there
 * (kubelet-registry.ts), never `ctr images import`.
 */
export function stowageImageArchive(): { archive: string; ref: string; version: string } {
  const version = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  return {
    archive: path.join(REPO_ROOT, 'build', 'image', `stowage-${version}.oci.tar`),
    ref: `${STOWAGE_REPOSITORY}:${version}`,
    version,
  };
}

/** Removes Stowage's images containerd pulled (kubelet-registry.ts), so later tests on the node find none. */
export async function removeStowageImages(socket: string, refs: string[]): Promise<void> {
  for (const ref of refs) {
    await exec('ctr', ['--address', socket, '--namespace', 'k8s.io', 'images', 'rm', ref], { timeout: 60_000 }).catch(() => undefined);
  }
}
