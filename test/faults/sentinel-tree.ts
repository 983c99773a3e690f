/**
 * A directory of files with random content that no fault may read into a volume, write, move or
 * delete: a stand-in for "everything outside the pool" (/etc, other pools' data, other disks). It is
 * data at stake (ledger.ts: every sentinel byte is read back after the fault) and an inventory probe
 * (a file that appears in it is a thing a fault left outside the pool).
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ifNotFound } from '../../src/util/errors.js';
import type { DataAtStake, FrozenData, InventoryProbe } from './ledger.js';
import { readDirect } from './fault-checks.js';

interface Entry {
  readonly kind: 'file' | 'dir' | 'link';
  readonly size: number;
  readonly digest: string;
}

async function walk(dir: string, out = new Map<string, Entry>()): Promise<Map<string, Entry>> {
  for (const name of await readdir(dir).catch(ifNotFound([] as string[]))) {
    const p = join(dir, name);
    const s = await lstat(p);
    if (s.isSymbolicLink()) out.set(p, { kind: 'link', size: 0, digest: await readlink(p) });
    else if (s.isDirectory()) {
      out.set(p, { kind: 'dir', size: 0, digest: '' });
      await walk(p, out);
    } else {
      const data = (await readDirect(p)) ?? Buffer.alloc(0);
      out.set(p, { kind: 'file', size: s.size, digest: createHash('sha256').update(data).digest('hex') });
    }
  }
  return out;
}

export class SentinelTree implements DataAtStake {
  private before = new Map<string, Entry>();
  private constructor(readonly root: string) {}

  static async create(root: string, files = 4): Promise<SentinelTree> {
    const tree = new SentinelTree(root);
    await mkdir(join(root, 'nested'), { recursive: true });
    for (let i = 0; i < files; i++) await writeFile(join(root, i % 2 ? 'nested' : '', `sentinel-${i}`), randomBytes(4096 * (i + 1)));
    tree.before = await walk(root);
    return tree;
  }

  /** A file inside the tree (targets for hostile paths). */
  file(i = 0): string {
    return join(this.root, i % 2 ? 'nested' : '', `sentinel-${i}`);
  }

  freeze(): FrozenData {
    const { before, root } = this;
    return {
      async readBack() {
        const now = await walk(root);
        let checked = 0;
        let lost = 0;
        const notes: string[] = [];
        for (const [p, e] of before) {
          if (e.kind !== 'file') continue;
          checked += e.size;
          const n = now.get(p);
          if (!n || n.digest !== e.digest) {
            lost += e.size;
            notes.push(`${p} changed or gone`);
          }
        }
        return { checked, lost, notes };
      },
    };
  }

  /** Paths in the tree: one that appears is something written outside the pool. */
  probe(): InventoryProbe {
    return {
      kind: 'file outside the pool',
      list: async () => [...(await walk(this.root)).entries()].map(([p, e]) => `${p} (${e.kind})`).sort(),
    };
  }
}
