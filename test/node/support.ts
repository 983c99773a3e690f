/**
 * Helpers for node-agent tests: play the operator on NodeDisks (field manager stowage-operator),
 * find an agent's NodeDisks, checksum backing files, and run `stowage node` as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeClient } from '../../src/kube/client.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import { NODE_DISK_LABELS, type DiskClaim, type DiskWipe, type NodeDisk } from '../../src/crds/nodedisk.js';
import { IDENTITY_ANNOTATION } from '../../src/node/agent/status.js';
import { execOk } from '../../src/host/exec.js';

export const OPERATOR = 'stowage-operator';
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

export async function nodeDisksOf(client: KubeClient, nodeName: string): Promise<NodeDisk[]> {
  return (await client.list<NodeDisk>(NODE_DISKS, { labelSelector: `${NODE_DISK_LABELS.node}=${nodeName}` })).items;
}

/** The NodeDisk of a loop device, found by its identity (node + backing file). */
export async function diskOfFile(client: KubeClient, nodeName: string, file: string): Promise<NodeDisk | undefined> {
  return (await nodeDisksOf(client, nodeName)).find((d) => d.metadata.annotations?.[IDENTITY_ANNOTATION] === `loop:${file}`);
}

export function condition(d: NodeDisk | undefined, type: string) {
  return d?.status?.conditions?.find((c) => c.type === type);
}

/** Writes spec.claim (and optionally spec.wipe) the way the operator does; `undefined` clears them. */
export async function operatorSets(client: KubeClient, name: string, fields: { claim?: DiskClaim; wipe?: DiskWipe }): Promise<void> {
  if (!fields.claim) {
    // Removing the claim by apply leaves the server-defaulted allowAdoption behind (an invalid,
    // pool-less claim on 1.20); a merge patch removes the whole object.
    await client.mergePatch(NODE_DISKS, name, { spec: { claim: null, wipe: null } }, { fieldManager: OPERATOR });
    return;
  }
  await client.apply(
    NODE_DISKS,
    { apiVersion: 'stowage.dev/v1alpha1', kind: 'NodeDisk', metadata: { name }, spec: { ...fields } },
    { fieldManager: OPERATOR, force: true },
  );
}

export const localExt4: DiskClaim = { pool: 'pool-a', mode: 'Local', volumeMode: 'Filesystem', fsType: 'ext4' };

export async function deleteNodeDisks(client: KubeClient, nodeName: string): Promise<void> {
  for (const d of await nodeDisksOf(client, nodeName)) await client.delete(NODE_DISKS, d.metadata.name);
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Mount targets whose source is `device` right now. */
export async function mountsOfDevice(device: string): Promise<string[]> {
  // No such sysfs entry (the device went away): match by path alone.
  const dev = (await readFile(`/sys/class/block/${path.basename(device)}/dev`, 'utf8').catch(() => '')).trim();
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => {
      const [left, right] = l.split(' - ');
      return left.split(' ')[2] === dev || right.split(' ')[1] === device;
    })
    .map((l) => l.split(' ')[4]);
}

export async function blkidUuid(device: string): Promise<string | undefined> {
  // No output (the tool failed: nothing attached or no signature) reads as nothing found.
  const out = await execOk('blkid', ['-p', '-o', 'value', '-s', 'UUID', device]).catch(() => '');
  return out.trim() || undefined;
}

/** A dos partition table with one partition, written by hand (no fdisk needed). */
export function mbrSector(): Buffer {
  const b = Buffer.alloc(512);
  b.writeUInt32LE(0x5107a6e0, 440);
  b[446 + 4] = 0x83;
  b.writeUInt32LE(2048, 446 + 8);
  b.writeUInt32LE(8192, 446 + 12);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/** `stowage node` as a child process, started and stopped by PID. */
export class AgentProcess {
  readonly output: string[] = [];
  private constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => this.output.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => this.output.push(d.toString()));
  }

  static start(kubeconfig: string, nodeName: string, args: string[], env: Record<string, string> = {}): AgentProcess {
    const child = spawn(process.execPath, [CLI, 'node', '--kubeconfig', kubeconfig, '--no-udev', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_NAME: nodeName, STOWAGE_LOG_LEVEL: 'info', ...env },
    });
    return new AgentProcess(child);
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  wait(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.exited) this.child.kill(signal);
    await this.wait();
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.wait();
    clearTimeout(t);
  }
}
