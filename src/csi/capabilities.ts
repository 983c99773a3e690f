/**
 * Which volume capabilities Stowage serves: node-local volumes (every access mode that stays on one
 * node), as a mounted btrfs subvolume (fs_type empty or btrfs) or as a raw block device.
 */
import { status } from '@grpc/grpc-js';
import type { VolumeMode } from '../crds/storagepool.js';
import { CsiError } from './grpc.js';

const SINGLE_NODE_MODES = new Set([
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
]);

export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fs_type?: string; mount_flags?: string[]; volume_mount_group?: string } | null;
  access_mode?: { mode?: string } | null;
  access_type?: 'block' | 'mount';
}

/** Why Stowage cannot serve `cap`, or undefined when it can. */
export function unsupportedReason(cap: VolumeCapability): string | undefined {
  const mode = cap.access_mode?.mode;
  if (!mode || mode === 'UNKNOWN') return 'access_mode is required';
  if (!SINGLE_NODE_MODES.has(mode)) return `access mode ${mode} is not supported: Stowage volumes live on one node`;
  if (cap.block && cap.mount) return 'a capability is either block or mount, not both';
  if (!cap.block && !cap.mount) return 'access_type (block or mount) is required';
  const fsType = cap.mount?.fs_type ?? '';
  if (cap.mount && fsType !== '' && fsType !== 'btrfs')
    return `fs_type ${fsType} is not supported: Dynamic volumes are btrfs subvolumes (leave fs_type empty or btrfs)`;
  return undefined;
}

export const volumeModeOf = (cap: VolumeCapability): VolumeMode => (cap.block ? 'Block' : 'Filesystem');

/** The single volume mode all `caps` ask for; INVALID_ARGUMENT when missing, mixed or unsupported. */
export function requireVolumeMode(caps: readonly VolumeCapability[] | undefined): VolumeMode {
  if (!caps || caps.length === 0) throw new CsiError(status.INVALID_ARGUMENT, 'volume_capabilities is required');
  for (const cap of caps) {
    const reason = unsupportedReason(cap);
    if (reason) throw new CsiError(status.INVALID_ARGUMENT, reason);
  }
  const modes = new Set(caps.map(volumeModeOf));
  if (modes.size > 1) throw new CsiError(status.INVALID_ARGUMENT, 'a volume is either Block or Filesystem; the capabilities ask for both');
  return [...modes][0];
}
