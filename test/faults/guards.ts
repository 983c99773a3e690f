/**
 * Guards for the fault ledger (ledger.ts): each takes a "before" picture and, after a fault, says
 * what changed where nothing should have — sentinel data outside the pool, mounts, loop devices,
 * Kubernetes objects, processes that died. The machine is shared with other test runs, so the host
 * guards look only at what this test owns or names (its directories, its devices), never at the
 * whole mount table.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KubeClient } from '../../src/kube/client.js';
import type { ResourceType } from '../../src/kube/resources.js';
import type { FaultGuard } from './ledger.js';

interface Entry {
  readonly kind: 'file' | 'dir' | 'link';
  readonly size: number;
  readonly digest: string;
}

async function walk(dir: string, out = new Map<string, Entry>()): Promise<Map<string, Entry>> {
  // A directory that is not there (yet, or any more) holds nothing, which is what this reads.
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const p = join(dir, name);
    const s = await lstat(p);
    if (s.isSymbolicLink()) out.set(p, { kind: 'link', size: 0, digest: await readlink(p) });
    else if (s.isDirectory()) {
      out.set(p, { kind: 'dir', size: 0, digest: '' });
      await walk(p, out);
    } else out.set(p, { kind: 'file', size: s.size, digest: createHash('sha256').update(await readFile(p)).digest('hex') });
  }
  return out;
}

/**
 * A directory of files with random content that no fault may read into a volume, write, move or
 * delete (a stand-in for "everything outside the pool": /etc, other pools' data, other disks).
 * Lost bytes: the size of every sentinel file changed or gone; leaks: anything added or changed.
 */
export class SentinelTree implements FaultGuard {
  private before = new Map<string, Entry>();
  private constructor(readonly root: string) {}

  static async create(root: string, files = 4): Promise<SentinelTree> {
    const tree = new SentinelTree(root);
    await mkdir(join(root, 'nested'), { recursive: true });
    for (let i = 0; i < files; i++) await writeFile(join(root, i % 2 ? 'nested' : '', `sentinel-${i}`), randomBytes(4096 + i));
    tree.before = await walk(root);
    return tree;
  }

  /** A file inside the tree (targets for hostile paths). */
  file(i = 0): string {
    return join(this.root, i % 2 ? 'nested' : '', `sentinel-${i}`);
  }

  async lostBytes(): Promise<number> {
    const now = await walk(this.root);
    let lost = 0;
    for (const [p, e] of this.before) {
      const n = now.get(p);
      if (!n || n.digest !== e.digest) lost += e.size || 1;
    }
    return lost;
  }

  async leaks(): Promise<string[]> {
    const now = await walk(this.root);
    const out: string[] = [];
    for (const [p, e] of now) if (!this.before.has(p)) out.push(`written outside the pool: ${p} (${e.kind})`);
    for (const [p, e] of this.before) if (now.has(p) && now.get(p)!.kind !== e.kind) out.push(`changed outside the pool: ${p}`);
    return out;
  }
}

function mountLines(): Promise<string[]> {
  return readFile('/proc/self/mountinfo', 'utf8').then((t) => t.split('\n').filter(Boolean));
}

/** Mounts whose target lies under one of `dirs` or whose source is one of `devices`, as "source target". */
async function scopedMounts(dirs: readonly string[], devices: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const line of await mountLines()) {
    const [left, right] = line.split(' - ');
    const target = left.split(' ')[4].replace(/\\040/g, ' ');
    const source = right.split(' ')[1];
    if (dirs.some((d) => target === d || target.startsWith(`${d}/`)) || devices.includes(source)) out.push(`${source} ${target}`);
  }
  return out.sort();
}

/** The mount table, as far as it concerns `dirs` and `devices`, must be the same after the fault. */
export async function mountGuard(dirs: readonly string[], devices: () => readonly string[] = () => []): Promise<FaultGuard> {
  const before = await scopedMounts(dirs, devices());
  return {
    async leaks() {
      const now = await scopedMounts(dirs, devices());
      return [
        ...now.filter((m) => !before.includes(m)).map((m) => `mount appeared: ${m}`),
        ...before.filter((m) => !now.includes(m)).map((m) => `mount vanished: ${m}`),
      ];
    },
  };
}

/** Loop devices attached over files under `dirs`: the same set after the fault. */
export async function loopGuard(dirs: readonly string[]): Promise<FaultGuard> {
  const list = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const name of await readdir('/sys/block')) {
      if (!name.startsWith('loop')) continue;
      // A loop device detached meanwhile has no backing file: it is then not one of ours.
      const backing = (await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '')).trim();
      if (backing && dirs.some((d) => backing.startsWith(`${d}/`))) out.push(`/dev/${name} ${backing}`);
    }
    return out.sort();
  };
  const before = await list();
  return {
    async leaks() {
      const now = await list();
      return [...now.filter((l) => !before.includes(l)).map((l) => `loop device appeared: ${l}`), ...before.filter((l) => !now.includes(l)).map((l) => `loop device vanished: ${l}`)];
    },
  };
}

/** Processes (or in-process servers) that must still be running after the fault: a crash is a leak of the whole component. */
export function aliveGuard(processes: Record<string, () => boolean | Promise<boolean>>): FaultGuard {
  return {
    async leaks() {
      const out: string[] = [];
      // A liveness check that throws counts as not alive: reported as the leak.
      for (const [name, alive] of Object.entries(processes)) if (!(await Promise.resolve(alive()).catch(() => false))) out.push(`${name} is no longer running`);
      return out;
    },
  };
}

/** Objects of `resource` matching `labelSelector`: none may appear or vanish because of the fault. */
export async function objectGuard(client: KubeClient, resource: ResourceType, labelSelector?: string): Promise<FaultGuard> {
  const names = async (): Promise<string[]> => (await client.list(resource, labelSelector ? { labelSelector } : {})).items.map((o) => o.metadata.name!).sort();
  const before = await names();
  return {
    async leaks() {
      const now = await names();
      return [
        ...now.filter((n) => !before.includes(n)).map((n) => `${resource.plural}/${n} appeared`),
        ...before.filter((n) => !now.includes(n)).map((n) => `${resource.plural}/${n} vanished`),
      ];
    },
  };
}
