/**
 * What one pass saw, named: discovery's disks and mounts turned into one observation per NodeDisk.
 * Pure: the same discovery and the same live NodeDisks always give the same names, which is what
 * lets a restarted agent find its objects again (DESIGN §2, deterministic names).
 */
import type { NodeDisk } from '../../crds/nodedisk.js';
import { formatBytes } from '../../util/quantity.js';
import type { Discovery, MountFacts } from './discovery.js';
import {
  diskIdentity,
  eligibility,
  isBlank,
  mediaOf,
  nodeDiskName,
  partitionsOf,
  stableDevicePath,
  type DiskFacts,
  type Eligibility,
  type InventoryConfig,
} from './inventory.js';
import { IDENTITY_ANNOTATION, type DiskView, type Inventory } from './status.js';

/** One disk or discovered mount as this pass saw it. */
export interface Observation {
  readonly name: string;
  readonly identity: string;
  readonly kind: 'Disk' | 'Mount';
  /** spec.devicePath: the stable link (or kernel path) of a disk, the directory of a mount. */
  readonly devicePath: string;
  /** The path to do I/O on right now (`/dev/loopN`, `/dev/sdX`, or the mount directory). */
  readonly currentPath: string;
  readonly facts?: DiskFacts;
  readonly mount?: MountFacts;
  readonly inventory: Inventory;
  readonly media: DiskView['media'];
  readonly eligibility: Eligibility;
  readonly blank: boolean;
}

/** A device left out because another one already has its identity (e.g. one file attached twice). */
export interface DuplicateDevice {
  readonly device: string;
  readonly identity: string;
}

export interface Observations {
  readonly observations: Observation[];
  readonly duplicates: DuplicateDevice[];
}

/** Discovery → one observation per disk/mount, named (existing NodeDisks win for weak identities). */
export function observe(d: Discovery, live: readonly NodeDisk[], nodeName: string, config: InventoryConfig): Observations {
  const out: Observation[] = [];
  const duplicates: DuplicateDevice[] = [];
  const taken = new Set<string>();
  for (const f of d.disks) {
    const identity = diskIdentity(f);
    const name = resolveName(identity, f, live, taken, nodeName);
    if (!name) {
      duplicates.push({ device: f.raw.path, identity });
      continue;
    }
    taken.add(name);
    out.push({
      name,
      identity,
      kind: 'Disk',
      devicePath: stableDevicePath(f.raw, f.links),
      currentPath: f.raw.path,
      facts: f,
      inventory: diskInventory(f),
      media: mediaOf(f.raw),
      eligibility: eligibility(f, config),
      blank: isBlank(f),
    });
  }
  for (const m of d.mounts) {
    const identity = `mount:${m.target}`;
    const name = nodeDiskName(nodeName, identity);
    if (taken.has(name)) continue;
    taken.add(name);
    out.push({
      name,
      identity,
      kind: 'Mount',
      devicePath: m.target,
      currentPath: m.target,
      mount: m,
      inventory: { capacity: formatBytes(m.sizeBytes), filesystem: { type: m.fsType }, mountPoints: [m.target], media: 'unknown' },
      media: 'unknown',
      eligibility: {
        eligible: true,
        reason: 'DiscoveredMount',
        message: `${m.target} is a filesystem an administrator mounted under a discovery directory; a Local Filesystem pool may use it as is (Stowage never formats or unmounts it)`,
      },
      blank: false,
    });
  }
  return { observations: out, duplicates };
}

/** The filesystem signature on a whole device, as status.filesystem and ClaimedDisk.filesystem state it; undefined when there is none. */
export function filesystemOf(f: DiskFacts): { type?: string; uuid?: string; label?: string } | undefined {
  const s = f.signatures;
  if (!(s.fsType || s.uuid || s.label)) return undefined;
  return { ...(s.fsType ? { type: s.fsType } : {}), ...(s.uuid ? { uuid: s.uuid } : {}), ...(s.label ? { label: s.label } : {}) };
}

function diskInventory(f: DiskFacts): Inventory {
  const filesystem = filesystemOf(f);
  return {
    kernelName: f.raw.kname,
    links: [...f.links],
    capacity: formatBytes(f.raw.sizeBytes),
    model: f.raw.model,
    vendor: f.raw.vendor,
    serial: f.raw.serial,
    wwn: f.raw.wwn,
    media: mediaOf(f.raw),
    rotational: f.raw.rotational,
    transport: f.raw.transport ?? (f.raw.type === 'loop' ? 'loop' : undefined),
    readOnly: f.raw.readOnly,
    ...(filesystem ? { filesystem } : {}),
    partitionTable: f.signatures.ptType,
    partitions: partitionsOf(f.raw),
    mountPoints: [...f.mountPoints],
  };
}

function resolveName(
  identity: string,
  f: DiskFacts,
  live: readonly NodeDisk[],
  taken: ReadonlySet<string>,
  nodeName: string,
): string | undefined {
  const byAnnotation = live.find((nd) => nd.metadata.annotations?.[IDENTITY_ANNOTATION] === identity)?.metadata.name;
  if (byAnnotation) return taken.has(byAnnotation) ? undefined : byAnnotation;
  // A weak identity (UUIDs, kernel name) changes when the disk is formatted: match the disk we prepared.
  if (/^(fsuuid|ptuuid|kname):/.test(identity) && f.signatures.uuid) {
    const ours = live.find((nd) => nd.status?.preparation?.uuid === f.signatures.uuid)?.metadata.name;
    if (ours && !taken.has(ours)) return ours;
  }
  const name = nodeDiskName(nodeName, identity);
  return taken.has(name) ? undefined : name;
}
