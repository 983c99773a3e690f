/**
 * OSDs: BlueStore straight on a block device, without LVM (there may be no device-mapper): `ceph osd
 * new` registers the OSD with its key, `ceph-osd --mkfs` writes BlueStore on the device the caller
 * gave, which must be blank. Taking one out waits for Ceph's word that no data depends on it
 * before destroying it and wiping the device it was made on, and nothing else.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, open, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { run } from '../../host/command.js';
import { errorMessage } from '../../util/errors.js';
import { logger } from '../../util/logger.js';
import { assertBlankDevice, deviceProblems } from './blank-device.js';
import { waitUntil, type CephCli } from './ceph-cli.js';
import { cephPaths } from './cluster-config.js';
import type { CrushPlace } from './crush.js';
import { CephDaemon, osdDaemonArgs } from './daemons.js';
import { generateKey, renderKeyring } from './keyrings.js';
import { readSafeToDestroy } from './status-json.js';

const log = logger('ceph-osd');

/** BlueStore's label, superblock and first metadata sit at the start; Ceph's own zap clears 10 MiB. */
const WIPE_HEAD_BYTES = 10 * 1024 ** 2;

export interface OsdRecord {
  readonly id: number;
  readonly uuid: string;
  /** The device the OSD was made on, as the caller gave it. */
  readonly device: string;
}

/**
 * Turns `device` (blank, explicitly given) into a new OSD of the cluster. On failure after the OSD
 * was registered, the registration and the data dir are undone, so nothing half-made stays.
 */
export async function createOsd(cli: CephCli, dataRoot: string, device: string): Promise<OsdRecord> {
  await assertBlankDevice(device);
  const uuid = randomUUID();
  const key = await generateKey();
  const id = Number((await cli.run(['osd', 'new', uuid, '-i', '-'], { input: JSON.stringify({ cephx_secret: key }) })).trim());
  if (!Number.isInteger(id) || id < 0) throw new Error(`ceph osd new ${uuid} returned no OSD id`);
  const data = cephPaths(dataRoot).osdData(id);
  try {
    await mkdir(data, { recursive: true, mode: 0o750 });
    await writeFile(path.join(data, 'keyring'), renderKeyring([{ entity: `osd.${id}`, key }]), { mode: 0o600 });
    await run('ceph-osd', [
      '-c',
      cephPaths(dataRoot).conf,
      '-i',
      String(id),
      '--mkfs',
      '--osd-uuid',
      uuid,
      '--osd-objectstore',
      'bluestore',
      '--bluestore-block-path',
      device,
    ]);
  } catch (e) {
    await cli.run(['osd', 'purge', String(id), '--yes-i-really-mean-it']).catch((err: unknown) => {
      // The mkfs error below is what the caller must see; a registration left behind is for the log.
      log.warn(
        { id, err: errorMessage(err) },
        `could not purge the half-made osd.${id}; remove it with "ceph osd purge ${id} --yes-i-really-mean-it"`,
      );
    });
    await rm(data, { recursive: true, force: true });
    throw new Error(`could not make osd.${id} on ${device}: ${(e as Error).message}`, { cause: e });
  }
  log.info({ id, uuid, device }, 'OSD created');
  return { id, uuid, device };
}

/** Starts an OSD in the foreground at its CRUSH place (the same at every start). */
export function startOsd(dataRoot: string, id: number, place: CrushPlace): Promise<CephDaemon> {
  return CephDaemon.start('osd', String(id), osdDaemonArgs(dataRoot, id, place), dataRoot);
}

export interface RemoveOsdOptions {
  readonly osd: OsdRecord;
  /** Stops the OSD's daemon (wherever it runs); called once Ceph says it is safe to destroy. */
  readonly stopDaemon: () => Promise<void>;
  /** How long to wait for its data to move elsewhere. */
  readonly timeoutMs: number;
  /** Progress while waiting (e.g. the pool's status). */
  readonly onWait?: (waitedMs: number) => void;
}

export interface RemovedOsd {
  readonly id: number;
  readonly device: string;
  /** Time from marking it out until Ceph said it was safe to destroy. */
  readonly drainMs: number;
}

/**
 * Takes an OSD out of the cluster without losing data: marks it out, waits until `ceph osd
 * safe-to-destroy` says no data depends on it any more, stops it, purges it from the cluster and
 * only then wipes the device it was made on. A timeout leaves it out but intact, saying why.
 */
export async function removeOsd(cli: CephCli, dataRoot: string, opts: RemoveOsdOptions): Promise<RemovedOsd> {
  const { id, device } = opts.osd;
  const data = cephPaths(dataRoot).osdData(id);
  // The device to wipe must be the one this OSD stands on: its data dir's `block` link says which.
  const block = await realpath(path.join(data, 'block')).catch(() => undefined);
  // A device path that cannot be resolved (gone, unreadable) matches no block link: refused below, nothing changed.
  const given = await realpath(device).catch(() => undefined);
  if (!block || block !== given) {
    throw new Error(`osd.${id}'s data dir ${data} points at ${block ?? 'no block device'}, not ${device}; nothing was changed`);
  }
  await cli.run(['osd', 'out', String(id)]);
  log.info({ id }, 'OSD marked out; waiting until it is safe to destroy');
  const start = Date.now();
  try {
    await waitUntil(
      `osd.${id} to be safe to destroy (its data copied elsewhere)`,
      opts.timeoutMs,
      async () => {
        opts.onWait?.(Date.now() - start);
        return readSafeToDestroy(await cli.json(['osd', 'safe-to-destroy', String(id)]), id);
      },
      1000,
    );
  } catch (e) {
    throw new Error(
      `${(e as Error).message}; osd.${id} stays out and intact, its device ${device} untouched. ` +
        "Ceph needs room for its copies elsewhere: add a disk in another failure domain, or lower the pool's size",
      { cause: e },
    );
  }
  const drainMs = Date.now() - start;
  await opts.stopDaemon();
  await cli.run(['osd', 'purge', String(id), '--yes-i-really-mean-it']);
  log.warn({ id, device }, 'OSD purged; wiping its device');
  await wipeOsdDevice(device, await readlink(path.join(data, 'block')));
  await rm(data, { recursive: true, force: true });
  return { id, device, drainMs };
}

/** Clears BlueStore from the device an OSD stood on: every signature, then the first 10 MiB. */
async function wipeOsdDevice(device: string, blockLink: string): Promise<void> {
  await run('wipefs', ['--all', '--force', device]);
  const handle = await open(device, 'r+');
  try {
    const zeros = Buffer.alloc(1024 ** 2);
    for (let off = 0; off < WIPE_HEAD_BYTES; off += zeros.length) await handle.write(zeros, 0, zeros.length, off);
    await handle.sync();
  } finally {
    await handle.close();
  }
  const left = (await deviceProblems(device)).filter((p) => /signature/.test(p));
  if (left.length > 0) throw new Error(`wiped ${device} (the OSD's block ${blockLink}) but ${left.join('; ')}`);
}
