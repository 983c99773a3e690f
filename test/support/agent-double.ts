import { randomUUID } from 'node:crypto';
import type { KubeClient } from '../../src/kube/client.js';
import { NODE_DISKS } from '../../src/crds/resource-types.js';
import type { NodeDisk, NodeDiskStatus } from '../../src/crds/nodedisk.js';
import type { KubeObject } from '../../src/kube/types.js';
import { Informer } from '../../src/runtime/informer.js';
import { jsonEqual } from '../../src/runtime/apply.js';
import { nowTimestamp, setConditions, type ConditionInput } from '../../src/runtime/conditions.js';

const AGENT_FIELD_MANAGER = 'stowage-node';
const PASS_MS = 100;

export interface DoubleDisk {
  readonly name: string;
  readonly node: string;
  readonly capacity?: string;
  readonly media?: 'ssd' | 'hdd' | 'nvme' | 'unknown';
  /** Eligible=False with this reason (e.g. HasFilesystem); eligible when absent. */
  readonly ineligible?: string;
}

interface DiskState {
  readonly disk: DoubleDisk;
  present: boolean;
  healthy: boolean;
  preparation?: { path: string; filesystem: string; uuid: string };
  lastWipe?: NodeDiskStatus['lastWipe'];
  /** Wipe requests the double saw and answered, in order (for assertions). */
  readonly wipes: string[];
  /** Fail wipes instead of performing them (to test the failure path). */
  failWipes: boolean;
}

/**
 * Plays the node agent's side of the claim protocol (DESIGN §2) for operator tests, exactly as the
 * protocol says and nothing more: it reports disks (spec.nodeName/devicePath, labels, status),
 * "prepares" a claimed disk (status.preparation + Prepared=True), answers a wipe request with a
 * result for the requested volume UID, and drops the preparation when the claim is cleared. It
 * touches no device; tests with real agents and loop devices cover that side.
 */
export class AgentDouble {
  readonly disks = new Map<string, DiskState>();
  private readonly informer: Informer<NodeDisk & KubeObject>;
  private timer?: NodeJS.Timeout;
  private busy = false;

  constructor(private readonly client: KubeClient) {
    this.informer = new Informer({ client, resource: NODE_DISKS, resyncMs: 0 });
  }

  async start(): Promise<void> {
    this.informer.start();
    await this.informer.waitForSync();
    // pass() catches and records its own errors, as the real agent's trigger does.
    this.timer = setInterval(() => void this.pass(), PASS_MS);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 20));
    await this.informer.stop();
  }

  /** Deletes every NodeDisk this double reported. */
  async removeAll(): Promise<void> {
    for (const name of this.disks.keys()) await this.client.delete(NODE_DISKS, name);
    this.disks.clear();
  }

  async addDisk(disk: DoubleDisk): Promise<void> {
    const state: DiskState = { disk, present: true, healthy: true, wipes: [], failWipes: false };
    this.disks.set(disk.name, state);
    await this.client.apply(
      NODE_DISKS,
      {
        apiVersion: 'stowage.dev/v1alpha1',
        kind: 'NodeDisk',
        metadata: { name: disk.name, labels: { 'stowage.dev/node': disk.node, 'stowage.dev/media': disk.media ?? 'ssd' } },
        spec: { nodeName: disk.node, devicePath: `/dev/disk/by-id/test-${disk.name}` },
      },
      { fieldManager: AGENT_FIELD_MANAGER },
    );
    await this.writeStatus(state, undefined);
  }

  setPresent(name: string, present: boolean): void {
    this.disks.get(name)!.present = present;
  }

  setHealthy(name: string, healthy: boolean): void {
    this.disks.get(name)!.healthy = healthy;
  }

  setFailWipes(name: string, fail: boolean): void {
    this.disks.get(name)!.failWipes = fail;
  }

  live(name: string): (NodeDisk & KubeObject) | undefined {
    return this.informer.get(name);
  }

  private async pass(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const state of this.disks.values()) {
        const live = this.informer.get(state.disk.name);
        if (!live) continue;
        const claim = live.spec.claim;
        if (claim && !state.preparation && state.present) {
          state.preparation = { path: `/var/lib/stowage/disks/${state.disk.name}`, filesystem: claim.fsType ?? 'ext4', uuid: randomUUID() };
        } else if (!claim && state.preparation) {
          state.preparation = undefined;
        }
        const wipe = live.spec.wipe;
        if (wipe && state.lastWipe?.volumeUID !== wipe.volumeUID && (!state.failWipes || state.lastWipe?.result !== 'Failed')) {
          state.wipes.push(wipe.volumeUID);
          state.lastWipe = state.failWipes
            ? { volumeUID: wipe.volumeUID, method: wipe.method, result: 'Failed', time: nowTimestamp(), message: 'injected failure' }
            : { volumeUID: wipe.volumeUID, method: wipe.method, result: 'Succeeded', time: nowTimestamp() };
        }
        await this.writeStatus(state, live);
      }
    } catch {
      // The next pass retries; a test waiting on the outcome times out with its own message.
    } finally {
      this.busy = false;
    }
  }

  /** The whole status from this double's state, in one apply, written only when it changed. */
  private async writeStatus(state: DiskState, live: (NodeDisk & KubeObject) | undefined): Promise<void> {
    const { disk } = state;
    const claimed = live?.spec.claim !== undefined;
    const conditions: ConditionInput[] = [
      {
        type: 'Present',
        status: state.present ? 'True' : 'False',
        reason: state.present ? 'Found' : 'NotFound',
        message: state.present ? 'seen on the node' : 'not seen on the node',
      },
      disk.ineligible && !claimed
        ? { type: 'Eligible', status: 'False', reason: disk.ineligible, message: `test disk: ${disk.ineligible}` }
        : claimed
          ? { type: 'Eligible', status: 'False', reason: 'Claimed', message: `claimed by pool ${live.spec.claim!.pool}` }
          : { type: 'Eligible', status: 'True', reason: 'Blank', message: 'blank and unused' },
      state.healthy
        ? { type: 'Healthy', status: 'True', reason: 'Passed', message: 'SMART overall-health passed' }
        : { type: 'Healthy', status: 'False', reason: 'SmartFailed', message: 'SMART overall-health failed' },
      state.preparation
        ? { type: 'Prepared', status: 'True', reason: 'Mounted', message: `mounted at ${state.preparation.path}` }
        : { type: 'Prepared', status: 'False', reason: 'NotClaimed', message: 'not claimed by a pool' },
    ];
    const previous = live?.status?.conditions;
    const status: NodeDiskStatus = {
      kind: 'Disk',
      capacity: disk.capacity ?? '100Gi',
      media: disk.media ?? 'ssd',
      ...(state.preparation ? { preparation: state.preparation, usage: { size: '98Gi' } } : {}),
      ...(state.lastWipe ? { lastWipe: state.lastWipe } : {}),
      conditions: setConditions(previous, conditions, nowTimestamp()),
    };
    if (live && jsonEqual(live.status, status)) return;
    if (live?.status?.preparation && !status.preparation) {
      // Removing fields: a merge patch, since server-side apply on a 1.20 server leaves nulls behind.
      await this.client.mergePatch(
        NODE_DISKS,
        disk.name,
        { status: { preparation: null, usage: null } },
        { subresource: 'status', fieldManager: AGENT_FIELD_MANAGER },
      );
    }
    await this.client.apply(
      NODE_DISKS,
      { apiVersion: 'stowage.dev/v1alpha1', kind: 'NodeDisk', metadata: { name: disk.name }, status },
      { fieldManager: AGENT_FIELD_MANAGER, subresource: 'status' },
    );
  }
}
