import { expect } from 'chai';
import { ELIGIBLE_REASONS, HEALTHY_REASONS, POOL_REASONS, PREPARED_REASONS } from '../../src/cli/kubectl/reasons.js';
import type { Claim, Disk, Pool, Snapshot } from '../../src/cli/kubectl/snapshot.js';
import { explainClaim, explainDisk, explainPool, renderExplanation } from '../../src/cli/kubectl/why.js';
import { drainState } from '../../src/cli/kubectl/cordon.js';

const T = '2026-01-01T00:00:00Z';
const empty: Snapshot = {
  disks: [],
  pools: [],
  pvs: [],
  claims: [],
  pods: [],
  poolVolumes: [],
  nodes: [],
  storageClasses: [],
  warnings: [],
};
const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

function disk(conditions: [string, string, string][], spec: Partial<Disk['spec']> = {}): Disk {
  return {
    apiVersion: 'stowage.dev/v1alpha1',
    kind: 'NodeDisk',
    metadata: { name: 'n1-abc', labels: { 'stowage.dev/node': 'n1' } },
    spec: { nodeName: 'n1', devicePath: '/dev/sdb', ...spec },
    status: {
      capacity: '1Gi',
      conditions: conditions.map(([type, status, reason]) => ({
        type,
        status: status as 'True',
        reason,
        message: `msg ${reason}`,
        lastTransitionTime: T,
      })),
    },
  };
}

/**
 * The pure half of `why` and drain, over every reason the node agent can put on a disk (the
 * sources are matched against reasons.ts by reasons.test.ts) and the claim cases a Dynamic pool
 * adds; the real-cluster tests cover the same paths with objects the operator and agents wrote.
 */
describe('kubectl stowage why (pure)', () => {
  it("an unclaimed disk: every Eligible=False reason gives its sentence and the agent's message", () => {
    for (const [reason, text] of Object.entries(ELIGIBLE_REASONS)) {
      if (['Blank', 'DiscoveredMount', 'Claimed', 'Cordoned', 'NotPresent'].includes(reason)) continue;
      const e = explainDisk(
        disk([
          ['Present', 'True', 'Detected'],
          ['Eligible', 'False', reason],
        ]),
        empty,
        [],
      );
      expect(e.summary, reason).to.equal(`n1-abc is in no pool: ${text.short}`);
      expect(e.reasons.join('\n'), reason).to.include(`${capital(text.sentence)} (${reason}: msg ${reason})`);
    }
  });

  it('a claimed disk: every Prepared=False reason, and every Healthy=False reason', () => {
    for (const [reason, text] of Object.entries(PREPARED_REASONS)) {
      if (reason === 'Prepared') continue;
      const e = explainDisk(
        disk(
          [
            ['Eligible', 'False', 'Claimed'],
            ['Prepared', 'False', reason],
          ],
          { claim: { pool: 'p', mode: 'Local', volumeMode: 'Block' } },
        ),
        empty,
        [],
      );
      expect(e.reasons.join('\n'), reason).to.include(
        `It is not ready for the pool yet: ${capital(text.sentence)} (${reason}: msg ${reason})`,
      );
    }
    for (const [reason, text] of Object.entries(HEALTHY_REASONS)) {
      const e = explainDisk(disk([['Healthy', 'False', reason]]), empty, []);
      expect(e.reasons.join('\n'), reason).to.include(`${capital(text.sentence)} (${reason}: msg ${reason})`);
    }
  });

  it('a missing disk, a cordoned one, and one no pool exists for', () => {
    expect(
      explainDisk(
        disk([
          ['Present', 'False', 'NotDetected'],
          ['Eligible', 'False', 'NotPresent'],
        ]),
        empty,
        [],
      ).summary,
    ).to.equal('n1-abc is in no pool: not attached');
    const cordoned = explainDisk(disk([['Eligible', 'False', 'Cordoned']], { schedulable: false }), empty, []);
    expect(cordoned.summary).to.equal('n1-abc is in no pool: cordoned');
    expect(cordoned.reasons.join('\n')).to.include('`kubectl stowage uncordon n1-abc` lets pools claim it again');
    expect(explainDisk(disk([['Eligible', 'True', 'Blank']]), empty, []).reasons).to.deep.equal([
      "No StoragePool exists. Create one whose disks.selector matches the disk's labels (stowage.dev/node=n1).",
    ]);
  });

  it('a Pending claim of a Dynamic pool: driver not running, replication, capacity, no disk on the selected node', () => {
    const pool = {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: 'dyn' },
      spec: { mode: 'Dynamic', disks: { selector: {} }, replicated: { size: 2 } },
      status: {
        storageClassName: 'dyn',
        capacity: { available: '1Gi' },
        conditions: [
          { type: 'Ready', status: 'True', reason: 'Ready', message: 'ok', lastTransitionTime: T },
          { type: 'ReplicationSatisfiable', status: 'False', reason: 'TooFewDisks', message: 'n2 (1)', lastTransitionTime: T },
        ],
      },
    } as Pool;
    const sc = {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'dyn' },
      provisioner: 'csi.stowage.dev',
      volumeBindingMode: 'WaitForFirstConsumer' as const,
    };
    const pvc = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'c', namespace: 'ns', annotations: { 'volume.kubernetes.io/selected-node': 'n2' } },
      spec: { storageClassName: 'dyn', resources: { requests: { storage: '2Gi' } } },
      status: { phase: 'Pending' },
    } as Claim;
    const snap = { ...empty, pools: [pool], storageClasses: [sc] };
    const driver = {
      controller: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'stowage-csi-controller', namespace: 'stowage-system' },
        status: { replicas: 1 },
      },
      nodeDaemon: {
        apiVersion: 'apps/v1',
        kind: 'DaemonSet',
        metadata: { name: 'stowage-node', namespace: 'stowage-system' },
        status: { numberReady: 1, desiredNumberScheduled: 3 },
      },
    };
    const lines = explainClaim(pvc, snap, [], [], driver).reasons;
    expect(lines).to.deep.equal([
      'The CSI driver is not running: CSIDriver csi.stowage.dev is not registered. The operator installs it with the first Dynamic pool; check that the operator runs.',
      'The CSI driver is not running: Deployment stowage-system/stowage-csi-controller has no ready replica; `kubectl -n stowage-system describe deployment stowage-csi-controller` says why.',
      'Only 1 of 3 stowage-node pods are ready; volumes on the other nodes cannot be created.',
      'Replication is not satisfiable: some nodes have fewer disks than replicated.size; add disks there, or lower replicated.size (TooFewDisks: n2 (1))',
      'No eligible disk on node n2: pool dyn holds no disk there.',
      'Capacity: pool dyn has 1Gi available, the claim asks for 2Gi; add disks to the pool or ask for less.',
    ]);
  });

  it('a host pool with too few nodes: the verdict in words, the nodes that count, and why the other disks do not', () => {
    const message =
      '2 of the 3 hosts size 3 needs hold eligible disks: n1, n2; add eligible disks on other nodes (and make them match spec.disks), or lower replicated.size; nothing is created for the pool until then';
    const pool = {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: 'safe', generation: 1 },
      spec: { mode: 'Dynamic', disks: { selector: { matchLabels: { tier: 'safe' } } }, replicated: { size: 3, failureDomain: 'host' } },
      status: {
        observedGeneration: 1,
        conditions: [
          {
            type: 'Ready',
            status: 'False',
            reason: 'ReplicationNotSatisfiable',
            message:
              'nothing is created for the pool (no StorageClass, no disk claims) while fewer than 3 nodes hold eligible disks; ReplicationSatisfiable says which do',
            lastTransitionTime: T,
          },
          { type: 'ReplicationSatisfiable', status: 'False', reason: 'TooFewFailureDomains', message, lastTransitionTime: T },
        ],
      },
    } as Pool;
    const node3 = disk([['Eligible', 'True', 'Blank']]);
    node3.metadata.name = 'n3-abc';
    node3.spec.nodeName = 'n3';
    const nodes = ['n1', 'n2', 'n3'].map((n) => ({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: n, labels: { 'kubernetes.io/hostname': n } },
    }));
    const e = explainPool(pool, { ...empty, pools: [pool], disks: [node3], nodes }, []);
    expect(e.subject).to.equal('StoragePool safe (Dynamic, 3 copies on different nodes)');
    expect(e.summary).to.equal('safe is not Ready: too few nodes for the copies');
    expect(e.reasons).to.deep.equal([
      `${capital(POOL_REASONS.ReplicationNotSatisfiable.sentence)} (ReplicationNotSatisfiable: ${pool.status!.conditions![0].message})`,
      `${capital(POOL_REASONS.TooFewFailureDomains.sentence)} (TooFewFailureDomains: ${message})`,
      '1 disk(s) (n3-abc) are not used because its labels do not match disks.selector.',
    ]);
    expect(renderExplanation(e)).to.contain('Why:');

    // A claim of the class such a pool would publish: the class is missing, and the pool says why.
    const pvc = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'c', namespace: 'ns' },
      spec: { storageClassName: 'safe', resources: { requests: { storage: '1Gi' } } },
      status: { phase: 'Pending' },
    } as Claim;
    const claim = explainClaim(pvc, { ...empty, pools: [pool] }, [], [], {});
    expect(claim.summary).to.equal('ns/c is Pending: its pool publishes no StorageClass');
    expect(claim.reasons[0]).to.contain(
      'StorageClass safe does not exist: pool safe would publish it but is not Ready: The pool cannot keep its copies on different nodes',
    );
  });

  it('a host pool whose placement is satisfiable: it says the Ceph engine is not deployed yet', () => {
    const pool = {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: 'safe' },
      spec: { mode: 'Dynamic', disks: { selector: {} }, replicated: { size: 2, failureDomain: 'zone' } },
      status: {
        conditions: [
          { type: 'Ready', status: 'False', reason: 'CephEngineNotDeployed', message: 'm', lastTransitionTime: T },
          {
            type: 'ReplicationSatisfiable',
            status: 'True',
            reason: 'EnoughFailureDomains',
            message: '2 zones hold eligible disks',
            lastTransitionTime: T,
          },
        ],
      },
    } as Pool;
    const e = explainPool(pool, { ...empty, pools: [pool] }, []);
    expect(e.subject).to.equal('StoragePool safe (Dynamic, 2 copies on different zones)');
    expect(e.summary).to.equal('safe is not Ready: Ceph not deployed yet');
    expect(e.reasons).to.deep.equal([`${capital(POOL_REASONS.CephEngineNotDeployed.sentence)} (CephEngineNotDeployed: m)`]);
  });

  it('drain: a bound volume, a released one, a retained one, the claim still on, the filesystem still there, free', () => {
    const claimed = disk([['Prepared', 'True', 'Prepared']], {
      claim: { pool: 'p', mode: 'Local', volumeMode: 'Block' },
      schedulable: false,
    });
    const pv = (phase: string, policy = 'Delete') => ({
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: 'stowage-n1-abc' },
      spec: { persistentVolumeReclaimPolicy: policy as 'Delete', claimRef: { namespace: 'ns', name: 'data' } },
      status: { phase: phase as 'Bound' },
    });
    const pods = [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'app', namespace: 'ns' },
        spec: { volumes: [{ name: 'd', persistentVolumeClaim: { claimName: 'data' } }] },
      },
    ];
    expect(drainState(claimed, pv('Bound'), { pods, poolVolumes: [] }).step).to.include(
      'bound to ns/data, used by pod(s) ns/app; delete the claim',
    );
    expect(drainState(claimed, pv('Released'), { pods: [], poolVolumes: [] }).step).to.include(
      'waiting for the node agent to wipe the disk',
    );
    expect(drainState(claimed, pv('Released', 'Retain'), { pods: [], poolVolumes: [] }).step).to.include(
      'retained (reclaimPolicy Retain): delete the PV',
    );
    expect(drainState(claimed, undefined, { pods: [], poolVolumes: [] })).to.deep.equal({
      free: false,
      step: 'waiting for pool p to release the disk',
    });
    const released = disk([['Prepared', 'True', 'Prepared']], { schedulable: false });
    expect(drainState(released, undefined, { pods: [], poolVolumes: [] }).free).to.equal(false);
    expect(
      drainState(disk([['Prepared', 'False', 'NotClaimed']], { schedulable: false }), undefined, { pods: [], poolVolumes: [] }).free,
    ).to.equal(true);
  });
});
