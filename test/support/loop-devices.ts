import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Sparse backing files live under this prefix in the temp dir, so leftovers are recognisable. */
const PREFIX = 'stowage-loop-';

export interface LoopDevice {
  /** `/dev/loopN` */
  readonly device: string;
  /** The sparse file behind it. */
  readonly file: string;
  readonly sizeBytes: number;
}

/**
 * Loop devices over sparse files that the test itself created — the only block devices a test may
 * touch (the "disks are sacred" rule). Every device and file is tracked and removed by `cleanup()`,
 * which tests call from `after`/`afterEach` so nothing is left behind even when a test fails; an
 * exit hook detaches whatever is still attached if the process dies first.
 *
 * @example
 *   const loops = new LoopDevices();
 *   const disk = await loops.create(1024 ** 3);       // 1 GiB, sparse
 *   agentOptions.allowDevices = loops.devices();      // the explicit allow-list
 *   after(() => loops.cleanup());
 */
export class LoopDevices {
  private readonly attached = new Map<string, LoopDevice>();
  private dir?: string;

  /** Creates a sparse file of `sizeBytes` and attaches it (`losetup --find --show`). */
  async create(sizeBytes: number, opts: { sectorSize?: number } = {}): Promise<LoopDevice> {
    this.dir ??= await mkdtemp(path.join(tmpdir(), PREFIX));
    const file = path.join(this.dir, `disk-${this.attached.size}-${Date.now()}.img`);
    const handle = await open(file, 'w');
    await handle.truncate(sizeBytes);
    await handle.close();
    const args = ['--find', '--show', ...(opts.sectorSize ? ['--sector-size', String(opts.sectorSize)] : []), file];
    const { stdout } = await run('losetup', args);
    const loop: LoopDevice = { device: stdout.trim(), file, sizeBytes };
    this.attached.set(loop.device, loop);
    registerExitHook(this);
    return loop;
  }

  /** A new sparse file of `sizeBytes` in this helper's directory, not attached. */
  async file(sizeBytes: number): Promise<string> {
    this.dir ??= await mkdtemp(path.join(tmpdir(), PREFIX));
    const file = path.join(this.dir, `disk-file-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.img`);
    const handle = await open(file, 'wx');
    await handle.truncate(sizeBytes);
    await handle.close();
    return file;
  }

  /**
   * Creates a sparse file at `file`, a path this helper handed out before (inside its directory,
   * e.g. a replacement disk already on an agent's allow-list), and attaches it.
   */
  async createAt(file: string, sizeBytes: number): Promise<LoopDevice> {
    if (!this.dir || path.dirname(file) !== this.dir)
      throw new Error(`${file} is not in this helper's directory ${this.dir ?? '(none yet)'}`);
    const handle = await open(file, 'wx');
    await handle.truncate(sizeBytes);
    await handle.close();
    return this.attach(file);
  }

  /** Detaches `device` (keeping its file), e.g. to simulate a disk that disappears. */
  async detach(device: string): Promise<void> {
    await run('losetup', ['--detach', device]).catch(() => undefined);
    this.attached.delete(device);
  }

  /** Re-attaches an existing backing file, usually under a different /dev/loopN (or at `device`, when free). */
  async attach(file: string, device?: string): Promise<LoopDevice> {
    const { stdout } = await run('losetup', device ? ['--show', device, file] : ['--find', '--show', file]);
    const { size } = await stat(file);
    const loop: LoopDevice = { device: stdout.trim(), file, sizeBytes: size };
    this.attached.set(loop.device, loop);
    return loop;
  }

  devices(): string[] {
    return [...this.attached.keys()];
  }

  /**
   * Unmounts anything still mounted from these devices, detaches them and removes the files.
   * Safe to call twice.
   */
  async cleanup(): Promise<void> {
    for (const { device } of this.attached.values()) {
      await unmountAllFrom(device);
      await run('losetup', ['--detach', device]).catch(() => undefined);
    }
    this.attached.clear();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
    this.dir = undefined;
    live.delete(this);
  }

  /** Synchronous last resort for the exit hook. */
  cleanupSync(): void {
    for (const { device } of this.attached.values()) {
      try {
        execFileSync('umount', ['--all-targets', '--lazy', device], { stdio: 'ignore' });
      } catch {
        // not mounted
      }
      try {
        execFileSync('losetup', ['--detach', device], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    this.attached.clear();
  }
}

/** Unmounts every mount whose source is `device` (deepest first). */
export async function unmountAllFrom(device: string): Promise<void> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[0] === device)
    .map((f) => f[1].replace(/\\040/g, ' '))
    .sort((a, b) => b.length - a.length);
  for (const target of mounts) await run('umount', [target]).catch(() => run('umount', ['--lazy', target]).catch(() => undefined));
}

const live = new Set<LoopDevices>();
let hooked = false;
function registerExitHook(loops: LoopDevices): void {
  live.add(loops);
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const l of live) l.cleanupSync();
  });
}
