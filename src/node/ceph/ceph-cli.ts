/**
 * The thin shell over the `ceph` CLI of one cluster: runs a command against the cluster's conf and
 * admin key, parses its JSON, and gathers one observation for the pool-health facts.
 */
import { exec } from '../../host/exec.js';
import { sleep } from '../../util/sleep.js';
import { cephPaths } from './cluster-config.js';
import { replicatedPoolCommands, type ReplicatedPoolSpec } from './crush.js';
import type { CephObservation } from './pool-health.js';
import { parseCephJson } from './status-json.js';

/** Seconds the CLI waits for a monitor before giving up (a cluster without quorum must not hang a caller). */
const CONNECT_TIMEOUT_S = 20;
const COMMAND_TIMEOUT_MS = 90_000;

export class CephCommandError extends Error {
  override readonly name = 'CephCommandError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export class CephCli {
  readonly conf: string;

  constructor(dataRoot: string) {
    this.conf = cephPaths(dataRoot).conf;
  }

  /** Runs `ceph ARGS` and returns stdout; a non-zero exit throws with Ceph's own message. */
  async run(args: readonly string[], opts: { input?: string } = {}): Promise<string> {
    const full = ['-c', this.conf, '--connect-timeout', String(CONNECT_TIMEOUT_S), ...args];
    const res = await exec('ceph', full, { timeoutMs: COMMAND_TIMEOUT_MS, ...(opts.input !== undefined ? { input: opts.input } : {}) });
    if (res.code !== 0) {
      const why = (res.stderr || res.stdout).trim().slice(0, 600);
      throw new CephCommandError(`ceph ${args.join(' ')} failed (exit ${res.code}): ${why || 'no message'}`, res.code);
    }
    return res.stdout;
  }

  /** Runs `ceph ARGS -f json` and parses the answer. */
  async json(args: readonly string[], opts: { input?: string } = {}): Promise<unknown> {
    return parseCephJson(await this.run([...args, '-f', 'json'], opts), args.join(' '));
  }

  /** One observation of the cluster for `pool`: six read-only commands at once, then the pool's PGs. */
  async observe(pool: string): Promise<CephObservation> {
    const [status, healthDetail, osdTree, osdDump, df, poolStats] = await Promise.all([
      this.json(['status']),
      this.json(['health', 'detail']),
      this.json(['osd', 'tree']),
      this.json(['osd', 'dump']),
      this.json(['df']),
      this.json(['osd', 'pool', 'stats']),
    ]);
    const exists = ((osdDump as { pools?: { pool_name?: string }[] }).pools ?? []).some((p) => p.pool_name === pool);
    const poolPgs = exists ? await this.json(['pg', 'ls-by-pool', pool]) : undefined;
    return { status, healthDetail, osdTree, osdDump, df, poolStats, poolPgs };
  }

  /** Creates the pool and its CRUSH rule, or converges an existing one to `spec`. */
  async applyReplicatedPool(spec: ReplicatedPoolSpec): Promise<void> {
    for (const args of replicatedPoolCommands(spec)) await this.run(args);
  }

  /** Waits until `ceph status` answers (the monitors have a quorum), up to `timeoutMs`. */
  async waitForQuorum(timeoutMs: number): Promise<void> {
    await waitUntil(`the monitors of ${this.conf} to form a quorum`, timeoutMs, async () => {
      // Without a quorum `ceph status` fails or times out: that is the "not yet" this waits through,
      // and waitUntil's timeout says what never came.
      const s = (await this.json(['status']).catch(() => undefined)) as { quorum_names?: string[] } | undefined;
      return (s?.quorum_names?.length ?? 0) > 0;
    });
  }

  /** Waits until the OSD is up in the OSD map. */
  async waitForOsdUp(osdId: number, timeoutMs: number): Promise<void> {
    await waitUntil(`osd.${osdId} to be up`, timeoutMs, async () => {
      // A failed `ceph osd dump` (monitors busy, electing) is a "not yet", like an OSD still down;
      // waitUntil's timeout says what never came.
      const d = (await this.json(['osd', 'dump']).catch(() => undefined)) as { osds?: { osd: number; up: number }[] } | undefined;
      return d?.osds?.some((o) => o.osd === osdId && o.up === 1) ?? false;
    });
  }
}

/** Polls `check` every `pollMs` until it is true; throws naming what it waited for. */
export async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>, pollMs = 500): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(pollMs);
  }
}
