import type { Grader } from '../benchmarks/shared/grader.ts';

/** The reference keeps at most 64 grader calls in flight (HealthBench's global semaphore; Arena's 64 threads). */
export const GRADER_MAX_IN_FLIGHT = 64;

/** Wrap a grader so that at most `limit` calls run at once, whatever the evaluation's concurrency. */
export function limitGrader(grader: Grader, limit = GRADER_MAX_IN_FLIGHT): Grader {
  let active = 0;
  const waiting: Array<() => void> = [];
  const release = () => {
    active--;
    waiting.shift()?.();
  };
  return {
    model: grader.model,
    baseUrl: grader.baseUrl,
    async complete(req, signal) {
      if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
      active++;
      try {
        return await grader.complete(req, signal);
      } finally {
        release();
      }
    },
  };
}
