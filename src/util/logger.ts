import { pino, type Logger } from 'pino';

/**
 * The process-wide root logger: structured JSON on stdout, one line per event.
 * Level from `STOWAGE_LOG_LEVEL` (default `info`); tests set it to `silent` unless debugging.
 */
const root: Logger = pino({
  level: process.env.STOWAGE_LOG_LEVEL ?? 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label) => ({ level: label }) },
});

/** A named logger for one module, e.g. `logger('workqueue')`; every line carries `module`. */
export function logger(module: string, bindings: Record<string, unknown> = {}): Logger {
  return root.child({ module, ...bindings });
}

export type { Logger };
