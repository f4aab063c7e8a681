import { closeSync, openSync, readSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { UserError } from '../../core/errors.ts';
import {
  estimateRanks,
  kernelSource,
  type RankEstimate,
  type RankJob,
  readSegment,
  runSegment,
  type SegmentJob,
  type SegmentResult,
} from './kernel.ts';

/**
 * Runs kernel jobs. Each thread reads its own segments (blocking positioned reads into buffers it
 * reuses) and sums them, so reading and arithmetic overlap across threads and memory is
 * threads × participants × chunk. With `threads` 0 everything runs in this thread.
 */
export interface KernelPool {
  readonly threads: number;
  segment(job: SegmentJob): Promise<SegmentResult>;
  ranks(job: RankJob): Promise<RankEstimate[]>;
  close(): Promise<void>;
}

type Task = { kind: 'segment'; job: SegmentJob } | { kind: 'ranks'; job: RankJob } | { kind: 'close' };

interface Pending {
  task: Task;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

function workerScript(): string {
  // `__name` is the helper esbuild (tsx, vitest) inserts to keep function names; a worker has no such helper.
  return `'use strict';
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
var __name = (target) => target;
${kernelSource()}
const state = { fds: new Map(), buffers: [] };
parentPort.on('message', (msg) => {
  try {
    if (msg.kind === 'segment') {
      const result = runSegment(readSegment(msg.job, fs, state));
      const transfer = [result.sums.buffer, result.moments.buffer];
      if (result.sketches) transfer.push(result.sketches.buffer);
      for (const row of result.rows) for (const v of row.values) if (v) transfer.push(v.buffer);
      parentPort.postMessage({ id: msg.id, result }, transfer);
    } else if (msg.kind === 'ranks') {
      parentPort.postMessage({ id: msg.id, result: estimateRanks(msg.job) });
    } else {
      for (const fd of state.fds.values()) fs.closeSync(fd);
      state.fds.clear();
      parentPort.postMessage({ id: msg.id, result: null });
    }
  } catch (err) {
    parentPort.postMessage({ id: msg.id, error: err && err.message ? err.message : String(err), user: Boolean(err && err.ptbUserError), stack: err && err.stack });
  }
});`;
}

function transferList(task: Task): ArrayBuffer[] {
  if (task.kind !== 'ranks') return [];
  const list: ArrayBuffer[] = [];
  for (const rows of task.job.rows) for (const r of rows ?? []) list.push(r.buffer as ArrayBuffer);
  return list;
}

function asError(message: string, user: boolean, stack?: string): Error {
  if (user) return new UserError(message, 'copy the checkpoint again and re-run');
  const err = new Error(`provenance worker: ${message}`);
  if (stack) err.stack = stack;
  return err;
}

function inProcessPool(): KernelPool {
  const state = { fds: new Map<string, number>(), buffers: [] as ArrayBuffer[] };
  // Yield to the event loop between jobs so progress and abort signals get through.
  const later = <T>(fn: () => T) =>
    new Promise<T>((ok, fail) =>
      setImmediate(() => {
        try {
          ok(fn());
        } catch (err) {
          const e = err as Error & { ptbUserError?: boolean };
          fail(e.ptbUserError ? asError(e.message, true) : e);
        }
      }),
    );
  return {
    threads: 0,
    segment: (job) => later(() => runSegment(readSegment(job, { openSync, readSync }, state))),
    ranks: (job) => later(() => estimateRanks(job)),
    close: async () => {
      for (const fd of state.fds.values()) closeSync(fd);
      state.fds.clear();
    },
  };
}

export function createKernelPool(threads: number): KernelPool {
  if (threads <= 0) return inProcessPool();

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
      const job = pending.task.kind === 'close' ? null : pending.task.job;
      worker.postMessage({ id, kind: pending.task.kind, job }, transferList(pending.task));
    }
  };

  const workers: Worker[] = [];
  for (let i = 0; i < threads; i++) {
    const worker = new Worker(script, { eval: true });
    worker.on(
      'message',
      (msg: { id: number; result?: unknown; error?: string; user?: boolean; stack?: string }) => {
        const entry = inFlight.get(msg.id);
        if (!entry) return;
        inFlight.delete(msg.id);
        idle.push(worker);
        if (msg.error !== undefined) entry.pending.reject(asError(msg.error, Boolean(msg.user), msg.stack));
        else entry.pending.resolve(msg.result);
        dispatch();
      },
    );
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
      // Each worker closes the files it opened, then stops.
      if (!failure) {
        await Promise.all(
          workers.map(
            (worker) =>
              new Promise<void>((resolve) => {
                const id = nextId++;
                const onMessage = (msg: { id: number }) => {
                  if (msg.id !== id) return;
                  worker.off('message', onMessage);
                  resolve();
                };
                worker.on('message', onMessage);
                worker.postMessage({ id, kind: 'close', job: null });
              }),
          ),
        );
      }
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
