import { expect } from 'chai';
import type { KubeClient } from '../../src/kube/client.js';
import { LEASES, NAMESPACES } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';
import { installCrds } from '../../src/crds/install.js';
import { STORAGE_POOLS } from '../../src/crds/resource-types.js';
import type { Lease } from '../../src/runtime/leader-election.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { adminClient, createNamespace, deletePoolForcibly, uniqueName, waitFor } from '../support/cluster.js';
import { OperatorProcess } from '../support/operator-process.js';

type Pool = KubeObject & { status?: { observedGeneration?: number } };

describe('two operator processes with leader election (real control plane)', function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let client: KubeClient;
  let namespace: string;
  const operators: OperatorProcess[] = [];
  const pools: string[] = [];

  before(async () => {
    ({ cp, client } = await adminClient());
    await installCrds(client, 'stowage-tests');
    namespace = await createNamespace(client, 'leader');
  });
  after(async () => {
    for (const op of operators) await op.stop();
    for (const name of pools) await deletePoolForcibly(client, name);
    if (namespace) await client.delete(NAMESPACES, namespace);
    client.close();
  });

  async function createPool(): Promise<string> {
    const name = uniqueName('le-pool');
    pools.push(name);
    await client.create(STORAGE_POOLS, {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name },
      spec: { mode: 'Local', disks: { selector: { matchLabels: { 'stowage.dev/media': 'none' } } } },
    });
    return name;
  }

  const observed = async (name: string): Promise<boolean> => {
    const pool = await client.get<Pool>(STORAGE_POOLS, name);
    return pool.status?.observedGeneration === pool.metadata.generation;
  };

  it('only the leader reconciles; the standby takes over within 20 s of a SIGKILL; SIGTERM releases the lease', async () => {
    const id = uniqueName('stowage-operator');
    const args = ['--leader-elect', '--leader-election-namespace', namespace, '--leader-election-id', id];
    operators.push(await OperatorProcess.start(cp.kubeconfigPath, args), await OperatorProcess.start(cp.kubeconfigPath, args));
    const leaderOf = async (): Promise<OperatorProcess | undefined> => {
      for (const op of operators.filter((o) => !o.exited)) {
        // An operator that does not answer (exiting) is not the leader.
        if ((await op.metric('leader_election_master_status', { name: id }).catch(() => 0)) === 1) return op;
      }
      return undefined;
    };
    const leader = await waitFor('a leader', leaderOf, 60_000);
    const standby = operators.find((o) => o !== leader)!;

    const first = await createPool();
    await waitFor('the first pool to be reconciled', () => observed(first), 30_000);
    expect(await leader.metric('controller_runtime_reconcile_total', { controller: 'storagepool', result: 'success' })).to.be.greaterThan(
      0,
    );
    expect(await standby.metric('controller_runtime_reconcile_total', { controller: 'storagepool', result: 'success' })).to.equal(0);
    expect(await standby.metric('leader_election_master_status', { name: id })).to.equal(0);
    expect((await fetch(`${standby.url}/readyz`)).status).to.equal(200, 'a standby is ready: it is healthy and waiting');

    leader.kill('SIGKILL');
    const killedAt = Date.now();
    const second = await createPool();
    await waitFor('the standby to take over and reconcile', () => observed(second), 30_000, 200);
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).to.be.below(20_000);
    expect(await standby.metric('leader_election_master_status', { name: id })).to.equal(1);

    standby.kill('SIGTERM');
    expect(await standby.wait()).to.equal(0, 'a SIGTERM is a clean stop');
    const lease = await client.get<Lease>(LEASES, id, namespace);
    expect(lease.spec?.holderIdentity ?? '').to.equal('', 'the lease is released on a clean stop');
  });
});
