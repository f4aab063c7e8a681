import { spawnSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  createReadStream,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  type ReadStream,
  readlinkSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { join, relative } from 'node:path';
import { z } from 'zod';
import { type StraceEvent, StraceParser } from './straceParser.ts';

/**
 * The file-open ledger (`ledgers/file_opens.jsonl`): which files the agent's processes opened, which
 * programs they ran, how their standard input and output were piped, and — for every file read from
 * a place the agent can write — what its content held when it was opened, so a training run that
 * read test items is known even when the file is gone by the end.
 *
 * Mechanism: strace from the host around the sandbox (`-f`, with a seccomp filter so only the traced
 * calls stop: opens, execs, process creation, dup2 onto stdin/stdout, unlink, rename). The watcher
 * here tails strace's output while the agent runs: it writes the ledger, hard-links each newly read
 * file version into a private folder at once (so a later delete cannot take it away; a file already
 * deleted is copied from the reader's open descriptor), and has the links scanned in batches by a
 * separate process (the harness's event loop never blocks on a scan).
 */
export const FILE_OPENS_LEDGER = 'file_opens.jsonl';

const Ts = z.number();
const Pid = z.number().int();
export const FileOpenRecordSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('start'), ts: Ts, mechanism: z.enum(['strace', 'none']), detail: z.string() }),
  z.object({ t: z.literal('proc'), ts: Ts, pid: Pid, ppid: Pid.nullable() }),
  z.object({
    t: z.literal('exec'),
    ts: Ts,
    pid: Pid,
    path: z.string(),
    argv: z.array(z.string()),
    truncated: z.boolean(),
  }),
  z.object({
    t: z.literal('open'),
    ts: Ts,
    pid: Pid,
    path: z.string(),
    /** Where the file is on the host: relative to the trial directory, or absolute outside it. */
    host: z.string().nullable(),
    mode: z.enum(['r', 'w', 'rw']),
    /** The file version read (inode, size, mtime), when it was captured for scanning. */
    key: z.string().nullable(),
  }),
  z.object({ t: z.literal('stdio'), ts: Ts, pid: Pid, fd: z.number().int(), target: z.string() }),
  z.object({ t: z.literal('unlink'), ts: Ts, pid: Pid, path: z.string() }),
  z.object({ t: z.literal('rename'), ts: Ts, pid: Pid, from: z.string(), to: z.string() }),
  z.object({
    t: z.literal('scan'),
    key: z.string(),
    path: z.string(),
    status: z.enum(['scanned', 'skipped', 'incomplete', 'vanished']),
    reason: z.string().optional(),
    findings: z.array(
      z.object({
        item: z.string(),
        score: z.number(),
        source: z.string(),
        location: z.record(z.string(), z.number()),
        span: z.string(),
      }),
    ),
  }),
  z.object({
    t: z.literal('end'),
    ts: Ts,
    events: z.number(),
    captured: z.number(),
    vanished: z.number(),
    unscanned: z.number(),
    detail: z.string(),
  }),
]);
export type FileOpenRecord = z.infer<typeof FileOpenRecordSchema>;

/** What scanning one captured file gave. */
export interface ScanOutcome {
  status: 'scanned' | 'skipped' | 'incomplete';
  reason?: string;
  findings: Array<{
    item: string;
    score: number;
    source: string;
    location: Record<string, number>;
    span: string;
  }>;
}

/** Scans captured files (by path) against the benchmark's test items; null when no scan is possible. */
export type CaptureScanner = (paths: string[]) => Promise<Map<string, ScanOutcome>>;

export interface Mount {
  source: string;
  target: string;
}

export interface FileOpenWatcherOptions {
  /** Where strace writes (a named pipe the watcher makes: strace flushes each line to a pipe, not to a file). */
  fifoPath: string;
  /** strace's output kept as it came (the raw record). */
  rawPath: string;
  ledgerPath: string;
  trialRoot: string;
  /** The sandbox's binds: sandbox path → host path. */
  mounts: readonly Mount[];
  /** Sandbox paths the agent can write: files read from there are captured and scanned. */
  writable: readonly string[];
  /** Sandbox path prefixes never recorded (system files, ptb's own code, the interpreter). */
  ignore: readonly string[];
  /** Where captured file versions are linked (same filesystem as the workspace). */
  captureDir: string;
  scanner: CaptureScanner | null;
  mechanismDetail: string;
  /** Files per scan batch. */
  batch?: number;
}

/** strace's raw output kept in the trial directory, at most (the ledger itself is not capped). */
const RAW_LIMIT = 64 << 20;

function hostOf(path: string, mounts: readonly Mount[]): string | null {
  let best: Mount | null = null;
  for (const m of mounts) {
    if (
      (path === m.target || path.startsWith(`${m.target}/`)) &&
      (!best || m.target.length > best.target.length)
    )
      best = m;
  }
  return best ? join(best.source, path.slice(best.target.length)) : null;
}

const under = (path: string, prefixes: readonly string[]) =>
  prefixes.some((p) => path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`));

export class FileOpenWatcher {
  private readonly parser = new StraceParser();
  private readonly ledger: number;
  private rawOut: number | null = null;
  private stream: ReadStream | null = null;
  private ended: Promise<void> = Promise.resolve();
  private partial = '';
  private rawBytes = 0;
  /** (process, path, mode) already in the ledger: a file re-read every epoch is recorded once. */
  private readonly opened = new Set<string>();
  /** Thread id → process (thread group) id. */
  private readonly tgid = new Map<number, number>();
  private readonly captured = new Map<string, string>();
  private readonly queue: Array<{ key: string; path: string; file: string }> = [];
  private scanning: Promise<void> | null = null;
  private events = 0;
  private vanished = 0;
  private captureSeq = 0;

  constructor(private readonly o: FileOpenWatcherOptions) {
    mkdirSync(o.captureDir, { recursive: true });
    this.ledger = openSync(o.ledgerPath, 'a');
    this.write({ t: 'start', ts: Date.now() / 1000, mechanism: 'strace', detail: o.mechanismDetail });
  }

  /** Record that no mechanism ran (the ledger then says why). */
  static unavailable(ledgerPath: string, detail: string): void {
    const fd = openSync(ledgerPath, 'a');
    writeSync(fd, `${JSON.stringify({ t: 'start', ts: Date.now() / 1000, mechanism: 'none', detail })}\n`);
    closeSync(fd);
  }

  /** The tracer never ran for this run after all (the ledger's last start record says why). */
  untraced(detail: string): void {
    this.write({ t: 'start', ts: Date.now() / 1000, mechanism: 'none', detail });
  }

  /** Make the named pipe strace writes to and read it as lines arrive. */
  start(): void {
    rmSync(this.o.fifoPath, { force: true });
    const made = spawnSync('mkfifo', ['-m', '600', this.o.fifoPath]);
    if (made.status !== 0)
      throw new Error(`cannot make the pipe for strace: ${made.stderr?.toString().trim()}`);
    this.rawOut = openSync(this.o.rawPath, 'a');
    // Keeping a file before the agent deletes it is a race against the agent's processes: the
    // harness (idle most of the time) gets the CPU first where it may (root).
    try {
      setPriority(process.pid, Math.min(getPriority(process.pid), -5));
    } catch {}
    this.stream = createReadStream(this.o.fifoPath, { highWaterMark: 1 << 16 });
    this.ended = new Promise((resolve) => {
      this.stream!.on('data', (chunk: Buffer | string) => this.feed(Buffer.from(chunk)));
      this.stream!.on('end', resolve);
      this.stream!.on('error', () => resolve());
    });
  }

  /** strace's output as it arrives. */
  private feed(chunk: Buffer): void {
    if (this.rawBytes < RAW_LIMIT) {
      writeSync(this.rawOut!, chunk);
      this.rawBytes += chunk.length;
      if (this.rawBytes >= RAW_LIMIT)
        writeSync(
          this.rawOut!,
          `\n[ptb: raw strace output stops here at ${RAW_LIMIT} bytes; the ledger goes on]\n`,
        );
    }
    const lines = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const event = this.parser.line(line);
      if (event) this.handle(event);
    }
    this.pump();
  }

  private write(record: FileOpenRecord): void {
    writeSync(this.ledger, `${JSON.stringify(record)}\n`);
  }

  private label(host: string): string {
    const rel = relative(this.o.trialRoot, host);
    return rel.startsWith('..') ? host : rel;
  }

  private proc(pid: number): number {
    return this.tgid.get(pid) ?? pid;
  }

  private handle(e: StraceEvent): void {
    this.events++;
    const pid = this.proc(e.pid);
    switch (e.kind) {
      case 'spawn':
        if (e.thread) this.tgid.set(e.child, pid);
        else this.write({ t: 'proc', ts: e.ts, pid: e.child, ppid: pid });
        return;
      case 'exec':
        this.write({ t: 'exec', ts: e.ts, pid, path: e.path, argv: e.argv, truncated: e.truncated });
        return;
      case 'redirect':
        if (e.fd <= 1) this.write({ t: 'stdio', ts: e.ts, pid, fd: e.fd, target: e.target });
        return;
      case 'unlink':
        if (!under(e.path, this.o.ignore)) this.write({ t: 'unlink', ts: e.ts, pid, path: e.path });
        return;
      case 'rename':
        this.write({ t: 'rename', ts: e.ts, pid, from: e.from, to: e.to });
        return;
      case 'open': {
        const path = e.path.replace(/ \(deleted\)$/, '');
        if (under(path, this.o.ignore) || !path.startsWith('/')) return;
        const host = hostOf(path, this.o.mounts);
        const mode = e.read && e.write ? 'rw' : e.write ? 'w' : 'r';
        const key =
          this.o.scanner && e.read && host && under(path, this.o.writable)
            ? this.capture(e.pid, e.fd, path, host)
            : null;
        // A file re-read every epoch is recorded once per process and version.
        const seen = `${pid}\0${path}\0${mode}\0${key}`;
        if (this.opened.has(seen)) return;
        this.opened.add(seen);
        this.write({ t: 'open', ts: e.ts, pid, path, host: host ? this.label(host) : null, mode, key });
      }
    }
  }

  /**
   * Keep the version of a file that was just opened for reading: a hard link (instant; survives the
   * agent deleting the file), or a copy through the reader's descriptor when the name is gone.
   * Returns the version's key, or null when nothing could be kept (recorded as vanished).
   */
  private capture(pid: number, fd: number, path: string, host: string): string | null {
    let st: ReturnType<typeof statSync> | null = null;
    try {
      st = statSync(host);
      if (!st.isFile()) return null;
    } catch {}
    const viaFd = `/proc/${pid}/fd/${fd}`;
    if (!st) {
      try {
        if (readlinkSync(viaFd).replace(/ \(deleted\)$/, '') === path) st = statSync(viaFd);
      } catch {}
    }
    if (!st) {
      this.vanished++;
      const key = `gone-${this.captureSeq++}`;
      this.write({ t: 'scan', key, path: this.label(host), status: 'vanished', findings: [] });
      return key;
    }
    const key = `${st.dev}-${st.ino}-${st.size}-${Math.round(st.mtimeMs)}`;
    if (this.captured.has(key)) return key;
    const file = join(this.o.captureDir, key);
    try {
      linkSync(host, file); // instant; another filesystem needs a copy
    } catch {
      try {
        copyFileSync(existsSync(host) ? host : viaFd, file);
      } catch {
        this.vanished++;
        this.captured.set(key, '');
        this.write({ t: 'scan', key, path: this.label(host), status: 'vanished', findings: [] });
        return key;
      }
    }
    this.captured.set(key, file);
    this.queue.push({ key, path: this.label(host), file });
    return key;
  }

  /** Start the next scan batch unless one is running. */
  private pump(): void {
    if (this.scanning || this.queue.length === 0 || !this.o.scanner) return;
    const batch = this.queue.splice(0, this.o.batch ?? 400);
    this.scanning = this.scanBatch(batch).finally(() => {
      this.scanning = null;
      this.pump();
    });
  }

  private async scanBatch(batch: Array<{ key: string; path: string; file: string }>): Promise<void> {
    let outcomes: Map<string, ScanOutcome>;
    try {
      outcomes = await this.o.scanner!(batch.map((b) => b.file));
    } catch (err) {
      outcomes = new Map(
        batch.map((b) => [b.file, { status: 'incomplete', reason: (err as Error).message, findings: [] }]),
      );
    }
    for (const b of batch) {
      const out = outcomes.get(b.file) ?? {
        status: 'incomplete' as const,
        reason: 'no result from the scan',
        findings: [],
      };
      this.write({
        t: 'scan',
        key: b.key,
        path: b.path,
        status: out.status,
        ...(out.reason ? { reason: out.reason } : {}),
        findings: out.findings.map((f) => ({ ...f, source: f.source.replace(b.file, b.path) })),
      });
      rmSync(b.file, { force: true });
    }
  }

  /** Stop watching: read the rest, finish the scans (up to `timeoutMs`), write the end record. */
  async stop(timeoutMs = 120_000): Promise<void> {
    // strace has exited (the run is over): the pipe ends once its last lines are read.
    await Promise.race([this.ended, new Promise((r) => setTimeout(r, 10_000))]);
    this.stream?.destroy();
    if (this.partial) {
      const event = this.parser.line(this.partial);
      if (event) this.handle(event);
      this.partial = '';
    }
    const deadline = Date.now() + timeoutMs;
    while ((this.scanning || this.queue.length > 0) && Date.now() < deadline && this.o.scanner) {
      this.pump();
      await Promise.race([this.scanning, new Promise((r) => setTimeout(r, 500))]);
    }
    const unscanned = this.queue.length;
    for (const b of this.queue) {
      this.write({
        t: 'scan',
        key: b.key,
        path: b.path,
        status: 'incomplete',
        reason: 'not scanned before the agent phase ended',
        findings: [],
      });
    }
    this.write({
      t: 'end',
      ts: Date.now() / 1000,
      events: this.events,
      captured: this.captured.size,
      vanished: this.vanished,
      unscanned,
      detail: this.o.scanner
        ? 'files read from writable places were scanned when opened'
        : 'no test data to scan captured files against',
    });
    if (this.rawOut !== null) closeSync(this.rawOut);
    closeSync(this.ledger);
    rmSync(this.o.captureDir, { recursive: true, force: true });
    rmSync(this.o.fifoPath, { force: true });
  }
}
