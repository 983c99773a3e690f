/**
 * Counters and durations of the node agent's destructive and preparing steps. The agent owns the
 * steps; it calls `timeWipe` / `timePreparation` around them (see docs/metrics.md), so every
 * attempt is counted once with its outcome, also when it throws.
 */
import { Counter, Histogram, type Registry } from 'prom-client';

/** Seconds: a quick wipe takes well under a second, zeroing a large HDD takes hours. */
const WIPE_BUCKETS = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600];
const PREPARATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export type OperationResult = 'success' | 'failure';
/** How a disk was prepared: Filesystem and Block for Local pools, Dynamic for a pool filesystem. */
export type PreparationKind = 'Filesystem' | 'Block' | 'Dynamic';

export class AgentMetrics {
  readonly wipes: Counter<'node' | 'method' | 'result'>;
  readonly wipeDuration: Histogram<'node' | 'method'>;
  readonly preparations: Counter<'node' | 'kind' | 'result'>;
  readonly preparationDuration: Histogram<'node' | 'kind'>;

  constructor(
    registry: Registry,
    private readonly node: string,
  ) {
    const registers = [registry];
    this.wipes = new Counter({
      name: 'stowage_disk_wipes_total',
      help: 'Wipes of released disks by method (quick, zero, discard) and result (success, failure)',
      labelNames: ['node', 'method', 'result'],
      registers,
    });
    this.wipeDuration = new Histogram({
      name: 'stowage_disk_wipe_duration_seconds',
      help: 'How long wipes took, successful or not, by method',
      labelNames: ['node', 'method'],
      buckets: WIPE_BUCKETS,
      registers,
    });
    this.preparations = new Counter({
      name: 'stowage_disk_preparations_total',
      help: 'Disk preparations (make a filesystem and mount, verify a block device, add to a pool filesystem) by kind and result',
      labelNames: ['node', 'kind', 'result'],
      registers,
    });
    this.preparationDuration = new Histogram({
      name: 'stowage_disk_preparation_duration_seconds',
      help: 'How long disk preparations took, successful or not, by kind',
      labelNames: ['node', 'kind'],
      buckets: PREPARATION_BUCKETS,
      registers,
    });
  }

  /** Runs `wipe`, counting it under `method` with its outcome and timing it; rethrows its error. */
  timeWipe<T>(method: string, wipe: () => Promise<T>): Promise<T> {
    return this.time(wipe, (result, seconds) => {
      this.wipes.inc({ node: this.node, method, result });
      this.wipeDuration.observe({ node: this.node, method }, seconds);
    });
  }

  /** Runs `prepare`, counting it under `kind` with its outcome and timing it; rethrows its error. */
  timePreparation<T>(kind: PreparationKind, prepare: () => Promise<T>): Promise<T> {
    return this.time(prepare, (result, seconds) => {
      this.preparations.inc({ node: this.node, kind, result });
      this.preparationDuration.observe({ node: this.node, kind }, seconds);
    });
  }

  private async time<T>(step: () => Promise<T>, record: (result: OperationResult, seconds: number) => void): Promise<T> {
    const started = process.hrtime.bigint();
    const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
    try {
      const value = await step();
      record('success', seconds());
      return value;
    } catch (err) {
      record('failure', seconds());
      throw err;
    }
  }
}
