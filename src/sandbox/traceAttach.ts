/**
 * The file-open ledger for a container (podman), recorded from the host. ptb does not start the
 * container's processes itself (podman's runtime does), so strace cannot launch them; instead the
 * container's command waits at a gate — a named pipe bound read-only into the container — until
 * strace, run by ptb on the host, has attached to every process the container holds. Then ptb opens
 * the gate and the command runs traced from its first instruction; strace's `-f` follows every
 * process it starts.
 *
 * strace installs its seccomp filter only in a command it launches, so here every system call of the
 * container's processes stops in the tracer: costlier than bwrap's filtered tracing for programs that
 * make many system calls (docs/audit.md, "file-open ledger").
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { straceOptions } from '../ledgers/straceParser.ts';
import type { ContainerMount } from './container.ts';

/** Where the gate's directory is bound inside the container. */
export const GATE_TARGET = '/.ptb-file-opens-gate';
const GATE_PIPE = 'open';
/** Marks the waiting shell in its command line, so that the harness knows the gate is reached. */
const GATE_MARK = 'ptb-file-opens-gate';

export interface FileOpenGate {
  /** The bind that carries the gate's pipe into the container. */
  mount: ContainerMount;
  /** The command, held at the gate until `open()`. */
  wrap(argv: readonly string[]): string[];
  /** Whether a process of the container waits at the gate. */
  reached(rootPid: number): boolean;
  /** Let the command run (gives up after `timeoutMs`; false when nobody waited). */
  open(timeoutMs?: number): Promise<boolean>;
  dispose(): void;
}

/** A fresh gate: a named pipe only ptb's user may write, that the container's user may read. */
export function makeFileOpenGate(): FileOpenGate {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-gate-'));
  chmodSync(dir, 0o755);
  const pipe = join(dir, GATE_PIPE);
  const made = spawnMkfifo(pipe);
  if (!made.ok) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot make the file-open gate: ${made.detail}`);
  }
  return {
    mount: { source: dir, target: GATE_TARGET, readOnly: true },
    wrap: (argv) => [
      '/bin/sh',
      '-c',
      `read -r go < ${GATE_TARGET}/${GATE_PIPE} && exec "$@"; echo "ptb: the file-open gate did not open" >&2; exit 125`,
      GATE_MARK,
      ...argv,
    ],
    reached: (rootPid) => processTree(rootPid).some((pid) => commandLine(pid).includes(`\0${GATE_MARK}\0`)),
    open: (timeoutMs = 10_000) => openPipe(pipe, timeoutMs),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** mkfifo(3) is not in node's fs; the coreutils program is everywhere ptb runs. */
function spawnMkfifo(path: string): { ok: boolean; detail: string } {
  const done = spawnSync('mkfifo', ['-m', '644', path], { encoding: 'utf8' });
  return done.status === 0
    ? { ok: true, detail: '' }
    : { ok: false, detail: (done.stderr || String(done.error)).trim() };
}

async function openPipe(pipe: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      // Non-blocking: succeeds only while a reader (the waiting shell) has the pipe open.
      const fd = openSync(pipe, constants.O_WRONLY | constants.O_NONBLOCK);
      writeSync(fd, 'go\n');
      closeSync(fd);
      return true;
    } catch {
      if (Date.now() > deadline) return false;
      await sleep(20);
    }
  }
}

function commandLine(pid: number): string {
  try {
    return `\0${readFileSync(`/proc/${pid}/cmdline`, 'latin1')}`;
  } catch {
    return '';
  }
}

/**
 * `pid` and every live descendant of it (host pids), from the kernel's child lists where it keeps
 * them, else (or with `how: 'scan'`) from every process's parent.
 */
export function processTree(rootPid: number, how: 'auto' | 'scan' = 'auto'): number[] {
  const childrenOf = (how === 'auto' ? childLists() : null) ?? scannedChildren();
  const out: number[] = [];
  const stack = [rootPid];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...childrenOf(pid));
  }
  return out;
}

/** The kernel's per-thread child lists (CONFIG_PROC_CHILDREN): reads only the tree itself. */
function childLists(): ((pid: number) => number[]) | null {
  try {
    readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'latin1');
  } catch {
    return null;
  }
  return (pid) => {
    const out: number[] = [];
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      return out; // exited meanwhile
    }
    for (const tid of tasks) {
      try {
        const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').trim();
        if (text) out.push(...text.split(/\s+/).map(Number));
      } catch {
        // exited meanwhile
      }
    }
    return out;
  };
}

/** Every process's parent, from /proc/PID/stat (kernels without child lists). */
function scannedChildren(): (pid: number) => number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // The command name (in parentheses) may hold spaces: the parent pid is the 2nd field after it.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  return (pid) => children.get(pid) ?? [];
}

function tracerOf(pid: number, tid: string): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'latin1');
    return Number(/^TracerPid:\s*(\d+)/m.exec(status)?.[1] ?? Number.NaN);
  } catch {
    return null; // gone
  }
}

/** Whether every thread of every listed process is traced by `tracer` (gone ones count as done). */
function allTraced(pids: readonly number[], tracer: number): boolean {
  for (const pid of pids) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      const by = tracerOf(pid, tid);
      if (by !== null && by !== tracer) return false;
    }
  }
  return true;
}

export type AttachResult = { ok: true; tracer: ChildProcess } | { ok: false; detail: string };

/**
 * Attach strace (file-open options, output to `outputPath`) to the process tree under `rootPid` and
 * wait until every thread of it is traced.
 */
export async function attachFileOpenTracer(
  strace: string,
  rootPid: number,
  outputPath: string,
  timeoutMs = 15_000,
): Promise<AttachResult> {
  const pids = processTree(rootPid);
  const tracer = spawn(
    strace,
    [...straceOptions(outputPath, 'attach'), ...pids.flatMap((pid) => ['-p', String(pid)])],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  let failed: Error | null = null;
  tracer.once('error', (err) => {
    failed = err;
  });
  tracer.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < 4096) stderr += chunk.toString('utf8');
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (failed) return { ok: false, detail: `strace did not start: ${(failed as Error).message}` };
    if (tracer.exitCode !== null || tracer.signalCode !== null)
      return {
        ok: false,
        detail: `strace exited (${tracer.exitCode ?? tracer.signalCode}): ${stderr.trim().slice(0, 300)}`,
      };
    if (tracer.pid !== undefined && allTraced(pids, tracer.pid)) return { ok: true, tracer };
    await sleep(20);
  }
  tracer.kill('SIGKILL');
  return {
    ok: false,
    detail: `strace did not attach within ${timeoutMs / 1000} s: ${stderr.trim().slice(0, 300)}`,
  };
}

/**
 * Give a pipe's reader its end of input when no tracer ever wrote to it (the ledger's watcher waits
 * for a writer): open it for writing and close it. Gives up quietly when nobody reads.
 */
export async function releasePipeReader(pipe: string, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      closeSync(openSync(pipe, constants.O_WRONLY | constants.O_NONBLOCK));
      return;
    } catch {
      await sleep(20);
    }
  }
}
