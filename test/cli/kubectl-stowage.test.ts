import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { expect } from 'chai';
import { parse as parseYaml } from 'yaml';
import { PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, PODS } from '../../src/kube/resources.js';
import type { KubeObject, PersistentVolume } from '../../src/kube/types.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { StoragePool } from '../../src/crds/storagepool.js';
import { waitFor } from '../support/cluster.js';
import { PLUGIN, PluginWorld, plugin, pluginOnPath, runProgram, writeRequests, type Disk, type RunResult } from './support.js';
import { ObjectWatch, writeCounts } from '../faults/watch-window.js';

type Pool = StoragePool & KubeObject;
const cond = (o: { status?: { conditions?: { type: string; status: string; reason: string }[] } } | undefined, type: string) =>
  o?.status?.conditions?.find((c) => c.type === type);

/** The table row (one line) that names `needle`. */
function row(out: string, needle: string): string {
  const line = out.split('\n').find((l) => l.includes(needle));
  if (!line) throw new Error(`no row with ${needle} in:\n${out}`);
  return line;
}

/** Asserts on one row; a failure prints the whole view. */
function expectRow(out: string, needle: string): Chai.Assertion {
  return expect(row(out, needle), `row ${needle} of:\n${out}\n`);
}

function ok(r: RunResult, what: string): string {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r.stdout;
}

/**
 * `kubectl stowage` against the real control plane, the operator, and real node agents over loop
 * devices: node 1 has two disks its pool uses (one of them bound to a claim with a pod), one that
 * carries an old ext4 filesystem (ineligible) and one below the pool's minSize; node 2 has a disk
 * whose SMART reports failure and a healthy one, in a second pool; a third pool selects nothing.
 */
describe('kubectl stowage against a real cluster with real node agents', function () {
  this.timeout(300_000);
  let world: PluginWorld;
  let kc: string;
  let ns: string;
  const disk: Record<string, Disk> = {};
  let bound: Disk;
  let spare: Disk;
  let fast: string;
  let slow: string;
  let nvme: string;

  before(async function () {
    this.timeout(240_000);
    world = await PluginWorld.start({
      nodes: [
        [1024, 1024, 1024, 256],
        [1024, 1024],
      ],
      formatted: [[0, 2]],
      failingSmart: true,
    });
    kc = world.kubeconfig;
    ns = world.namespace;
    fast = `${world.prefix}-fast`;
    slow = `${world.prefix}-slow`;
    nvme = `${world.prefix}-nvme`;
    const local = { volumeMode: 'Filesystem', fsType: 'ext4', cleanup: 'quick' };
    await world.applyPool(fast, {
      mode: 'Local',
      disks: { selector: { matchLabels: { 'stowage.dev/node': world.nodes[0] } }, minSize: '512Mi' },
      local,
    });
    await world.applyPool(slow, { mode: 'Local', disks: { selector: { matchLabels: { 'stowage.dev/node': world.nodes[1] } } }, local });
    await world.applyPool(nvme, {
      mode: 'Local',
      disks: { selector: { matchLabels: { 'stowage.dev/media': 'nvme', 'stowage.dev/node': world.nodes[0] } } },
      local,
    });
    for (const [n, d, key] of [
      [0, 0, 'a'],
      [0, 1, 'b'],
      [0, 2, 'old'],
      [0, 3, 'small'],
      [1, 0, 'failing'],
      [1, 1, 'healthy'],
    ] as const)
      disk[key] = await world.diskOf(n, d);
    await waitFor(
      'pool fast to be Ready with 2 volumes',
      async () => {
        const p = await world.admin.get<Pool>(STORAGE_POOLS, fast);
        return cond(p, 'Ready')?.status === 'True' && p.status?.counts?.volumes?.available === 2;
      },
      120_000,
    );
    await waitFor(
      'pool slow to see the failing disk',
      async () => cond(await world.admin.get<Pool>(STORAGE_POOLS, slow), 'DisksHealthy')?.reason === 'DisksUnhealthy',
      120_000,
    );
    await world.claim('data', fast, '100Mi', world.nodes[0]);
    const pvName = (await world.admin.get<KubeObject & { spec: { volumeName: string } }>(PERSISTENT_VOLUME_CLAIMS, 'data', ns)).spec
      .volumeName;
    const pv = await world.admin.get<PersistentVolume>(PERSISTENT_VOLUMES, pvName);
    bound = pv.metadata.labels!['stowage.dev/disk'] === disk.a.metadata.name ? disk.a : disk.b;
    spare = bound === disk.a ? disk.b : disk.a;
    await world.claim('big', fast, '5Gi', world.nodes[0], false);
    await world.admin.create(PERSISTENT_VOLUME_CLAIMS, {
      metadata: { name: 'later', namespace: ns },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: fast, resources: { requests: { storage: '100Mi' } } },
    });
    await waitFor(
      'the scheduler to give up on pod app-big',
      async () => {
        const pod = await world.admin.get<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(
          PODS,
          'app-big',
          ns,
        );
        return pod.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False');
      },
      60_000,
    );
    await waitFor(
      'pool fast to count the bound volume',
      async () => (await world.admin.get<Pool>(STORAGE_POOLS, fast)).status?.counts?.volumes?.bound === 1,
      30_000,
    );
  });

  after(async function () {
    this.timeout(180_000);
    await world?.close();
  });

  const name = (key: string): string => disk[key].metadata.name;

  describe('disks', () => {
    it('one row per disk grouped by node: size, media, health, pool, PV → PVC → pod, and why unused disks are unused', async () => {
      const out = ok(await plugin(kc, ['disks']), 'disks');
      expect(out.split('\n')[0]).to.match(/^NODE\s+DISK\s+SIZE\s+MEDIA\s+MODEL\s+HEALTH\s+POOL\s+VOLUME\s+STATUS$/);
      expect(out).to.not.include('\x1b[', 'no colour into a pipe');
      expectRow(out, name('old')).to.match(/has a filesystem: \/dev\/loop\d+ carries a ext4 signature/);
      expectRow(out, name('small')).to.include('256Mi').and.include('free: blank, no pool selects it');
      expectRow(out, name('failing')).to.include('FAILING').and.include(slow);
      expectRow(out, name('healthy')).to.include('unknown').and.include(slow);
      expectRow(out, bound.metadata.name)
        .to.include(`stowage-${bound.metadata.name} → ${ns}/data → app-data`)
        .and.include('in use')
        .and.include(fast);
      expectRow(out, spare.metadata.name).to.include('ready, no volume bound');
      const lines = out.split('\n').filter((l) => l.startsWith(world.prefix));
      const firstNode2 = lines.findIndex((l) => l.startsWith(world.nodes[1]));
      expect(lines.slice(0, 4).every((l) => l.startsWith(world.nodes[0])) && firstNode2 === 4, out).to.equal(true);
    });

    it('--node and --pool filter; -o wide adds device, serial, schedulable and the raw reasons', async () => {
      const node2 = ok(await plugin(kc, ['disks', '--node', world.nodes[1]]), 'disks --node');
      expect(node2.trim().split('\n')).to.have.length(3);
      const inFast = ok(await plugin(kc, ['disks', '--pool', fast]), 'disks --pool');
      expect(
        inFast
          .trim()
          .split('\n')
          .slice(1)
          .map((l) => l.split(/\s+/)[1])
          .sort(),
      ).to.deep.equal([name('a'), name('b')].sort());
      const wide = ok(await plugin(kc, ['disks', '--node', world.nodes[0], '-o', 'wide']), 'disks -o wide');
      expect(wide.split('\n')[0]).to.match(/DEVICE.*SERIAL.*SCHEDULABLE.*ELIGIBLE\s+PREPARED\s+STATUS/);
      expectRow(wide, name('old')).to.match(/\/dev\/loop\d+.*HasFilesystem\s+NotClaimed/);
      expectRow(wide, bound.metadata.name).to.match(/Claimed\s+Prepared/);
    });

    it('-o json and -o yaml carry the same rows for scripts', async () => {
      const json = JSON.parse(ok(await plugin(kc, ['disks', '--node', world.nodes[1], '-o', 'json']), 'disks -o json'));
      expect(json.kind).to.equal('DiskList');
      const failing = json.items.find((i: { name: string }) => i.name === name('failing'));
      expect(failing).to.deep.include({ node: world.nodes[1], pool: slow });
      expect(failing.health).to.deep.equal({ status: 'False', reason: 'SmartFailed', words: 'FAILING' });
      const yaml = parseYaml(ok(await plugin(kc, ['disks', '--node', world.nodes[1], '-o', 'yaml']), 'disks -o yaml'));
      expect(yaml).to.deep.equal(json);
    });

    it("runs as `kubectl stowage` through kubectl's plugin discovery, with KUBECONFIG from the environment", async () => {
      const bin = await pluginOnPath(world.work);
      const kubectl = path.join(world.cp.binDir, 'kubectl');
      const r = await runProgram(kubectl, ['stowage', 'disks', '--node', world.nodes[1]], {
        PATH: `${bin}:${process.env.PATH}`,
        KUBECONFIG: kc,
      });
      expect(ok(r, 'kubectl stowage disks')).to.include(name('failing'));
      expect(r.stdout).to.equal(ok(await plugin(kc, ['disks', '--node', world.nodes[1]]), 'disks'));
    });
  });

  describe('pools', () => {
    it('mode, replicas, nodes and disks ready/total, volumes, used/allocated/available with a bar, Ready and the first failing condition', async () => {
      const out = ok(await plugin(kc, ['pools'], { COLUMNS: '200' }), 'pools');
      expect(out.split('\n')[0]).to.match(
        /^NAME\s+MODE\s+REPLICAS\s+NODES\s+DISKS\s+VOLUMES\s+USED\/ALLOC\/AVAIL\s+CAPACITY\s+READY\s+MESSAGE$/,
      );
      expectRow(out, fast).to.match(new RegExp(`^${fast}\\s+Local\\s+1\\s+1/1\\s+2/2\\s+1/2\\s+\\S+/\\S+/\\S+\\s+\\[[█▒░]+\\]\\s+True`));
      expectRow(out, slow).to.match(/Local\s+1\s+1\/1\s+1\/2\s+0\/1\s.*True\s+DisksHealthy: unhealthy: /);
      expectRow(out, slow).to.include(name('failing'));
      expectRow(out, nvme).to.match(/0\/0\s+0\/0\s+0\/0\s.*False\s+Ready: no eligible disk matches spec.disks/);
      // Half of fast's capacity is allocated to the bound claim: the bar is half filled.
      const bar = /\[([█▒░]+)\]/.exec(row(out, fast))![1];
      const filled = [...bar].filter((c) => c !== '░').length;
      expect(filled / [...bar].length).to.be.within(0.4, 0.6);
    });

    it('-o yaml and -o json give the figures as numbers of bytes', async () => {
      const doc = parseYaml(ok(await plugin(kc, ['pools', '-o', 'yaml']), 'pools -o yaml'));
      expect(doc.kind).to.equal('PoolList');
      const p = doc.items.find((i: { name: string }) => i.name === fast);
      expect(p).to.deep.include({ mode: 'Local', replicas: 1, ready: 'True', storageClass: fast });
      expect(BigInt(p.capacity.allocated) > 0n, 'allocated > 0').to.equal(true);
      expect(BigInt(p.capacity.allocated) + BigInt(p.capacity.available)).to.equal(BigInt(p.capacity.usable));
      expect(JSON.parse(ok(await plugin(kc, ['pools', '-o', 'json']), 'pools -o json'))).to.deep.equal(doc);
    });
  });

  describe('why', () => {
    it('a disk with a filesystem: not eligible, and what to do', async () => {
      const out = ok(await plugin(kc, ['why', name('old')]), 'why old');
      expect(out).to.include(`${name('old')} is in no pool: has a filesystem`);
      expect(out).to.include('It is not eligible: It carries a filesystem or other signature').and.include('(HasFilesystem: /dev/loop');
    });

    it('an eligible disk no pool selects: each pool says why', async () => {
      const out = ok(await plugin(kc, ['why', `disk/${name('small')}`]), 'why small');
      expect(out).to.include('is in no pool: eligible, but no pool selects it');
      expect(out).to.include(`Pool ${fast} does not select it: it is smaller than disks.minSize 512Mi.`);
      expect(out).to.include(`Pool ${slow} does not select it: its labels do not match disks.selector.`);
    });

    it('a failing disk in a pool, and a disk whose volume is in use', async () => {
      const failing = ok(await plugin(kc, ['why', name('failing')]), 'why failing');
      expect(failing)
        .to.include(`belongs to pool ${slow}`)
        .and.include("SMART predicts the disk's failure: move its data off (drain it) and replace it (SmartFailed:");
      const used = ok(await plugin(kc, ['why', bound.metadata.name]), 'why bound');
      expect(used).to.include(`Its volume stowage-${bound.metadata.name} is bound to claim ${ns}/data, used by pod(s) ${ns}/app-data.`);
      expect(used)
        .to.include('Recent events:')
        .and.match(/Normal\s+Prepared: prepared for pool/);
    });

    it('a pool with no disks: the reason, and what each disk lacks', async () => {
      const out = ok(await plugin(kc, ['why', nvme]), 'why nvme');
      expect(out).to.include(`${nvme} is not Ready: no disks`);
      expect(out).to.include('No eligible disk matches spec.disks (NoDisks:');
      expect(out).to.match(/\d+ disk\(s\) .*are not used because its labels do not match disks.selector\./);
    });

    it('a pool with an unhealthy disk names the disk and its SMART verdict', async () => {
      const out = ok(await plugin(kc, ['why', `pool/${slow}`]), 'why slow');
      expect(out).to.include(`${slow} is Ready`);
      expect(out).to.include("Some of the pool's disks report failing health").and.include('(DisksUnhealthy:');
      expect(out).to.include(`Disk ${name('failing')} on ${world.nodes[1]}: FAILING:`);
    });

    it("a Pending claim: too big for any free disk, with the scheduler's words", async () => {
      const out = ok(await plugin(kc, ['why', 'big', '-n', ns]), 'why big');
      expect(out).to.include(`PersistentVolumeClaim ${ns}/big (class ${fast}, 5Gi)`);
      expect(out).to.match(/Capacity: the largest free volume of pool \S+ on any node has [\d.]+(Mi|Gi), the claim asks for 5Gi/);
      expect(out).to.include(`Pod ${ns}/app-big uses it but is not scheduled: the scheduler says`);
    });

    it('a Pending claim no pod uses, and a Bound one', async () => {
      const later = ok(await plugin(kc, ['why', `pvc/later`, '--namespace', ns]), 'why later');
      expect(later).to.include(`${ns}/later is Pending: waiting for a pod to use it`);
      const data = ok(await plugin(kc, ['why', 'data', '-n', ns]), 'why data');
      expect(data).to.include(`${ns}/data is Bound`).and.include(`on disk ${bound.metadata.name} of node ${world.nodes[0]}`);
    });

    it('an unknown name says where it looked', async () => {
      const r = await plugin(kc, ['why', 'no-such-thing', '-n', ns]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include(
        `nothing named no-such-thing: no NodeDisk, no StoragePool, and no PersistentVolumeClaim in namespace ${ns}`,
      );
    });
  });

  describe("why: the operator's other reasons", () => {
    it('InvalidSpec, DisksClaimedByOtherPools, StorageClassConflict, and a Dynamic claim whose CSI driver is not running', async () => {
      const invalid = `${world.prefix}-invalid`;
      const taken = `${world.prefix}-taken`;
      const clash = `${world.prefix}-clash`;
      const dyn = `${world.prefix}-dyn`;
      const none = { selector: { matchLabels: { 'stowage.dev/test': 'no-disk-has-this' } } };
      // Servers before 1.23 keep no CEL rules, so the operator is the one to refuse this spec.
      await world.applyPool(invalid, { mode: 'Local', disks: none, replicated: { size: 2 } });
      await world.applyPool(taken, {
        mode: 'Local',
        disks: { selector: { matchLabels: { 'stowage.dev/node': world.nodes[1] } } },
        local: { volumeMode: 'Filesystem', fsType: 'ext4' },
      });
      await world.applyPool(clash, { mode: 'Local', disks: none, storageClass: { name: fast } });
      await world.applyPool(dyn, { mode: 'Dynamic', disks: none, storageClass: { volumeBindingMode: 'Immediate' } });
      for (const [pool, reason] of [
        [invalid, 'InvalidSpec'],
        [taken, 'DisksClaimedByOtherPools'],
        [clash, 'StorageClassConflict'],
        [dyn, 'NoDisks'],
      ] as const) {
        await waitFor(
          `pool ${pool} to report ${reason}`,
          async () => cond(await world.admin.get<Pool>(STORAGE_POOLS, pool), 'Ready')?.reason === reason,
          60_000,
        );
      }
      const whyInvalid = ok(await plugin(kc, ['why', invalid]), 'why invalid');
      expect(whyInvalid)
        .to.include(`${invalid} is not Ready: invalid spec`)
        .and.include('The operator rejected the spec; fix the fields named in the message')
        .and.include('replicated.size');
      const whyTaken = ok(await plugin(kc, ['why', taken]), 'why taken');
      expect(whyTaken)
        .to.include('Every disk the pool selects already belongs to another pool')
        .and.match(new RegExp(`2 disk\\(s\\) \\(.+\\) are not used because it belongs to pool ${slow} \\(the older claim wins\\)`));
      const whyClash = ok(await plugin(kc, ['why', clash]), 'why clash');
      expect(whyClash).to.include('The StorageClass name the pool wants belongs to something else').and.include('(StorageClassConflict:');
      await world.admin.create(PERSISTENT_VOLUME_CLAIMS, {
        metadata: { name: 'fresh', namespace: ns },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: dyn, resources: { requests: { storage: '1Gi' } } },
      });
      const whyFresh = ok(await plugin(kc, ['why', 'fresh', '-n', ns]), 'why fresh');
      expect(whyFresh).to.include(`Its pool ${dyn} is not Ready: No eligible disk matches spec.disks`);
      expect(whyFresh).to.match(
        /The CSI driver is not running: (CSIDriver csi.stowage.dev is not registered|Deployment \S*stowage-csi-controller)/,
      );
      expect(whyFresh).to.include(`Capacity: pool ${dyn} has 0B available, the claim asks for 1Gi`);
    });
  });

  describe('cordon, uncordon, drain', () => {
    it('--dry-run prints the change and sends no write (a watch over the window and the API server request counts)', async () => {
      // The window: every NodeDisk version from a LIST before it (watched) and the write counters at
      // both ends. Others (agents, operator) may write in it; each of their writes shows in the watch.
      const watch = new ObjectWatch<Disk>(world.admin, NODE_DISKS);
      const initial = await watch.start();
      const target = initial.find((d) => d.metadata.name === name('small'))!;
      const countsBefore = await writeCounts(world.cp, ['nodedisks']);
      const before = await writeRequests(world.cp, 'nodedisks');
      const cordon = ok(await plugin(kc, ['cordon', name('small'), '--dry-run']), 'cordon --dry-run');
      expect(cordon).to.equal(
        `nodedisk/${name('small')} would be cordoned: spec.schedulable true → false (server-side apply, field manager kubectl-stowage) (dry run: nothing was written)\n`,
      );
      const drain = ok(await plugin(kc, ['drain', bound.metadata.name, '--dry-run']), 'drain --dry-run');
      expect(drain)
        .to.include('would be cordoned')
        .and.include(`then drain would wait: waiting for volume stowage-${bound.metadata.name} to be released: it is bound to ${ns}/data`);
      ok(await plugin(kc, ['uncordon', name('small'), '--dry-run']), 'uncordon --dry-run');
      const countsAfter = await writeCounts(world.cp, ['nodedisks']);
      const after = await writeRequests(world.cp, 'nodedisks');
      // The LIST's version bounds the window: every write counted above has a version at or below it.
      const windowEnd = Number((await world.admin.list(NODE_DISKS)).metadata?.resourceVersion ?? 0);
      // A marker written after the window (on another disk): once the watch shows it, it has shown everything before it.
      const marker = await world.admin.mergePatch<Disk>(NODE_DISKS, name('healthy'), {
        metadata: { annotations: { 'stowage.dev/test-window-marker': String(windowEnd) } },
      });
      await waitFor(
        'the watch to show the marker after the window',
        () =>
          watch.events.some((e) => e.object.metadata.resourceVersion === marker.metadata.resourceVersion) ||
          (watch.errors.length > 0 ? Promise.reject(new Error(watch.errors.join('; '))) : false),
        30_000,
      );
      await watch.stop();
      expect(watch.errors, 'the watch over the window').to.deep.equal([]);
      const inWindow = watch.events.filter((e) => e.rv <= windowEnd);
      expect(
        inWindow.filter((e) => e.object.metadata.name === name('small')).map((e) => e.type),
        `no change to ${name('small')} in the window`,
      ).to.deep.equal([]);
      expect((await world.admin.get<Disk>(NODE_DISKS, name('small'))).metadata.resourceVersion).to.equal(target.metadata.resourceVersion);
      // Writes to the main resource (not /status) by anyone: each changed a NodeDisk's spec or
      // metadata, so the watch attributes it; a write the plugin sent would be one more.
      const previous = new Map(initial.map((d) => [d.metadata.name, d]));
      let attributable = 0;
      for (const e of inWindow) {
        const was = previous.get(e.object.metadata.name);
        const outer = (d: Disk | undefined) =>
          JSON.stringify([d?.spec, d?.metadata.labels, d?.metadata.annotations, d?.metadata.finalizers, d?.metadata.deletionTimestamp]);
        if (e.type !== 'MODIFIED' || outer(was) !== outer(e.object)) attributable++;
        previous.set(e.object.metadata.name, e.object);
      }
      const mainWrites = [...countsAfter].filter(([k]) => !k.includes('/')).reduce((n, [k, v]) => n + v - (countsBefore.get(k) ?? 0), 0);
      expect(
        mainWrites,
        `writes to nodedisks in the window (${after - before} counted), beyond the ${attributable} others made`,
      ).to.be.at.most(attributable);
      expect((await world.admin.get<Disk>(NODE_DISKS, name('small'))).spec.schedulable).to.not.equal(false);
      // The same count sees a real cordon, so the check above could fail.
      expect(ok(await plugin(kc, ['cordon', name('small')]), 'cordon')).to.equal(`nodedisk/${name('small')} cordoned\n`);
      expect(await writeRequests(world.cp, 'nodedisks')).to.be.greaterThan(before);
    });

    it('cordon writes only spec.schedulable, under its own field manager; the views show it; uncordon undoes it', async () => {
      const d = await world.admin.get<Disk>(NODE_DISKS, name('small'));
      expect(d.spec.schedulable).to.equal(false);
      const mine = d.metadata.managedFields!.filter((m) => m.manager === 'kubectl-stowage');
      expect(mine.map((m) => [m.operation, m.fieldsV1])).to.deep.equal([['Apply', { 'f:spec': { 'f:schedulable': {} } }]]);
      await waitFor(
        'the agent to report the disk Cordoned',
        async () => cond(await world.admin.get<Disk>(NODE_DISKS, name('small')), 'Eligible')?.reason === 'Cordoned',
      );
      expect(row(ok(await plugin(kc, ['disks', '--node', world.nodes[0]]), 'disks'), name('small'))).to.include('cordoned');
      expect(ok(await plugin(kc, ['cordon', name('small')]), 'cordon again')).to.include('already cordoned');
      expect(ok(await plugin(kc, ['uncordon', name('small')]), 'uncordon')).to.equal(`nodedisk/${name('small')} uncordoned\n`);
      expect((await world.admin.get<Disk>(NODE_DISKS, name('small'))).spec.schedulable).to.equal(true);
    });

    it('disks --watch into a pipe prints the view again when a disk changes', async () => {
      const child = spawn(process.execPath, [PLUGIN, '--kubeconfig', kc, 'disks', '--watch', '--node', world.nodes[0]], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, STOWAGE_LOG_LEVEL: 'silent' },
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      try {
        await waitFor('the first view', () => out.includes(name('small')), 30_000);
        expect(out.split('\n').filter((l) => l.startsWith('NODE'))).to.have.length(1);
        ok(await plugin(kc, ['cordon', name('small')]), 'cordon');
        await waitFor(
          'a second view showing the cordon',
          () =>
            out.split('\n').filter((l) => l.startsWith('NODE')).length >= 2 &&
            /\n\n/.test(out) &&
            row(out.slice(out.lastIndexOf('NODE')), name('small')).includes('cordoned'),
          30_000,
        ).catch((err: Error) => {
          throw new Error(`${err.message}\n--- output ---\n${out}`);
        });
        expect(out).to.not.include('\x1b[');
      } finally {
        child.kill('SIGINT');
        await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('close', r)));
        ok(await plugin(kc, ['uncordon', name('small')]), 'uncordon');
      }
    });

    it('drain on a disk whose volume is bound waits, deleting nothing, and returns once the volume is released and the disk is free', async () => {
      const child = spawn(process.execPath, [PLUGIN, '--kubeconfig', kc, 'drain', bound.metadata.name, '--timeout', '180'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, STOWAGE_LOG_LEVEL: 'silent' },
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
      try {
        await waitFor(
          'drain to report what it waits for',
          () => out.includes(`bound to ${ns}/data, used by pod(s) ${ns}/app-data`),
          30_000,
        );
        await new Promise((r) => setTimeout(r, 4_000));
        expect(child.exitCode, out).to.equal(null);
        expect(await world.admin.getIfExists(PERSISTENT_VOLUME_CLAIMS, 'data', ns), 'the claim is untouched').to.not.equal(undefined);
        expect((await world.admin.get<Disk>(NODE_DISKS, bound.metadata.name)).spec.claim?.pool).to.equal(fast);
        await world.release('data');
        let timer: NodeJS.Timeout | undefined;
        const code = await Promise.race([exited, new Promise<number>((r) => (timer = setTimeout(() => r(-1), 150_000)))]);
        clearTimeout(timer);
        expect(code, out).to.equal(0);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      expect(out).to.include(`nodedisk/${bound.metadata.name} cordoned`);
      expect(out).to.match(/\[\d+s\] waiting for volume/);
      expect(out).to.include(`nodedisk/${bound.metadata.name} drained`);
      const d = await world.admin.get<Disk>(NODE_DISKS, bound.metadata.name);
      expect(d.spec.claim).to.equal(undefined);
      expect(d.spec.schedulable).to.equal(false);
      expect(await world.admin.getIfExists(PERSISTENT_VOLUMES, `stowage-${bound.metadata.name}`)).to.equal(undefined);
      expect(cond(d, 'Prepared')?.status).to.not.equal('True');
    });
  });
});
