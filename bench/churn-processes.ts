/**
 * The real Stowage processes of `npm run bench:churn` (operator, node daemons, CSI controller) as
 * children of the bench, each restartable after a kill -9, each logging to its own file in the
 * bench's work directory (read back when the run fails; removed with the directory otherwise), and
 * the host-side pictures the bench compares before and after the churn (mounts, loop devices,
 * subvolumes) — scoped to the bench's own directories and files, since the machine is shared.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
/** A process killed for a restart must be gone within this long (SIGKILL cannot be refused). */
const KILL_WAIT_MS = 10_000;

/** One `stowage <command>` child: started, killed with SIGKILL, started again under the same arguments. */
export class StowageProcess {
  private child?: ChildProcess;
  private fd?: number;
  /** How many times the bench killed it with SIGKILL. */
  kills = 0;
  /** Exits the bench did not cause (a crash under churn is a finding). */
  readonly unexpectedExits: string[] = [];

  constructor(
    readonly name: string,
    private readonly args: string[],
    private readonly env: Record<string, string>,
    readonly logFile: string,
  ) {}

  get pid(): number | undefined {
    return this.running ? this.child!.pid : undefined;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} already runs`);
    this.fd ??= openSync(this.logFile, 'a');
    const child = spawn(process.execPath, [CLI, ...this.args], {
      stdio: ['ignore', this.fd, this.fd],
      env: { ...process.env, ...this.env },
    });
    this.child = child;
    child.once('exit', (code, signal) => {
      if (child === this.child && signal !== 'SIGKILL' && signal !== 'SIGTERM')
        this.unexpectedExits.push(`${this.name} exited on its own (${code ?? signal})`);
    });
  }

  /** kill -9, waiting until the process is gone. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await Promise.race([gone, new Promise((r) => setTimeout(r, KILL_WAIT_MS))]);
  }

  async restart(downMs: number): Promise<void> {
    await this.kill9();
    this.kills++;
    await new Promise((r) => setTimeout(r, downMs));
    this.start();
  }

  /** SIGTERM, then SIGKILL after `graceMs`; closes the log. Safe to call twice. */
  async stop(graceMs = 5_000): Promise<void> {
    const child = this.child;
    if (child && this.running) {
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await gone;
      clearTimeout(timer);
    }
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** Synchronous last resort (process exit hook). */
  killSync(): void {
    if (this.running) this.child!.kill('SIGKILL');
  }

  /** The last `lines` lines of its log. */
  tail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8')
        .split('\n')
        .slice(-lines - 1)
        .join('\n');
    } catch {
      return '';
    }
  }
}

/** VmRSS of a process in bytes (0 when it is gone). */
export async function rssBytes(pid: number | undefined): Promise<number> {
  if (!pid) return 0;
  // A process that exited meanwhile has no status: its RSS is 0, as for no pid.
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Mounts whose target lies under `dir` or whose source is one of `devices`, as "source target" (sorted). */
export async function mountsOf(dir: string, devices: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const target = left.split(' ')[4].replace(/\\040/g, ' ');
    const source = right.split(' ')[1];
    if (target === dir || target.startsWith(`${dir}/`) || devices.includes(source)) out.push(`${source} ${target}`);
  }
  return out.sort();
}

/** Loop devices whose backing file lies under `dir`, as "/dev/loopN file" (sorted). */
export async function loopsOver(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir('/sys/block')) {
    if (!name.startsWith('loop')) continue;
    // A loop device detached meanwhile has no backing file: it is then not one of ours.
    const backing = (await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '')).trim();
    if (backing.startsWith(`${dir}/`)) out.push(`/dev/${name} ${backing}`);
  }
  return out.sort();
}

/** Entries of a directory (none when it does not exist). */
export async function entries(dir: string): Promise<string[]> {
  // A directory that is not there (yet, or any more) holds nothing, which is what this reads.
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

export const join = path.join;
