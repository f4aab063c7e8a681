import { Worker } from 'node:worker_threads';
import {
  estimateRanks,
  kernelSource,
  type RankEstimate,
  type RankJob,
  runSegment,
  type SegmentJob,
  type SegmentResult,
} from './kernel.ts';

/** Runs kernel jobs: on worker threads, or in this thread when `threads` is 0. */
export interface KernelPool {
  readonly threads: number;
  segment(job: SegmentJob): Promise<SegmentResult>;
  ranks(job: RankJob): Promise<RankEstimate[]>;
  close(): Promise<void>;
}

type Task = { kind: 'segment'; job: SegmentJob } | { kind: 'ranks'; job: RankJob };

interface Pending {
  task: Task;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

function workerScript(): string {
  // `__name` is the helper esbuild (tsx, vitest) inserts to keep function names; the worker has no such helper.
  return `'use strict';
const { parentPort } = require('node:worker_threads');
var __name = (target) => target;
${kernelSource()}
parentPort.on('message', (msg) => {
  try {
    if (msg.kind === 'segment') {
      const result = runSegment(msg.job);
      const transfer = [result.sums.buffer];
      for (const row of result.rows) for (const v of row.values) if (v) transfer.push(v.buffer);
      parentPort.postMessage({ id: msg.id, result }, transfer);
    } else {
      parentPort.postMessage({ id: msg.id, result: estimateRanks(msg.job) });
    }
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: err && err.stack ? err.stack : String(err) });
  }
});`;
}

function transferList(task: Task): ArrayBuffer[] {
  if (task.kind === 'segment') return []; // read buffers are shared, not moved
  const list: ArrayBuffer[] = [];
  for (const rows of task.job.rows) for (const r of rows ?? []) list.push(r.buffer as ArrayBuffer);
  return list;
}

export function createKernelPool(threads: number): KernelPool {
  if (threads <= 0) {
    // Yield to the event loop between jobs so reads keep flowing.
    const later = <T>(fn: () => T) =>
      new Promise<T>((ok, fail) =>
        setImmediate(() => {
          try {
            ok(fn());
          } catch (err) {
            fail(err as Error);
          }
        }),
      );
    return {
      threads: 0,
      segment: (job) => later(() => runSegment(job)),
      ranks: (job) => later(() => estimateRanks(job)),
      close: async () => {},
    };
  }

  const script = workerScript();
  const idle: Worker[] = [];
  const queue: Pending[] = [];
  const inFlight = new Map<number, { worker: Worker; pending: Pending }>();
  let nextId = 0;
  let failure: Error | null = null;

  const dispatch = () => {
    while (idle.length > 0 && queue.length > 0) {
      const worker = idle.pop()!;
      const pending = queue.shift()!;
      const id = nextId++;
      inFlight.set(id, { worker, pending });
      worker.postMessage({ id, kind: pending.task.kind, job: pending.task.job }, transferList(pending.task));
    }
  };

  const workers: Worker[] = [];
  for (let i = 0; i < threads; i++) {
    const worker = new Worker(script, { eval: true });
    worker.on('message', (msg: { id: number; result?: unknown; error?: string }) => {
      const entry = inFlight.get(msg.id);
      if (!entry) return;
      inFlight.delete(msg.id);
      idle.push(worker);
      if (msg.error !== undefined) entry.pending.reject(new Error(`provenance worker: ${msg.error}`));
      else entry.pending.resolve(msg.result);
      dispatch();
    });
    worker.on('error', (err) => {
      failure = err;
      for (const [id, entry] of inFlight) {
        if (entry.worker === worker) {
          inFlight.delete(id);
          entry.pending.reject(err);
        }
      }
    });
    workers.push(worker);
    idle.push(worker);
  }

  const submit = <T>(task: Task) =>
    new Promise<T>((resolve, reject) => {
      if (failure) {
        reject(failure);
        return;
      }
      queue.push({ task, resolve: resolve as (v: unknown) => void, reject });
      dispatch();
    });

  return {
    threads,
    segment: (job) => submit<SegmentResult>({ kind: 'segment', job }),
    ranks: (job) => submit<RankEstimate[]>({ kind: 'ranks', job }),
    close: async () => {
      for (const p of queue.splice(0)) p.reject(new Error('provenance scan closed'));
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
