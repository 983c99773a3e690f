import { expect } from 'chai';
import { Registry } from 'prom-client';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import type { StoragePool } from '../../src/crds/storagepool.js';
import { AgentMetrics } from '../../src/node/agent/agent-metrics.js';
import { CsiMetrics } from '../../src/csi/csi-metrics.js';
import { registerDiskMetrics } from '../../src/node/agent/disk-metrics.js';
import { registerEngineMetrics } from '../../src/node/engine/engine-metrics.js';
import { registerPoolMetrics } from '../../src/operator/storagepool/pool-metrics.js';
import { startNodeMetrics } from '../../src/node/node-metrics.js';
import { FIXTURE_DISK, FIXTURE_POOL, offlineClient } from './full-registry.js';

/** Value of the sample `name{labels}` in a scrape (labels matched exactly), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const m = /^([\w:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '')
      .split(/,(?=\w+=")/)
      .filter(Boolean)
      .sort()
      .join(',');
    if (have === want) return Number(m[3]);
  }
  return undefined;
}

describe('metric collectors', () => {
  describe('pools', () => {
    it('exports status as numbers, exactly, also past 2^53 bytes', async () => {
      const registry = new Registry();
      const big: StoragePool = {
        ...FIXTURE_POOL,
        metadata: { name: 'huge' },
        status: { capacity: { raw: '9Ei', usable: '4.5Ei', allocated: '0', available: '4.5Ei' } },
      };
      registerPoolMetrics(registry, () => [FIXTURE_POOL, big]);
      const text = await registry.metrics();
      expect(sample(text, 'stowage_pool_capacity_bytes', { pool: 'fast', kind: 'usable' })).to.equal(3 * 2 ** 40);
      expect(sample(text, 'stowage_pool_capacity_bytes', { pool: 'fast', kind: 'available' })).to.equal(2 * 2 ** 40);
      expect(sample(text, 'stowage_pool_capacity_bytes', { pool: 'huge', kind: 'raw' })).to.equal(9 * 2 ** 60);
      expect(sample(text, 'stowage_pool_capacity_bytes', { pool: 'huge', kind: 'usable' })).to.equal(4.5 * 2 ** 60);
      expect(sample(text, 'stowage_pool_capacity_low_watermark_ratio', { pool: 'fast' })).to.equal(0.15);
      expect(sample(text, 'stowage_pool_capacity_low_watermark_ratio', { pool: 'huge' })).to.equal(0.15);
      expect(sample(text, 'stowage_pool_disks', { pool: 'fast', state: 'unhealthy' })).to.equal(1);
      expect(sample(text, 'stowage_pool_volumes', { pool: 'fast', phase: 'bound' })).to.equal(1);
      expect(sample(text, 'stowage_pool_nodes', { pool: 'fast' })).to.equal(2);
      expect(sample(text, 'stowage_pool_ready', { pool: 'fast' })).to.equal(1);
      expect(sample(text, 'stowage_pool_ready', { pool: 'huge' })).to.equal(0);
      expect(sample(text, 'stowage_pool_condition', { pool: 'fast', condition: 'DisksHealthy', status: 'False' })).to.equal(1);
      expect(sample(text, 'stowage_pool_condition', { pool: 'fast', condition: 'DisksHealthy', status: 'True' })).to.equal(0);
      expect(sample(text, 'stowage_pool_condition', { pool: 'huge', condition: 'Ready', status: 'True' })).to.equal(undefined);
      expect(sample(text, 'stowage_pool_info', { pool: 'fast', mode: 'Local', storage_class: 'fast' })).to.equal(1);
    });

    it('defaults the watermark, skips malformed quantities and forgets deleted pools', async () => {
      const registry = new Registry();
      let pools: StoragePool[] = [
        { ...FIXTURE_POOL, spec: { ...FIXTURE_POOL.spec, capacity: {} }, status: { capacity: { raw: 'lots', usable: '1Gi' } } },
      ];
      registerPoolMetrics(registry, () => pools);
      let text = await registry.metrics();
      expect(sample(text, 'stowage_pool_capacity_low_watermark_ratio', { pool: 'fast' })).to.equal(0.1);
      expect(sample(text, 'stowage_pool_capacity_bytes', { pool: 'fast', kind: 'raw' })).to.equal(undefined);
      expect(sample(text, 'stowage_pool_capacity_bytes', { pool: 'fast', kind: 'usable' })).to.equal(2 ** 30);
      pools = [];
      text = await registry.metrics();
      expect(text).not.to.match(/pool="fast"/);
    });
  });

  describe('disks', () => {
    it('exports identity, health, counters, presence, eligibility and claims', async () => {
      const registry = new Registry();
      const failing: NodeDisk = {
        ...FIXTURE_DISK,
        metadata: { name: 'n1-dead' },
        spec: { nodeName: 'n1', devicePath: '/dev/sdc' },
        status: {
          capacity: '500G',
          health: { verdict: 'Failed', mediaErrors: 12 },
          lastWipe: { volumeUID: 'u2', result: 'Failed' },
          conditions: [{ type: 'Present', status: 'False', reason: 'NotFound', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }],
        },
      };
      registerDiskMetrics(registry, () => [FIXTURE_DISK, failing]);
      const text = await registry.metrics();
      const ok = { node: 'n1', disk: 'n1-0a1b2c' };
      const bad = { node: 'n1', disk: 'n1-dead' };
      expect(sample(text, 'stowage_disk_info', { ...ok, device: 'sdb', model: 'ST1000', serial: 'Z1X2', media: 'hdd' })).to.equal(1);
      expect(sample(text, 'stowage_disk_capacity_bytes', ok)).to.equal(2 ** 40);
      expect(sample(text, 'stowage_disk_capacity_bytes', bad)).to.equal(500e9);
      expect(sample(text, 'stowage_disk_health_status', { ...ok, verdict: 'Passed' })).to.equal(1);
      expect(sample(text, 'stowage_disk_health_status', { ...bad, verdict: 'Failed' })).to.equal(1);
      expect(sample(text, 'stowage_disk_health_status', { ...bad, verdict: 'Passed' })).to.equal(0);
      expect(sample(text, 'stowage_disk_temperature_celsius', ok)).to.equal(38);
      expect(sample(text, 'stowage_disk_temperature_celsius', bad)).to.equal(undefined);
      expect(sample(text, 'stowage_disk_media_errors_total', bad)).to.equal(12);
      expect(sample(text, 'stowage_disk_reallocated_sectors_total', ok)).to.equal(2);
      expect(sample(text, 'stowage_disk_present', ok)).to.equal(1);
      expect(sample(text, 'stowage_disk_present', bad)).to.equal(0);
      expect(sample(text, 'stowage_disk_eligible', { ...ok, reason: 'Claimed' })).to.equal(0);
      expect(sample(text, 'stowage_disk_claimed', { ...ok, pool: 'fast' })).to.equal(1);
      expect(sample(text, 'stowage_disk_last_wipe_status', { ...bad, result: 'Failed' })).to.equal(1);
      expect(sample(text, 'stowage_disk_last_wipe_status', { ...ok, result: 'Failed' })).to.equal(0);
      expect(sample(text, 'stowage_disk_condition', { ...ok, condition: 'Healthy', status: 'True' })).to.equal(1);
    });
  });

  describe('node daemon (startNodeMetrics)', () => {
    it("serves only its own node's disks, with the defaults and API metrics, until closed", async () => {
      const client = await offlineClient();
      const other: NodeDisk = { ...FIXTURE_DISK, metadata: { name: 'n2-x' }, spec: { ...FIXTURE_DISK.spec, nodeName: 'n2' } };
      const metrics = await startNodeMetrics({ client, nodeName: 'n1', address: '127.0.0.1:0', disks: () => [FIXTURE_DISK, other] });
      try {
        const text = await (await fetch(`${metrics.url}/metrics`)).text();
        expect(sample(text, 'stowage_disk_present', { node: 'n1', disk: 'n1-0a1b2c' })).to.equal(1);
        expect(text).not.to.contain('n2-x');
        expect(text).to.contain('# TYPE stowage_api_requests_total counter');
        expect(text).to.contain('# TYPE process_cpu_seconds_total counter');
        expect(text).to.contain('# TYPE stowage_disk_wipes_total counter');
        expect(text).to.contain('# TYPE stowage_csi_requests_total counter');
        expect((await fetch(`${metrics.url}/healthz`)).status).to.equal(200);
      } finally {
        await metrics.close();
        client.close();
      }
      let refused = false;
      // The refusal is the expected outcome, checked below.
      await fetch(`${metrics.url}/metrics`).catch(() => (refused = true));
      expect(refused, 'closed').to.equal(true);
    });
  });

  describe('node agent operations', () => {
    it('counts and times wipes and preparations with their outcome, and rethrows failures', async () => {
      const registry = new Registry();
      const m = new AgentMetrics(registry, 'n1');
      expect(await m.timeWipe('zero', async () => 'done')).to.equal('done');
      let caught: unknown;
      await m
        .timeWipe('zero', async () => {
          throw new Error('EIO');
        })
        .catch((e) => (caught = e));
      expect(String(caught)).to.contain('EIO');
      await m.timePreparation('Block', async () => undefined);
      const text = await registry.metrics();
      expect(sample(text, 'stowage_disk_wipes_total', { node: 'n1', method: 'zero', result: 'success' })).to.equal(1);
      expect(sample(text, 'stowage_disk_wipes_total', { node: 'n1', method: 'zero', result: 'failure' })).to.equal(1);
      expect(sample(text, 'stowage_disk_wipe_duration_seconds_count', { node: 'n1', method: 'zero' })).to.equal(2);
      expect(sample(text, 'stowage_disk_preparations_total', { node: 'n1', kind: 'Block', result: 'success' })).to.equal(1);
    });
  });

  describe('engine', () => {
    it('reads the engine once per scrape and exports space, volumes and device errors', async () => {
      const registry = new Registry();
      let reads = 0;
      registerEngineMetrics(registry, 'n1', async () => {
        reads++;
        return [
          {
            pool: 'dyn',
            sizeBytes: 1000,
            usedBytes: 250,
            availableBytes: 750,
            volumes: 3,
            devices: [{ device: '/dev/loop7', errors: { corruption: 4 } }],
          },
        ];
      });
      const text = await registry.metrics();
      expect(reads).to.equal(1);
      expect(sample(text, 'stowage_engine_pool_bytes', { node: 'n1', pool: 'dyn', kind: 'used' })).to.equal(250);
      expect(sample(text, 'stowage_engine_volumes', { node: 'n1', pool: 'dyn' })).to.equal(3);
      expect(
        sample(text, 'stowage_engine_device_errors_total', { node: 'n1', pool: 'dyn', device: '/dev/loop7', type: 'corruption' }),
      ).to.equal(4);
      expect(
        sample(text, 'stowage_engine_device_errors_total', { node: 'n1', pool: 'dyn', device: '/dev/loop7', type: 'read_io' }),
      ).to.equal(0);
      await new Promise((r) => setImmediate(r)); // the next scrape
      await registry.metrics();
      expect(reads).to.equal(2);
    });
  });

  describe('CSI', () => {
    it('counts unary calls by method and gRPC code, also when the handler throws', async () => {
      const registry = new Registry();
      const m = new CsiMetrics(registry);
      const answers: unknown[] = [];
      const cb = (err: unknown, value?: unknown): void => void answers.push(err ?? value);
      m.instrumentUnary('CreateVolume', (_call: unknown, done) => done(null, { volume: {} }))({}, cb);
      m.instrumentUnary('CreateVolume', (_call: unknown, done) => done({ code: 6 }))({}, cb);
      m.instrumentUnary('DeleteVolume', () => {
        throw new Error('boom');
      })({}, cb);
      const text = await registry.metrics();
      expect(sample(text, 'stowage_csi_requests_total', { method: 'CreateVolume', code: 'OK' })).to.equal(1);
      expect(sample(text, 'stowage_csi_requests_total', { method: 'CreateVolume', code: 'AlreadyExists' })).to.equal(1);
      expect(sample(text, 'stowage_csi_requests_total', { method: 'DeleteVolume', code: 'Internal' })).to.equal(1);
      expect(answers).to.have.length(3);
    });
  });
});
