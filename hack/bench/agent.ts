/**
 * `npm run bench:agent`: the node agent over 64 loop devices on a local control plane.
 *
 * Prints, each against a baseline measured in the same run:
 *   - the first discovery pass (creates 64 NodeDisks) and the unchanged second pass: time and API
 *     writes (targets: < 200 ms and 0 writes), against the bare host probing the pass builds on
 *     (lsblk + blkid + wipefs + mountinfo, no API);
 *   - preparation time per disk (claim written → Prepared=True reported, ext4), against mkfs.ext4
 *     + mount run directly on an identical fresh loop device.
 * Needs root. Uses $KUBECONFIG when set, else starts (and stops) a local control plane.
 * Leaves no loop device, mount, file or NodeDisk behind.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { installCrds } from '../../src/crds/install.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { KubeClient } from '../../src/kube/client.js';
import { startNodeAgent } from '../../src/node/agent/agent.js';
import { discover } from '../../src/node/agent/discovery.js';
import { execOk } from '../../src/host/exec.js';
import { ControlPlane } from '../../test/cluster/control-plane.js';
import { LoopDevices } from '../../test/support/loop-devices.js';

const DISKS = Number(process.env.BENCH_DISKS ?? 64);
const PREPARE = Number(process.env.BENCH_PREPARE ?? 8);
const DISK_BYTES = 256 * 1024 * 1024;
const UNCHANGED_PASSES = 7;
const NODE = 'bench-agent-node';

const ms = (n: number): string => `${n.toFixed(1)} ms`;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const line = (s = ''): void => void process.stdout.write(`${s}\n`);

async function main(): Promise<void> {
  let cp: ControlPlane | undefined;
  let kubeconfig = process.env.KUBECONFIG;
  if (!kubeconfig) {
    line('starting a local control plane …');
    cp = await ControlPlane.start({});
    kubeconfig = cp.kubeconfigPath;
  }
  const client = await KubeClient.load({ kubeconfig, userAgent: 'stowage-bench' });
  const loops = new LoopDevices();
  const work = await mkdtemp(path.join(tmpdir(), 'stowage-bench-agent-'));
  const root = path.join(work, 'root');
  let agent: Awaited<ReturnType<typeof startNodeAgent>> | undefined;
  try {
    await installCrds(client, 'stowage-bench');
    line(`creating ${DISKS} sparse loop devices of ${DISK_BYTES / 1024 ** 2} MiB …`);
    for (let i = 0; i < DISKS; i++) await loops.create(DISK_BYTES);
    const devices = loops.devices();

    // Baseline: the host probing alone.
    const probeTimes: number[] = [];
    for (let i = 0; i < UNCHANGED_PASSES; i++) {
      const t = performance.now();
      const d = await discover({ allowDevices: devices, discoveryDirs: [] }); // no cache: every device probed
      probeTimes.push(performance.now() - t);
      if (d.disks.length !== DISKS) throw new Error(`discovery saw ${d.disks.length} of ${DISKS} devices`);
    }

    let writes = 0;
    client.observe((call) => {
      if (call.resource === 'nodedisks' && !['get', 'list', 'watch'].includes(call.verb)) writes += 1;
    });
    const t0 = performance.now();
    agent = await startNodeAgent({
      client,
      nodeName: NODE,
      allowDevices: devices,
      root,
      udev: false,
      discoveryIntervalMs: 3_600_000,
      healthIntervalMs: 3_600_000,
    });
    const firstMs = performance.now() - t0;
    const firstWrites = writes;
    const passes = [];
    for (let i = 0; i < UNCHANGED_PASSES; i++) passes.push(await agent.pass());
    const unchangedMs = passes.map((p) => p.durationMs);
    const unchangedWrites = passes.reduce((n, p) => n + p.writes, 0);

    line('');
    line(`discovery over ${DISKS} loop devices`);
    line(
      `  baseline: host probing without the agent's cache (lsblk, blkid of every device, mountinfo, sysfs)   median ${ms(median(probeTimes))}`,
    );
    line(`  first pass (start-up: informer sync + create ${DISKS} NodeDisks)              ${ms(firstMs)}, ${firstWrites} API writes`);
    line(
      `  unchanged pass (${UNCHANGED_PASSES} runs)     median ${ms(median(unchangedMs))}  min ${ms(Math.min(...unchangedMs))}  max ${ms(Math.max(...unchangedMs))}  API writes ${unchangedWrites}   (target < 200 ms, 0 writes)`,
    );
    line(`  ratio unchanged pass ÷ host probing: ${(median(unchangedMs) / median(probeTimes)).toFixed(2)}`);

    // Preparation: claim PREPARE disks at once, as the operator would.
    const disks = (await client.list<NodeDisk>(NODE_DISKS, { labelSelector: `stowage.dev/node=${NODE}` })).items.slice(0, PREPARE);
    const claimedAt = new Map<string, number>();
    const preparedAt = new Map<string, number>();
    const tClaim = performance.now();
    for (const d of disks) {
      await client.apply(
        NODE_DISKS,
        {
          apiVersion: 'stowage.dev/v1alpha1',
          kind: 'NodeDisk',
          metadata: { name: d.metadata.name },
          spec: { claim: { pool: 'bench', mode: 'Local', volumeMode: 'Filesystem', fsType: 'ext4' } },
        },
        { fieldManager: 'stowage-operator' },
      );
      claimedAt.set(d.metadata.name, performance.now());
    }
    const deadline = Date.now() + 300_000;
    while (preparedAt.size < disks.length && Date.now() < deadline) {
      for (const d of (await client.list<NodeDisk>(NODE_DISKS, { labelSelector: `stowage.dev/node=${NODE}` })).items) {
        const name = d.metadata.name;
        if (claimedAt.has(name) && !preparedAt.has(name) && d.status?.conditions?.some((c) => c.type === 'Prepared' && c.status === 'True'))
          preparedAt.set(name, performance.now());
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const wall = Math.max(...preparedAt.values()) - tClaim;
    const perDisk = [...preparedAt].map(([n, t]) => t - claimedAt.get(n)!);

    // Baseline: mkfs.ext4 + mount straight on fresh identical devices, one after another.
    const baseline: number[] = [];
    const extra = new LoopDevices();
    try {
      for (let i = 0; i < 3; i++) {
        const dev = await extra.create(DISK_BYTES);
        const mnt = path.join(work, `baseline-${i}`);
        await mkdir(mnt, { recursive: true });
        const t = performance.now();
        await execOk('mkfs.ext4', ['-F', '-q', '-m', '0', dev.device]);
        await execOk('mount', ['-t', 'ext4', dev.device, mnt]);
        baseline.push(performance.now() - t);
        await execOk('umount', [mnt]);
      }
    } finally {
      await extra.cleanup();
    }
    line('');
    line(`preparation of ${disks.length} claimed disks (ext4, ${DISK_BYTES / 1024 ** 2} MiB each), claimed at once`);
    line(`  baseline: mkfs.ext4 + mount run directly                        median ${ms(median(baseline))} per disk`);
    line(
      `  agent: claim written → Prepared=True reported                   median ${ms(median(perDisk))} per disk (min ${ms(Math.min(...perDisk))}, max ${ms(Math.max(...perDisk))}); all ${disks.length} in ${ms(wall)}`,
    );
    line(
      `  ratio agent ÷ baseline per disk: ${(median(perDisk) / median(baseline)).toFixed(2)}; wall time per disk: ${ms(wall / disks.length)}`,
    );
    if (preparedAt.size < disks.length)
      line(`  WARNING: only ${preparedAt.size} of ${disks.length} disks were prepared within the deadline`);
  } finally {
    await agent?.stop();
    await loops.cleanup();
    for (const l of (await readFile('/proc/self/mounts', 'utf8')).split('\n')) {
      const target = l.split(' ')[1];
      if ((target as string | undefined)?.startsWith(work)) await execOk('umount', ['-l', target]).catch(() => undefined);
    }
    await rm(work, { recursive: true, force: true });
    const left = await client
      .list<NodeDisk>(NODE_DISKS, { labelSelector: `stowage.dev/node=${NODE}` })
      .catch(() => ({ items: [] as NodeDisk[] }));
    for (const d of left.items) await client.delete(NODE_DISKS, d.metadata.name).catch(() => undefined);
    client.close();
    await cp?.stop();
  }
}

main().catch((err) => {
  process.stderr.write(`bench:agent failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
