import { execFile } from 'node:child_process';

/** Host tools that do not answer within this time are killed; a hung tool must not wedge the agent. */
const DEFAULT_TIMEOUT_MS = 120_000;

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

/** Thrown when a host tool is not installed (ENOENT), so callers can degrade (e.g. no smartctl). */
export class ToolMissingError extends Error {
  override readonly name = 'ToolMissingError';
}

/**
 * Runs a host tool without a shell and returns its output and exit code (a non-zero exit is not
 * an error here: blkid and smartctl use exit codes as answers). Spawn failures throw; a missing
 * tool throws {@link ToolMissingError} naming the Debian package to install.
 */
export function exec(cmd: string, args: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C' },
      },
      (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(
            new ToolMissingError(
              `${cmd} is not installed on this node${PACKAGE_HINT[cmd] ? `; install the Debian package ${PACKAGE_HINT[cmd]}` : ''}`,
            ),
          );
          return;
        }
        if (err && typeof (err as { code?: unknown }).code !== 'number') {
          reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`));
          return;
        }
        resolve({ stdout, stderr, code: err ? Number((err as { code?: unknown }).code) : 0 });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like {@link exec}, but a non-zero exit throws with the tool's own message. */
export async function execOk(cmd: string, args: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  const res = await exec(cmd, args, opts);
  if (res.code !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${res.code}): ${(res.stderr || res.stdout).trim().slice(0, 500)}`);
  }
  return res.stdout;
}

const PACKAGE_HINT: Record<string, string> = {
  lsblk: 'util-linux',
  blkid: 'util-linux',
  wipefs: 'util-linux',
  blkdiscard: 'util-linux',
  mount: 'mount',
  umount: 'mount',
  smartctl: 'smartmontools',
  'mkfs.ext4': 'e2fsprogs',
  'mkfs.xfs': 'xfsprogs',
  udevadm: 'udev',
};
