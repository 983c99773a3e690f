import { expect } from 'chai';
import { installCrds } from '../../src/crds/install.js';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import { NODE_DISKS, STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { StoragePool } from '../../src/crds/storagepool.js';
import type { KubeClient } from '../../src/kube/client.js';
import { NAMESPACES, NODES, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS } from '../../src/kube/resources.js';
import type { KubeObject, PersistentVolume } from '../../src/kube/types.js';
import { NODE_JOB, OPERATOR_JOB, renderRuleGroups } from '../../src/observability/alerts.js';
import { startNodeMetrics, type NodeMetrics } from '../../src/node/node-metrics.js';
import { Informer } from '../../src/runtime/informer.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { registerReadyNode } from '../cluster/nodes.js';
import { AgentDouble } from '../support/agent-double.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { OperatorProcess } from '../support/operator-process.js';
import { toYaml } from '../../hack/gen-observability.js';
import { PrometheusProcess, type PrometheusAlert } from './prometheus-process.js';
import { promtool } from './promtool.js';
import { lintProblems, parseScrape, readReference } from './reference.js';

/** Scrape and evaluation interval of the test Prometheus. */
const INTERVAL_S = 1;
/** The test copy of the shipped rules waits this long instead of minutes (generated from the same source). */
const TEST_FOR = '2s';
/**
 * How many evaluation intervals an alert may take beyond its `for:` once the cause is visible on
 * the component's /metrics: one scrape, one evaluation to go pending, `for:`, one evaluation to
 * fire, plus slack for two shared CPU cores.
 */
const MAX_INTERVALS = 15;
const BOUND_MS = (Number.parseInt(TEST_FOR, 10) + MAX_INTERVALS * INTERVAL_S) * 1000;

type Pool = StoragePool & KubeObject;

/**
 * Prometheus end to end: a real Prometheus on 127.0.0.1 scrapes the real operator process and a
 * node metrics endpoint, loads the shipped rules (with `for:` shortened) and must fire and resolve
 * the capacity and disk alerts as the cluster changes. The node agent's side of the cluster
 * (NodeDisk status, preparation) is played by AgentDouble; the node endpoint is startNodeMetrics
 * (src/metrics/node-metrics.ts, what `stowage node` is to call) over a NodeDisk informer of its
 * node, because the node daemon does not serve /metrics yet.
 */
describe('Prometheus end to end: shipped rules against the live operator and node metrics', function () {
  this.timeout(300_000);
  let cp: ControlPlane;
  let admin: KubeClient;
  let namespace: string;
  let agent: AgentDouble | undefined;
  let operator: OperatorProcess | undefined;
  let nodeMetrics: NodeMetrics | undefined;
  let nodeInformer: Informer<NodeDisk & KubeObject> | undefined;
  let nodeUrl: string;
  let prometheus: PrometheusProcess | undefined;
  const suffix = uniqueName('obs');
  const node = `${suffix}-node`;
  const poolName = `${suffix}-pool`;
  const pvc = `${suffix}-claim`;
  const failingDisk = `${node}-hdd`;

  before(async () => {
    ({ cp, client: admin } = await adminClient());
    await installCrds(admin, 'stowage-tests');
    namespace = await createNamespace(admin, 'obs');
    await registerReadyNode(cp, node);
    agent = new AgentDouble(admin);
    await agent.addDisk({ name: `${node}-ssd1`, node, capacity: '100Gi', media: 'ssd' });
    await agent.addDisk({ name: failingDisk, node, capacity: '2Ti', media: 'hdd' });
    await agent.start();

    nodeInformer = new Informer<NodeDisk & KubeObject>({ client: admin, resource: NODE_DISKS, labelSelector: `stowage.dev/node=${node}` });
    nodeInformer.start();
    await nodeInformer.waitForSync();
    nodeMetrics = await startNodeMetrics({ client: admin, nodeName: node, address: '127.0.0.1:0', disks: () => nodeInformer!.list() });
    nodeUrl = nodeMetrics.url!;

    operator = await OperatorProcess.start(cp.kubeconfigPath, ['--namespace', namespace, '--workers', '2']);
    await waitFor('the operator to serve /metrics', async () => (await fetch(`${operator!.url}/metrics`)).ok, 30_000, 200);

    const config = {
      global: { scrape_interval: `${INTERVAL_S}s`, scrape_timeout: `${INTERVAL_S}s`, evaluation_interval: `${INTERVAL_S}s` },
      rule_files: ['rules.yaml'],
      scrape_configs: [
        { job_name: OPERATOR_JOB, static_configs: [{ targets: [`127.0.0.1:${operator.port}`] }] },
        { job_name: NODE_JOB, honor_labels: true, static_configs: [{ targets: [new URL(nodeUrl).host], labels: { node } }] },
      ],
    };
    prometheus = await PrometheusProcess.start(toYaml(config), { 'rules.yaml': toYaml(renderRuleGroups({ forOverride: TEST_FOR })) });
    await waitFor(
      'Prometheus to scrape both targets',
      async () => {
        const targets = await prometheus!.targets();
        return targets.length === 2 && targets.every((t) => t.health === 'up');
      },
      30_000,
      250,
    );
  });

  after(async () => {
    await prometheus?.stop();
    await operator?.stop();
    await nodeMetrics?.close();
    await nodeInformer?.stop();
    await deletePoolForcibly(admin, poolName).catch(() => undefined);
    await admin.delete(PERSISTENT_VOLUME_CLAIMS, pvc, { namespace }).catch(() => undefined);
    await agent?.stop();
    await agent?.removeAll().catch(() => undefined);
    for (const pv of (await admin.list<PersistentVolume>(PERSISTENT_VOLUMES)).items) {
      if (pv.metadata.labels?.['stowage.dev/node'] === node) {
        await admin.mergePatch(PERSISTENT_VOLUMES, pv.metadata.name!, { metadata: { finalizers: null } }).catch(() => undefined);
        await admin.delete(PERSISTENT_VOLUMES, pv.metadata.name!).catch(() => undefined);
      }
    }
    await admin.delete(NODES, node).catch(() => undefined);
    if (namespace) await admin.delete(NAMESPACES, namespace).catch(() => undefined);
  });

  const active = async (alertname: string, labels: Record<string, string>): Promise<PrometheusAlert | undefined> =>
    (await prometheus!.alerts()).find(
      (a) => a.labels.alertname === alertname && Object.entries(labels).every(([k, v]) => a.labels[k] === v),
    );
  const firing = async (alertname: string, labels: Record<string, string>) => {
    const a = await active(alertname, labels);
    return a?.state === 'firing' ? a : undefined;
  };
  const targetSample = async (url: string, line: RegExp): Promise<boolean> => line.test(await (await fetch(`${url}/metrics`)).text());

  /** Waits until `cause` shows on a component's /metrics, then measures how long Prometheus takes to reach `outcome`. */
  async function timeFromCause(what: string, cause: () => Promise<boolean>, outcome: () => Promise<unknown>): Promise<number> {
    await waitFor(`${what}: the cause on /metrics`, cause, 120_000, 100);
    const since = Date.now();
    await waitFor(what, outcome, BOUND_MS + 30_000, 100);
    const ms = Date.now() - since;
    // The figure for reports; the assertion is only the bound.
    if (process.env.STOWAGE_OBS_TIMINGS === '1') process.stderr.write(`[obs] ${what}: ${ms} ms after the cause reached /metrics\n`);
    return ms;
  }

  it("the operator's live /metrics passes promtool check metrics, and every family is in the reference", async () => {
    const text = await operator!.metrics();
    const result = await promtool(['check', 'metrics'], { stdin: text });
    expect(lintProblems(result.output), result.output).to.deep.equal([]);
    const reference = readReference();
    const undocumented = [...parseScrape(text).keys()].filter((n) => !reference.has(n));
    expect(undocumented).to.deep.equal([]);
  });

  it('filling a pool past its low watermark fires StowagePoolCapacityLow within bounded evaluations; adding disks resolves it', async () => {
    const pool: Pool = {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: poolName },
      spec: {
        mode: 'Local',
        disks: { selector: { matchLabels: { 'stowage.dev/node': node, 'stowage.dev/media': 'ssd' } } },
        local: { volumeMode: 'Filesystem', fsType: 'ext4' },
        storageClass: { name: poolName, reclaimPolicy: 'Retain' },
        capacity: { lowWatermarkPercent: 10 },
      },
    };
    await admin.apply(STORAGE_POOLS, pool, { fieldManager: 'kubectl-client-side-apply' });
    const pv = await waitFor(
      'the operator to publish the disk as a local PV',
      async () => {
        const pvs = (await admin.list<PersistentVolume>(PERSISTENT_VOLUMES, { labelSelector: `stowage.dev/pool=${poolName}` })).items;
        return pvs.length === 1 && pvs[0].status?.phase === 'Available' ? pvs[0] : undefined;
      },
      120_000,
      250,
    );
    const usable = `stowage_pool_capacity_bytes{pool="${poolName}",kind="usable"}`;
    await waitFor(
      "Prometheus to see the pool's usable capacity",
      async () => (await prometheus!.query(`${usable} > 0`)).length === 1,
      60_000,
      250,
    );
    expect(await active('StowagePoolCapacityLow', { pool: poolName }), 'a pool with all of its capacity free').to.equal(undefined);

    // Fill it: a claim takes the pool's only volume, so nothing is left available.
    await admin.create(PERSISTENT_VOLUME_CLAIMS, {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: pvc, namespace },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: poolName,
        volumeName: pv.metadata.name,
        resources: { requests: { storage: '1Gi' } },
      },
    });
    const fireMs = await timeFromCause(
      'StowagePoolCapacityLow to fire',
      () => targetSample(operator!.url, new RegExp(`^stowage_pool_capacity_bytes\\{pool="${poolName}",kind="available"\\} 0$`, 'm')),
      () => firing('StowagePoolCapacityLow', { pool: poolName }),
    );
    const alert = (await firing('StowagePoolCapacityLow', { pool: poolName }))!;
    expect(alert.labels.severity).to.equal('warning');
    expect(alert.annotations.description).to.contain(`StoragePool ${poolName} has only 0% of its usable capacity available`);
    expect(alert.annotations.runbook_url).to.match(/docs\/runbooks\/StowagePoolCapacityLow\.md$/);
    expect(fireMs, `fired ${fireMs} ms after the cause reached /metrics`).to.be.at.most(BOUND_MS);

    // Remove the cause: two more disks give the pool room again (2 of 3 volumes free).
    await agent!.addDisk({ name: `${node}-ssd2`, node, capacity: '100Gi', media: 'ssd' });
    await agent!.addDisk({ name: `${node}-ssd3`, node, capacity: '100Gi', media: 'ssd' });
    const resolveMs = await timeFromCause(
      'StowagePoolCapacityLow to resolve',
      async () => {
        const text = await operator!.metrics();
        const m = new RegExp(`^stowage_pool_volumes\\{pool="${poolName}",phase="available"\\} (\\d+)$`, 'm').exec(text);
        return Number(m?.[1]) === 2;
      },
      async () => (await active('StowagePoolCapacityLow', { pool: poolName })) === undefined,
    );
    expect(resolveMs, `resolved ${resolveMs} ms after the cause was gone from /metrics`).to.be.at.most(BOUND_MS);
  });

  it('a disk reported unhealthy fires StowageDiskUnhealthy within bounded evaluations; a healthy report resolves it', async () => {
    const labels = { disk: failingDisk, node };
    expect(await active('StowageDiskUnhealthy', labels)).to.equal(undefined);
    agent!.setHealthy(failingDisk, false);
    const fireMs = await timeFromCause(
      'StowageDiskUnhealthy to fire',
      () =>
        targetSample(
          nodeUrl,
          new RegExp(`^stowage_disk_condition\\{node="${node}",disk="${failingDisk}",condition="Healthy",status="False"\\} 1$`, 'm'),
        ),
      () => firing('StowageDiskUnhealthy', labels),
    );
    const alert = (await firing('StowageDiskUnhealthy', labels))!;
    expect(alert.labels.severity).to.equal('critical');
    expect(alert.labels.job).to.equal(NODE_JOB);
    expect(alert.annotations.description).to.contain(`Disk ${failingDisk} on node ${node} is unhealthy`);
    expect(fireMs, `fired ${fireMs} ms after the cause reached /metrics`).to.be.at.most(BOUND_MS);

    agent!.setHealthy(failingDisk, true);
    const resolveMs = await timeFromCause(
      'StowageDiskUnhealthy to resolve',
      () =>
        targetSample(
          nodeUrl,
          new RegExp(`^stowage_disk_condition\\{node="${node}",disk="${failingDisk}",condition="Healthy",status="False"\\} 0$`, 'm'),
        ),
      async () => (await active('StowageDiskUnhealthy', labels)) === undefined,
    );
    expect(resolveMs, `resolved ${resolveMs} ms after the cause was gone from /metrics`).to.be.at.most(BOUND_MS);
  });

  it('a claimed disk that disappears fires StowageDiskMissing with its pool; its return resolves it', async () => {
    const missing = `${node}-ssd1`;
    const labels = { disk: missing, node, pool: poolName };
    agent!.setPresent(missing, false);
    const fireMs = await timeFromCause(
      'StowageDiskMissing to fire',
      () => targetSample(nodeUrl, new RegExp(`^stowage_disk_present\\{node="${node}",disk="${missing}"\\} 0$`, 'm')),
      () => firing('StowageDiskMissing', labels),
    );
    expect((await firing('StowageDiskMissing', labels))!.annotations.description).to.contain(`claimed by StoragePool ${poolName}`);
    expect(fireMs).to.be.at.most(BOUND_MS);
    agent!.setPresent(missing, true);
    await timeFromCause(
      'StowageDiskMissing to resolve',
      () => targetSample(nodeUrl, new RegExp(`^stowage_disk_present\\{node="${node}",disk="${missing}"\\} 1$`, 'm')),
      async () => (await active('StowageDiskMissing', labels)) === undefined,
    );
  });

  it("the node endpoint's live /metrics passes promtool check metrics", async () => {
    const text = await (await fetch(`${nodeUrl}/metrics`)).text();
    expect(text).to.contain(`stowage_disk_info{node="${node}"`);
    expect(text).to.contain('stowage_api_requests_total{');
    const reference = readReference();
    expect([...parseScrape(text).keys()].filter((n) => !reference.has(n))).to.deep.equal([]);
    const result = await promtool(['check', 'metrics'], { stdin: text });
    expect(lintProblems(result.output), result.output).to.deep.equal([]);
  });

  it('stopping the operator fires StowageOperatorDown (its job is scraped under the name the rules expect)', async () => {
    expect(await active('StowageOperatorDown', {})).to.equal(undefined);
    await operator!.stop();
    await waitFor('StowageOperatorDown to fire', () => firing('StowageOperatorDown', {}), BOUND_MS + 30_000, 200);
  });
});
