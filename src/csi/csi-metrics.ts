/**
 * CSI RPC metrics: every call by method and gRPC status code, and its latency. The CSI server
 * wraps each unary handler with `instrumentUnary` (see docs/metrics.md).
 */
import { Counter, Histogram, type Registry } from 'prom-client';

/** gRPC status codes by number, named as in the gRPC spec (and as grpc-go's metrics name them). */
export const GRPC_CODE_NAMES = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
] as const;

export function grpcCodeName(code: number | undefined): string {
  return GRPC_CODE_NAMES[code ?? 2] ?? 'Unknown';
}

type UnaryCallback = (error: ({ code?: number } & object) | null | undefined, value?: unknown) => void;

export class CsiMetrics {
  readonly requests: Counter<'method' | 'code'>;
  readonly duration: Histogram<'method'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'stowage_csi_requests_total',
      help: 'CSI RPCs handled by method (e.g. CreateVolume) and gRPC status code (OK, NotFound, ...)',
      labelNames: ['method', 'code'],
      registers,
    });
    this.duration = new Histogram({
      name: 'stowage_csi_request_duration_seconds',
      help: 'CSI RPC latency by method',
      labelNames: ['method'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 120],
      registers,
    });
  }

  observe(method: string, code: number | undefined, seconds: number): void {
    this.requests.inc({ method, code: grpcCodeName(code) });
    this.duration.observe({ method }, seconds);
  }

  /**
   * Wraps a @grpc/grpc-js unary handler `(call, callback)` so its answer is counted with the
   * status code it carried (an error without a code counts as Unknown, as grpc-js sends it).
   */
  instrumentUnary<C>(method: string, handler: (call: C, callback: UnaryCallback) => void): (call: C, callback: UnaryCallback) => void {
    return (call, callback) => {
      const started = process.hrtime.bigint();
      let done = false;
      const finish: UnaryCallback = (error, value) => {
        if (!done) {
          done = true;
          this.observe(method, error ? (error.code ?? 2) : 0, Number(process.hrtime.bigint() - started) / 1e9);
        }
        callback(error, value);
      };
      try {
        handler(call, finish);
      } catch (err) {
        finish({ code: 13, ...(err instanceof Error ? { message: err.message } : {}) });
      }
    };
  }
}
