import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import { UserError } from '../core/errors.ts';
import { homeLayout, repoRoot } from '../core/paths.ts';
import { PipSummary } from './pipSummary.ts';

/**
 * The Python interpreter for the parts of ptb that must be Python (the hf engine's server, the tiny
 * model builder). By default a virtual environment under `$PTB_HOME/venv`, made once from
 * `python/requirements.txt` and remade when the requirements or PTB_PIP_ARGS change;
 * `PTB_PYTHON=/path/to/python` uses an existing interpreter instead (a GPU box whose system
 * Python already has CUDA torch).
 */

export const requirementsPath = join(repoRoot, 'python', 'requirements.txt');

export interface PythonEnvOptions {
  /** PTB_HOME root; the venv lives in `<home>/venv`. */
  home: string;
  /** Reads PTB_PYTHON and PTB_PIP_ARGS; also the environment pip runs in. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Receives one line per step and a summary of pip's output (the full output goes to
   * `<home>/logs/python-env-<time>.log`). Default: a spinner on a TTY, plain lines otherwise (stderr).
   */
  onProgress?: (line: string) => void;
  /** Requirements file; default python/requirements.txt. */
  requirements?: string;
  /** Modules that must import after the install; default torch, transformers, tokenizers, safetensors. */
  importCheck?: string[];
  /** Give up waiting for another process that is building the same venv after this long. Default 30 min. */
  lockTimeoutMs?: number;
  signal?: AbortSignal;
  /** Which environment: the engine's (default) or HumanEval's code-execution one (see CODE_ENV). */
  kind?: PythonEnvKind;
}

/** What differs between ptb's Python environments. */
export interface PythonEnvKind {
  /** Folder under PTB_HOME. */
  dirName: string;
  /** Variable naming an existing interpreter to use instead. */
  configuredVar: string;
  /** Interpreter the venv is made from. */
  basePython: string;
  /** Variable with extra pip arguments (null: none; the environment's PIP_* variables still apply). */
  pipArgsVar: string | null;
  requirements: string;
  importCheck: string[];
}

/** The engine's environment: torch and transformers. */
export const ENGINE_ENV: PythonEnvKind = {
  dirName: 'venv',
  configuredVar: 'PTB_PYTHON',
  basePython: 'python3',
  pipArgsVar: 'PTB_PIP_ARGS',
  requirements: requirementsPath,
  importCheck: ['torch', 'transformers', 'tokenizers', 'safetensors'],
};

/**
 * HumanEval's execution environment: the packages of the reference's eval image that an answer can
 * import (python/requirements-code-exec.txt, docs/fidelity.md), made from the system interpreter
 * (/usr/bin/python3, whose prefix the code sandbox already mounts) so the sandbox needs only the
 * venv folder besides.
 */
export const CODE_ENV: PythonEnvKind = {
  dirName: 'venv-code',
  configuredVar: 'PTB_CODE_PYTHON',
  basePython: existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3',
  pipArgsVar: null,
  requirements: join(repoRoot, 'python', 'requirements-code-exec.txt'),
  importCheck: ['numpy', 'pandas', 'scipy', 'sklearn', 'matplotlib', 'sympy'],
};

interface EnvStamp {
  key: string;
  python: string;
  pipArgs: string[];
  createdAt: string;
  seconds: number;
}

const STAMP_FILE = 'ptb-env.json';

/** Path of a ready interpreter with torch and transformers; builds the venv on first use. */
export async function ensurePythonEnv(opts: PythonEnvOptions): Promise<string> {
  const env = opts.env ?? process.env;
  const kind = opts.kind ?? ENGINE_ENV;
  const configured = env[kind.configuredVar]?.trim();
  if (configured) {
    if (!isExecutable(configured)) {
      throw new UserError(
        `${kind.configuredVar} points at ${configured}, which is not an executable file`,
        `set ${kind.configuredVar} to a python with the packages of ${kind.requirements} installed, or unset it to let ptb make a venv`,
      );
    }
    return configured;
  }
  const venv = kind === ENGINE_ENV ? homeLayout(opts.home).venv : join(opts.home, kind.dirName);
  const python = join(venv, 'bin', 'python');
  const requirements = opts.requirements ?? kind.requirements;
  const pipArgs = kind.pipArgsVar ? splitShellWords(env[kind.pipArgsVar] ?? '') : [];
  const key = createHash('sha256')
    .update(readFileSync(requirements))
    .update('\0')
    .update(JSON.stringify(pipArgs))
    .digest('hex');
  if (stampMatches(venv, key) && isExecutable(python)) return python;

  const report = opts.onProgress ? { line: opts.onProgress, done: () => {} } : terminalProgress();
  try {
    return await withDirLock(
      `${venv}.lock`,
      async () => {
        if (stampMatches(venv, key) && isExecutable(python)) return python; // built while we waited
        const importCheck = opts.importCheck ?? kind.importCheck;
        await buildVenv({
          basePython: kind.basePython,
          home: opts.home,
          venv,
          python,
          requirements,
          pipArgs,
          key,
          env,
          importCheck,
          report: report.line,
          signal: opts.signal,
        });
        return python;
      },
      {
        timeoutMs: opts.lockTimeoutMs ?? 30 * 60_000,
        onWait: () => report.line(`waiting for another ptb process to finish ${venv}`),
      },
    );
  } finally {
    report.done();
  }
}

async function buildVenv(o: {
  basePython: string;
  home: string;
  venv: string;
  python: string;
  requirements: string;
  pipArgs: string[];
  key: string;
  env: NodeJS.ProcessEnv;
  importCheck: string[];
  report: (line: string) => void;
  signal?: AbortSignal;
}): Promise<void> {
  const started = Date.now();
  const baseVersion = await checkSystemPython(o.env, o.basePython);
  const logs = join(o.home, 'logs');
  mkdirSync(logs, { recursive: true });
  const logPath = join(logs, `python-env-${new Date(started).toISOString().replace(/[:.]/g, '-')}.log`);
  const log = openSync(logPath, 'a');
  const toLog = (line: string) => writeSync(log, `${line}\n`);
  try {
    if (!isExecutable(o.python)) {
      rmSync(o.venv, { recursive: true, force: true }); // a half-made venv from an interrupted run
      mkdirSync(dirname(o.venv), { recursive: true });
      o.report(`creating a Python ${baseVersion} virtual environment in ${o.venv}`);
      const made = await runLines(o.basePython, ['-m', 'venv', o.venv], {
        env: o.env,
        onLine: toLog,
        signal: o.signal,
      });
      if (made.code !== 0) {
        throw new UserError(
          `python3 -m venv ${o.venv} failed:\n${made.tail}`,
          'install the venv module (sudo apt-get install -y python3-venv), or set PTB_PYTHON to an interpreter with torch and transformers',
        );
      }
    }
    o.report(
      `installing ${o.requirements}${o.pipArgs.length ? ` (extra pip args: ${o.pipArgs.join(' ')})` : ''}`,
    );
    const summary = new PipSummary(logPath);
    const pip = await runLines(
      o.python,
      ['-m', 'pip', 'install', '--progress-bar', 'off', '-r', o.requirements, ...o.pipArgs],
      {
        env: { ...o.env, PIP_DISABLE_PIP_VERSION_CHECK: '1', PYTHONUNBUFFERED: '1' },
        onLine: (line) => {
          toLog(line);
          const shown = summary.line(line);
          if (shown) o.report(shown);
        },
        signal: o.signal,
      },
    );
    if (pip.code !== 0) {
      throw new UserError(
        `pip could not install the Python requirements (exit ${pip.code}); its last lines:\n${lastLines(pip.tail, 15)}`,
        `the full pip output is in ${logPath}; check network access to the package index; PTB_PIP_ARGS passes extra pip arguments (an --index-url, a torch build such as torch==2.13.0+cpu)`,
      );
    }
  } finally {
    closeSync(log);
  }
  const check =
    o.importCheck.length === 0
      ? { code: 0, tail: '' }
      : await runLines(o.python, ['-c', `import ${o.importCheck.join(', ')}`], {
          env: o.env,
          onLine: () => {},
          signal: o.signal,
        });
  if (check.code !== 0) {
    throw new UserError(
      `the new Python environment cannot import its packages:\n${check.tail}`,
      `remove ${o.venv} and try again`,
    );
  }
  const seconds = Math.round((Date.now() - started) / 100) / 10;
  const stamp: EnvStamp = {
    key: o.key,
    python: baseVersion,
    pipArgs: o.pipArgs,
    createdAt: new Date().toISOString(),
    seconds,
  };
  writeJsonAtomic(join(o.venv, STAMP_FILE), stamp);
  o.report(`Python environment ready in ${seconds} s`);
}

/** Version of `python3` on PATH; a UserError that names the apt packages when it or its venv module is missing. */
async function checkSystemPython(env: NodeJS.ProcessEnv, python = 'python3'): Promise<string> {
  const hint =
    'install Python 3 with its venv module: sudo apt-get install -y python3 python3-venv (or set PTB_PYTHON to an interpreter with torch and transformers)';
  let probe: { code: number | null; tail: string };
  try {
    probe = await runLines(python, ['-c', 'import sys, venv, ensurepip; print(sys.version.split()[0])'], {
      env,
      onLine: () => {},
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new UserError('python3 is not installed', hint);
    throw err;
  }
  if (probe.code !== 0) throw new UserError(`python3 cannot make virtual environments:\n${probe.tail}`, hint);
  const version = probe.tail.trim().split('\n').pop() ?? '';
  const [major, minor] = version.split('.').map(Number);
  if (major !== 3 || (minor ?? 0) < 9)
    throw new UserError(`python3 is ${version}; ptb needs Python 3.9 or newer`, hint);
  return version;
}

function lastLines(text: string, n: number): string {
  return text.split('\n').slice(-n).join('\n');
}

function stampMatches(venv: string, key: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(venv, STAMP_FILE), 'utf8')) as EnvStamp).key === key;
  } catch {
    return false;
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Split PTB_PIP_ARGS like a shell would for plain words and quoted strings (no expansion). */
export function splitShellWords(text: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const m of text.matchAll(re))
    words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3] ?? ''));
  return words;
}

interface RunResult {
  code: number | null;
  /** The last 40 lines of stdout and stderr together. */
  tail: string;
}

/** Run a command, handing each output line (stdout and stderr) to onLine. Rejects only when it cannot start. */
export async function runLines(
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; onLine: (line: string) => void; signal?: AbortSignal },
): Promise<RunResult> {
  const child = spawn(command, args, {
    env: opts.env,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    signal: opts.signal,
  });
  const tail: string[] = [];
  const take = (line: string) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
    opts.onLine(line);
  };
  createInterface({ input: child.stdout }).on('line', take);
  createInterface({ input: child.stderr }).on('line', take);
  return await new Promise<RunResult>((resolveRun, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolveRun({ code, tail: tail.join('\n') }));
  });
}

/** Progress on stderr: a spinner with the latest line on a TTY, one plain line per step otherwise. */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): {
  line: (text: string) => void;
  done: () => void;
} {
  if (!stream.isTTY) return { line: (text) => stream.write(`${text}\n`), done: () => {} };
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let frame = 0;
  let current = '';
  const draw = () => {
    const width = Math.max(20, (stream.columns ?? 80) - 3);
    const text = current.length > width ? `${current.slice(0, width - 1)}…` : current;
    stream.write(`\r\x1b[K${frames[frame++ % frames.length]} ${text}`);
  };
  const timer = setInterval(draw, 100);
  timer.unref();
  return {
    line: (text) => {
      current = text.trim();
      draw();
    },
    done: () => {
      clearInterval(timer);
      stream.write(`\r\x1b[K${current}\n`);
    },
  };
}

interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

/**
 * Run fn while holding a lock directory (mkdir is atomic). A lock whose owner process is gone
 * (same host, pid not running) is taken over; otherwise wait up to timeoutMs.
 */
export async function withDirLock<T>(
  lockDir: string,
  fn: () => Promise<T>,
  opts: { timeoutMs?: number; onWait?: () => void } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
  const ownerFile = join(lockDir, 'owner.json');
  let warned = false;
  mkdirSync(dirname(lockDir), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lockDir);
      const owner: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
      writeFileSync(ownerFile, JSON.stringify(owner));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (lockIsStale(ownerFile)) {
      rmSync(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new UserError(
        `timed out waiting for the lock ${lockDir}`,
        `if no other ptb process is running, remove ${lockDir}`,
      );
    }
    if (!warned) {
      opts.onWait?.();
      warned = true;
    }
    await sleep(250);
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

function lockIsStale(ownerFile: string): boolean {
  let owner: LockOwner;
  try {
    owner = JSON.parse(readFileSync(ownerFile, 'utf8')) as LockOwner;
  } catch {
    // Owner file not written yet (a racing creator) or unreadable: stale only if it stays so for a while.
    try {
      return Date.now() - statSync(dirname(ownerFile)).mtimeMs > 10_000;
    } catch {
      return !existsSync(dirname(ownerFile));
    }
  }
  if (owner.host !== hostname()) return false;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
