/**
 * Metrics computed at scrape time from state held elsewhere (informer caches, the engine): every
 * scrape clears the metric and emits what `samples` yields now, so an object that is gone takes its
 * series with it and nothing is kept between scrapes.
 */
import { Counter, Gauge, type LabelValues, type Registry } from 'prom-client';

export interface DerivedDefinition<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
}

export type Sample<L extends string> = readonly [LabelValues<L>, number];
type Samples<L extends string> = () => Iterable<Sample<L>> | Promise<Iterable<Sample<L>>>;

/** A gauge whose samples are `samples()` at each scrape. */
export function derivedGauge<L extends string>(registry: Registry, def: DerivedDefinition<L>, samples: Samples<L>): Gauge<L> {
  return new Gauge<L>({
    ...def,
    labelNames: [...def.labelNames],
    registers: [registry],
    collect() {
      return settle(samples(), (current) => {
        this.reset();
        for (const [labels, value] of current) this.set(labels, value);
      });
    },
  });
}

/**
 * A counter whose values are read from elsewhere (a device's or the kernel's own counters): each
 * scrape reports the source's current count, and a source that restarts from zero looks like a
 * counter reset, which `rate()` and `increase()` handle.
 */
export function derivedCounter<L extends string>(registry: Registry, def: DerivedDefinition<L>, samples: Samples<L>): Counter<L> {
  return new Counter<L>({
    ...def,
    labelNames: [...def.labelNames],
    registers: [registry],
    collect() {
      return settle(samples(), (current) => {
        this.reset();
        for (const [labels, value] of current) this.inc(labels, value);
      });
    },
  });
}

/**
 * Applies synchronous samples at once (no await between reading the source and the scrape reading
 * the metric, so concurrent scrapes cannot interleave); waits only for a source that is async.
 */
function settle<T>(value: T | Promise<T>, apply: (v: T) => void): void | Promise<void> {
  if (value instanceof Promise) return value.then(apply);
  apply(value);
}
