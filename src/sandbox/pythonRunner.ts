/**
 * Runs untrusted Python programs (HumanEval verification programs) and decides whether each one ran
 * to completion.
 *
 * How the verdict is established
 * ------------------------------
 * A program counts as completed only if the interpreter exited with status 0 AND the harness received
 * a per-run secret marker that is released only when the program's last line has finished. Exit status
 * alone proves nothing: `sys.exit(0)`, `raise SystemExit`, `os._exit(0)` or an atexit handler end the
 * interpreter with status 0 before any test has run.
 *
 * 1. For each run ptb draws a fresh random marker (32 bytes, hex) that lives only in ptb's memory
 *    until the run starts. The program never sees it: it is not in the program text, argv, the
 *    environment or any file.
 * 2. The interpreter runs a harness-owned wrapper (`-c`, isolated mode). Before any program code runs
 *    the wrapper reads stdin to EOF: one line with the marker, then the program. It compiles the
 *    program, gives it a fresh `__main__` module, and installs an audit hook (PEP 578 hooks cannot be
 *    removed). The marker is parked on the value stack of a suspended generator (the "vault"), not in
 *    any variable, attribute, closure or global, so no frame's `f_locals` can show it. The hook holds
 *    only a reference to the vault and refuses the ways to look inside it: `gc.get_objects`,
 *    `gc.get_referents`/`get_referrers`, and the vault's `gi_frame`.
 * 3. The wrapper runs `exec(program, namespace)`; the next line is `sys.audit("ptb.finish")`. That line
 *    runs only if exec returned normally, i.e. every statement of the program, the tests and the final
 *    `check(...)` included, finished without an exception. On that event the hook checks that it was
 *    raised from the wrapper's own frame object at exactly that line, flushes stdout/stderr, resumes
 *    the vault, and exits the interpreter with status 0. The vault checks again, from inside, that it
 *    was resumed by the hook's code on behalf of the wrapper frame at the finish line; only then does it
 *    write the marker to fd 3, a pipe the program was not told about. Anything else it writes nothing
 *    and is spent, so a later genuine finish cannot produce the marker either.
 * 4. ptb compares what arrived on fd 3 byte for byte with the marker and the exit status with 0.
 *
 * Why the usual exploits score as failures:
 * - `sys.exit(0)`, `raise SystemExit`, `quit()`, `os._exit(0)`, `os.abort()`, `os.kill(os.getpid(), 9)`,
 *   signals and alarms: the wrapper never reaches the finish line, so no marker.
 * - atexit handlers, finalisers, threads, signal handlers that call `sys.audit("ptb.finish")` or the
 *   hook's code rebuilt from a frame: raised from the wrong frame or line, refused; the vault would
 *   refuse them as well.
 * - closing or redirecting stdout/stderr, printing fake results: the verdict never reads stdout.
 * - writing to fd 3: the program cannot know the marker; extra bytes make the comparison fail.
 * - killing the parent: inside the sandbox the parent is bwrap's reaper, pid 1 of the sandbox's pid
 *   namespace, which the kernel shields from SIGKILL sent inside it; were it to die, the namespace and
 *   the program would die with it. Either way no marker.
 * - tracing (`sys.settrace`/`setprofile`, `sys.monitoring`) could jump over failing assertions, so it is
 *   refused (`settrace(None)` stays a harmless no-op so doctest still works), and so is
 *   `sys.addaudithook`.
 * - reading the marker out of memory: ctypes, cffi and the C-API test modules are refused by the hook
 *   and their files are hidden in the sandbox; native modules load only from the interpreter's own
 *   directories; hand-made code objects are refused (`types.CodeType`, `code.replace`, and
 *   `marshal.loads` of anything but the exact bytes of one of the interpreter's own .pyc files), since
 *   crafted bytecode is the classic way to read arbitrary memory from pure Python. Other processes
 *   cannot help: there is no /proc in the sandbox and a seccomp filter refuses ptrace and
 *   process_vm_readv.
 * Residual risk, stated plainly: an unknown CPython memory-safety bug could in principle expose the
 * marker; that needs an exploit written against this wrapper. What the verdict cannot see at all are
 * tests an answer satisfies without being right (an object whose `__eq__` always returns True,
 * patched builtins, a string literal left open to swallow the tests); those are equally open in the
 * reference harness.
 *
 * The sandbox (SandboxedPythonRunner): bubblewrap with every namespace unshared, no network, only /usr
 * read-only (no /etc, no /proc, no home, no host /tmp), a private tmpfs as the throwaway working
 * directory, uid 1000, all capabilities dropped, a per-run cgroup for memory, processes and CPU, an
 * address-space rlimit set by the wrapper, and a wall-clock limit that kills the whole tree.
 * UnsandboxedPythonRunner uses the same wrapper and verdict as a plain subprocess; it exists only to
 * measure what the sandbox costs and must not run untrusted code.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { CodeRunner, CodeRunResult } from '../benchmarks/types.ts';
import { UserError } from '../core/errors.ts';
import { assertBwrapAvailable, type EnforcedLimits, runInSandbox } from './bwrap.ts';
import { CappedSink, drainInto } from './capture.ts';
import {
  DENIED_NATIVE_MODULES,
  interpreterStarted,
  provesCompletion,
  type WrapperSettings,
  wrapperArgv,
  wrapperStdin,
} from './pythonWrapper.ts';
import { INSPECTION_SYSCALLS } from './seccomp.ts';

/** A run's result plus what the sandbox really enforced. */
export interface SandboxedCodeRunResult extends CodeRunResult {
  oomKilled: boolean;
  enforced: EnforcedLimits;
  warnings: string[];
}

export interface PythonRunnerOptions {
  /** Interpreter path. Default: /usr/bin/python3 when present, else python3 on PATH. */
  interpreter?: string;
  /** Programs run at once (default 2 × cores). Extra calls wait their turn; waiting is not timed. */
  concurrency?: number;
  /** Cap per captured stream (default 1 MiB). */
  maxOutputBytes?: number;
}

export interface SandboxedPythonRunnerOptions extends PythonRunnerOptions {
  /** cgroup memory limit of the whole run (default 2 GiB). */
  memoryBytes?: number;
  /** RLIMIT_AS the wrapper sets on the interpreter (default = memoryBytes; null = none). */
  addressSpaceBytes?: number | null;
  /** Most processes and threads at once (default 128). */
  pids?: number;
  /** CPU quota in cores (default 1). */
  cpus?: number;
  /** Size of the throwaway working tmpfs (default 64 MiB). */
  workSizeBytes?: number;
}

const MiB = 1 << 20;
const DEFAULT_MEMORY = 2048 * MiB;
const SANDBOX_WORKDIR = '/sandbox';

/** A counting semaphore: at most `limit` holders at once, FIFO. */
class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

function defaultInterpreter(): string {
  try {
    accessSync('/usr/bin/python3', constants.X_OK);
    return '/usr/bin/python3';
  } catch {
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
      if (!dir) continue;
      try {
        accessSync(join(dir, 'python3'), constants.X_OK);
        return join(dir, 'python3');
      } catch {
        // keep looking
      }
    }
  }
  throw new UserError('No python3 interpreter found.', 'install Python 3 (apt-get install python3)');
}

interface InterpreterFacts {
  version: [number, number, number];
  prefixes: string[];
  path: string[];
}

const PROBE_SOURCE =
  'import json, sys; print(json.dumps({"version": list(sys.version_info[:3]), ' +
  '"prefixes": sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}), ' +
  '"path": [p for p in sys.path if p]}))';

function probeInterpreter(interpreter: string): InterpreterFacts {
  const probe = spawnSync(interpreter, ['-I', '-c', PROBE_SOURCE], { encoding: 'utf8', timeout: 30_000 });
  if (probe.status !== 0) {
    throw new UserError(
      `Cannot run the Python interpreter ${interpreter}: ${(probe.stderr || String(probe.error)).trim()}`,
      'pass a working python3 (version 3.10 or newer)',
    );
  }
  const facts = JSON.parse(probe.stdout) as InterpreterFacts;
  const [major, minor] = facts.version;
  // The wrapper relies on 3.10+ semantics: trace jumps only from 'line' events.
  if (major !== 3 || minor < 10) {
    throw new UserError(
      `Python ${facts.version.join('.')} at ${interpreter} is too old for the code runner.`,
      'use Python 3.10 or newer',
    );
  }
  return facts;
}

function withRealPaths(paths: readonly string[]): string[] {
  const all = new Set<string>();
  for (const path of paths) {
    all.add(path);
    try {
      all.add(realpathSync(path));
    } catch {
      // keep the path as given
    }
  }
  return [...all];
}

/** Files of denied native modules on the interpreter's module path, to hide inside the sandbox. */
function deniedModuleFiles(searchPath: readonly string[]): string[] {
  const denied = new Set(DENIED_NATIVE_MODULES);
  const files: string[] = [];
  for (const dir of searchPath) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (name.endsWith('.so') && denied.has(name.split('.')[0]!)) files.push(join(dir, name));
    }
  }
  return files;
}

function newMarker(): string {
  return randomBytes(32).toString('hex');
}

interface PreparedInterpreter {
  interpreter: string;
  settings: WrapperSettings;
  readOnlyBinds: string[];
  maskedFiles: string[];
}

function outsideUsr(paths: readonly string[]): string[] {
  return paths.filter((path) => path !== '/usr' && !path.startsWith('/usr/'));
}

/**
 * The directories a sandbox must bind read-only for this interpreter to run: its prefixes (venv and
 * base installation, symlinks resolved) outside /usr, which every sandbox already has.
 */
export function interpreterBinds(interpreter: string): string[] {
  return outsideUsr(withRealPaths(probeInterpreter(interpreter).prefixes));
}

function prepareInterpreter(interpreter: string, addressSpaceBytes: number | null): PreparedInterpreter {
  const facts = probeInterpreter(interpreter);
  const prefixes = withRealPaths(facts.prefixes);
  return {
    interpreter,
    settings: { addressSpaceBytes, nativeRoots: prefixes },
    readOnlyBinds: outsideUsr(prefixes),
    maskedFiles: deniedModuleFiles(withRealPaths(facts.path)),
  };
}

/**
 * Runs each program in its own bubblewrap sandbox (see the top of this file). The first call checks
 * bwrap and the interpreter and runs one trivial program; if that fails it throws a UserError.
 */
export class SandboxedPythonRunner implements CodeRunner {
  private readonly options: SandboxedPythonRunnerOptions;
  private readonly semaphore: Semaphore;
  private ready: Promise<PreparedInterpreter> | undefined;

  constructor(options: SandboxedPythonRunnerOptions = {}) {
    this.options = options;
    this.semaphore = new Semaphore(options.concurrency ?? 2 * availableParallelism());
  }

  private prepare(): Promise<PreparedInterpreter> {
    this.ready ??= (async () => {
      assertBwrapAvailable();
      const memoryBytes = this.options.memoryBytes ?? DEFAULT_MEMORY;
      const addressSpace =
        this.options.addressSpaceBytes === undefined ? memoryBytes : this.options.addressSpaceBytes;
      const prepared = prepareInterpreter(this.options.interpreter ?? defaultInterpreter(), addressSpace);
      const check = await this.execute(prepared, 'assert 1 + 1 == 2', 30_000, undefined);
      if (!check.completed) {
        throw new UserError(
          `The Python sandbox cannot run a trivial program with ${prepared.interpreter}: ${check.stderr.trim() || `exit ${check.exitCode}`}`,
          'use an interpreter under /usr (apt-get install python3) or one readable by uid 1000',
        );
      }
      return prepared;
    })();
    this.ready.catch(() => {
      this.ready = undefined;
    });
    return this.ready;
  }

  async runPython(
    program: string,
    opts: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<SandboxedCodeRunResult> {
    const prepared = await this.prepare();
    return this.semaphore.run(() => this.execute(prepared, program, opts.timeoutMs, opts.signal));
  }

  private async execute(
    prepared: PreparedInterpreter,
    program: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<SandboxedCodeRunResult> {
    const marker = newMarker();
    const result = await runInSandbox({
      argv: wrapperArgv(prepared.interpreter, prepared.settings),
      system: 'usr',
      proc: false,
      readOnlyBinds: prepared.readOnlyBinds,
      maskedFiles: prepared.maskedFiles,
      tmpfs: [{ path: SANDBOX_WORKDIR, sizeBytes: this.options.workSizeBytes ?? 64 * MiB }],
      tmpSizeBytes: this.options.workSizeBytes ?? 64 * MiB,
      cwd: SANDBOX_WORKDIR,
      env: { HOME: SANDBOX_WORKDIR, LANG: 'C.UTF-8', PATH: '/usr/bin:/bin' },
      network: 'none',
      timeoutMs,
      signal,
      limits: {
        memoryBytes: this.options.memoryBytes ?? DEFAULT_MEMORY,
        pids: this.options.pids ?? 128,
        cpus: this.options.cpus ?? 1,
      },
      denySyscalls: INSPECTION_SYSCALLS,
      stdin: wrapperStdin(marker, program),
      extraOutputFds: 1,
      maxOutputBytes: this.options.maxOutputBytes,
    });
    const channel = result.extraOutputs[0] ?? Buffer.alloc(0);
    if (!interpreterStarted(channel) && result.startFailed) {
      throw new Error(`the Python sandbox did not start: ${result.stderr.toString('utf8').trim()}`);
    }
    return {
      completed: !result.timedOut && provesCompletion(result.exitCode, channel, marker),
      exitCode: result.exitCode,
      timedOut: result.timedOut,
      stdout: result.stdout.toString('utf8'),
      stderr: result.stderr.toString('utf8'),
      durationMs: result.durationMs,
      oomKilled: result.oomKilled,
      enforced: result.enforced,
      warnings: result.warnings,
    };
  }
}

/**
 * The same wrapper and verdict as a plain subprocess in a temporary directory, without any isolation.
 * For measuring the sandbox's overhead only: never give it untrusted code.
 */
export class UnsandboxedPythonRunner implements CodeRunner {
  private readonly options: PythonRunnerOptions;
  private readonly semaphore: Semaphore;
  private prepared: PreparedInterpreter | undefined;

  constructor(options: PythonRunnerOptions = {}) {
    this.options = options;
    this.semaphore = new Semaphore(options.concurrency ?? 2 * availableParallelism());
  }

  async runPython(
    program: string,
    opts: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<CodeRunResult> {
    this.prepared ??= prepareInterpreter(this.options.interpreter ?? defaultInterpreter(), null);
    const prepared = this.prepared;
    return this.semaphore.run(() => this.execute(prepared, program, opts.timeoutMs, opts.signal));
  }

  private async execute(
    prepared: PreparedInterpreter,
    program: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<CodeRunResult> {
    const marker = newMarker();
    const workdir = mkdtempSync(join(tmpdir(), 'ptb-python-'));
    const started = performance.now();
    const argv = wrapperArgv(prepared.interpreter, prepared.settings);
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: workdir,
      env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', HOME: workdir },
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      detached: true, // own process group, so a timeout kills its children too
    });
    const cap = this.options.maxOutputBytes ?? MiB;
    const stdout = new CappedSink(cap);
    const stderr = new CappedSink(cap);
    const channel = new CappedSink(cap);
    let timedOut = false;
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    signal?.addEventListener('abort', killGroup, { once: true });
    const drained = Promise.all([
      drainInto(child.stdout, stdout),
      drainInto(child.stderr, stderr),
      drainInto(child.stdio[3] as Readable | null, channel),
    ]);
    child.stdin?.on('error', () => {
      // the program may exit before reading its input
    });
    child.stdin?.end(wrapperStdin(marker, program));
    const exit = await new Promise<{ code: number | null; error?: Error }>((resolve) => {
      child.once('error', (error) => resolve({ code: null, error }));
      child.once('exit', (code) => resolve({ code }));
    });
    killGroup();
    await drained;
    clearTimeout(timer);
    signal?.removeEventListener('abort', killGroup);
    rmSync(workdir, { recursive: true, force: true });
    if (exit.error) throw exit.error;
    return {
      completed: !timedOut && provesCompletion(exit.code, channel.bytes(), marker),
      exitCode: exit.code,
      timedOut,
      stdout: stdout.bytes().toString('utf8'),
      stderr: stderr.bytes().toString('utf8'),
      durationMs: performance.now() - started,
    };
  }
}
