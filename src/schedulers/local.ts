import type { Executor, Submission, SubmitRequest, TaskStatus } from './types.ts';

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

/**
 * The local pool as an executor: task i runs in this process (`runTask`), as many at once as the GPUs
 * (or `cpuSlots` for tasks without GPUs) allow. `submit` resolves when every task has finished.
 */
export class LocalExecutor implements Executor {
  readonly id = 'local';
  private readonly states = new Map<number, TaskStatus>();
  private readonly results = new Map<number, PromiseSettledResult<unknown>>();

  constructor(
    private readonly o: {
      runTask(index: number, gpuIndices: number[]): Promise<unknown>;
      gpuIndices: number[];
      cpuSlots: number;
      signal?: AbortSignal;
    },
  ) {}

  async submit(req: SubmitRequest): Promise<Submission> {
    const job = `local-${process.pid}-${Date.now()}`;
    const set = (index: number, state: TaskStatus['state'], extra: Partial<TaskStatus> = {}) => {
      const before: TaskStatus = this.states.get(index) ?? {
        index,
        state,
        raw: state,
        job: `${job}_${index}`,
        node: null,
        exitCode: null,
        reason: null,
        startedAt: null,
        endedAt: null,
      };
      this.states.set(index, { ...before, ...extra, state, raw: state });
    };
    for (const index of req.indices) set(index, 'pending');
    const settled = await runLocally(
      req.indices.map((index) => ({
        gpus: req.gpusPerTask,
        run: async (gpus: number[]) => {
          set(index, 'running', { startedAt: new Date().toISOString() });
          return this.o.runTask(index, gpus);
        },
      })),
      {
        gpuIndices: this.o.gpuIndices,
        cpuSlots: req.maxConcurrent ?? this.o.cpuSlots,
        signal: this.o.signal,
      },
    );
    req.indices.forEach((index, i) => {
      const r = settled[i];
      if (r) this.results.set(index, r);
      const state = !r ? 'cancelled' : r.status === 'fulfilled' ? 'completed' : 'failed';
      set(index, state, {
        endedAt: new Date().toISOString(),
        reason: r?.status === 'rejected' ? String((r.reason as Error)?.message ?? r.reason) : null,
      });
    });
    return { ts: new Date().toISOString(), executor: this.id, job, indices: [...req.indices], command: [] };
  }

  /** What each task returned or threw (the local pool runs in this process, so results are at hand). */
  settled(index: number): PromiseSettledResult<unknown> | undefined {
    return this.results.get(index);
  }

  poll(submissions: readonly Submission[]): Map<number, TaskStatus> {
    const wanted = new Set(submissions.flatMap((s) => s.indices));
    return new Map([...this.states].filter(([index]) => wanted.has(index)));
  }

  cancel(): void {
    throw new Error('the local pool stops with Ctrl-C (its trials are interrupted and resume)');
  }
}
