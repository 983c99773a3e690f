/**
 * Runs `fn` over `items` with at most `limit` calls in flight. Every item is attempted; if any call
 * fails, the first error is thrown after all have settled (so one failure does not hide others'
 * completed side effects from the caller's next attempt).
 */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        firstError ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what fn threw, as it was
  if (firstError !== undefined) throw firstError;
}
