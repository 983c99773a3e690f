/**
 * Where a volume or snapshot lives is fixed when it is made: its data is in one pool's filesystem
 * on one node. The CRDs say `self == oldSelf` on those fields, but API servers before 1.25 drop
 * CEL rules without a word, so an edited spec.pool or spec.node reaches the node daemon; acting on
 * it would make a new, empty volume in the other pool and orphan the data (issue 25). The daemon
 * records the location in status when it realizes the object and refuses any spec that names
 * another one. Pure.
 */
export interface Location {
  readonly pool: string;
  readonly node: string;
}

export interface LocationChange {
  /** The fields that changed, e.g. ['spec.pool']. */
  readonly fields: readonly string[];
  readonly recorded: Location;
  readonly requested: Location;
  /** Condition message: what changed, that nothing was made, and how to fix it. */
  readonly message: string;
}

/** The change between where the object was realized and where its spec says it is, or undefined. */
export function locationChange(
  kind: 'PoolVolume' | 'PoolSnapshot',
  name: string,
  recorded: Location | undefined,
  requested: Location,
): LocationChange | undefined {
  if (!recorded) return undefined;
  const fields = [...(recorded.pool !== requested.pool ? ['spec.pool'] : []), ...(recorded.node !== requested.node ? ['spec.node'] : [])];
  if (fields.length === 0) return undefined;
  const plural = kind === 'PoolVolume' ? 'poolvolume' : 'poolsnapshot';
  const what = fields
    .map(
      (f) =>
        `${f} was changed from ${f === 'spec.pool' ? recorded.pool : recorded.node} to ${f === 'spec.pool' ? requested.pool : requested.node}`,
    )
    .join(' and ');
  const back = JSON.stringify({ spec: { pool: recorded.pool, node: recorded.node } });
  return {
    fields,
    recorded,
    requested,
    message:
      `${what}, but ${fields.join(' and ')} ${fields.length > 1 ? 'are' : 'is'} immutable: the data is in pool ${recorded.pool} on node ${recorded.node}. ` +
      `Nothing was made in the place now named and the data was not moved; set it back: kubectl patch ${plural} ${name} --type merge -p '${back}'. ` +
      'To have the data in another pool, clone or restore it into a new volume of that pool',
  };
}
