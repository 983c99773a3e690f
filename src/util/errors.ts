/** Turns anything thrown into a readable one-line message. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return typeof err === 'string' ? err : JSON.stringify(err);
}

/** Whether a file-system call failed because the path does not exist (ENOENT). */
export function isNotFound(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT';
}

/**
 * A rejection handler for a path that may be missing: `fallback` when it does not exist, any other
 * error (EIO, EACCES) rethrown, so an I/O error never reads as "nothing there".
 */
export function ifNotFound<T>(fallback: T): (err: unknown) => T {
  return (err) => {
    if (isNotFound(err)) return fallback;
    throw err;
  };
}
