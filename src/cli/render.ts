/**
 * `stowage render -f FILE|DIR…`: prints, offline and deterministically, every object the operator
 * would create or keep for the given StoragePools and NodeDisks (and Nodes, if given) — for
 * reviewing a GitOps change before it merges. It runs the reconcilers' own rendering code.
 */
import { stringify } from 'yaml';
import type { NodeDisk } from '../crds/nodedisk.js';
import type { StoragePool } from '../crds/storagepool.js';
import type { Node } from '../kube/types.js';
import { imageTable } from '../operator/driver-stack/images.js';
import { kubeletRootDir } from '../operator/driver-stack/host-paths.js';
import type { NodeRegistration } from '../operator/driver-stack/render.js';
import { describeRange, parseServerVersion, sidecarProfile, type SidecarProfile } from '../operator/driver-stack/sidecars.js';
import { renderDesired } from '../operator/render.js';
import { errorMessage } from '../util/errors.js';
import { manifestFiles, parseManifests, readText, type Finding } from './manifests.js';

export interface RenderOptions {
  readonly namespace?: string | undefined;
  /** `NAME=REF` image overrides, as the operator's `--image`. */
  readonly images?: readonly string[];
  readonly registration?: NodeRegistration;
  /** kubelet's root directory on the nodes, as the operator's `--kubelet-root-dir`. */
  readonly kubeletRootDir?: string;
  /** The API server version to render for (`1.22`, `v1.27.3`); default: the newest servers'. */
  readonly kubernetesVersion?: string;
}

export async function renderCommand(
  paths: readonly string[],
  opts: RenderOptions,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const findings: Finding[] = [];
  const pools: StoragePool[] = [];
  const disks: NodeDisk[] = [];
  const nodes: Node[] = [];
  for (const path of paths) {
    let files: string[];
    try {
      files = await manifestFiles(path);
    } catch (e) {
      findings.push({ text: `${path}: ${errorMessage(e)}; pass existing files or directories with -f`, failed: true });
      continue;
    }
    for (const file of files) {
      for (const { object } of parseManifests(file, await readText(file), findings)) {
        const kind = (object as { kind?: unknown }).kind;
        if (kind === 'StoragePool') pools.push(object as StoragePool);
        else if (kind === 'NodeDisk') disks.push(object as NodeDisk);
        else if (kind === 'Node') nodes.push(object as Node);
      }
    }
  }
  for (const f of findings) err.write(`${f.text}\n`);
  if (findings.some((f) => f.failed)) return 1;
  let images;
  let sidecars: SidecarProfile | undefined;
  let kubeletDir: string;
  try {
    kubeletDir = kubeletRootDir(opts.kubeletRootDir);
    const version = opts.kubernetesVersion ? parseServerVersion({ gitVersion: opts.kubernetesVersion }) : undefined;
    sidecars = sidecarProfile(version);
    if (!sidecars) throw new Error(`--kubernetes-version ${opts.kubernetesVersion}: Stowage supports Kubernetes 1.20 and later`);
    images = imageTable(opts.images ?? [], sidecars.images);
  } catch (e) {
    err.write(`${errorMessage(e)}\n`);
    return 1;
  }
  const { objects, notes } = renderDesired({
    pools,
    disks,
    ...(nodes.length > 0 ? { nodes } : {}),
    ...(opts.namespace ? { namespace: opts.namespace } : {}),
    images,
    sidecars,
    ...(opts.registration ? { registration: opts.registration } : {}),
    kubeletDir,
  });
  notes.unshift(
    `sidecars for Kubernetes ${describeRange(sidecars)}${opts.kubernetesVersion ? '' : ' (pass --kubernetes-version for another server)'}`,
  );
  const header = [
    '# Rendered by `stowage render`: what the operator would create or keep for these manifests.',
    '# Server-assigned fields (uid, resourceVersion) are absent; owner references get their uid at apply time.',
    ...notes.map((n) => `# ${n}`),
  ];
  out.write(`${header.join('\n')}\n`);
  out.write(objects.map((o) => `---\n${stringify(o, { lineWidth: 0 })}`).join(''));
  return 0;
}
