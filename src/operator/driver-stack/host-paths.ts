/**
 * Host directories the node DaemonSet mounts. kubelet's root directory on the nodes (kubelet's
 * `--root-dir`) comes from the operator's `--kubelet-root-dir`; the node DaemonSet names it everywhere kubelet and the node plugin must
 * agree: the plugin's socket and the registration directory below it, the hostPath volume mounted
 * Bidirectional (pods' volumes are mounted under it), and `stowage node --kubelet-dir`. Most
 * distributions keep it at /var/lib/kubelet; k0s, MicroK8s and others move it (docs/install.md
 * lists them), and there a DaemonSet that says /var/lib/kubelet cannot start its pod.
 */
import { posix } from 'node:path';

export const DEFAULT_KUBELET_ROOT_DIR = '/var/lib/kubelet';
/** Where the agent mounts prepared disks; local PVs point here, so the host must see these mounts. */
export const AGENT_ROOT = '/var/lib/stowage';

/** Characters of every known distribution's path; no space, quote or colon to escape anywhere. */
const SAFE_PATH = /^[A-Za-z0-9._+@/-]+$/;
/** Host directories the node DaemonSet mounts besides kubelet's: the root must be none of them, nor hold or sit in one. */
const OTHER_MOUNTS = [AGENT_ROOT, '/dev', '/sys', '/run/udev'];

const inside = (dir: string, parent: string): boolean => dir === parent || dir.startsWith(`${parent}/`);

/**
 * Checks a kubelet root directory; returns it without a trailing slash. Throws naming the flag,
 * the problem and an example, so a typo fails at the operator's start instead of as a node pod
 * that never starts on every node.
 */
export function kubeletRootDir(value: string = DEFAULT_KUBELET_ROOT_DIR): string {
  const dir = value.length > 1 ? value.replace(/\/+$/, '') : value;
  const problem = !dir.startsWith('/')
    ? 'is not an absolute path'
    : !SAFE_PATH.test(dir)
      ? 'has a character other than letters, digits and . _ + @ / -'
      : posix.normalize(dir) !== dir
        ? `is not in normal form (write ${posix.normalize(dir).replace(/\/+$/, '')})`
        : dir === '/'
          ? 'is the root directory'
          : OTHER_MOUNTS.find((m) => inside(dir, m) || inside(m, dir))
            ? `overlaps ${OTHER_MOUNTS.find((m) => inside(dir, m) || inside(m, dir))}, which the node DaemonSet mounts separately`
            : undefined;
  if (problem) {
    throw new Error(
      `--kubelet-root-dir ${JSON.stringify(value)} ${problem}; pass kubelet's --root-dir on your nodes, e.g. ${DEFAULT_KUBELET_ROOT_DIR} or /var/lib/k0s/kubelet`,
    );
  }
  return dir;
}
