/**
 * Makes a loop device behave as a disk pulled from under a mounted filesystem: every read and
 * write fails from now on, the device reports a size of 0, and the kernel drops it at its last
 * unmount. A loop device cannot vanish while mounted (`losetup --detach` on a busy device only sets
 * autoclear), so: lazy detach, then the backing file truncated to 0 and `losetup --set-capacity`.
 * Writes in flight through the loop driver extend the file again between the truncate and the
 * capacity update, so both are repeated until the device reports 0 (from then on the block layer
 * refuses every request past the end, and nothing reaches the file any more).
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { runStatus } from '../../src/host/command.js';
import type { LoopDevices, LoopDevice } from '../support/loop-devices.js';

/**
 * How long the pull may take. Under a busy writer (the filesystem's writeback keeps bios in flight)
 * a single truncate and capacity update loses the race now and then: one CI run lost 50 in a row.
 * Each round is one shell (truncate, set-capacity, read the size back) to keep the window short,
 * and rounds go on until the device reports 0 or this time is up.
 */
const PULL_TIMEOUT_MS = 60_000;
const ROUNDS_PER_SHELL = 200;

export async function pullDisk(loops: LoopDevices, disk: LoopDevice): Promise<void> {
  await loops.detach(disk.device); // lazy: the kernel keeps a busy device until its last unmount
  const size = `/sys/block/${basename(disk.device)}/size`;
  const t0 = Date.now();
  let rounds = 0;
  while (Date.now() - t0 < PULL_TIMEOUT_MS) {
    // Exits 0 as soon as the device reports 0 sectors, 1 after ROUNDS_PER_SHELL lost races.
    const r = await runStatus('sh', [
      '-c',
      `for i in $(seq ${ROUNDS_PER_SHELL}); do : > "$1"; losetup --set-capacity "$2" || exit 2; [ "$(cat "$3")" = 0 ] && exit 0; done; exit 1`,
      'pull-disk',
      disk.file,
      disk.device,
      size,
    ]);
    rounds += ROUNDS_PER_SHELL;
    if (r.code === 0) return;
    if (r.code !== 1) throw new Error(`pulling ${disk.device}: losetup --set-capacity failed (${r.code}): ${r.stderr.trim()}`);
  }
  const sectors = (await readFile(size, 'utf8')).trim();
  throw new Error(
    `${disk.device} still reports ${sectors} sectors after about ${rounds} truncations of ${disk.file} in ${PULL_TIMEOUT_MS / 1000} s`,
  );
}
