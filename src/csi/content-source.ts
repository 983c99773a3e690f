/**
 * CreateVolume's volume_content_source (issue 17): which snapshot or volume a restore or clone is
 * made from, checked against the request (same pool and mode; NOT_FOUND when the source does not
 * exist), and the size it gets (at least the source's). Pure apart from the lookups it is given.
 */
import * as grpc from '@grpc/grpc-js';
import type { PoolSnapshot } from '../crds/poolsnapshot.js';
import type { PoolVolume, PoolVolumeSource } from '../crds/poolvolume.js';
import { CsiError, invalidArgument, notFound } from './grpc.js';

/** Where CreateVolume's content comes from, resolved: the source's node, pool, mode and size bind the new volume. */
export interface ResolvedSource {
  readonly spec: PoolVolumeSource;
  readonly node: string;
  readonly pool: string;
  readonly mode: string;
  readonly size: bigint;
  readonly what: string;
}

/** How the controller finds sources: a restorable snapshot (throws NOT_FOUND/UNAVAILABLE), a volume from its caches. */
export interface SourceLookups {
  snapshot(id: string): PoolSnapshot;
  volume(id: string): PoolVolume | undefined;
}

/**
 * CreateVolume's content source: a Ready snapshot (restore) or a Ready volume (clone) of the same
 * pool and mode. NOT_FOUND when it does not exist, INVALID_ARGUMENT when it cannot be the source.
 */
export function resolveSource(contentSource: any, pool: string, mode: string, lookups: SourceLookups): ResolvedSource {
  let resolved: ResolvedSource;
  if (contentSource.snapshot) {
    const id: string = contentSource.snapshot.snapshot_id ?? '';
    if (!id) throw invalidArgument('volume_content_source.snapshot.snapshot_id is required');
    const ps = lookups.snapshot(id);
    resolved = {
      spec: { snapshot: id },
      node: ps.spec.node,
      pool: ps.spec.pool,
      mode: ps.spec.volumeMode,
      size: BigInt(ps.spec.size),
      what: `snapshot ${id}`,
    };
  } else if (contentSource.volume) {
    const id: string = contentSource.volume.volume_id ?? '';
    if (!id) throw invalidArgument('volume_content_source.volume.volume_id is required');
    const pv = lookups.volume(id);
    if (!pv || pv.metadata.deletionTimestamp) throw notFound(`source volume ${id} does not exist`);
    if (pv.status?.phase !== 'Ready') throw new CsiError(grpc.status.UNAVAILABLE, `source volume ${id} is not ready yet; retry`);
    resolved = {
      spec: { volume: id },
      node: pv.spec.node,
      pool: pv.spec.pool,
      mode: pv.spec.volumeMode,
      size: BigInt(pv.spec.size),
      what: `volume ${id}`,
    };
  } else {
    throw invalidArgument('volume_content_source names neither a snapshot nor a volume');
  }
  if (resolved.pool !== pool)
    throw invalidArgument(
      `${resolved.what} is in pool ${resolved.pool}; a restore or clone stays in its source's pool (use a StorageClass of pool ${resolved.pool})`,
    );
  if (resolved.mode !== mode)
    throw invalidArgument(`${resolved.what} is a ${resolved.mode} volume; it cannot be restored or cloned as ${mode}`);
  return resolved;
}

export const sourceText = (source: PoolVolumeSource | undefined): string =>
  source?.snapshot ? `snapshot ${source.snapshot}` : source?.volume ? `volume ${source.volume}` : 'none';

/**
 * The size of a restore or clone: at least the source's (its data must fit), more when asked
 * (`wanted`: the request's own size, when it names required_bytes); OUT_OF_RANGE when limit_bytes
 * is below the source's size.
 */
export function sizeFromSource(limit: bigint | undefined, wanted: bigint | undefined, source: { size: bigint; what: string }): bigint {
  if (limit !== undefined && limit < source.size) {
    throw new CsiError(
      grpc.status.OUT_OF_RANGE,
      `${source.what} needs a volume of at least ${source.size} bytes; limit_bytes ${limit} is smaller`,
    );
  }
  return wanted !== undefined && wanted > source.size ? wanted : source.size;
}
