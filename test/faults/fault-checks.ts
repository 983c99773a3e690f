/**
 * The checks every fault row makes (ledger.ts), built once so a fault test only says what it did:
 * {@link KeptData} (data written before the fault, read back with O_DIRECT), inventory probes of
 * what Stowage owns in the API and on the host, and survival checks (processes up, conditions).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { KubeClient } from '../../src/kube/client.js';
import { CSI_DRIVERS, DAEMON_SETS, DEPLOYMENTS, type ResourceType } from '../../src/kube/resources.js';
import { MANAGED_BY } from '../../src/crds/labels.js';
import type { KubeObject } from '../../src/kube/types.js';
import { run } from '../../src/host/command.js';
import { errorMessage, ifNotFound } from '../../src/util/errors.js';
import type { DataAtStake, FrozenData, InventoryProbe, SurvivalCheck } from './ledger.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * Reads `file` (or a block device) bypassing the page cache (`dd iflag=direct`), so what is
 * compared is what the disk holds, not what the kernel remembers having written. Undefined when it
 * cannot be read at all.
 */
export function readDirect(file: string): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const child = spawn('dd', [`if=${file}`, 'iflag=direct', 'bs=1M', 'status=none'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', () => resolve(undefined));
    child.on('close', (code) => resolve(code === 0 ? Buffer.concat(chunks) : undefined));
  });
}

interface Piece {
  readonly digest: string;
  readonly size: number;
  /** Read through the page cache (a filesystem without O_DIRECT), said in the notes. */
  readonly cached: boolean;
}

/**
 * Data written into volumes (or onto devices) that faults must not change. A fault freezes the set
 * when it starts, so only data written before the fault is checked, and data the test itself lets
 * go of later (a released volume) is taken out between faults, never inside one.
 */
export class KeptData implements DataAtStake {
  private readonly pieces = new Map<string, Piece>();

  /** Writes `bytes` random bytes to `file`, fsynced, and keeps them. */
  async write(file: string, bytes: number): Promise<void> {
    const data = randomBytes(bytes);
    await writeFile(file, data);
    await run('sync', ['-f', file]);
    this.pieces.set(file, { digest: sha(data), size: data.length, cached: false });
  }

  /** Keeps what `path` (a file or a device) holds now, as read with O_DIRECT. */
  async keepAsIs(path: string): Promise<void> {
    const now = await readDirect(path);
    if (!now) throw new Error(`cannot read ${path} to keep it`);
    this.pieces.set(path, { digest: sha(now), size: now.length, cached: false });
  }

  /** Keeps a file on a filesystem without O_DIRECT (tmpfs): read back through the page cache. */
  keepCached(file: string, data: Buffer): void {
    this.pieces.set(file, { digest: sha(data), size: data.length, cached: true });
  }

  /** Lets go of the data under `prefix` (a volume released on purpose, between faults). */
  release(prefix: string): void {
    for (const p of [...this.pieces.keys()]) if (p === prefix || p.startsWith(`${prefix}/`)) this.pieces.delete(p);
  }

  get size(): number {
    return [...this.pieces.values()].reduce((s, p) => s + p.size, 0);
  }

  freeze(): FrozenData {
    const frozen = new Map(this.pieces);
    return {
      async readBack() {
        let checked = 0;
        let lost = 0;
        const notes: string[] = [];
        for (const [path, piece] of frozen) {
          let why = '';
          const now = piece.cached
            ? await readFile(path).catch((err: unknown) => {
                why = `: ${errorMessage(err)}`;
                return undefined;
              })
            : await readDirect(path);
          checked += piece.size;
          if (!now) {
            lost += piece.size;
            notes.push(`${path} cannot be read${why}`);
          } else if (sha(now) !== piece.digest) {
            lost += piece.size;
            notes.push(`${path} differs (${now.length} bytes, ${piece.size} written)`);
          }
        }
        return { checked, lost, notes };
      },
    };
  }
}

/** Each piece of `sets` checked together (data in several places). */
export function allOf(...sets: DataAtStake[]): DataAtStake {
  return {
    freeze() {
      const frozen = sets.map((s) => s.freeze());
      return {
        async readBack() {
          const out = { checked: 0, lost: 0, notes: [] as string[] };
          for (const f of frozen) {
            const r = await f.readBack();
            out.checked += r.checked;
            out.lost += r.lost;
            out.notes.push(...r.notes);
          }
          return out;
        },
      };
    },
  };
}

// ---- inventory ------------------------------------------------------------------------------

/** Objects of `rt` (by name), optionally narrowed by a label selector and a filter. */
export function apiObjects(
  client: KubeClient,
  rt: ResourceType,
  opts: { labelSelector?: string; filter?: (o: KubeObject) => boolean; kind?: string } = {},
): InventoryProbe {
  return {
    kind: opts.kind ?? rt.kind,
    async list() {
      const items = (await client.list<KubeObject>(rt, opts.labelSelector ? { labelSelector: opts.labelSelector } : {})).items;
      return items.filter((o) => !opts.filter || opts.filter(o)).map((o) => o.metadata.name!);
    },
  };
}

/** The driver objects the operator deploys (CSIDriver, its Deployments and DaemonSets), by their managed-by label. */
export function driverObjects(client: KubeClient): InventoryProbe[] {
  const labelSelector = Object.entries(MANAGED_BY)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return [CSI_DRIVERS, DEPLOYMENTS, DAEMON_SETS].map((rt) => ({
    kind: rt.kind,
    list: async () =>
      (await client.list(rt, { labelSelector })).items
        .map((o) => `${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`)
        .sort(),
  }));
}

/** NodeDisk claims: "disk→pool" for every NodeDisk matching `labelSelector` that a pool claims. */
export function nodeDiskClaims(client: KubeClient, rt: ResourceType, labelSelector: string): InventoryProbe {
  return {
    kind: 'NodeDisk claim',
    async list() {
      const items = (await client.list<KubeObject & { spec?: { claim?: { pool?: string } } }>(rt, { labelSelector })).items;
      return items.filter((d) => d.spec?.claim?.pool).map((d) => `${d.metadata.name}→${d.spec!.claim!.pool}`);
    },
  };
}

function mountLines(): Promise<string[]> {
  return readFile('/proc/self/mountinfo', 'utf8').then((t) => t.split('\n').filter(Boolean));
}

/** Mounts whose target lies under one of `dirs` or whose source is one of `devices()`, as "source target". */
export function mounts(dirs: readonly string[], devices: () => readonly string[] = () => []): InventoryProbe {
  return {
    kind: 'mount',
    async list() {
      const devs = devices();
      const out: string[] = [];
      for (const line of await mountLines()) {
        const [left, right] = line.split(' - ');
        const target = left.split(' ')[4].replace(/\\040/g, ' ');
        const source = right.split(' ')[1];
        if (dirs.some((d) => target === d || target.startsWith(`${d}/`)) || devs.includes(source)) out.push(`${source} ${target}`);
      }
      return out.sort();
    },
  };
}

/** Loop devices attached over files under `dirs` (the test's backing files, and volume files in its pools). */
export function loopDevices(dirs: () => readonly string[]): InventoryProbe {
  return {
    kind: 'loop device',
    async list() {
      const out: string[] = [];
      const roots = dirs();
      for (const name of await readdir('/sys/block')) {
        if (!name.startsWith('loop')) continue;
        const backing = (await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(ifNotFound(''))).trim();
        if (backing && roots.some((d) => backing.startsWith(`${d}/`))) out.push(`/dev/${name} ${backing}`);
      }
      return out.sort();
    },
  };
}

/** Entries of a pool's volumes directory (btrfs subvolumes, one per PoolVolume). */
export function subvolumes(dir: () => string): InventoryProbe {
  return { kind: 'subvolume', list: async () => (await readdir(dir()).catch(ifNotFound([] as string[]))).sort() };
}

interface Proc {
  readonly pid: number;
  readonly ppid: number;
  readonly argv: string[];
  /** Seconds since the process started. */
  readonly ageSeconds: number;
}

/** A child of a Stowage process younger than this is work in progress (lsblk, blkid), not something left behind. */
const LINGERING_CHILD_SECONDS = 10;
const CLOCK_TICKS = 100;

async function processTable(): Promise<Proc[]> {
  const out: Proc[] = [];
  const uptime = Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0]);
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    // A process that ended since readdir has no /proc entry left to read: it is simply not listed.
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => ''); // ended since: listed without argv
    // After the command's ")": state, ppid, … field 22 (starttime, in clock ticks) is the 20th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields.length < 20) continue;
    out.push({
      pid: Number(name),
      ppid: Number(fields[1]),
      argv: cmd.split('\0').filter(Boolean),
      ageSeconds: uptime - Number(fields[19]) / CLOCK_TICKS,
    });
  }
  return out;
}

/**
 * Stowage processes this test run started (children of this process running the CLI) and every
 * process below them that has lingered for 10 s (a hung mkfs, losetup or mount; a younger one is a
 * discovery pass at work), as "stowage node", "stowage node/mkfs.btrfs"; a process restarted on
 * purpose keeps its id, a second one gets "#2".
 */
export function processes(): InventoryProbe {
  return {
    kind: 'process',
    async list() {
      const table = await processTable();
      const ids = new Map<number, string>();
      const stowage = table.filter((p) => p.ppid === process.pid && (p.argv[1] ?? '').endsWith('/cli/main.js'));
      for (const p of stowage) ids.set(p.pid, `stowage ${p.argv[2] ?? ''}`);
      let grew = true;
      while (grew) {
        grew = false;
        for (const p of table) {
          if (ids.has(p.pid) || !ids.has(p.ppid)) continue;
          ids.set(p.pid, `${ids.get(p.ppid)!.split('/')[0]}/${basename(p.argv[0] ?? '?')}`);
          grew = true;
        }
      }
      const old = new Set(table.filter((p) => p.ageSeconds >= LINGERING_CHILD_SECONDS).map((p) => p.pid));
      const listed = [...ids].filter(([pid, id]) => !id.includes('/') || old.has(pid)).map(([, id]) => id);
      const seen = new Map<string, number>();
      return listed.sort().map((id) => {
        const n = (seen.get(id) ?? 0) + 1;
        seen.set(id, n);
        return n === 1 ? id : `${id} #${n}`;
      });
    },
  };
}

// ---- survival -------------------------------------------------------------------------------

/** Every named process (or in-process server) still up. */
export function processesUp(up: Record<string, () => boolean | Promise<boolean>>): SurvivalCheck {
  return async () => {
    const out: string[] = [];
    for (const [name, alive] of Object.entries(up)) {
      const why = await Promise.resolve(alive()).then(
        (ok) => (ok ? undefined : 'is not running'),
        (err: unknown) => `cannot be checked: ${errorMessage(err)}`,
      );
      if (why) out.push(`${name} ${why}`);
    }
    return out;
  };
}

interface Conditioned {
  status?: { conditions?: { type: string; status: string; reason?: string }[] };
}

/**
 * The object `name` of `rt` has the conditions `want` (type → status, or "status/reason"), within
 * `timeoutMs` (recovery may take a moment; the last value read is reported).
 */
export function conditionsReach(
  client: KubeClient,
  rt: ResourceType,
  name: () => string,
  want: Record<string, string>,
  timeoutMs = 60_000,
): SurvivalCheck {
  return async () => {
    const deadline = Date.now() + timeoutMs;
    let wrong: string[];
    for (;;) {
      const o = await client.getIfExists<KubeObject & Conditioned>(rt, name());
      wrong = o
        ? Object.entries(want).flatMap(([type, expected]) => {
            const c = o.status?.conditions?.find((x) => x.type === type);
            const got = expected.includes('/') ? `${c?.status}/${c?.reason}` : String(c?.status);
            return got === expected ? [] : [`${rt.kind} ${name()} ${type}=${got}, expected ${expected}`];
          })
        : [`${rt.kind} ${name()} does not exist`];
      if (wrong.length === 0 || Date.now() > deadline) return wrong;
      await new Promise((r) => setTimeout(r, 250));
    }
  };
}

/** Conditions of every object of `rt` matching `labelSelector` (the disks of a node). */
export function allConditionsReach(
  client: KubeClient,
  rt: ResourceType,
  labelSelector: string,
  want: Record<string, string>,
  timeoutMs = 60_000,
): SurvivalCheck {
  return async () => {
    const names = (await client.list<KubeObject>(rt, { labelSelector })).items.map((o) => o.metadata.name!);
    const out: string[] = [];
    for (const n of names) out.push(...(await conditionsReach(client, rt, () => n, want, timeoutMs)()));
    return out;
  };
}
