import { expect } from 'chai';
import type { NodeDisk } from '../../src/crds/nodedisk.js';
import type { StoragePool } from '../../src/crds/storagepool.js';
import { withDefaults } from '../../src/crds/validation.js';
import type { Node } from '../../src/kube/types.js';
import { describePlacement, isSatisfiable, placementOf } from '../../src/operator/ceph/failure-domains.js';
import { acrossNodesStatus, placementEvents, type AcrossNodesObservation } from '../../src/operator/ceph/placement-status.js';
import { renderDesired } from '../../src/operator/render.js';

const T0 = '2026-01-01T00:00:00Z';
const T1 = '2026-01-01T00:05:00Z';

function pool(replicated: object, name = 'across'): StoragePool {
  return withDefaults({
    apiVersion: 'stowage.dev/v1alpha1',
    kind: 'StoragePool',
    metadata: { name, generation: 1, uid: 'u-1' },
    spec: { mode: 'Dynamic', disks: { selector: {} }, replicated },
  });
}

function node(name: string, zone?: string): Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, ...(zone ? { 'topology.kubernetes.io/zone': zone } : {}) } },
  };
}

function disk(name: string, nodeName: string, eligible = true): NodeDisk {
  return {
    apiVersion: 'stowage.dev/v1alpha1',
    kind: 'NodeDisk',
    metadata: { name, labels: { 'stowage.dev/node': nodeName } },
    spec: { nodeName, devicePath: `/dev/disk/by-id/${name}` },
    status: {
      capacity: '100Gi',
      conditions: [
        {
          type: 'Eligible',
          status: eligible ? 'True' : 'False',
          reason: eligible ? 'Blank' : 'HasFilesystem',
          message: '',
          lastTransitionTime: T0,
        },
      ],
    },
  };
}

const nodeMap = (...nodes: Node[]): Map<string, Node> => new Map(nodes.map((n) => [n.metadata.name!, n]));

describe('failure domains up front (pure: operator/ceph/)', () => {
  it('counts hosts that hold eligible disks, and names them', () => {
    const p = placementOf(
      pool({ size: 3, failureDomain: 'host' }),
      [disk('a1', 'n1'), disk('a2', 'n1'), disk('b1', 'n2')],
      nodeMap(node('n1'), node('n2'), node('n3')),
    );
    expect(p.domains.map((d) => [d.name, d.disks])).to.deep.equal([
      ['n1', 2],
      ['n2', 1],
    ]);
    expect(isSatisfiable(p)).to.equal(false);
    expect(describePlacement(p)).to.equal('2 of the 3 hosts size 3 needs hold eligible disks: n1, n2');
  });

  it('is satisfiable with size hosts, and says so with the figures', () => {
    const p = placementOf(pool({ size: 2, failureDomain: 'host' }), [disk('a1', 'n1'), disk('b1', 'n2')], nodeMap(node('n1'), node('n2')));
    expect(isSatisfiable(p)).to.equal(true);
    expect(describePlacement(p)).to.equal('2 hosts hold eligible disks the pool selects, size 2 needs 2: n1, n2');
  });

  it('counts zones from the Node label, and names the nodes without one', () => {
    const nodes = nodeMap(node('n1', 'a'), node('n2', 'a'), node('n3'), node('n4'));
    const p = placementOf(
      pool({ size: 2, failureDomain: 'zone' }),
      [disk('a1', 'n1'), disk('a2', 'n2'), disk('c1', 'n3'), disk('d1', 'n4')],
      nodes,
    );
    expect(p.domains).to.deep.equal([{ name: 'a', nodes: ['n1', 'n2'], disks: 2 }]);
    expect(p.unzonedNodes).to.deep.equal(['n3', 'n4']);
    expect(describePlacement(p)).to.equal(
      '1 of the 2 zones size 2 needs holds eligible disks: a (n1, n2); eligible disks on n3, n4 count for no zone: those nodes have no topology.kubernetes.io/zone label',
    );
    const labelled = placementOf(
      pool({ size: 2, failureDomain: 'zone' }),
      [disk('a1', 'n1'), disk('c1', 'n3')],
      nodeMap(node('n1', 'a'), node('n3', 'b')),
    );
    expect(isSatisfiable(labelled)).to.equal(true);
    expect(describePlacement(labelled)).to.equal('2 zones hold eligible disks the pool selects, size 2 needs 2: a (n1), b (n3)');
  });

  it('says when no domain holds a disk, and ignores disks of nodes that are gone', () => {
    const p = placementOf(pool({ size: 3, failureDomain: 'host' }), [disk('x1', 'gone')], nodeMap(node('n1')));
    expect(p.domains).to.deep.equal([]);
    expect(describePlacement(p)).to.equal('no hosts hold eligible disks the pool selects; size 3 needs 3 hosts');
  });

  it('lists at most five names, then how many more', () => {
    const names = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'];
    const p = placementOf(
      pool({ size: 3, failureDomain: 'host' }),
      names.map((n) => disk(`${n}-d`, n)),
      nodeMap(...names.map((n) => node(n))),
    );
    expect(describePlacement(p)).to.equal('7 hosts hold eligible disks the pool selects, size 3 needs 3: n1, n2, n3, n4, n5, and 2 more');
  });
});

describe('the status of a host or zone pool (pure)', () => {
  const unsatisfiable = (): AcrossNodesObservation => ({
    generation: 1,
    placement: placementOf(pool({ size: 3, failureDomain: 'host' }), [disk('a1', 'n1'), disk('b1', 'n2')], nodeMap(node('n1'), node('n2'))),
    leftovers: { disks: [], storageClasses: [] },
  });
  const satisfiable = (): AcrossNodesObservation => ({
    ...unsatisfiable(),
    placement: placementOf(pool({ size: 2, failureDomain: 'host' }), [disk('a1', 'n1'), disk('b1', 'n2')], nodeMap(node('n1'), node('n2'))),
  });

  it('too few hosts: ReplicationSatisfiable=False naming them and what to do, Ready=False saying nothing is created', () => {
    const status = acrossNodesStatus(unsatisfiable(), undefined, T0);
    expect(status.observedGeneration).to.equal(1);
    expect(status.conditions!.map((c) => [c.type, c.status, c.reason])).to.deep.equal([
      ['Ready', 'False', 'ReplicationNotSatisfiable'],
      ['ReplicationSatisfiable', 'False', 'TooFewFailureDomains'],
    ]);
    expect(status.conditions![1].message).to.equal(
      '2 of the 3 hosts size 3 needs hold eligible disks: n1, n2; add eligible disks on other nodes (and make them match spec.disks), or lower replicated.size; nothing is created for the pool until then',
    );
    expect(status.conditions![0].message).to.equal(
      'nothing is created for the pool (no StorageClass, no disk claims) while fewer than 3 nodes hold eligible disks; ReplicationSatisfiable says which do',
    );
    expect(status.storageClassName, 'no class is published').to.equal(undefined);
  });

  it('enough hosts: Ready=False CephEngineNotDeployed, saying this version computes placement but does not deploy Ceph', () => {
    const status = acrossNodesStatus(satisfiable(), undefined, T0);
    expect(status.conditions!.map((c) => [c.type, c.status, c.reason])).to.deep.equal([
      ['Ready', 'False', 'CephEngineNotDeployed'],
      ['ReplicationSatisfiable', 'True', 'EnoughFailureDomains'],
    ]);
    expect(status.conditions![0].message).to.contain('does not yet deploy the Ceph cluster').and.contain('no StorageClass is published');
  });

  it('a pool that was a disk pool: what it holds is named and left alone (FailureDomainChanged)', () => {
    const status = acrossNodesStatus(
      { ...satisfiable(), leftovers: { disks: ['n1-a', 'n2-a'], storageClasses: ['across'] } },
      undefined,
      T0,
    );
    expect(status.conditions![0]).to.include({ reason: 'FailureDomainChanged', status: 'False' });
    expect(status.conditions![0].message)
      .to.contain('2 disk(s) (n1-a, n2-a) and StorageClass across')
      .and.contain('data does not move between engines');
  });

  it('keeps lastTransitionTime while nothing changes, drops conditions the pool no longer reports, and is stable', () => {
    const first = acrossNodesStatus(
      unsatisfiable(),
      { conditions: [{ type: 'DriverReady', status: 'True', reason: 'PluginsRunning', message: '', lastTransitionTime: T0 }] },
      T0,
    );
    expect(first.conditions!.map((c) => c.type)).to.deep.equal(['Ready', 'ReplicationSatisfiable']);
    const again = acrossNodesStatus(unsatisfiable(), first, T1);
    expect(again).to.deep.equal(first);
    const fixed = acrossNodesStatus(satisfiable(), first, T1);
    expect(fixed.conditions!.find((c) => c.type === 'ReplicationSatisfiable')!.lastTransitionTime).to.equal(T1);
  });

  it('announces a turn to unsatisfiable once (and again when the domains change), and the recovery', () => {
    const bad = acrossNodesStatus(unsatisfiable(), undefined, T0);
    const good = acrossNodesStatus(satisfiable(), bad, T1);
    expect(placementEvents(undefined, bad.conditions)).to.deep.equal([
      { type: 'Warning', reason: 'ReplicationNotSatisfiable', message: bad.conditions![1].message },
    ]);
    expect(placementEvents(bad.conditions, bad.conditions)).to.deep.equal([]);
    expect(placementEvents(bad.conditions, good.conditions)).to.deep.equal([
      { type: 'Normal', reason: 'EnoughFailureDomains', message: good.conditions![1].message },
    ]);
    expect(placementEvents(good.conditions, good.conditions)).to.deep.equal([]);
  });
});

describe('stowage render: host and zone pools', () => {
  it('renders nothing for them (no StorageClass, no claims, no CSI controller) and notes the placement', () => {
    const raw = {
      apiVersion: 'stowage.dev/v1alpha1',
      kind: 'StoragePool',
      metadata: { name: 'across', uid: 'u' },
      spec: { mode: 'Dynamic', disks: { selector: {} }, replicated: { size: 3, failureDomain: 'host' } },
    } as StoragePool;
    const out = renderDesired({ pools: [raw], disks: [disk('a1', 'n1'), disk('b1', 'n2')], nodes: [node('n1'), node('n2')] });
    expect(out.objects.map((o) => o.kind)).to.deep.equal(['DaemonSet']);
    expect(out.notes).to.deep.equal([
      'pool across: failureDomain host: 2 of the 3 hosts size 3 needs hold eligible disks: n1, n2; nothing is created for it (ReplicationSatisfiable=False)',
    ]);
  });
});
