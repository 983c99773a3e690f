import { execFile } from 'node:child_process';

/** A storage tool that does not answer within this time is killed, so a hung device cannot wedge the daemon. */
const DEFAULT_TIMEOUT_MS = 10 * 60_000;

/**
 * Runs a host tool without a shell (arguments are never interpreted) and returns stdout; a non-zero
 * exit throws with the tool's own message, which is what an operator needs to see.
 */
export function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C' },
      },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return reject(new Error(`${cmd} is not installed on this node; install ${PACKAGES[cmd] ?? 'it'}`));
        reject(new Error(`${cmd} ${args.join(' ')} failed: ${(stderr || stdout || err.message).trim().slice(0, 800)}`));
      },
    );
  });
}

/** Like {@link run}, but resolves with the exit code instead of throwing on a non-zero exit. */
export function runStatus(cmd: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: DEFAULT_TIMEOUT_MS, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return reject(new Error(`${cmd} is not installed on this node`));
      const code = err ? Number((err as { code?: unknown }).code ?? 1) : 0;
      resolve({ code: Number.isFinite(code) ? code : 1, stdout, stderr });
    });
  });
}

const PACKAGES: Record<string, string> = {
  btrfs: 'the Debian package btrfs-progs',
  'mkfs.btrfs': 'the Debian package btrfs-progs',
  losetup: 'the Debian package util-linux',
  blkid: 'the Debian package util-linux',
  mount: 'the Debian package mount',
  umount: 'the Debian package mount',
  wipefs: 'the Debian package util-linux',
  chattr: 'the Debian package e2fsprogs',
  fallocate: 'the Debian package util-linux',
  perl: 'the Debian package perl-base',
};
