/**
 * Writes one reconcile sends at once (claims, PVs). The client's connection pool (32 sockets)
 * bounds what all reconciles send together, so a big pool's turn is a couple of round trips.
 */
export const WRITE_CONCURRENCY = 32;

/** How many writes a reconcile may still send; remembers whether it had to leave work for later. */
export class WriteBudget {
  deferred = false;

  constructor(private left: number) {}

  /** The first items the budget (and `limit`) allows, spending it. */
  take<T>(items: readonly T[], limit = Infinity): T[] {
    const n = Math.max(0, Math.min(items.length, this.left, limit));
    this.left -= n;
    if (n < items.length) this.deferred = true;
    return items.slice(0, n);
  }
}
