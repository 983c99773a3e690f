import type { Status } from './types.js';

/**
 * A non-2xx answer from the API server, with the server's own `Status` body, so callers can branch
 * on `reason`/`code` and users see the server's message.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly status?: Status,
  ) {
    super(message);
  }

  static fromResponse(method: string, path: string, code: number, body: string): ApiError {
    let status: Status | undefined;
    try {
      const parsed = JSON.parse(body) as Partial<Status> | null;
      if (parsed?.kind === 'Status') status = parsed as Status;
    } catch {
      // Not JSON (a proxy's error page, say): keep the text.
    }
    const reason = status?.reason ?? (code === 404 ? 'NotFound' : 'Unknown');
    const detail = status?.message ?? body.slice(0, 300);
    return new ApiError(code, reason, `${method} ${path}: ${code} ${reason}: ${detail}`, status);
  }

  static is(err: unknown, code: number): err is ApiError {
    return err instanceof ApiError && err.code === code;
  }

  static isNotFound(err: unknown): err is ApiError {
    return ApiError.is(err, 404);
  }

  /** Optimistic-concurrency conflict (stale resourceVersion) or a failed JSON-patch `test`. */
  static isConflict(err: unknown): err is ApiError {
    return ApiError.is(err, 409);
  }

  static isAlreadyExists(err: unknown): err is ApiError {
    return err instanceof ApiError && err.code === 409 && err.reason === 'AlreadyExists';
  }

  /** 410 Gone: the resourceVersion a watch asked for has been compacted away; relist. */
  static isGone(err: unknown): err is ApiError {
    return ApiError.is(err, 410);
  }
}
