/**
 * The CSI spec's paging of ListVolumes and ListSnapshots: `max_entries` (0: all) and an opaque
 * `starting_token` that is the index of the next entry in the sorted list. A token the list no
 * longer reaches is ABORTED, which tells the caller to list again from the start.
 */
import * as grpc from '@grpc/grpc-js';
import { CsiError, invalidArgument } from './grpc.js';

export interface PageRequest {
  readonly max_entries?: number | string | null;
  readonly starting_token?: string | null;
}

/** One page of `all` (already sorted) for `req`, and the token of the next page ('' at the end). */
export function pageOf<T>(all: readonly T[], req: PageRequest): { entries: T[]; nextToken: string } {
  const max = Number(req.max_entries ?? 0);
  if (max < 0) throw invalidArgument('max_entries must not be negative');
  let start = 0;
  if (req.starting_token) {
    start = Number(req.starting_token);
    if (!Number.isInteger(start) || start < 0 || start > all.length) {
      throw new CsiError(
        grpc.status.ABORTED,
        `starting_token ${JSON.stringify(req.starting_token)} is not valid (the list has ${all.length} entries); list again from the start`,
      );
    }
  }
  const end = max > 0 ? Math.min(all.length, start + max) : all.length;
  return { entries: all.slice(start, end), nextToken: end < all.length ? String(end) : '' };
}
