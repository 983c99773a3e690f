/**
 * The Ceph cluster as configuration: where each daemon keeps its data on this machine and the
 * ceph.conf every daemon and client of the cluster reads. Pure: nothing here touches the host.
 *
 * Every path is under one `dataRoot`, so several clusters (parallel tests, played nodes) can share
 * a machine without meeting: their own monitor ports, run dir, admin sockets, logs and keys.
 */
import * as path from 'node:path';

/** Ceph's cluster name. Always the default: the cluster is told apart by its conf file, not its name. */
export const CLUSTER_NAME = 'ceph';

/** The monitor's default ports (3300 msgr2, 6789 msgr1) are fixed; a second cluster on one machine needs others. */
export const DEFAULT_MON_PORT = 3300;

/** Tuned down for small machines (a test cluster on 2 cores, a homelab node): see docs/ceph.md. */
export const SMALL_NODE_TUNING: CephTuning = {
  // BlueStore's own cache sized by hand: the autotuner aims at osd_memory_target (4 GiB by default).
  osdMemoryTargetBytes: 512 * 1024 ** 2,
  bluestoreCacheBytes: 64 * 1024 ** 2,
  // 8 PGs per pool: 128 (the default) times a few pools hits mon_max_pg_per_osd (250) on 3 OSDs.
  pgsPerPool: 8,
  maxPgsPerOsd: 500,
  // The monitor warns when its data disk is below 30 % free: on a shared root disk that is normal.
  monDataAvailWarnPercent: 5,
  monDataAvailCritPercent: 2,
  // Ceph's default: a down OSD is marked out (and its data re-replicated) after 10 minutes.
  downOutIntervalSeconds: 600,
};

export interface CephTuning {
  readonly osdMemoryTargetBytes: number;
  readonly bluestoreCacheBytes: number;
  readonly pgsPerPool: number;
  readonly maxPgsPerOsd: number;
  readonly monDataAvailWarnPercent: number;
  readonly monDataAvailCritPercent: number;
  readonly downOutIntervalSeconds: number;
}

export interface CephMonitorAddress {
  /** The monitor's id (`mon.<name>`): stable across restarts (the node name, or a letter). */
  readonly name: string;
  /** An IP address the monitor binds and clients dial. */
  readonly ip: string;
  /** Its msgr2 port; the default 3300 only when one cluster runs on the machine. */
  readonly port: number;
}

export interface CephClusterConfig {
  /** The cluster's UUID. */
  readonly fsid: string;
  readonly monitors: readonly CephMonitorAddress[];
  /** Every file of the cluster on this machine lives under here. */
  readonly dataRoot: string;
  readonly tuning?: Partial<CephTuning>;
}

/** Where each file of a cluster lives under its `dataRoot`. */
export interface CephPaths {
  readonly conf: string;
  readonly adminKeyring: string;
  readonly runDir: string;
  readonly logDir: string;
  readonly crashDir: string;
  monData(id: string): string;
  mgrData(id: string): string;
  osdData(id: number): string;
}

export function cephPaths(dataRoot: string): CephPaths {
  return {
    conf: path.join(dataRoot, 'ceph.conf'),
    adminKeyring: path.join(dataRoot, 'client.admin.keyring'),
    runDir: path.join(dataRoot, 'run'),
    logDir: path.join(dataRoot, 'log'),
    crashDir: path.join(dataRoot, 'crash'),
    monData: (id) => path.join(dataRoot, 'mon', `${CLUSTER_NAME}-${id}`),
    mgrData: (id) => path.join(dataRoot, 'mgr', `${CLUSTER_NAME}-${id}`),
    osdData: (id) => path.join(dataRoot, 'osd', `${CLUSTER_NAME}-${id}`),
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** What is wrong with a cluster's configuration, one sentence each (empty: nothing). */
export function clusterConfigProblems(c: CephClusterConfig): string[] {
  const out: string[] = [];
  if (!UUID.test(c.fsid)) out.push(`fsid ${JSON.stringify(c.fsid)} is not a lower-case UUID; generate one with crypto.randomUUID()`);
  if (c.monitors.length === 0) out.push('no monitors: a cluster needs at least one');
  const names = new Set<string>();
  const addrs = new Set<string>();
  for (const m of c.monitors) {
    if (!NAME.test(m.name)) out.push(`monitor name ${JSON.stringify(m.name)} must be a DNS label (a-z, 0-9, -)`);
    if (names.has(m.name)) out.push(`monitor name ${m.name} is given twice`);
    names.add(m.name);
    if (!Number.isInteger(m.port) || m.port < 1 || m.port > 65535) out.push(`monitor ${m.name}: port ${m.port} is not a TCP port`);
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(m.ip)) out.push(`monitor ${m.name}: ${JSON.stringify(m.ip)} is not an IPv4 address`);
    const addr = `${m.ip}:${m.port}`;
    if (addrs.has(addr)) out.push(`monitors share the address ${addr}: each needs its own port`);
    addrs.add(addr);
  }
  if (!path.isAbsolute(c.dataRoot)) out.push(`dataRoot ${JSON.stringify(c.dataRoot)} must be an absolute path`);
  return out;
}

/** A monitor's address as Ceph writes it: msgr2 only (every Ceph since Nautilus speaks it). */
export const monAddrVec = (m: CephMonitorAddress): string => `[v2:${m.ip}:${m.port}]`;

/**
 * The ceph.conf of a cluster. `$cluster`, `$id` and `$name` are Ceph's own metavariables, expanded
 * by each daemon for itself, so one file serves every daemon and client of the cluster here.
 */
export function renderCephConf(c: CephClusterConfig): string {
  const problems = clusterConfigProblems(c);
  if (problems.length > 0) throw new Error(`invalid Ceph cluster configuration: ${problems.join('; ')}`);
  const t: CephTuning = { ...SMALL_NODE_TUNING, ...c.tuning };
  const p = cephPaths(c.dataRoot);
  const global: Array<[string, string | number | boolean]> = [
    ['fsid', c.fsid],
    ['mon_initial_members', c.monitors.map((m) => m.name).join(',')],
    ['mon_host', c.monitors.map(monAddrVec).join(',')],
    // msgr1 would bind a second fixed port (6789) on every monitor.
    ['ms_bind_msgr1', false],
    ['auth_cluster_required', 'cephx'],
    ['auth_service_required', 'cephx'],
    ['auth_client_required', 'cephx'],
    // Only patched clients (CVE-2021-20288); also silences the warning that keeps HEALTH_OK away.
    ['auth_allow_insecure_global_id_reclaim', false],
    ['keyring', p.adminKeyring],
    ['run_dir', p.runDir],
    ['admin_socket', path.join(p.runDir, '$cluster-$name.asok')],
    ['log_file', path.join(p.logDir, '$cluster-$name.log')],
    ['crash_dir', p.crashDir],
    ['mon_data', path.join(c.dataRoot, 'mon', '$cluster-$id')],
    ['mgr_data', path.join(c.dataRoot, 'mgr', '$cluster-$id')],
    ['osd_data', path.join(c.dataRoot, 'osd', '$cluster-$id')],
    ['osd_objectstore', 'bluestore'],
    ['osd_pool_default_pg_num', t.pgsPerPool],
    ['osd_pool_default_pgp_num', t.pgsPerPool],
    // Stowage sets each pool's PG count; the autoscaler would move PGs under a test's feet.
    ['osd_pool_default_pg_autoscale_mode', 'off'],
    ['mon_max_pg_per_osd', t.maxPgsPerOsd],
    ['mon_data_avail_warn', t.monDataAvailWarnPercent],
    ['mon_data_avail_crit', t.monDataAvailCritPercent],
    ['mon_osd_down_out_interval', t.downOutIntervalSeconds],
    ['mon_allow_pool_delete', true],
    ['osd_memory_target', t.osdMemoryTargetBytes],
    ['bluestore_cache_autotune', false],
    ['bluestore_cache_size', t.bluestoreCacheBytes],
    // A dead cluster answers a client with an error instead of hanging it for 5 minutes.
    ['client_mount_timeout', 30],
    ['rados_mon_op_timeout', 60],
  ];
  const section = (name: string, entries: Array<[string, string | number | boolean]>): string =>
    `[${name}]\n${entries.map(([k, v]) => `${k} = ${v}`).join('\n')}\n`;
  return [
    '# Rendered by Stowage (src/node/ceph/cluster-config.ts); edits are overwritten.',
    section('global', global),
    section('mon', [['keyring', path.join(c.dataRoot, 'mon', '$cluster-$id', 'keyring')]]),
    section('mgr', [['keyring', path.join(c.dataRoot, 'mgr', '$cluster-$id', 'keyring')]]),
    section('osd', [['keyring', path.join(c.dataRoot, 'osd', '$cluster-$id', 'keyring')]]),
  ].join('\n');
}
