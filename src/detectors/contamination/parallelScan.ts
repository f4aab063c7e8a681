import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { type MessagePort, Worker } from 'node:worker_threads';
import { type ContaminationFinding, ScanJob, scanContent } from './decodeScan.ts';
import { detectFormat } from './formats.ts';
import { INDEX_ARRAYS, type IndexData, NgramIndex } from './ngramIndex.ts';
import { type FileRecord, listFiles, type ScanCallbacks, type ScanSummary } from './scanFiles.ts';

/**
 * The scan spread over the machine's cores: files are shared out by size between the main thread
 * and worker threads, and a large line-oriented file (JSONL, text) is cut at line boundaries into
 * one range per core. Each range is read with some overlap past its cut so a copy that starts just
 * before the cut is found whole; a finding belongs to the range its first line is in, and line
 * numbers are shifted by the lines of the ranges before it. Results come back in file order,
 * exactly as a single-threaded scanPaths gives them.
 */

/** Files below this size are not cut into ranges. */
const SPLIT_BYTES = 32 << 20;
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
    const buf = Buffer.allocUnsafe(1 << 20);
    const got = readSync(fd, buf, 0, Math.min(buf.length, size - from), from);
    const nl = buf.subarray(0, got).indexOf(10);
    return nl < 0 ? -1 : from + nl + 1;
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
    result.newlines = countNewlines(task.path, range.start, range.end);
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
  maxDecodedBytes?: number;
}

/** Worker thread side: take the index, run the tasks, post each result. */
export async function workerMain(input: WorkerInput, port: MessagePort): Promise<void> {
  const index = NgramIndex.fromData(input.index);
  for (let i = 0; i < input.tasks.length; i++) {
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
  await m.workerMain(workerData.input, parentPort);
})().catch((err) => parentPort.postMessage({ type: 'fatal', message: String((err && err.stack) || err) }));
`;

function startWorker(input: WorkerInput): Promise<TaskResult[]> {
  const fromSource = import.meta.url.endsWith('.ts');
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      module: import.meta.url,
      loader: fromSource ? import.meta.resolve('tsx/esm/api') : null,
      input,
    },
  });
  const results: TaskResult[] = [];
  return new Promise((resolve, reject) => {
    worker.on('message', (m: { type: string; task?: number; result?: TaskResult; message?: string }) => {
      if (m.type === 'result') results[m.task!] = m.result!;
      else if (m.type === 'done') {
        void worker.terminate();
        resolve(results);
      } else if (m.type === 'fatal') {
        void worker.terminate();
        reject(new Error(`scan worker failed: ${m.message}`));
      }
    });
    worker.on('error', reject);
  });
}

/**
 * Threads a scan of `bytes` uses: one per idle core (cores minus the 1-minute load), up to 4; one
 * when small. On a busy machine a second thread only adds its start-up (measured: 1.65 s with one
 * thread against 2.86 s with two on the 2-core machine at load 6, docs/performance.md).
 */
export function scanThreads(bytes: number): number {
  if (bytes < 64 << 20) return 1;
  const idle = Math.round(availableParallelism() - loadavg()[0]!);
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
  } = {},
): Promise<ScanSummary> {
  const started = performance.now();
  const label = opts.label ?? ((p: string) => p);
  const { files, skipped: listSkips, missing } = listFiles(paths);
  const total = files.reduce((s, f) => s + f.size, 0);
  const threads = opts.threads ?? scanThreads(total);
  // Tasks: large line-oriented files cut into one range per thread, the rest whole.
  const tasks: Task[] = [];
  for (const f of files) {
    const ranges = cutRanges(f.path, f.size, threads);
    if (ranges)
      for (const range of ranges) tasks.push({ path: f.path, label: label(f.path), size: f.size, range });
    else tasks.push({ path: f.path, label: label(f.path), size: f.size });
  }
  // Share out by bytes: each task to the least loaded thread, largest first; a file's ranges spread.
  const load = new Array<number>(threads).fill(0);
  const owner = new Array<number>(tasks.length);
  const order = tasks.map((_, i) => i).sort((a, b) => taskBytes(tasks[b]!) - taskBytes(tasks[a]!));
  for (const i of order) {
    const t = load.indexOf(Math.min(...load));
    owner[i] = t;
    load[t]! += taskBytes(tasks[i]!);
  }
  const perThread = Array.from({ length: threads }, (_, t) =>
    tasks.map((task, i) => ({ task, i })).filter((x) => owner[x.i] === t),
  );
  const results = new Array<TaskResult>(tasks.length);
  const shared = perThread.length > 1 ? workerIndex(index) : null;
  const workers = perThread.slice(1).map((mine) =>
    mine.length === 0
      ? Promise.resolve()
      : startWorker({
          index: shared!,
          tasks: mine.map((x) => x.task),
          maxDecodedBytes: opts.maxDecodedBytes,
        }).then((rs) => {
          rs.forEach((r, k) => {
            results[mine[k]!.i] = r;
          });
        }),
  );
  let done = 0;
  for (const { task, i } of perThread[0]!) {
    results[i] = await runTask(index, task, opts.maxDecodedBytes);
    done += taskBytes(task);
    cb.onProgress?.(done, total);
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
