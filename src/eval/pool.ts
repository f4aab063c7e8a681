import { setMaxListeners } from 'node:events';

/**
 * Run `work` over `items` with at most `concurrency` in flight. The first failure aborts the
 * shared signal, waits for the in-flight items to settle, and is rethrown.
 */
export async function runPool<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, signal: AbortSignal) => Promise<void>,
  outer?: AbortSignal,
): Promise<void> {
  const controller = new AbortController();
  // Every in-flight request listens on this signal; many at once is expected, not a leak.
  setMaxListeners(0, controller.signal);
  const onOuterAbort = () => controller.abort(outer?.reason);
  outer?.addEventListener('abort', onOuterAbort, { once: true });
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!controller.signal.aborted) {
      const i = next++;
      if (i >= items.length) return;
      try {
        await work(items[i]!, controller.signal);
      } catch (error) {
        if (!failure) failure = { error };
        controller.abort(error);
        return;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  } finally {
    outer?.removeEventListener('abort', onOuterAbort);
  }
  if (failure) throw failure.error;
  if (outer?.aborted) throw outer.reason ?? new Error('aborted');
}
