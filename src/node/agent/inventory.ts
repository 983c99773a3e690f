/**
 * Pure inventory rules: which block devices the agent considers at all, how a disk is identified
 * and named, its media type, and whether a pool may claim it (the Eligible condition) and why not.
 */
import { createHash } from 'node:crypto';
import type { DiskMedia, DiskPartition } from '../../crds/nodedisk.js';
import { formatBytes } from '../../util/quantity.js';
import type { RawDisk, Signatures } from './host-facts.js';

/** Kernel names that are never disks of their own: RAM disks, compressed swap, device mapper, md RAID, optical, floppy. */
const NEVER_DISKS = /^(ram|zram|dm-|md|sr|fd)\d*/;
const NEVER_TYPES = new Set(['rom', 'lvm', 'crypt', 'part', 'mpath']);
/** NodeDisk names are DNS subdomains (max 253); the hash suffix takes 11 of them. */
const MAX_NODE_PREFIX = 241;
const HASH_LENGTH = 10;

export interface FilterSet {
  /** Glob patterns (`*` wildcard) over /dev paths and /dev/disk links. */
  readonly paths?: readonly string[];
  readonly vendors?: readonly string[];
  readonly models?: readonly string[];
}

export interface InventoryConfig {
  /**
   * Devices (paths such as /dev/loop3, or a loop device's backing file) the agent may consider.
   * When non-empty, NOTHING else is probed or touched; it is also the only way a loop device is
   * ever considered.
   */
  readonly allowDevices: readonly string[];
  /** When set, disks matching none of these are reported `Eligible=False`/`ExcludedByFilter`. */
  readonly include?: FilterSet;
  /** Disks matching any of these are reported `Eligible=False`/`ExcludedByFilter`. */
  readonly exclude?: FilterSet;
  /** Disks smaller than this are `TooSmall`. */
  readonly minSizeBytes: bigint;
}

/** Everything the shell learned about one whole disk. */
export interface DiskFacts {
  readonly raw: RawDisk;
  readonly signatures: Signatures;
  /** /dev/disk/by-* links that point at the whole disk. */
  readonly links: readonly string[];
  readonly backingFile?: string;
  /** Where the disk or its partitions are mounted, or `[SWAP]`. */
  readonly mountPoints: readonly string[];
  /** The disk (or something built on it) holds /, /boot or /boot/efi. */
  readonly system: boolean;
}

export interface Eligibility {
  readonly eligible: boolean;
  readonly reason: string;
  readonly message: string;
}

/** Whether the agent looks at this device at all (default exclusions and the allow-list). */
export function isCandidate(raw: RawDisk, backingFile: string | undefined, allowDevices: readonly string[]): boolean {
  if (allowDevices.length > 0) return isAllowed(raw.path, backingFile, allowDevices);
  if (NEVER_TYPES.has(raw.type) || NEVER_DISKS.test(raw.kname)) return false;
  if (raw.type === 'loop' || raw.kname.startsWith('loop')) return false;
  return raw.type === 'disk';
}

/** A device is allowed when its /dev path, or (for a loop device) its backing file, is on the list. */
export function isAllowed(path: string, backingFile: string | undefined, allowDevices: readonly string[]): boolean {
  return allowDevices.includes(path) || (backingFile !== undefined && allowDevices.includes(backingFile));
}

/**
 * The disk's identity, strongest first: WWN + serial, serial, a loop device's backing file,
 * partition-table UUID, filesystem UUID; the kernel name only when the disk tells nothing else.
 */
export function diskIdentity(f: Pick<DiskFacts, 'raw' | 'signatures' | 'backingFile'>): string {
  const { raw, signatures } = f;
  if (raw.wwn && raw.serial) return `wwn:${raw.wwn}/serial:${raw.serial}`;
  if (raw.serial) return `serial:${raw.serial}`;
  if (f.backingFile) return `loop:${f.backingFile}`;
  if (signatures.ptUuid) return `ptuuid:${signatures.ptUuid}`;
  if (signatures.uuid) return `fsuuid:${signatures.uuid}`;
  return `kname:${raw.kname}`;
}

/** `<node>-<10 hex of sha256(node/identity)>`: deterministic, and different for different disks. */
export function nodeDiskName(nodeName: string, identity: string): string {
  const hash = createHash('sha256').update(`${nodeName}/${identity}`).digest('hex').slice(0, HASH_LENGTH);
  const prefix = nodeName.slice(0, MAX_NODE_PREFIX).replace(/[^a-z0-9]+$/, '');
  return `${prefix}-${hash}`;
}

/** A stable path: the first /dev/disk/by-id link (WWN links first), else the kernel path. */
export function stableDevicePath(raw: RawDisk, links: readonly string[]): string {
  const byId = links.filter((l) => l.startsWith('/dev/disk/by-id/')).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return byId[0] ?? raw.path;
}
const rank = (link: string): number => (link.includes('/wwn-') ? 0 : link.includes('/nvme-eui') ? 1 : 2);

export function mediaOf(raw: RawDisk): DiskMedia {
  if (raw.transport === 'nvme' || raw.kname.startsWith('nvme')) return 'nvme';
  if (raw.type === 'loop' || raw.kname.startsWith('loop')) return 'unknown';
  if (!raw.transport) return 'unknown';
  return raw.rotational ? 'hdd' : 'ssd';
}

/** Blank: no signature of any kind, no partitions, not mounted or used as swap. */
export function isBlank(f: Pick<DiskFacts, 'raw' | 'signatures' | 'mountPoints'>): boolean {
  return (
    f.signatures.types.length === 0 &&
    !f.signatures.ambivalent &&
    !f.signatures.fsType &&
    !f.signatures.ptType &&
    f.raw.partitions.length === 0 &&
    f.mountPoints.length === 0
  );
}

/**
 * Whether a pool may claim the disk, and if not, why — in the order an administrator needs to
 * know it (a system disk is a system disk before it is "mounted").
 */
export function eligibility(f: DiskFacts, config: InventoryConfig): Eligibility {
  const { raw, signatures } = f;
  if (f.system) {
    return no('SystemDisk', `${raw.path} holds the root or boot filesystem of this node; Stowage never uses it`);
  }
  const filtered = filterVerdict(f, config);
  if (filtered) return no('ExcludedByFilter', filtered);
  if (raw.readOnly) return no('ReadOnly', `the kernel reports ${raw.path} read-only`);
  if (f.mountPoints.length > 0) {
    return no(
      'Mounted',
      `${raw.path} is in use at ${f.mountPoints.join(', ')}; unmount it (and remove it from /etc/fstab) to make it eligible`,
    );
  }
  if (raw.partitions.length > 0 || signatures.ptType || signatures.types.some((t) => t === 'gpt' || t === 'dos' || t === 'PMBR')) {
    const table = signatures.ptType ?? signatures.types.find((t) => t === 'gpt' || t === 'dos' || t === 'PMBR') ?? 'a partition table';
    return no(
      'HasPartitions',
      `${raw.path} carries ${table}${raw.partitions.length ? ` with ${raw.partitions.length} partition(s)` : ''}; Stowage only takes blank disks unless the pool allows adoption`,
    );
  }
  if (signatures.fsType || signatures.types.length > 0 || signatures.ambivalent) {
    const what = signatures.fsType ?? (signatures.types.join(', ') || 'ambiguous');
    return no(
      'HasFilesystem',
      `${raw.path} carries a ${what} signature${signatures.label ? ` labelled "${signatures.label}"` : ''}; Stowage only takes blank disks unless the pool allows adoption (wipefs -a erases it)`,
    );
  }
  if (raw.sizeBytes < config.minSizeBytes) {
    return no(
      'TooSmall',
      `${raw.path} has ${formatBytes(raw.sizeBytes)}, less than the agent's minimum of ${formatBytes(config.minSizeBytes)}`,
    );
  }
  return {
    eligible: true,
    reason: 'Blank',
    message: `${raw.path} is blank (no filesystem, partition table or mount) and may be claimed by a pool`,
  };
}

const no = (reason: string, message: string): Eligibility => ({ eligible: false, reason, message });

function filterVerdict(f: DiskFacts, config: InventoryConfig): string | undefined {
  const paths = [f.raw.path, ...f.links];
  const matches = (set: FilterSet | undefined): string | undefined => {
    if (!set) return undefined;
    const p = set.paths?.find((g) => paths.some((x) => glob(g).test(x)));
    if (p) return `path pattern "${p}"`;
    const v = set.vendors?.find((g) => f.raw.vendor !== undefined && glob(g).test(f.raw.vendor));
    if (v) return `vendor pattern "${v}"`;
    const m = set.models?.find((g) => f.raw.model !== undefined && glob(g).test(f.raw.model));
    if (m) return `model pattern "${m}"`;
    return undefined;
  };
  const excluded = matches(config.exclude);
  if (excluded) return `${f.raw.path} matches the agent's exclude ${excluded}`;
  const inc = config.include;
  if (inc && (inc.paths?.length ?? 0) + (inc.vendors?.length ?? 0) + (inc.models?.length ?? 0) > 0 && !matches(inc)) {
    return `${f.raw.path} matches none of the agent's include filters`;
  }
  return undefined;
}

function glob(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
}

/** status.partitions from lsblk's children. */
export function partitionsOf(raw: RawDisk): DiskPartition[] {
  return raw.partitions.map((p) => ({
    name: p.kname,
    ...(p.number !== undefined ? { number: p.number } : {}),
    size: formatBytes(p.sizeBytes),
    ...(p.fsType ? { fsType: p.fsType } : {}),
    ...(p.label ? { label: p.label } : {}),
  }));
}
