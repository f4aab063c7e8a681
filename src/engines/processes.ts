import { type ChildProcess, spawn } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../core/errors.ts';
import type { EngineHandle } from './types.ts';

/**
 * Process helpers shared by the engines that launch a local server (vllm, hf): a free port, a
 * child in its own process group with its output in a log file, a health wait that fails fast
 * with the log's tail, and a stop that signals only that group. The reference kills every GPU
 * process between evaluation attempts; ptb never touches a process it did not start.
 */

/** Ask the kernel for a free TCP port on `host`. Another process could take it before use; servers
 * that fail to bind show it in their log and the health wait reports that. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return await new Promise<number>((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolvePort(port) : reject(new Error('no port assigned'))));
    });
  });
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A server being waited on: where it logs and how it ended (a process group, or a sandbox). */
export interface WatchedServer {
  readonly logFile: string;
  /** Resolves when the server has exited. */
  readonly exited: Promise<ExitInfo>;
  /** Its exit, once it happened. */
  exitInfo(): ExitInfo | null;
}

/** A child process that leads its own process group (pgid = pid). */
export interface GroupProcess extends WatchedServer {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the group leader exits (its descendants may still be running). */
  readonly exited: Promise<ExitInfo>;
}

export interface SpawnInGroupOptions {
  /** stdout and stderr are appended here (created with its folder). */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** After ptb is gone, how long the engine gets between SIGTERM and SIGKILL (default 10 s). */
  orphanGraceMs?: number;
}

/** Leads each group and ends it when ptb dies (see the file). */
const DIE_WITH_PARENT = new URL('./dieWithParent.mjs', import.meta.url).pathname;

/** The executable `command` names (a path, or looked up on PATH), or why it cannot run. */
function executableProblem(command: string, env: NodeJS.ProcessEnv): string | null {
  const candidates = command.includes('/')
    ? [command]
    : (env.PATH ?? '')
        .split(':')
        .filter(Boolean)
        .map((dir) => join(dir, command));
  let problem = 'ENOENT';
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EACCES') problem = 'EACCES';
    }
  }
  return problem;
}

/** Groups started by this process and not yet stopped; killed when this process exits. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when the harness exits without stopping an engine: no time to wait, so SIGKILL.
  process.once('exit', () => {
    for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
  });
}

/**
 * Start `command` in a new process group, stdout and stderr appended to the log file. The group's
 * leader is dieWithParent.mjs, which runs the command and ends the group when this process dies
 * without stopping it (SIGKILL, OOM): an engine never outlives its harness. Throws a UserError when
 * the executable cannot be started at all (ENOENT, EACCES).
 */
export async function spawnInGroup(
  command: string,
  args: readonly string[],
  opts: SpawnInGroupOptions,
): Promise<GroupProcess> {
  const env = opts.env ?? process.env;
  const problem = executableProblem(command, env);
  if (problem) {
    throw new UserError(
      `could not start ${command}: ${problem}`,
      'check that the executable exists and is executable',
    );
  }
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const logFd = openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      [DIE_WITH_PARENT, String(opts.orphanGraceMs ?? 10_000), command, ...args],
      {
        cwd: opts.cwd,
        env,
        detached: true, // setsid: the leader heads a new process group we can signal as a whole
        // stdin: a pipe this process never writes; its end closing is how the leader learns we died.
        stdio: ['pipe', logFd, logFd],
      },
    );
  } finally {
    closeSync(logFd); // the child holds its own copy
  }
  // The pipe must not keep this process alive.
  (child.stdin as unknown as { _handle?: { unref?: () => void } } | null)?._handle?.unref?.();
  let info: ExitInfo | null = null;
  const exited = new Promise<ExitInfo>((resolveExit) => {
    child.once('exit', (code, signal) => {
      info = { code, signal };
      resolveExit(info);
    });
  });
  // A spawn failure (missing executable) arrives as an 'error' event before any 'spawn' event.
  await new Promise<void>((resolveSpawn, reject) => {
    child.once('spawn', () => resolveSpawn());
    child.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new UserError(
          `could not start ${command}: ${err.code ?? err.message}`,
          'check that the executable exists and is executable',
        ),
      );
    });
  });
  const pid = child.pid!;
  liveGroups.add(pid);
  installExitHook();
  return { pid, child, logFile: opts.logFile, exited, exitInfo: () => info };
}

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: nobody left in the group
  }
}

/**
 * Whether any process of group `pgid` is still running. Zombies do not count: they hold no
 * resources, and in a container whose init never reaps them they would otherwise look alive forever.
 */
export function groupIsAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true; // no procfs (macOS): the kill(0) probe is all we have
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the parenthesised command name: state ppid pgrp ...
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') return true;
  }
  return false;
}

/**
 * Stop every process of the group: SIGTERM, then SIGKILL after `graceMs` if any is left. Resolves
 * once the group is gone (or after a bounded wait following SIGKILL). Idempotent.
 */
export async function killGroup(proc: GroupProcess, opts: { graceMs?: number } = {}): Promise<void> {
  const graceMs = opts.graceMs ?? 15_000;
  const pgid = proc.pid;
  if (groupIsAlive(pgid)) {
    signalGroup(pgid, 'SIGTERM');
    const termDeadline = Date.now() + graceMs;
    while (groupIsAlive(pgid) && Date.now() < termDeadline) await sleep(50);
    if (groupIsAlive(pgid)) {
      signalGroup(pgid, 'SIGKILL');
      const killDeadline = Date.now() + 5_000;
      while (groupIsAlive(pgid) && Date.now() < killDeadline) await sleep(50);
    }
  }
  liveGroups.delete(pgid);
  // The leader's exit event may lag its death by a tick; wait for it so callers see a final state.
  if (proc.exitInfo() === null) await Promise.race([proc.exited, sleep(2_000)]);
}

/** The last `maxLines` lines of a log file ('' when it does not exist), reading at most 64 KiB. */
export function tailFile(path: string, maxLines = 40): string {
  let text: string;
  try {
    const size = statSync(path).size;
    const start = Math.max(0, size - 65_536);
    const fd = openSync(path, 'r');
    try {
      const buf = Buffer.alloc(size - start);
      let read = 0;
      while (read < buf.length) {
        const n = readSync(fd, buf, read, buf.length - read, start + read);
        if (n === 0) break;
        read += n;
      }
      text = buf.subarray(0, read).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
  const lines = text.replace(/\s+$/, '').split('\n');
  return lines.slice(-maxLines).join('\n');
}

export interface WaitForHealthOptions {
  /** GET this URL until it answers 2xx. */
  url: string;
  /** What is starting, for messages ("vLLM server"). */
  what: string;
  timeoutMs: number;
  /** The server process: its early exit ends the wait at once, with the log's tail. */
  proc?: WatchedServer;
  headers?: Record<string, string>;
  /** Reach the server through this agent (a sandboxed server's Unix socket) instead of the URL's host. */
  agent?: http.Agent;
  /** Pause between probes. */
  intervalMs?: number;
  signal?: AbortSignal;
}

/** Thrown by waitForHealth; carries the server's log tail so callers can decide (e.g. retry a port clash). */
export class ServerStartError extends UserError {
  readonly logTail: string;
  readonly exit: ExitInfo | null;
  constructor(message: string, hint: string, logTail: string, exit: ExitInfo | null) {
    super(message, hint);
    this.name = 'ServerStartError';
    this.logTail = logTail;
    this.exit = exit;
  }
}

function describeExit(exit: ExitInfo): string {
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

function withTail(message: string, tail: string): string {
  return tail ? `${message}\n--- last lines of the server log ---\n${tail}` : message;
}

/**
 * Poll `url` until it answers 2xx. Fails fast when `proc` exits, and after `timeoutMs`; both
 * errors quote the tail of the process's log.
 */
export async function waitForHealth(opts: WaitForHealthOptions): Promise<void> {
  const intervalMs = opts.intervalMs ?? 500;
  const deadline = Date.now() + opts.timeoutMs;
  const logFile = opts.proc?.logFile;
  const hint = logFile ? `full log: ${logFile}` : 'check that the server can start';
  for (;;) {
    opts.signal?.throwIfAborted();
    const exit = opts.proc?.exitInfo();
    if (exit) {
      const tail = logFile ? tailFile(logFile) : '';
      throw new ServerStartError(
        withTail(`${opts.what} ${describeExit(exit)} before it became healthy`, tail),
        hint,
        tail,
        exit,
      );
    }
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      const tail = logFile ? tailFile(logFile) : '';
      throw new ServerStartError(
        withTail(`${opts.what} was not healthy after ${Math.round(opts.timeoutMs / 1000)} s`, tail),
        `${hint}; a large model may need a longer health timeout`,
        tail,
        null,
      );
    }
    const probeMs = Math.min(5_000, remaining);
    const healthy = opts.agent
      ? await probeThrough(opts.agent, opts.url, probeMs, opts.signal)
      : await probe(opts.url, opts.headers, probeMs, opts.signal);
    if (healthy) return;
    // An abort ends the pause early; the loop's first line then throws it.
    const pause = sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())), undefined, {
      signal: opts.signal,
    }).catch(() => undefined);
    await (opts.proc ? Promise.race([pause, opts.proc.exited]) : pause);
  }
}

async function probe(
  url: string,
  headers: Record<string, string> | undefined,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, {
      headers,
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    await res.arrayBuffer().catch(() => undefined);
    return res.ok;
  } catch {
    signal?.throwIfAborted();
    return false; // not listening yet, or slow to answer
  }
}

/** GET `url`'s path through `agent`; true on 2xx. */
function probeThrough(
  agent: http.Agent,
  url: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const { pathname, search } = new URL(url);
  return new Promise<boolean>((resolveProbe) => {
    const req = http.get({ agent, host: 'localhost', path: `${pathname}${search}`, signal }, (res) => {
      res.resume();
      res.on('end', () => resolveProbe((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300));
      res.on('error', () => resolveProbe(false));
    });
    req.setTimeout(timeoutMs, () => req.destroy());
    req.on('error', () => resolveProbe(false));
  }).then((ok) => {
    signal?.throwIfAborted();
    return ok;
  });
}

/** Handle of a server ptb started in its own process group on 127.0.0.1 (vllm, hf). */
export function groupEngineHandle(
  proc: GroupProcess,
  port: number,
  apiKey: string,
  modelName: string,
  graceMs: number,
): EngineHandle {
  let stopping: Promise<void> | null = null;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    apiKey,
    modelName, // served under the path it was started with, as vLLM does
    pid: proc.pid,
    stop: () => {
      stopping ??= killGroup(proc, { graceMs });
      return stopping;
    },
  };
}

/** Kernel start time of a process (clock ticks since boot): with the pid it names one process for good. */
export function processStartTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22, counted after the parenthesised command name (which may contain spaces).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return null;
  }
}

/**
 * Kill a server group left behind by a ptb process that was killed (SIGKILL leaves no chance to
 * stop it). The start time guards against a recycled pid: only that very process group is hit.
 */
export function killStaleGroup(pgid: number, startTicks: number): boolean {
  if (processStartTicks(pgid) !== startTicks) return false;
  try {
    process.kill(-pgid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

export interface LaunchOptions {
  /** For messages: "the vLLM server". */
  what: string;
  command: string;
  /** Arguments for a given port. */
  argsFor(port: number): string[];
  env: NodeJS.ProcessEnv;
  logFile: string;
  apiKey: string;
  modelName: string;
  healthTimeoutMs: number;
  healthIntervalMs: number;
  stopGraceMs: number;
  /** Called with each spawned server's pid before the health wait (see EngineStartOptions.onSpawn). */
  onSpawn?: (pid: number) => void;
  signal?: AbortSignal;
}

/**
 * Start an OpenAI-compatible server in its own process group on a free loopback port and wait
 * until it is healthy. A port found free can be taken before the server binds it; one more try on a
 * fresh port covers that. Anything else that stops the start kills what was started.
 */
export async function launchServerOnFreePort(o: LaunchOptions): Promise<EngineHandle> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort('127.0.0.1');
    const proc = await spawnInGroup(o.command, o.argsFor(port), { logFile: o.logFile, env: o.env });
    try {
      o.onSpawn?.(proc.pid);
      await waitForHealth({
        url: `http://127.0.0.1:${port}/health`,
        what: o.what,
        timeoutMs: o.healthTimeoutMs,
        intervalMs: o.healthIntervalMs,
        proc,
        signal: o.signal,
      });
    } catch (err) {
      await killGroup(proc, { graceMs: 5_000 });
      const portClash = err instanceof ServerStartError && /address already in use/i.test(err.logTail);
      if (portClash && attempt < 2) continue;
      throw err;
    }
    return groupEngineHandle(proc, port, o.apiKey, o.modelName, o.stopGraceMs);
  }
}
