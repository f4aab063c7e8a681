/**
 * The local scheduler: runs jobs on this machine, as many at once as the GPUs allow. Each job gets
 * its own GPU indices from a pool; jobs that need no GPU run up to `cpuSlots` at once.
 */
export interface LocalJob<T> {
  gpus: number;
  run(gpuIndices: number[]): Promise<T>;
}

export async function runLocally<T>(
  jobs: readonly LocalJob<T>[],
  opts: { gpuIndices: number[]; cpuSlots: number; signal?: AbortSignal },
): Promise<PromiseSettledResult<T>[]> {
  const free = [...opts.gpuIndices];
  let cpuFree = Math.max(1, opts.cpuSlots);
  const results: PromiseSettledResult<T>[] = new Array(jobs.length);
  for (const job of jobs) {
    if (job.gpus > opts.gpuIndices.length) {
      throw new Error(`a job needs ${job.gpus} GPUs, this machine has ${opts.gpuIndices.length}`);
    }
  }
  const pending = jobs.map((job, i) => ({ job, i }));
  const running = new Set<Promise<void>>();
  const canStart = (job: LocalJob<T>) => (job.gpus === 0 ? cpuFree > 0 : free.length >= job.gpus);
  while (pending.length > 0 || running.size > 0) {
    if (opts.signal?.aborted) break;
    let started = false;
    for (let k = 0; k < pending.length; k++) {
      const { job, i } = pending[k]!;
      if (!canStart(job)) continue;
      pending.splice(k, 1);
      k--;
      const gpus = job.gpus === 0 ? [] : free.splice(0, job.gpus);
      if (job.gpus === 0) cpuFree--;
      const p: Promise<void> = job
        .run(gpus)
        .then(
          (value) => {
            results[i] = { status: 'fulfilled', value };
          },
          (reason) => {
            results[i] = { status: 'rejected', reason };
          },
        )
        .finally(() => {
          free.push(...gpus);
          free.sort((a, b) => a - b);
          if (job.gpus === 0) cpuFree++;
          running.delete(p);
        });
      running.add(p);
      started = true;
    }
    if (!started && running.size > 0) await Promise.race(running);
    else if (!started) break;
  }
  await Promise.allSettled(running);
  return results;
}
