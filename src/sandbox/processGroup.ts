/**
 * Run one host process in its own process group with a deadline: SIGTERM to the group at the deadline
 * or on abort, SIGKILL to the group after the grace, and SIGKILL when ptb itself exits. Output is
 * streamed and captured with a cap. Used by the apptainer sandbox (apptainer is the group leader)
 * and by the `none` sandbox.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { EnforcedLimits, SandboxProcessInfo, SandboxResult } from './bwrap.ts';
import { CappedSink, drainInto } from './capture.ts';

export interface GroupRunOptions {
  command: string;
  args: readonly string[];
  env: Record<string, string>;
  cwd?: string;
  stdin?: string | Uint8Array;
  timeoutMs?: number;
  killGraceMs?: number;
  signal?: AbortSignal;
  maxOutputBytes?: number;
  captureOutput?: boolean;
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  onSpawn?: (info: SandboxProcessInfo) => void;
}

export interface GroupRunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
  stdout: Buffer;
  stderr: Buffer;
  /** First 4 KiB of stderr (kept even without capture: tells why a start failed). */
  stderrHead: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  durationMs: number;
}

export async function runProcessGroup(o: GroupRunOptions): Promise<GroupRunResult> {
  const started = performance.now();
  const cap = o.maxOutputBytes ?? 1 << 20;
  const capture = o.captureOutput !== false;
  const stdout = new CappedSink(capture ? cap : 0);
  const stderr = new CappedSink(capture ? cap : 0);
  const stderrHead = new CappedSink(4096);
  const child: ChildProcess = spawn(o.command, [...o.args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: o.env,
    ...(o.cwd ? { cwd: o.cwd } : {}),
    detached: true,
  });
  const signalGroup = (signal: NodeJS.Signals) => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  let exited = false;
  let timedOut = false;
  let aborted = false;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = () => {
    const grace = o.killGraceMs ?? 0;
    if (grace <= 0) return signalGroup('SIGKILL');
    if (killTimer) return;
    signalGroup('SIGTERM');
    killTimer = setTimeout(() => signalGroup('SIGKILL'), grace);
  };
  const timer =
    o.timeoutMs !== undefined
      ? setTimeout(() => {
          if (exited) return;
          timedOut = true;
          stop();
        }, o.timeoutMs)
      : undefined;
  const onAbort = () => {
    if (exited) return;
    aborted = true;
    stop();
  };
  if (o.signal?.aborted) onAbort();
  else o.signal?.addEventListener('abort', onAbort, { once: true });
  const onProcessExit = () => signalGroup('SIGKILL');
  process.once('exit', onProcessExit);
  if (child.pid !== undefined) {
    try {
      o.onSpawn?.({ pid: child.pid, cgroups: {} });
    } catch {
      // monitoring is optional
    }
  }
  const listener = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
    if (stream === 'stderr') stderrHead.push(chunk);
    try {
      o.onOutput?.(stream, chunk);
    } catch {
      // a failing log writer must not stall the run
    }
  };
  child.stdout?.on('data', listener('stdout'));
  child.stderr?.on('data', listener('stderr'));
  const streamsDone = Promise.all([drainInto(child.stdout, stdout), drainInto(child.stderr, stderr)]);
  child.stdin?.on('error', () => {
    // the command may exit without reading its input
  });
  if (o.stdin !== undefined) child.stdin?.end(o.stdin);
  else child.stdin?.end();
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      child.once('error', (error) => resolve({ code: null, signal: null, error }));
      child.once('exit', (code, signal) => resolve({ code, signal }));
    },
  );
  exited = true;
  // Whatever the leader left behind in its group goes with it (pipes would otherwise stay open).
  signalGroup('SIGKILL');
  process.removeListener('exit', onProcessExit);
  if (timer) clearTimeout(timer);
  if (killTimer) clearTimeout(killTimer);
  o.signal?.removeEventListener('abort', onAbort);
  await streamsDone;
  if (exit.error) throw exit.error;
  return {
    exitCode: exit.code,
    signal: exit.signal,
    timedOut,
    aborted,
    stdout: stdout.bytes(),
    stderr: capture ? stderr.bytes() : stderrHead.bytes(),
    stderrHead: stderrHead.bytes().toString('utf8'),
    stdoutTruncated: capture && stdout.truncated,
    stderrTruncated: capture && stderr.truncated,
    durationMs: performance.now() - started,
  };
}

/** The fields of a run's spec that a process-group run takes over as they are. */
type PassedThrough = Pick<
  GroupRunOptions,
  | 'stdin'
  | 'timeoutMs'
  | 'killGraceMs'
  | 'signal'
  | 'maxOutputBytes'
  | 'captureOutput'
  | 'onOutput'
  | 'onSpawn'
>;

/** Only the fields the spec sets (a set-but-undefined field would override a default). */
export function passedThrough(spec: PassedThrough): PassedThrough {
  return {
    ...(spec.stdin !== undefined ? { stdin: spec.stdin } : {}),
    ...(spec.timeoutMs !== undefined ? { timeoutMs: spec.timeoutMs } : {}),
    ...(spec.killGraceMs !== undefined ? { killGraceMs: spec.killGraceMs } : {}),
    ...(spec.signal ? { signal: spec.signal } : {}),
    ...(spec.maxOutputBytes !== undefined ? { maxOutputBytes: spec.maxOutputBytes } : {}),
    ...(spec.captureOutput !== undefined ? { captureOutput: spec.captureOutput } : {}),
    ...(spec.onOutput ? { onOutput: spec.onOutput } : {}),
    ...(spec.onSpawn ? { onSpawn: spec.onSpawn } : {}),
  };
}

/** A sandbox result from a process-group run: no OOM detection, no extra output pipes. */
export function groupSandboxResult(
  run: GroupRunResult,
  o: { enforced: EnforcedLimits; warnings: string[]; startFailed: boolean },
): SandboxResult {
  return {
    exitCode: run.exitCode,
    signal: run.signal,
    timedOut: run.timedOut,
    aborted: run.aborted,
    oomKilled: false,
    stdout: run.stdout,
    stderr: run.stderr,
    stdoutTruncated: run.stdoutTruncated,
    stderrTruncated: run.stderrTruncated,
    extraOutputs: [],
    durationMs: run.durationMs,
    enforced: o.enforced,
    warnings: o.warnings,
    peakMemoryBytes: null,
    startFailed: o.startFailed,
  };
}
