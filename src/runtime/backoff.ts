/**
 * Capped exponential backoff with jitter, for loops that retry I/O (watches, leader election).
 * Jitter spreads the retries of many clients so a recovering API server is not hit all at once.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs = 200,
    private readonly maxMs = 30_000,
    private readonly jitter = 0.2,
  ) {}

  /** The delay before the next attempt; each call doubles it until the cap. */
  next(): number {
    const base = Math.min(this.initialMs * 2 ** this.attempt, this.maxMs);
    this.attempt += 1;
    return Math.round(base * (1 - this.jitter + Math.random() * 2 * this.jitter));
  }

  reset(): void {
    this.attempt = 0;
  }
}
