/**
 * Writes one NodeDisk from its DiskView: metadata + spec, then the whole status, both by
 * server-side apply under the agent's field manager, so a converged pass sends nothing. What to
 * write is composed by the pure functions of status.ts; this is the shell around them, plus the
 * filesystem usage read that goes into the status.
 */
import type { KubeClient } from '../../kube/client.js';
import { NODE_DISKS } from '../../crds/resource-types.js';
import type { NodeDisk } from '../../crds/nodedisk.js';
import type { KubeObject } from '../../kube/types.js';
import { Applier } from '../../runtime/apply.js';
import type { Informer } from '../../runtime/informer.js';
import type { Logger } from '../../util/logger.js';
import { errorMessage } from '../../util/errors.js';
import { formatBytes } from '../../util/quantity.js';
import type { DiskMemory } from './disk-memory.js';
import { usageOf } from './preparation.js';
import { desiredNodeDisk, desiredStatus, type DiskView } from './status.js';

/** A merge patch (nulls) that removes what `live` has and `desired` no longer states, or undefined. */
export function removedFields(desired: unknown, live: unknown): Record<string, unknown> | undefined {
  if (!isPlainObject(live)) return undefined;
  const want = isPlainObject(desired) ? desired : {};
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(live)) {
    if (!(key in want) || want[key] === undefined) patch[key] = null;
    else if (isPlainObject(value) && isPlainObject(want[key])) {
      const inner = removedFields(want[key], value);
      if (inner) patch[key] = inner;
    }
  }
  return Object.keys(patch).length > 0 ? patch : undefined;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

export interface NodeDiskWriterOptions {
  readonly client: KubeClient;
  readonly fieldManager: string;
  /** The agent's cache of this node's NodeDisks. */
  readonly informer: Informer<NodeDisk>;
  readonly memory: DiskMemory;
  /** lastSeenTime and health.checkedTime are refreshed at least this often. */
  readonly heartbeatMs: number;
  readonly log: Logger;
  /** Called when the write sets a hand-edited spec.devicePath back (the agent records an event). */
  readonly onDevicePathReverted?: (name: string, message: string) => void;
}

export class NodeDiskWriter {
  /** API writes sent since start. */
  writes = 0;
  private readonly applier: Applier;
  /** What our own last write returned: the informer may not have seen it yet when the next pass runs. */
  private readonly written = new Map<string, NodeDisk>();

  constructor(private readonly opts: NodeDiskWriterOptions) {
    this.applier = new Applier(opts.client, opts.fieldManager);
  }

  /** The NodeDisk was deleted: our last write's answer no longer stands. */
  forget(name: string): void {
    this.written.delete(name);
  }

  /** Writes the disk's metadata, spec and status where they differ from the live object; errors are logged and retried on the next pass. */
  async write(v: DiskView): Promise<void> {
    if (v.preparation?.path && v.kind === 'Disk' && v.preparation.filesystem) {
      const u = await usageOf(v.preparation.path);
      const usage = u ? { size: formatBytes(u.size), used: formatBytes(u.used), available: formatBytes(u.available) } : undefined;
      this.opts.memory.usage.set(v.name, usage);
      v = { ...v, usage };
    } else if (v.kind === 'Mount' && v.present) {
      const u = await usageOf(v.devicePath);
      v = { ...v, usage: u ? { size: formatBytes(u.size), used: formatBytes(u.used), available: formatBytes(u.available) } : undefined };
    } else if (v.kind === 'Disk') {
      // No prepared filesystem (released, Block, never claimed): the usage remembered from one
      // that was there would describe a filesystem that no longer exists.
      this.opts.memory.usage.delete(v.name);
      v = { ...v, usage: undefined };
    }
    let live = this.newest(v.name);
    try {
      if (live && v.present && live.spec.devicePath !== v.devicePath) v = await this.noteHandEdit(v, live);
      const desired = desiredNodeDisk(v);
      const applied = await this.applier.apply<NodeDisk>(NODE_DISKS, desired, live);
      if (applied !== live) {
        this.writes += 1;
        this.written.set(v.name, applied);
      }
      live = applied;
      const status = desiredStatus(v, live, new Date(), this.opts.heartbeatMs);
      const removed = removedFields(status, live.status);
      if (removed) {
        // A v1.20 API server turns an object field dropped from an apply into `null` and then
        // rejects it; removing it with a merge patch first keeps the apply a plain update.
        live = await this.opts.client.mergePatch<NodeDisk>(
          NODE_DISKS,
          v.name,
          { status: removed },
          { subresource: 'status', fieldManager: this.applier.fieldManager },
        );
        this.writes += 1;
        this.written.set(v.name, live);
      }
      const result = await this.applier.applyStatus<NodeDisk>(NODE_DISKS, { ...desired, status }, live);
      if (result !== live) {
        this.writes += 1;
        if (result) this.written.set(v.name, result);
      }
    } catch (err) {
      this.opts.log.error({ disk: v.name, err: errorMessage(err) }, 'could not write the NodeDisk; retrying on the next pass');
    }
  }

  /**
   * spec.devicePath differs from where the agent finds the disk. When another field manager wrote it
   * (a hand edit: the agent's own writes follow the disk's links), this write sets it back: say so.
   */
  private async noteHandEdit(v: DiskView, live: NodeDisk): Promise<DiskView> {
    const fresh = await this.opts.client.get<NodeDisk & KubeObject>(NODE_DISKS, v.name);
    const editor = fresh.metadata.managedFields?.find((e) => {
      const spec = (e.fieldsV1 as Record<string, Record<string, unknown> | undefined> | undefined)?.['f:spec'];
      return e.manager !== this.applier.fieldManager && spec !== undefined && 'f:devicePath' in spec;
    })?.manager;
    if (!editor || fresh.spec.devicePath === v.devicePath) return v;
    const message =
      `spec.devicePath was set to ${live.spec.devicePath} by ${editor}; the node agent set it back to ${v.devicePath}, where it finds this disk ` +
      `(identity ${v.identity}). The agent writes spec.devicePath and acts only on the disk it discovered; to keep pools off this disk cordon it ` +
      "(spec.schedulable: false), to use another device put that device on the agent's allow-list";
    this.opts.memory.devicePathReverted.set(v.name, message);
    this.opts.onDevicePathReverted?.(v.name, message);
    return { ...v, devicePathReverted: message };
  }

  /** The newer of the informer's copy and our last write's answer (etcd revisions are numbers). */
  private newest(name: string): NodeDisk | undefined {
    const cached = this.opts.informer.get(name);
    const mine = this.written.get(name);
    if (!mine) return cached;
    if (!cached) return mine; // created by us, not yet seen by the informer (a delete clears `written`)
    const rv = (o: NodeDisk): number => Number(o.metadata.resourceVersion ?? 0);
    if (cached.metadata.uid === mine.metadata.uid && rv(mine) > rv(cached)) return mine;
    this.written.delete(name);
    return cached;
  }
}
