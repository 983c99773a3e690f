/**
 * Ceph daemons as foreground processes: the argument vectors (pure, the same ones a pod's command
 * will carry) and a small supervisor handle to start, stop and kill one by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import * as path from 'node:path';
import { logger } from '../../util/logger.js';
import { cephPaths } from './cluster-config.js';
import { crushLocation, type CrushPlace } from './crush.js';

const log = logger('ceph-daemons');

/** A daemon that ignores SIGTERM this long is killed. */
const STOP_GRACE_MS = 30_000;

export type CephDaemonKind = 'mon' | 'mgr' | 'osd';

/** The command line of a monitor: foreground, its own data dir from the conf. */
export function monDaemonArgs(dataRoot: string, id: string): string[] {
  return ['ceph-mon', '-f', '-c', cephPaths(dataRoot).conf, '-i', id];
}

export function mgrDaemonArgs(dataRoot: string, id: string): string[] {
  return ['ceph-mgr', '-f', '-c', cephPaths(dataRoot).conf, '-i', id];
}

/** An OSD, always with the same CRUSH location, so a restart never moves it in the map. */
export function osdDaemonArgs(dataRoot: string, id: number, place: CrushPlace): string[] {
  return ['ceph-osd', '-f', '-c', cephPaths(dataRoot).conf, '-i', String(id), '--crush-location', crushLocation(place)];
}

/** One running daemon, started by this process and known by its PID. */
export class CephDaemon {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private running = true;

  private constructor(
    readonly kind: CephDaemonKind,
    readonly id: string,
    readonly argv: readonly string[],
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.running = false;
        resolve({ code, signal });
      });
    });
  }

  /** Starts `argv` in the foreground, its stdout and stderr appended to a file in the cluster's log dir. */
  static async start(kind: CephDaemonKind, id: string, argv: readonly string[], dataRoot: string): Promise<CephDaemon> {
    const logDir = cephPaths(dataRoot).logDir;
    await mkdir(logDir, { recursive: true });
    const out = await open(path.join(logDir, `${kind}.${id}.stdout.log`), 'a');
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', out.fd, out.fd] });
    // Listen before any await: 'spawn' fires on the next turn of the event loop.
    const spawnedOrFailed = new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (e) => resolve(e));
    });
    const spawned = await spawnedOrFailed;
    await out.close();
    if (spawned) throw new Error(`cannot start ${argv[0]}: ${spawned.message}; is Debian's ceph-${kind} installed?`);
    log.info({ kind, id, pid: child.pid }, 'ceph daemon started');
    return new CephDaemon(kind, id, argv, child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves when the process is gone. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }

  /** kill -9, as a node dying would: resolves when the process is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Starts monitor `id` (its store made by mkfsMonitor). */
export function startMonitor(dataRoot: string, id: string): Promise<CephDaemon> {
  return CephDaemon.start('mon', id, monDaemonArgs(dataRoot, id), dataRoot);
}

/** Starts manager `id` (its keyring written by prepareManager). */
export function startManager(dataRoot: string, id: string): Promise<CephDaemon> {
  return CephDaemon.start('mgr', id, mgrDaemonArgs(dataRoot, id), dataRoot);
}
