// Which flags each control-plane component of a given Kubernetes version accepts. The harness
// writes one flag list for every version; flags that a later release removed are dropped for the
// versions that no longer have them (a removed flag makes the component exit at start-up), so
// KUBEBUILDER_ASSETS can point at any build from 1.20 on. The version comes from the binary's own
// `--version` ("Kubernetes v1.30.2").

import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

export type ControlPlaneComponent = 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';

export interface ComponentVersion {
  major: number;
  minor: number;
  /** As the binary printed it, e.g. v1.20.2 */
  gitVersion: string;
}

/** A flag and the first minor release that no longer has it (upstream release notes in `source`). */
interface RemovedFlag {
  flag: string;
  removedIn: { major: number; minor: number };
  source: string;
}

const REMOVED_FLAGS: Record<ControlPlaneComponent, RemovedFlag[]> = {
  'kube-apiserver': [
    // Insecure serving stopped in 1.20 (kubernetes#95856); the flag "will be removed in v1.24".
    { flag: '--insecure-port', removedIn: { major: 1, minor: 24 }, source: 'kubernetes/kubernetes#95856, CHANGELOG-1.24' },
  ],
  'kube-controller-manager': [
    { flag: '--port', removedIn: { major: 1, minor: 24 }, source: 'CHANGELOG-1.24 (insecure serving flags removed)' },
    // Deprecated in 1.26 (kubernetes#113710), removed in 1.27 (kubernetes#115840).
    { flag: '--pod-eviction-timeout', removedIn: { major: 1, minor: 27 }, source: 'kubernetes/kubernetes#115840' },
  ],
  'kube-scheduler': [
    // "the following flags have no effect and would be removed in v1.24: --port, --address" (kubernetes#96345).
    { flag: '--port', removedIn: { major: 1, minor: 24 }, source: 'kubernetes/kubernetes#96345' },
  ],
};

/** Parses `Kubernetes v1.30.2` (a component's `--version`) or a bare `v1.30.2`. */
export function parseComponentVersion(text: string): ComponentVersion {
  const m = /v?(\d+)\.(\d+)\.\d+\S*/.exec(text.trim());
  if (!m)
    throw new Error(
      `control-plane: cannot read a Kubernetes version from ${JSON.stringify(text.trim())}; expected e.g. "Kubernetes v1.20.2"`,
    );
  return { major: Number(m[1]), minor: Number(m[2]), gitVersion: m[0].startsWith('v') ? m[0] : `v${m[0]}` };
}

/** Runs `<binary> --version` and parses what it prints. */
export function binaryVersion(binary: string): ComponentVersion {
  let out: string;
  try {
    out = execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    // A binary that cannot even say its version is broken: name it, its exit code and what it printed.
    const err = e as { status?: number | null; signal?: string | null; stderr?: string; stdout?: string; message: string };
    const how =
      err.status != null ? `exited (${err.status})` : err.signal ? `was killed (${err.signal})` : `could not run (${err.message})`;
    const output = `${err.stdout ?? ''}${err.stderr ?? ''}`.trim();
    throw new Error(`control-plane: ${path.basename(binary)} ${how} on \`${binary} --version\`${output ? `:\n${output}` : ''}`, {
      cause: e,
    });
  }
  return parseComponentVersion(out);
}

function atLeast(v: ComponentVersion, r: { major: number; minor: number }): boolean {
  return v.major > r.major || (v.major === r.major && v.minor >= r.minor);
}

/** The flags this version of the component accepts: `flags` less those removed by `version`. */
export function flagsFor(component: ControlPlaneComponent, version: ComponentVersion, flags: readonly string[]): string[] {
  const removed = REMOVED_FLAGS[component].filter((r) => atLeast(version, r.removedIn)).map((r) => r.flag);
  return flags.filter((f) => !removed.includes(f.split('=')[0]));
}
