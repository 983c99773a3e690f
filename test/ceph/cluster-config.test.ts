import { expect } from 'chai';
import { cephPaths, clusterConfigProblems, renderCephConf, type CephClusterConfig } from '../../src/node/ceph/cluster-config.js';
import { crushLocation, crushRuleName, minSizeOf, replicatedPoolCommands } from '../../src/node/ceph/crush.js';
import { mgrDaemonArgs, monDaemonArgs, osdDaemonArgs } from '../../src/node/ceph/daemons.js';
import { ADMIN_CAPS, renderKeyring } from '../../src/node/ceph/keyrings.js';

const CLUSTER: CephClusterConfig = {
  fsid: '6c9a1e69-d082-4c09-8cd4-e8a4461c7d16',
  monitors: [
    { name: 'a', ip: '127.0.0.1', port: 13300 },
    { name: 'b', ip: '127.0.0.1', port: 13301 },
  ],
  dataRoot: '/var/lib/stowage/ceph',
};

describe('Ceph cluster configuration (pure)', () => {
  it("renders a ceph.conf with the caller's monitor ports, every path under dataRoot and small-node tuning", () => {
    const conf = renderCephConf(CLUSTER);
    const lines = conf.split('\n');
    expect(lines).to.include('fsid = 6c9a1e69-d082-4c09-8cd4-e8a4461c7d16');
    expect(lines).to.include('mon_host = [v2:127.0.0.1:13300],[v2:127.0.0.1:13301]');
    expect(lines).to.include('mon_initial_members = a,b');
    expect(lines).to.include('ms_bind_msgr1 = false');
    expect(lines).to.include('osd_pool_default_pg_num = 8');
    expect(lines).to.include('osd_memory_target = 536870912');
    expect(lines).to.include('bluestore_cache_size = 67108864');
    expect(lines).to.include('mon_data_avail_warn = 5');
    expect(lines).to.include('mon_max_pg_per_osd = 500');
    expect(lines).to.include('admin_socket = /var/lib/stowage/ceph/run/$cluster-$name.asok');
    expect(lines).to.include('osd_data = /var/lib/stowage/ceph/osd/$cluster-$id');
    // Every absolute path in the file is under dataRoot: two clusters on one machine never meet.
    for (const m of conf.matchAll(/= (\/\S+)/g)) expect(m[1]).to.match(/^\/var\/lib\/stowage\/ceph\//);
    expect(conf).to.match(/\[osd\]\nkeyring = \/var\/lib\/stowage\/ceph\/osd\/\$cluster-\$id\/keyring\n/);
    const tuned = renderCephConf({ ...CLUSTER, tuning: { pgsPerPool: 32, downOutIntervalSeconds: 30 } });
    expect(tuned).to.include('osd_pool_default_pgp_num = 32').and.include('mon_osd_down_out_interval = 30');
    expect(cephPaths('/d').osdData(3)).to.equal('/d/osd/ceph-3');
  });

  it('refuses a configuration Ceph would choke on, saying what is wrong', () => {
    expect(() => renderCephConf({ ...CLUSTER, fsid: 'nope' })).to.throw(/fsid "nope" is not a lower-case UUID/);
    expect(clusterConfigProblems({ ...CLUSTER, monitors: [] })).to.deep.equal(['no monitors: a cluster needs at least one']);
    expect(
      clusterConfigProblems({ ...CLUSTER, monitors: [CLUSTER.monitors[0], { name: 'b', ip: '127.0.0.1', port: 13300 }] }),
    ).to.deep.equal(['monitors share the address 127.0.0.1:13300: each needs its own port']);
    expect(clusterConfigProblems({ ...CLUSTER, monitors: [{ name: 'A_', ip: 'localhost', port: 0 }], dataRoot: 'rel' })).to.deep.equal([
      'monitor name "A_" must be a DNS label (a-z, 0-9, -)',
      'monitor A_: port 0 is not a TCP port',
      'monitor A_: "localhost" is not an IPv4 address',
      'dataRoot "rel" must be an absolute path',
    ]);
  });

  it('places an OSD at its node, under its zone when the node has one', () => {
    expect(crushLocation({ node: 'n1' })).to.equal('root=default host=n1');
    expect(crushLocation({ node: 'worker-2.example', zone: 'eu-west-1a' })).to.equal('root=default zone=eu-west-1a host=worker-2.example');
    expect(() => crushLocation({ node: 'n 1' })).to.throw(/node name "n 1" cannot be a CRUSH host name/);
    expect(() => crushLocation({ node: 'n1', zone: 'a=b' })).to.throw(/zone "a=b" cannot be a CRUSH zone name/);
  });

  it('creates a replicated pool with its own rule for its failure domain, size and min_size', () => {
    expect(replicatedPoolCommands({ name: 'fast', size: 3, failureDomain: 'host', pgNum: 8, application: 'rados' })).to.deep.equal([
      ['osd', 'crush', 'rule', 'create-replicated', 'stowage-fast', 'default', 'host'],
      ['osd', 'pool', 'create', 'fast', '8', '8', 'replicated', 'stowage-fast', '--size', '3'],
      ['osd', 'pool', 'set', 'fast', 'crush_rule', 'stowage-fast'],
      ['osd', 'pool', 'set', 'fast', 'size', '3'],
      ['osd', 'pool', 'set', 'fast', 'min_size', '2'],
      ['osd', 'pool', 'application', 'enable', 'fast', 'rados'],
    ]);
    expect(
      replicatedPoolCommands({ name: 'z', size: 2, minSize: 2, failureDomain: 'zone', pgNum: 16, application: 'cephfs' })[0],
    ).to.deep.equal(['osd', 'crush', 'rule', 'create-replicated', 'stowage-z', 'default', 'zone']);
    expect(crushRuleName('x')).to.equal('stowage-x');
    expect([1, 2, 3].map((size) => minSizeOf({ size }))).to.deep.equal([1, 1, 2]);
    expect(() =>
      replicatedPoolCommands({ name: '.mgr', size: 3, minSize: 4, failureDomain: 'rack' as never, pgNum: 6, application: 'RBD' }),
    ).to.throw(
      /invalid pool \.mgr: pool name "\.mgr": .*; failure domain "rack": use one of host, zone, osd; minSize 4: from 1 to size \(3\); pgNum 6: a power of two; application "RBD"/,
    );
  });

  it("renders keyrings in ceph-authtool's own layout, refusing what is not a key or an entity", () => {
    const key = 'AQARLRZrlFMPHBAA5+fEYpb8sSoDvHGYc6tfwA==';
    expect(
      renderKeyring([
        { entity: 'client.admin', key, caps: ADMIN_CAPS },
        { entity: 'osd.3', key },
      ]),
    ).to.equal(
      `[client.admin]\n\tkey = ${key}\n\tcaps mds = "allow *"\n\tcaps mgr = "allow *"\n\tcaps mon = "allow *"\n\tcaps osd = "allow *"\n` +
        `[osd.3]\n\tkey = ${key}\n`,
    );
    expect(() => renderKeyring([{ entity: 'osd.x', key }])).to.throw(/"osd.x" is not a Ceph entity name/);
    expect(() => renderKeyring([{ entity: 'mon.', key: 'secret' }])).to.throw(
      /the key for mon\. is not a CephX key; make one with ceph-authtool --gen-print-key/,
    );
  });

  it("runs every daemon in the foreground on the cluster's conf, OSDs at their CRUSH place", () => {
    expect(monDaemonArgs('/d', 'a')).to.deep.equal(['ceph-mon', '-f', '-c', '/d/ceph.conf', '-i', 'a']);
    expect(mgrDaemonArgs('/d', 'x')).to.deep.equal(['ceph-mgr', '-f', '-c', '/d/ceph.conf', '-i', 'x']);
    expect(osdDaemonArgs('/d', 2, { node: 'n3', zone: 'z1' })).to.deep.equal([
      'ceph-osd',
      '-f',
      '-c',
      '/d/ceph.conf',
      '-i',
      '2',
      '--crush-location',
      'root=default zone=z1 host=n3',
    ]);
  });
});
