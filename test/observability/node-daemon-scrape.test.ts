import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { installCrds } from '../../src/crds/install.js';
import type { KubeClient } from '../../src/kube/client.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { adminClient, uniqueName, waitFor } from '../support/cluster.js';
import { LoopDevices } from '../support/loop-devices.js';
import { freePort } from '../support/operator-process.js';
import { AgentProcess, deleteNodeDisks, nodeDisksOf } from '../node/support.js';
import { promtool } from './promtool.js';
import { lintProblems, parseScrape, readReference } from './reference.js';

const MiB = 1024 * 1024;

/**
 * The real node daemon (`stowage node --metrics-bind-address`) inventorying a loop device this test
 * made (its only allowed device): its live /metrics passes promtool check metrics, and every family
 * in it is in the metrics reference.
 */
describe('node daemon /metrics (live `stowage node` scrape)', function () {
  this.timeout(120_000);
  let cp: ControlPlane;
  let client: KubeClient;
  let agent: AgentProcess | undefined;
  let dir: string | undefined;
  let url: string;
  const loops = new LoopDevices();
  const node = uniqueName('obs-agent');

  before(async () => {
    ({ cp, client } = await adminClient());
    await installCrds(client, 'stowage-tests');
    dir = await mkdtemp(join(tmpdir(), 'stowage-obs-agent-'));
    const loop = await loops.create(64 * MiB);
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    agent = AgentProcess.start(cp.kubeconfigPath, node, [
      '--allow-device',
      loop.device,
      '--root',
      join(dir, 'disks'),
      '--pool-root',
      join(dir, 'state'),
      '--discovery-interval',
      '2',
      '--metrics-bind-address',
      `127.0.0.1:${port}`,
    ]);
    await waitFor(
      'the agent to report its disk',
      async () => {
        if (agent!.exited) throw new Error(`the agent exited: ${agent!.output.join('')}`);
        return (await nodeDisksOf(client, node)).length === 1;
      },
      60_000,
      250,
    );
  });

  after(async () => {
    await agent?.stop();
    await deleteNodeDisks(client, node).catch(() => undefined);
    await loops.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves its disk and passes promtool check metrics, with every family in the reference', async () => {
    const [disk] = await nodeDisksOf(client, node);
    const text = await waitFor(
      'the disk on /metrics',
      async () => {
        const body = await (await fetch(`${url}/metrics`)).text();
        return body.includes(`stowage_disk_present{node="${node}",disk="${disk.metadata.name}"} 1`) ? body : undefined;
      },
      30_000,
      250,
    );
    expect(text).to.match(new RegExp(`^stowage_disk_capacity_bytes\\{node="${node}",disk="${disk.metadata.name}"\\} ${64 * MiB}$`, 'm'));
    expect(text).to.contain('# TYPE stowage_disk_wipes_total counter');
    expect(text).to.contain('stowage_api_requests_total{');
    const result = await promtool(['check', 'metrics'], { stdin: text });
    expect(lintProblems(result.output), result.output).to.deep.equal([]);
    const reference = readReference();
    expect(
      [...parseScrape(text).keys()].filter((n) => !reference.has(n)),
      'undocumented families',
    ).to.deep.equal([]);
  });
});
