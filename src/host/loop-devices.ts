import { run } from './command.js';

/** Loop devices whose backing file is `file` (`losetup -j`). */
export async function loopDevicesOf(file: string): Promise<string[]> {
  // Lines look like `/dev/loop3: [2049]:1234 (/path/to/file)`.
  const text = await run('losetup', ['--associated', file]).catch(() => '');
  return text
    .split('\n')
    .map((l) => l.slice(0, l.indexOf(':')).trim())
    .filter((l) => l.startsWith('/dev/'));
}
