import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { PERSISTENT_VOLUME_CLAIMS } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import { STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { StoragePool } from '../../src/crds/storagepool.js';
import { waitFor } from '../support/cluster.js';
import { PLUGIN, PluginWorld, plugin, runProgram } from './support.js';

type Pool = StoragePool & KubeObject;
const COLUMNS = 200;
const ROWS = 20;

/**
 * `kubectl stowage pools --watch` in a real terminal: a tmux pane (its own tmux server, on its own
 * socket, killed afterwards) runs the plugin while claims fill a pool of two real disks; the
 * captured screen must follow: volumes 0/2 → 1/2 → 2/2, the bar filling, and the low-capacity
 * warning. A failure prints the captured screen.
 */
describe('kubectl stowage pools --watch in a terminal (tmux)', function () {
  this.timeout(300_000);
  let world: PluginWorld;
  let pool: string;
  let socketDir = '';
  // A socket of our own (-S in a temp dir), so the server is ours alone and nothing stays in /tmp/tmux-UID.
  const tmux = (...args: string[]) =>
    runProgram('tmux', ['-f', '/dev/null', '-S', path.join(socketDir, 'tmux.sock'), ...args], { TERM: 'xterm-256color' }, 20_000);
  const screen = async (escapes = false): Promise<string> => {
    const r = await tmux('capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', 'watch:main');
    if (r.code !== 0) throw new Error(`tmux capture-pane failed: ${r.stderr}`);
    return r.stdout;
  };
  /** Waits until the screen shows what `predicate` wants; on timeout the error carries the screen. */
  const waitForScreen = async (what: string, predicate: (s: string) => boolean, timeoutMs = 60_000): Promise<string> => {
    let last = '';
    try {
      return await waitFor(
        what,
        async () => {
          last = await screen();
          return predicate(last) ? last : undefined;
        },
        timeoutMs,
        250,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- captured tmux pane ---\n${last}\n--- end of pane ---`, { cause: err });
    }
  };
  const poolRow = (s: string): string => s.split('\n').find((l) => l.startsWith(pool)) ?? '';
  const filledCells = (s: string): number => [...(/\[([█▒░]+)\]/.exec(poolRow(s))?.[1] ?? '')].filter((c) => c !== '░').length;

  before(async function () {
    this.timeout(240_000);
    socketDir = await mkdtemp(path.join(tmpdir(), 'stowage-kp-tmux-'));
    world = await PluginWorld.start({ nodes: [[1024, 1024, 256]] });
    pool = `${world.prefix}-fill`;
    await world.applyPool(pool, {
      mode: 'Local',
      disks: { selector: { matchLabels: { 'stowage.dev/node': world.nodes[0] } }, minSize: '512Mi' },
      local: { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' },
      capacity: { lowWatermarkPercent: 40 },
    });
    await waitFor(
      'the pool to offer 2 volumes',
      async () => (await world.admin.get<Pool>(STORAGE_POOLS, pool)).status?.counts?.volumes?.available === 2,
      120_000,
    );
    const command = `STOWAGE_LOG_LEVEL=silent ${process.execPath} ${PLUGIN} --kubeconfig ${world.kubeconfig} pools --watch`;
    const started = await tmux('new-session', '-d', '-s', 'watch', '-n', 'main', '-x', String(COLUMNS), '-y', String(ROWS), command);
    if (started.code !== 0) throw new Error(`tmux new-session failed: ${started.stderr}`);
  });

  after(async function () {
    this.timeout(180_000);
    if (socketDir) await tmux('kill-server'); // our own server only: ends the pane and the plugin in it
    await world?.close();
    if (socketDir) await rm(socketDir, { recursive: true, force: true });
  });

  it('the screen updates as the pool fills: volumes, the bar, and the low-capacity warning', async () => {
    const first = await waitForScreen('the pool with 0 of 2 volumes bound', (s) => /\s0\/2\s/.test(poolRow(s)) && s.includes('--watch'));
    expect(first).to.match(/^kubectl stowage pools --watch {2}\(updated \d\d:\d\d:\d\d UTC; Ctrl-C stops\)/);
    expect(first).to.match(/NAME\s+MODE\s+REPLICAS\s+NODES\s+DISKS\s+VOLUMES\s+USED\/ALLOC\/AVAIL\s+CAPACITY\s+READY\s+MESSAGE/);
    expect(filledCells(first)).to.equal(0);

    await world.claim('one', pool, '100Mi', world.nodes[0]);
    const half = await waitForScreen('1 of 2 volumes bound', (s) => /\s1\/2\s/.test(poolRow(s)));
    const halfCells = filledCells(half);
    expect(halfCells, half).to.be.greaterThan(0);

    await world.claim('two', pool, '100Mi', world.nodes[0]);
    const full = await waitForScreen(
      '2 of 2 volumes bound and the low-capacity warning',
      (s) => /\s2\/2\s/.test(poolRow(s)) && poolRow(s).includes('CapacityAvailable'),
    );
    expect(filledCells(full), full).to.be.greaterThan(halfCells);
    expect(poolRow(full), full).to.match(/\/0B\s+\[[█▒]+\]/, 'nothing available: the bar is full');
    // Colour on a terminal: the pane's cells carry SGR colour codes.
    expect(await screen(true)).to.match(/\x1b\[[0-9;]*3[1-3]m/); // eslint-disable-line no-control-regex -- the ANSI colour escape is what is checked
    expect(await world.admin.getIfExists(PERSISTENT_VOLUME_CLAIMS, 'two', world.namespace)).to.not.equal(undefined);
  });

  it('NO_COLOR turns colour off on a terminal too', async () => {
    const r = await tmux(
      'new-window',
      '-t',
      'watch',
      '-n',
      'plain',
      `NO_COLOR=1 STOWAGE_LOG_LEVEL=silent ${process.execPath} ${PLUGIN} --kubeconfig ${world.kubeconfig} pools; sleep 120`,
    );
    expect(r.code, r.stderr).to.equal(0);
    let last: string;
    try {
      last = await waitFor(
        'the pools table in the NO_COLOR window',
        async () => {
          const s = await tmux('capture-pane', '-p', '-e', '-t', 'watch:plain');
          return s.stdout.includes(pool) ? s.stdout : undefined;
        },
        30_000,
        250,
      );
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\n--- captured tmux pane ---\n${(await tmux('capture-pane', '-p', '-t', 'watch:plain')).stdout}`,
        { cause: err },
      );
    }
    expect(last, last).to.not.match(/\x1b\[[0-9;]*3[0-9]m/); // eslint-disable-line no-control-regex -- the ANSI colour escape is what is checked
  });

  it('why, on the full pool: LowCapacity; a Dynamic pool without its engine: Preparing with too few disks; the pool deleted under its claims: DeletionBlocked', async () => {
    await waitFor(
      'the pool to report LowCapacity',
      async () => (await world.admin.get<Pool>(STORAGE_POOLS, pool)).status?.conditions?.some((c) => c.reason === 'LowCapacity'),
      30_000,
    );
    const low = await plugin(world.kubeconfig, ['why', pool]);
    expect(low.stdout, low.stderr).to.include("Available capacity is below the pool's low watermark").and.include('(LowCapacity:');

    // The 256Mi disk is below the Local pool's minSize: a Dynamic pool wanting two copies claims it,
    // and the in-process agent runs without the Dynamic engine, so it stays unprepared.
    const repl = `${world.prefix}-repl`;
    await world.applyPool(repl, {
      mode: 'Dynamic',
      disks: { selector: { matchLabels: { 'stowage.dev/node': world.nodes[0] } } },
      replicated: { size: 2 },
    });
    await waitFor(
      'the Dynamic pool to report Preparing and TooFewDisks',
      async () => {
        const p = await world.admin.get<Pool>(STORAGE_POOLS, repl);
        return p.status?.conditions?.some((c) => c.reason === 'Preparing') && p.status.conditions.some((c) => c.reason === 'TooFewDisks');
      },
      60_000,
    );
    const preparing = await plugin(world.kubeconfig, ['why', repl]);
    expect(preparing.stdout, preparing.stderr).to.include(`${repl} is not Ready: preparing`);
    expect(preparing.stdout).to.include('Disks are claimed and the node agents are preparing them').and.include('(Preparing:');
    expect(preparing.stdout)
      .to.include('Replication is not satisfiable: some nodes have fewer disks than replicated.size')
      .and.include('(TooFewDisks:');
    expect(preparing.stdout).to.match(/Disk \S+ on \S+: no Dynamic engine: this agent runs without the Dynamic-pool engine\./);

    await world.admin.delete(STORAGE_POOLS, pool);
    await waitFor(
      'the pool to report DeletionBlocked',
      async () => (await world.admin.get<Pool>(STORAGE_POOLS, pool)).status?.conditions?.some((c) => c.reason === 'DeletionBlocked'),
      30_000,
    );
    const blocked = await plugin(world.kubeconfig, ['why', pool]);
    expect(blocked.stdout, blocked.stderr)
      .to.include(`${pool} is not Ready: deletion blocked`)
      .and.include('The pool is being deleted (since');
    expect(blocked.stdout)
      .to.include('Stowage deletes nothing a workload uses, so delete those claims to let it go')
      .and.include(`${world.namespace}/one`);
    await waitForScreen('the watched pool being deleted', (s) => poolRow(s).includes('the pool is being deleted'));
  });
});
