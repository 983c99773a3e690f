/**
 * Makes a loop device behave as a disk pulled from under a mounted filesystem: every read and
 * write fails from now on, the device reports a size of 0, and the kernel drops it at its last
 * unmount. A loop device cannot vanish while mounted (`losetup --detach` on a busy device only sets
 * autoclear), so: lazy detach, then the backing file truncated to 0 and `losetup --set-capacity`.
 * Writes in flight through the loop driver extend the file again between the truncate and the
 * capacity update, so both are repeated until the device reports 0 (from then on the block layer
 * refuses every request past the end, and nothing reaches the file any more).
 */
import { readFile, truncate } from 'node:fs/promises';
import { basename } from 'node:path';
import { run } from '../../src/host/command.js';
import type { LoopDevices, LoopDevice } from '../support/loop-devices.js';

const ATTEMPTS = 50;

export async function pullDisk(loops: LoopDevices, disk: LoopDevice): Promise<void> {
  await loops.detach(disk.device); // lazy: the kernel keeps a busy device until its last unmount
  for (let i = 0; i < ATTEMPTS; i++) {
    await truncate(disk.file, 0);
    await run('losetup', ['--set-capacity', disk.device]);
    const sectors = (await readFile(`/sys/block/${basename(disk.device)}/size`, 'utf8')).trim();
    if (sectors === '0') return;
  }
  throw new Error(`${disk.device} still reports a size after ${ATTEMPTS} truncations of ${disk.file}`);
}
