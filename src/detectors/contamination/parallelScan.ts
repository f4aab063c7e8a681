import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { type MessagePort, Worker } from 'node:worker_threads';
import { type ContaminationFinding, ScanJob, scanContent } from './decodeScan.ts';
import { detectFormat } from './formats.ts';
import { INDEX_ARRAYS, type IndexData, NgramIndex } from './ngramIndex.ts';
import { type FileRecord, listFiles, type ScanCallbacks, type ScanSummary } from './scanFiles.ts';

/**
 * The scan spread over the machine's cores: the main thread and worker threads take tasks (files,
 * and ranges of a large line-oriented file such as JSONL or text, cut at line boundaries) from one
 * shared queue, largest first, so that a thread that starts late (a worker loads its code and the
 * index first) or runs on a busy core takes fewer. Each range is read with some overlap past its
 * cut so a copy that starts just before the cut is found whole; a finding belongs to the range its
 * first line is in, and line numbers are shifted by the lines of the ranges before it. Results come
 * back in file order, exactly as a single-threaded scanPaths gives them.
 */

/** Files below this size are not cut into ranges. */
const SPLIT_BYTES = 32 << 20;
/** About the size of the ranges a large file is cut into (at least one range per thread). */
const RANGE_BYTES = 16 << 20;
/** Bytes read past a range's cut (a copy longer than this across a cut would be split). */
const OVERLAP = 256 << 10;

interface Task {
  path: string;
  label: string;
  size: number;
  /** A range of a file cut for the cores: [start, end) is its own, read up to scanEnd. */
  range?: { start: number; end: number; scanEnd: number; part: number };
}

interface TaskResult {
  findings: ContaminationFinding[];
  skips: Array<[string, string]>;
  errors: Array<[string, string]>;
  /** Why the file itself was skipped or not read, when it was. */
  skipped?: string;
  problem?: string;
  /** Newlines in the range's own bytes (line numbers of later ranges start after them). */
  newlines: number;
}

function countNewlines(path: string, start: number, end: number): number {
  const fd = openSync(path, 'r');
  const buf = Buffer.allocUnsafe(4 << 20);
  let n = 0;
  try {
    for (let pos = start; pos < end; ) {
      const got = readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
      if (got <= 0) break;
      for (let i = buf.indexOf(10, 0); i !== -1 && i < got; i = buf.indexOf(10, i + 1)) n++;
      pos += got;
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

/** Offset just past the first newline at or after `from` (within 1 MiB), or -1. */
function nextLineStart(path: string, from: number, size: number): number {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(64 << 10);
    for (let pos = from; pos < Math.min(size, from + (1 << 20)); ) {
      const got = readSync(fd, buf, 0, Math.min(buf.length, size - pos), pos);
      if (got <= 0) break;
      const nl = buf.subarray(0, got).indexOf(10);
      if (nl >= 0) return pos + nl + 1;
      pos += got;
    }
    return -1;
  } finally {
    closeSync(fd);
  }
}

function readHead(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(8192);
    return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0));
  } finally {
    closeSync(fd);
  }
}

/** Cut a large plain line-oriented file into `parts` ranges at line starts; null when it is not one. */
function cutRanges(path: string, size: number, parts: number): Task['range'][] | null {
  if (size < SPLIT_BYTES || parts < 2) return null;
  const format = detectFormat(path, readHead(path), size);
  if (format.kind !== 'bytes' || format.location !== 'line' || format.csv) return null;
  const cuts = [0];
  for (let k = 1; k < parts; k++) {
    const at = nextLineStart(path, Math.floor((size * k) / parts), size);
    if (at <= cuts.at(-1)! || at >= size) return null;
    cuts.push(at);
  }
  cuts.push(size);
  return cuts.slice(0, -1).map((start, part) => ({
    start,
    end: cuts[part + 1]!,
    scanEnd: Math.min(size, cuts[part + 1]! + OVERLAP),
    part,
  }));
}

/** Scan one task (whole file or range) into a result. */
async function runTask(index: NgramIndex, task: Task, maxDecodedBytes?: number): Promise<TaskResult> {
  const result: TaskResult = { findings: [], skips: [], errors: [], newlines: 0 };
  const range = task.range;
  const job = new ScanJob(
    {
      index,
      finding: (f) => result.findings.push(f),
      skip: (what, reason) => {
        if (what === task.label) result.skipped = reason;
        else result.skips.push([what, reason]);
      },
      incomplete: (what, message) => result.errors.push([what, message]),
    },
    task.size,
    () => {},
    maxDecodedBytes,
  );
  try {
    const start = range?.start ?? 0;
    const size = range ? range.scanEnd - range.start : task.size;
    await scanContent(
      job,
      { kind: 'file', path: task.path, start, size },
      { label: task.label, name: task.path, via: [], depth: 0 },
    );
  } catch (err) {
    result.problem = (err as Error).message;
  } finally {
    job.close();
  }
  if (range) {
    // The range's own newlines: those the scan counted, less the overlap's (or counted again).
    result.newlines =
      job.topNewlines !== null
        ? job.topNewlines - countNewlines(task.path, range.end, range.scanEnd)
        : countNewlines(task.path, range.start, range.end);
    // A copy whose first line lies past the cut belongs to the next range.
    const lineOf = (f: ContaminationFinding) => {
      const at = f.container ?? f.location;
      return 'line' in at ? at.line : 0;
    };
    result.findings = result.findings.filter((f) => lineOf(f) <= result.newlines);
    // Blob offsets in labels count from the range's start: make them the file's.
    const prefix = `${task.label}!`;
    const fix = (label: string) =>
      label.startsWith(prefix)
        ? label.replace(
            /^([\s\S]*?!(?:base64|hex)@)(\d+)/,
            (_, head: string, n: string) => `${head}${Number(n) + range.start}`,
          )
        : label;
    result.findings = result.findings.map((f) => ({ ...f, source: fix(f.source) }));
    result.skips = result.skips.map(([what, why]) => [fix(what), why]);
    result.errors = result.errors.map(([what, why]) => [fix(what), why]);
  }
  return result;
}

interface WorkerInput {
  index: IndexData;
  tasks: Task[];
  /** Task numbers in the order they are taken. */
  order: number[];
  /** The queue's cursor, shared by every thread: the next place in `order` to take. */
  cursor: Int32Array;
  maxDecodedBytes?: number;
}

/** The next task from the shared queue, or undefined when all are taken. */
function take(input: Pick<WorkerInput, 'order' | 'cursor'>): number | undefined {
  const at = Atomics.add(input.cursor, 0, 1);
  return at < input.order.length ? input.order[at] : undefined;
}

/** Worker thread side: wait for the index and the queue, run tasks from it, post each result. */
export async function workerMain(port: MessagePort): Promise<void> {
  const input = await new Promise<WorkerInput>((resolve) =>
    port.once('message', (m: { input: WorkerInput }) => resolve(m.input)),
  );
  const index = NgramIndex.fromData(input.index);
  for (let i = take(input); i !== undefined; i = take(input)) {
    port.postMessage({
      type: 'result',
      task: i,
      result: await runTask(index, input.tasks[i]!, input.maxDecodedBytes),
    });
  }
  port.postMessage({ type: 'done' });
}

/** Code a worker thread runs: register tsx when running from sources, then call workerMain. */
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
(async () => {
  if (workerData.loader) { const { register } = await import(workerData.loader); register(); }
  const m = await import(workerData.module);
  await m.workerMain(parentPort);
})().catch((err) => parentPort.postMessage({ type: 'fatal', message: String((err && err.stack) || err) }));
`;

/**
 * A scan worker thread, started before its work is known so that it loads its code while the main
 * thread loads the index. Until `run` it does not keep the process alive.
 */
export class ScanWorker {
  private readonly worker: Worker;
  private readonly results = new Map<number, TaskResult>();
  private readonly finished: Promise<Map<number, TaskResult>>;
  private onTask: (task: number) => void = () => {};

  constructor() {
    const fromSource = import.meta.url.endsWith('.ts');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { module: import.meta.url, loader: fromSource ? import.meta.resolve('tsx/esm/api') : null },
    });
    this.worker.unref();
    this.finished = new Promise((resolve, reject) => {
      this.worker.on(
        'message',
        (m: { type: string; task?: number; result?: TaskResult; message?: string }) => {
          if (m.type === 'result') {
            this.results.set(m.task!, m.result!);
            this.onTask(m.task!);
          } else if (m.type === 'done') {
            this.stop();
            resolve(this.results);
          } else if (m.type === 'fatal') {
            this.stop();
            reject(new Error(`scan worker failed: ${m.message}`));
          }
        },
      );
      this.worker.on('error', reject);
    });
    this.finished.catch(() => {}); // an unused worker's failure is nobody's
  }

  /**
   * Hand it the index and the queue; resolves with the results of the tasks it took, by task number.
   * `onTask` hears of each task as it finishes (for progress).
   */
  run(input: WorkerInput, onTask?: (task: number) => void): Promise<Map<number, TaskResult>> {
    if (onTask) this.onTask = onTask;
    this.worker.ref();
    this.worker.postMessage({ input });
    return this.finished;
  }

  stop(): void {
    void this.worker.terminate();
  }
}

/**
 * Workers for a scan of `paths`, started before the index is loaded: when the files named (folders
 * are listed later) are large enough for more than one thread.
 */
export function startScanWorkers(paths: readonly string[], threads?: number): ScanWorker[] {
  let bytes = 0;
  for (const path of paths) {
    try {
      const st = statSync(path);
      if (st.isFile()) bytes += st.size;
    } catch {
      // reported by the scan
    }
  }
  const n = (threads ?? scanThreads(bytes)) - 1;
  return bytes >= SPLIT_BYTES ? Array.from({ length: Math.max(0, n) }, () => new ScanWorker()) : [];
}

/**
 * Threads of other processes running right now: the kernel's run queue (Linux) less this
 * process's own running threads; null where there is no /proc.
 */
function othersRunningNow(): number | null {
  try {
    const runnable = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[3]!.split('/')[0]);
    let own = 0;
    for (const task of readdirSync('/proc/self/task')) {
      const stat = readFileSync(`/proc/self/task/${task}/stat`, 'utf8');
      if (stat[stat.lastIndexOf(')') + 2] === 'R') own++;
    }
    return Number.isFinite(runnable) ? Math.max(0, runnable - own) : null;
  } catch {
    return null;
  }
}

/**
 * Threads a scan of `bytes` uses: one per core that is idle at least part of the time, up to 4;
 * one when small. How busy the machine is: the 1-minute load, or fewer when fewer processes run
 * right now (the load average trails by a minute: a scan right after a heavy job would otherwise
 * leave idle cores unused). Threads share one queue of tasks, so a thread on a busy core takes
 * fewer; a second thread on a core that another process keeps busy still costs (measured: 0.9 s
 * with one thread against 1.1 s with two on the 2-core machine with the other core busy), hence
 * no more threads than idle cores.
 */
export function scanThreads(bytes: number): number {
  if (bytes < 64 << 20) return 1;
  const busy = Math.min(loadavg()[0]!, othersRunningNow() ?? Number.POSITIVE_INFINITY);
  const idle = Math.ceil(availableParallelism() - busy);
  return Math.max(1, Math.min(4, idle));
}

/** The index for a worker: its arrays copied (views of one cached file would each carry all of it). */
function workerIndex(index: NgramIndex): IndexData {
  const data = index.data();
  for (const name of INDEX_ARRAYS) (data as Record<string, unknown>)[name] = data[name].slice();
  return data;
}

/**
 * Like scanPaths, over `threads` threads (the main one included); each worker gets a copy of the
 * index. Findings and reports come back in file order.
 */
export async function scanPathsParallel(
  index: NgramIndex,
  paths: readonly string[],
  cb: ScanCallbacks,
  opts: {
    label?: (path: string) => string;
    maxDecodedBytes?: number;
    threads?: number;
    /** Workers already started (startScanWorkers); more are started if `threads` asks for more. */
    workers?: ScanWorker[];
  } = {},
): Promise<ScanSummary> {
  const started = performance.now();
  const label = opts.label ?? ((p: string) => p);
  const { files, skipped: listSkips, missing } = listFiles(paths);
  const total = files.reduce((s, f) => s + f.size, 0);
  const early = opts.workers ?? [];
  const threads = opts.threads ?? (early.length > 0 ? early.length + 1 : scanThreads(total));
  // Tasks: large line-oriented files cut into ranges, the rest whole.
  const tasks: Task[] = [];
  for (const f of files) {
    const parts = threads < 2 ? 1 : Math.max(threads, Math.ceil(f.size / RANGE_BYTES));
    const ranges = cutRanges(f.path, f.size, parts);
    if (ranges)
      for (const range of ranges) tasks.push({ path: f.path, label: label(f.path), size: f.size, range });
    else tasks.push({ path: f.path, label: label(f.path), size: f.size });
  }
  // One queue, largest first (a file's ranges in order), taken from by every thread.
  const order = tasks.map((_, i) => i).sort((a, b) => taskBytes(tasks[b]!) - taskBytes(tasks[a]!) || a - b);
  const queue = { order, cursor: new Int32Array(new SharedArrayBuffer(4)) };
  const results = new Array<TaskResult>(tasks.length);
  const shared = threads > 1 && tasks.length > 1 ? workerIndex(index) : null;
  const wanted = shared ? Math.min(threads, tasks.length) - 1 : 0;
  for (const unused of early.slice(wanted)) unused.stop();
  const pool = [
    ...early.slice(0, wanted),
    ...Array.from({ length: wanted - Math.min(wanted, early.length) }, () => new ScanWorker()),
  ];
  // Progress counts every thread's finished tasks, the workers' as their results arrive.
  let done = 0;
  const finished = (task: number) => {
    done += taskBytes(tasks[task]!);
    cb.onProgress?.(done, total);
  };
  const workers = pool.map((worker) =>
    worker
      .run({ index: shared!, tasks, ...queue, maxDecodedBytes: opts.maxDecodedBytes }, finished)
      .then((rs) => {
        for (const [i, r] of rs) results[i] = r;
      }),
  );
  for (let i = take(queue); i !== undefined; i = take(queue)) {
    results[i] = await runTask(index, tasks[i]!, opts.maxDecodedBytes);
    finished(i);
  }
  await Promise.all(workers);
  return report(
    tasks,
    results,
    missing.map(label),
    listSkips.map((s) => [label(s.path), s.reason] as [string, string]),
    cb,
    started,
  );
}

function taskBytes(t: Task): number {
  return t.range ? t.range.end - t.range.start : t.size;
}

/** Emit every result through the callbacks in file order; line numbers of later ranges shifted. */
function report(
  tasks: Task[],
  results: TaskResult[],
  missing: string[],
  listSkips: Array<[string, string]>,
  cb: ScanCallbacks,
  started: number,
): ScanSummary {
  let errors = 0;
  let skipped = 0;
  let findings = 0;
  let files = 0;
  let bytes = 0;
  const items = new Set<string>();
  for (const m of missing) {
    errors++;
    cb.onError?.(m, 'no such file or folder, or not readable');
    cb.onFile?.({ source: m, bytes: 0, status: 'error', reason: 'not readable' });
  }
  for (const [source, reason] of listSkips) {
    skipped++;
    cb.onSkip?.(source, reason);
    cb.onFile?.({ source, bytes: 0, status: 'skipped', reason });
  }
  let linesBefore = 0;
  for (let i = 0; i < tasks.length; i++) {
    const task = tasks[i]!;
    const r = results[i]!;
    if (!task.range || task.range.part === 0) linesBefore = 0;
    for (const f of r.findings) {
      findings++;
      items.add(f.item);
      const shifted =
        !task.range || linesBefore === 0
          ? f
          : f.container && 'line' in f.container
            ? { ...f, container: { line: f.container.line + linesBefore } }
            : 'line' in f.location && !f.container
              ? { ...f, location: { line: f.location.line + linesBefore } }
              : f;
      cb.onFinding(shifted);
    }
    for (const [what, reason] of r.skips) {
      skipped++;
      cb.onSkip?.(what, reason);
    }
    for (const [what, message] of r.errors) {
      errors++;
      cb.onError?.(what, message);
    }
    linesBefore += r.newlines;
    const last = !task.range || task.range.end === task.size;
    if (!last) continue;
    // One record per file, once its last range is in.
    const problem = tasks
      .map((t, k) => (t.path === task.path ? results[k]!.problem : undefined))
      .find((p) => p !== undefined);
    let record: FileRecord;
    if (problem) {
      errors++;
      cb.onError?.(task.label, problem);
      record = { source: task.label, bytes: task.size, status: 'error', reason: problem };
    } else if (r.skipped) {
      skipped++;
      cb.onSkip?.(task.label, r.skipped);
      record = { source: task.label, bytes: task.size, status: 'skipped', reason: r.skipped };
    } else {
      files++;
      bytes += task.size;
      record = { source: task.label, bytes: task.size, status: 'scanned' };
    }
    cb.onFile?.(record);
  }
  return {
    files,
    bytes,
    findings,
    items: items.size,
    skipped,
    errors,
    seconds: (performance.now() - started) / 1000,
  };
}
