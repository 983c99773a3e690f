/**
 * A real Ceph cluster on this machine for tests: one monitor and one manager on loopback ports of
 * their own, and "played nodes" (CRUSH hosts) each with OSDs on loop devices over sparse files the
 * test created. Built only from the engine's own functions (src/node/ceph/), torn down by PID.
 */
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { CephCli, waitUntil } from '../../src/node/ceph/ceph-cli.js';
import { generateClusterKeys, mkfsMonitor, prepareManager, writeClusterFiles } from '../../src/node/ceph/bootstrap.js';
import { cephPaths, type CephClusterConfig } from '../../src/node/ceph/cluster-config.js';
import { startManager, startMonitor, type CephDaemon } from '../../src/node/ceph/daemons.js';
import { createOsd, startOsd, type OsdRecord } from '../../src/node/ceph/osd.js';
import { poolHealth, type CephPoolHealth, type PoolHealthInput } from '../../src/node/ceph/pool-health.js';
import { LoopDevices, type LoopDevice } from '../support/loop-devices.js';

const run = promisify(execFile);

export interface PlayedOsd {
  readonly node: string;
  readonly record: OsdRecord;
  readonly loop: LoopDevice;
  daemon: CephDaemon;
}

/** A free TCP port on loopback (the kernel picks; closed again before Ceph binds it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Resident memory of a process in MiB, from /proc. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return Math.round(kb / 1024);
}

export class TestCephCluster {
  readonly loops = new LoopDevices();
  readonly osds: PlayedOsd[] = [];
  mon?: CephDaemon;
  mgr?: CephDaemon;
  cli!: CephCli;
  config!: CephClusterConfig;
  dataRoot?: string;

  /** Every daemon this cluster started, by PID (including ones already stopped). */
  readonly startedPids: number[] = [];

  async start(): Promise<void> {
    this.dataRoot = await mkdtemp(path.join(tmpdir(), 'stowage-ceph-'));
    this.config = { fsid: randomUUID(), monitors: [{ name: 'a', ip: '127.0.0.1', port: await freePort() }], dataRoot: this.dataRoot };
    this.cli = new CephCli(this.dataRoot);
    const keys = await generateClusterKeys();
    await writeClusterFiles(this.config, keys);
    await mkfsMonitor(this.config, keys, 'a');
    this.mon = this.track(await startMonitor(this.dataRoot, 'a'));
    await this.cli.waitForQuorum(60_000);
    await prepareManager(this.cli, this.dataRoot, 'x');
    this.mgr = this.track(await startManager(this.dataRoot, 'x'));
  }

  /**
   * The cluster every Ceph test and bench uses: started, played nodes n1..n3 with one OSD of
   * `osdBytes` each, and a replicated pool of size 3, min_size 2 over `pool.failureDomain`, waited
   * until HEALTH_OK with every PG active+clean. Returns the milliseconds it took.
   */
  async startThreeNodePool(pool: PoolHealthInput, osdBytes: number): Promise<number> {
    const start = Date.now();
    await this.start();
    for (const node of ['n1', 'n2', 'n3']) await this.addOsd(node, osdBytes);
    for (const o of this.osds) await this.cli.waitForOsdUp(o.record.id, 120_000);
    await this.cli.applyReplicatedPool({
      name: pool.pool,
      size: 3,
      minSize: 2,
      failureDomain: pool.failureDomain,
      pgNum: 8,
      application: 'rados',
    });
    await this.waitForHealth(
      pool,
      `HEALTH_OK with pool ${pool.pool} active+clean`,
      180_000,
      (h) => h.redundant && h.health === 'HEALTH_OK',
    );
    return Date.now() - start;
  }

  /** A new OSD on a fresh sparse loop device of `sizeBytes`, placed at CRUSH host `node`, started. */
  async addOsd(node: string, sizeBytes: number): Promise<PlayedOsd> {
    const loop = await this.loops.create(sizeBytes);
    const record = await createOsd(this.cli, this.dataRoot!, loop.device);
    const osd: PlayedOsd = { node, record, loop, daemon: this.track(await startOsd(this.dataRoot!, record.id, { node })) };
    this.osds.push(osd);
    return osd;
  }

  async restartOsd(osd: PlayedOsd): Promise<void> {
    osd.daemon = this.track(await startOsd(this.dataRoot!, osd.record.id, { node: osd.node }));
  }

  async health(input: PoolHealthInput): Promise<CephPoolHealth> {
    return poolHealth(await this.cli.observe(input.pool), input);
  }

  /** Waits until `check` holds for the pool's health; returns the milliseconds it took. */
  async waitForHealth(input: PoolHealthInput, what: string, timeoutMs: number, check: (h: CephPoolHealth) => boolean): Promise<number> {
    let last: CephPoolHealth | undefined;
    try {
      return await waitUntil(
        what,
        timeoutMs,
        async () => {
          // A cluster that is settling may not answer for a while: keep the last answer, which the timeout reports.
          last = await this.health(input).catch(() => last);
          return last !== undefined && check(last);
        },
        500,
      );
    } catch (e) {
      throw new Error(
        `${(e as Error).message}; last seen: ${last ? JSON.stringify({ health: last.health, reason: last.reason, pgs: last.pgs.byState, checks: last.checks.map((c) => c.summary) }) : 'nothing'}`,
        { cause: e },
      );
    }
  }

  /** `rados` against this cluster. */
  async rados(args: readonly string[]): Promise<string> {
    const { stdout } = await run('rados', ['-c', cephPaths(this.dataRoot!).conf, ...args], { maxBuffer: 64 * 1024 ** 2, timeout: 120_000 });
    return stdout;
  }

  /** Kills every daemon (kill -9: a test cluster needs no clean shutdown), detaches the loops, removes the files. */
  async teardown(): Promise<void> {
    const daemons = [...this.osds.map((o) => o.daemon), this.mgr, this.mon].filter((d): d is CephDaemon => d !== undefined);
    await Promise.all(daemons.map((d) => d.kill()));
    await this.loops.cleanup();
    if (this.dataRoot) await rm(this.dataRoot, { recursive: true, force: true });
  }

  /** PIDs this cluster started that are still alive (none after teardown). */
  livePids(): number[] {
    return this.startedPids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
  }

  private track(d: CephDaemon): CephDaemon {
    this.startedPids.push(d.pid);
    if (!this.exitHooked) {
      this.exitHooked = true;
      // Last resort if the test process dies before `after`: no daemon outlives it.
      process.on('exit', () => {
        for (const pid of this.livePids()) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      });
    }
    return d;
  }

  private exitHooked = false;
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
