/**
 * Making a cluster from nothing: its conf and keys, the monitors' stores (`ceph-mon --mkfs` over a
 * monmap from `monmaptool`) and a manager's key. Thin: the decisions are in cluster-config.ts and
 * keyrings.ts; this writes files and runs Ceph's tools.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { run } from '../../host/command.js';
import { ifNotFound } from '../../util/errors.js';
import { logger } from '../../util/logger.js';
import type { CephCli } from './ceph-cli.js';
import { cephPaths, clusterConfigProblems, monAddrVec, renderCephConf, type CephClusterConfig } from './cluster-config.js';
import { ADMIN_CAPS, MGR_CAPS, MON_CAPS, generateKey, renderKeyring } from './keyrings.js';

const log = logger('ceph-bootstrap');

/** The keys a cluster is born with; the operator keeps them (in Secrets) to start daemons anywhere. */
export interface ClusterKeys {
  /** `client.admin`. */
  readonly admin: string;
  /** `mon.`, shared by every monitor. */
  readonly mon: string;
}

export async function generateClusterKeys(): Promise<ClusterKeys> {
  return { admin: await generateKey(), mon: await generateKey() };
}

/** Writes ceph.conf and the admin keyring under `dataRoot` and makes the run and log dirs. */
export async function writeClusterFiles(config: CephClusterConfig, keys: Pick<ClusterKeys, 'admin'>): Promise<void> {
  const p = cephPaths(config.dataRoot);
  for (const dir of [config.dataRoot, p.runDir, p.logDir, p.crashDir]) await mkdir(dir, { recursive: true, mode: 0o750 });
  await writeFile(p.conf, renderCephConf(config), { mode: 0o644 });
  await writeFile(p.adminKeyring, renderKeyring([{ entity: 'client.admin', key: keys.admin, caps: ADMIN_CAPS }]), { mode: 0o600 });
}

/**
 * Creates monitor `id`'s store from the cluster's initial monmap (every monitor of the config), so
 * all initial monitors agree without talking first. Refuses to overwrite an existing store: a
 * monitor's store is the cluster's memory.
 */
export async function mkfsMonitor(config: CephClusterConfig, keys: ClusterKeys, id: string): Promise<void> {
  const problems = clusterConfigProblems(config);
  if (problems.length > 0) throw new Error(`invalid Ceph cluster configuration: ${problems.join('; ')}`);
  if (!config.monitors.some((m) => m.name === id))
    throw new Error(`monitor ${id} is not among the cluster's monitors (${config.monitors.map((m) => m.name).join(', ')})`);
  const p = cephPaths(config.dataRoot);
  const data = p.monData(id);
  if (await exists(path.join(data, 'store.db')))
    throw new Error(`monitor ${id} already has a store at ${data}; start it instead of creating it again`);
  const scratch = await mkdtemp(path.join(config.dataRoot, '.mon-mkfs-'));
  try {
    const keyring = path.join(scratch, 'keyring');
    await writeFile(
      keyring,
      renderKeyring([
        { entity: 'mon.', key: keys.mon, caps: MON_CAPS },
        { entity: 'client.admin', key: keys.admin, caps: ADMIN_CAPS },
      ]),
      { mode: 0o600 },
    );
    const monmap = path.join(scratch, 'monmap');
    await run('monmaptool', [
      '--create',
      '--fsid',
      config.fsid,
      ...config.monitors.flatMap((m) => ['--addv', m.name, monAddrVec(m)]),
      monmap,
    ]);
    await mkdir(data, { recursive: true, mode: 0o750 });
    await run('ceph-mon', ['-c', p.conf, '--mkfs', '-i', id, '--monmap', monmap, '--keyring', keyring]);
    log.info({ id, data }, 'monitor store created');
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Gives manager `id` its key (creating it in the cluster when new) and writes its keyring. */
export async function prepareManager(cli: CephCli, dataRoot: string, id: string): Promise<void> {
  const data = cephPaths(dataRoot).mgrData(id);
  await mkdir(data, { recursive: true, mode: 0o750 });
  const caps = Object.entries(MGR_CAPS).flatMap(([svc, cap]) => [svc, cap]);
  const keyring = await cli.run(['auth', 'get-or-create', `mgr.${id}`, ...caps]);
  await writeFile(path.join(data, 'keyring'), keyring, { mode: 0o600 });
}

/** Whether `file` exists; an error other than "not found" (EACCES, EIO) is thrown, not read as "no". */
async function exists(file: string): Promise<boolean> {
  return stat(file).then(() => true, ifNotFound(false));
}
