/**
 * Extra arguments for the node agent (`stowage node`) in the node DaemonSet, from the operator's
 * `--node-agent-arg` (repeatable). An administrator needs them to say which disks the agent may
 * inventory on every node: discovery filters (`--include-path=/dev/disk/by-id/nvme-*`), an explicit
 * allow-list (`--allow-device=/dev/sdb`), a minimum size. They live in the operator's own Deployment
 * args, so a GitOps repository changes them with a kustomize patch and the operator rolls the
 * DaemonSet; hand edits of the DaemonSet would be undone by the operator's next apply.
 *
 * Only the discovery flags are accepted: the rest of the node container's command line (paths,
 * sockets, registration) is what the rendering and the hostPath volumes agree on, and changing one
 * side alone would break the pod.
 */

/** `stowage node` flags (src/cli/main.ts) an administrator may pass through. */
export const NODE_AGENT_ARG_FLAGS = [
  'allow-device',
  'discovery-dir',
  'include-path',
  'exclude-path',
  'include-vendor',
  'exclude-vendor',
  'include-model',
  'exclude-model',
  'min-size',
  'discovery-interval',
  'health-interval',
] as const;

const ARG = /^--([a-z-]+)=(.+)$/;

/**
 * Checks `--node-agent-arg` values; returns them unchanged (order kept: repeated flags accumulate in
 * `stowage node`). Throws one error naming every bad value and what is accepted.
 */
export function nodeAgentArgs(args: readonly string[] = []): string[] {
  const problems: string[] = [];
  for (const arg of args) {
    const m = ARG.exec(arg);
    if (!m) problems.push(`"${arg}" is not of the form --FLAG=VALUE`);
    else if (!(NODE_AGENT_ARG_FLAGS as readonly string[]).includes(m[1]))
      problems.push(`--${m[1]} is not a discovery flag of stowage node`);
  }
  if (problems.length > 0) {
    throw new Error(
      `--node-agent-arg: ${problems.join('; ')}. Pass one --FLAG=VALUE per --node-agent-arg, FLAG one of ${NODE_AGENT_ARG_FLAGS.join(', ')} ` +
        '(e.g. --node-agent-arg=--include-path=/dev/disk/by-id/nvme-*)',
    );
  }
  return [...args];
}
