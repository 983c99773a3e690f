/**
 * The seam between the node agent and the Dynamic-pool engine (btrfs today, LVM perhaps later).
 *
 * The agent inventories disks and reads their claims; it never formats, mounts or adds a disk of a
 * Dynamic pool itself. On every reconcile pass it hands the engine ALL disks of this node whose
 * claim has mode Dynamic (grouped by nothing: the engine groups them per pool) and merges each
 * returned outcome into that disk's status (status.preparation + the Prepared condition), because
 * the agent composes every NodeDisk status in one place (one server-side-apply field manager).
 *
 * Contract for implementers:
 * - `sync` is level-based and idempotent: it is called with the full current set every time
 *   (also with an empty list, so the engine can notice that disks left a pool) and after restarts.
 * - Return one outcome per disk in `disks`, keyed by `ClaimedDisk.name`. A disk missing from the
 *   map is reported as `Prepared=Unknown` with reason `EnginePending`.
 * - Never touch a device not in `disks`: each `devicePath` was checked against the agent's
 *   allow-list and eligibility rules before it is passed.
 * - Throwing is treated as "every disk failed" (Prepared=False, reason `EngineError`, message = the
 *   error); the agent retries on its next pass.
 */

import type { DiskClaim } from '../../crds/nodedisk.js';

/** A disk of this node claimed by a Dynamic pool, as the agent sees it right now. */
export interface ClaimedDisk {
  /** NodeDisk name (deterministic, `<node>-<hash>`); the key of the outcome map. */
  readonly name: string;
  /** The claim as the operator wrote it (`mode` is always `Dynamic` here). */
  readonly claim: DiskClaim;
  /** Path the agent resolved for the device now (`/dev/loopN`, `/dev/sdX`); use this one for I/O. */
  readonly devicePath: string;
  /** Stable path as in spec.devicePath (a by-id link where one exists, else the kernel path). */
  readonly stablePath: string;
  /** Size in bytes, as lsblk reports it. */
  readonly sizeBytes: number;
  /**
   * Whether the disk was blank (no filesystem signature, no partitions, no mounts) when the agent
   * last looked. A non-blank disk is passed only when it carries the engine's own filesystem (it
   * is already in the pool) or the claim sets allowAdoption.
   */
  readonly blank: boolean;
  /** Filesystem signature on the whole device, if any (type, UUID, label as blkid reports them). */
  readonly filesystem?: { readonly type?: string; readonly uuid?: string; readonly label?: string };
  /** False when the disk has vanished from the node (the engine decides what that means for its pool). */
  readonly present: boolean;
  /**
   * The device is still there but has lost its medium (it reports a size of 0 and fails every
   * I/O, e.g. pulled while its filesystem held it open); `present` is false too. A pool filesystem
   * still holding it as a member counts it as missing.
   */
  readonly failed?: boolean;
}

/** What the engine made of one disk. */
export interface PreparationOutcome {
  /** True when the disk is part of its pool's filesystem and serving. */
  readonly prepared: boolean;
  /** CamelCase reason for the Prepared condition, e.g. `Prepared`, `AddingDevice`, `MissingDevices`. */
  readonly reason: string;
  /** Human-readable detail: what is happening, or what failed and what to do. */
  readonly message: string;
  /** For status.preparation: the pool filesystem's mount point, `btrfs`, and its UUID. */
  readonly preparation?: { readonly path?: string; readonly filesystem?: string; readonly uuid?: string };
}

/** Implemented by the Dynamic-pool engine (src/node/engine/), called by the node agent. */
export interface DynamicPoolSync {
  sync(nodeName: string, disks: readonly ClaimedDisk[]): Promise<ReadonlyMap<string, PreparationOutcome>>;
  /**
   * When every disk of a pool on this node has left it, `sync` unmounts the pool filesystem and
   * removes its signature from the members (disks the engine itself formatted), so they become
   * Eligible again — unless volumes still live there. This reports such a disk the engine still
   * holds (by the agent's current device path), with the reason; undefined when it holds none.
   */
  released?(devicePath: string): PreparationOutcome | undefined;
}
