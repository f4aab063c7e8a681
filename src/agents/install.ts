/**
 * Pinned agent CLIs, installed from npm at run time into `PTB_HOME/agents/<cli>-<version>/` (one
 * install per CLI version, shared by all variants of that CLI). Installing is idempotent: a stamp file
 * marks a finished install, a lock keeps two trials from installing the same CLI at once, and npm writes
 * into a scratch directory that is renamed into place only when it succeeded.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../core/errors.ts';
import type { HomeLayout } from '../core/paths.ts';
import type { AgentDefinition } from './types.ts';

type Install = NonNullable<AgentDefinition['install']>;

/** Where the installs appear inside the sandbox (bound read-only by the harness). */
export const SANDBOX_AGENTS_DIR = '/opt/ptb-agents';

const STAMP_FILE = '.ptb-install.json';
/** A lock older than this is left over from a crashed install. */
const STALE_LOCK_MS = 30 * 60 * 1000;

export interface InstallStamp {
  package: string;
  version: string;
  installedAt: string;
  durationMs: number;
}

function installOf(def: AgentDefinition): Install {
  if (!def.install) {
    throw new UserError(
      `agent '${def.id}' is not an installable CLI`,
      'only CLI agents (claude, codex, …) install',
    );
  }
  return def.install;
}

/** `claude-2.1.76`: variants of one CLI share an install. */
export function installKey(def: AgentDefinition): string {
  const install = installOf(def);
  return `${install.bin}-${install.version}`;
}

export function agentInstallDir(def: AgentDefinition, home: Pick<HomeLayout, 'agents'>): string {
  return join(home.agents, installKey(def));
}

export function agentBinPath(def: AgentDefinition, home: Pick<HomeLayout, 'agents'>): string {
  return join(agentInstallDir(def, home), 'node_modules', '.bin', installOf(def).bin);
}

/** The install directory and its bin directory as the sandbox sees them. */
export function agentSandboxPaths(def: AgentDefinition): { dir: string; binDir: string } {
  const dir = `${SANDBOX_AGENTS_DIR}/${installKey(def)}`;
  return { dir, binDir: `${dir}/node_modules/.bin` };
}

/** Directory of the Node.js binary the CLIs run on (the sandbox needs it on PATH; bind it if outside /usr). */
export function nodeBinDir(): string {
  return dirname(process.execPath);
}

function readStamp(dir: string): InstallStamp | null {
  try {
    return JSON.parse(readFileSync(join(dir, STAMP_FILE), 'utf8')) as InstallStamp;
  } catch {
    return null;
  }
}

function stampMatches(stamp: InstallStamp | null, install: Install): boolean {
  return stamp !== null && stamp.package === install.npm && stamp.version === install.version;
}

/** The version a package.json in the install declares (fast; needs no process). */
function packageVersion(dir: string, install: Install): string | null {
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'node_modules', install.npm, 'package.json'), 'utf8'));
    return typeof pkg.version === 'string' ? pkg.version : null;
  } catch {
    return null;
  }
}

interface ProcessResult {
  code: number | null;
  /** stdout and stderr interleaved (last 64 KiB). */
  output: string;
  stdout: string;
  timedOut: boolean;
}

function runProcess(
  argv: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<ProcessResult> {
  return new Promise((resolve) => {
    let output = '';
    let stdout = '';
    let timedOut = false;
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-64 * 1024);
    };
    child.stdout.on('data', (chunk: Buffer) => {
      stdout = (stdout + chunk.toString('utf8')).slice(-64 * 1024);
      keep(chunk);
    });
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, output: `${output}\n${err.message}`, stdout, timedOut });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, stdout, timedOut });
    });
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the install lock (a directory holding the owner's pid); waits while another live process holds it. */
async function acquireLock(lockDir: string, timeoutMs: number): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'pid'), String(process.pid));
      return () => rmSync(lockDir, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let stale = false;
    try {
      const pid = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
      stale =
        (Number.isInteger(pid) && pid > 0 && !processAlive(pid)) ||
        Date.now() - statSync(lockDir).mtimeMs > STALE_LOCK_MS;
    } catch {
      // the owner has not written its pid yet, or just released the lock
      stale = existsSync(lockDir) && Date.now() - statSync(lockDir).mtimeMs > STALE_LOCK_MS;
    }
    if (stale) {
      rmSync(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new UserError(
        `another process has been installing into ${dirname(lockDir)} for too long`,
        `wait for it, or remove ${lockDir} if no install is running`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

export interface InstallOptions {
  /** npm executable (default `npm` on PATH). */
  npm?: string;
  /** Extra arguments for `npm install` (e.g. a registry). */
  npmArgs?: string[];
  timeoutMs?: number;
  onProgress?(message: string): void;
}

export interface InstallResult {
  dir: string;
  binPath: string;
  /** False when a finished install was already there. */
  installed: boolean;
  durationMs: number;
}

/** Install the definition's pinned CLI (no-op when the stamp says it is there). */
export async function installAgent(
  def: AgentDefinition,
  home: Pick<HomeLayout, 'agents'>,
  options: InstallOptions = {},
): Promise<InstallResult> {
  const install = installOf(def);
  const dir = agentInstallDir(def, home);
  const binPath = agentBinPath(def, home);
  const started = performance.now();
  if (stampMatches(readStamp(dir), install) && existsSync(binPath)) {
    return { dir, binPath, installed: false, durationMs: performance.now() - started };
  }
  mkdirSync(home.agents, { recursive: true });
  const release = await acquireLock(`${dir}.lock`, options.timeoutMs ?? 15 * 60 * 1000);
  try {
    // Someone else may have finished while we waited for the lock.
    if (stampMatches(readStamp(dir), install) && existsSync(binPath)) {
      return { dir, binPath, installed: false, durationMs: performance.now() - started };
    }
    const scratch = `${dir}.partial-${process.pid}`;
    rmSync(scratch, { recursive: true, force: true });
    mkdirSync(scratch, { recursive: true });
    // A package.json of our own keeps npm from walking up to a project above PTB_HOME.
    writeFileSync(
      join(scratch, 'package.json'),
      `${JSON.stringify({ name: `ptb-agent-${installKey(def)}`, private: true }, null, 2)}\n`,
    );
    const spec = `${install.npm}@${install.version}`;
    options.onProgress?.(`installing ${spec} into ${dir}`);
    const result = await runProcess(
      [
        options.npm ?? 'npm',
        'install',
        '--prefix',
        scratch,
        '--no-audit',
        '--no-fund',
        '--no-update-notifier',
        '--save-exact',
        '--loglevel=error',
        ...(options.npmArgs ?? []),
        spec,
      ],
      { cwd: scratch, timeoutMs: options.timeoutMs ?? 15 * 60 * 1000 },
    );
    if (result.code !== 0) {
      rmSync(scratch, { recursive: true, force: true });
      const tail = result.output.trim().split('\n').slice(-8).join('\n');
      throw new UserError(
        `npm could not install ${spec}${result.timedOut ? ' (timed out)' : ''}:\n${tail}`,
        'check that this machine reaches the npm registry (npm config get registry) and try `ptb agents install` again',
      );
    }
    const scratchBin = join(scratch, 'node_modules', '.bin', install.bin);
    if (!existsSync(scratchBin)) {
      rmSync(scratch, { recursive: true, force: true });
      throw new UserError(`${spec} installed but provides no '${install.bin}' executable`);
    }
    const stamp: InstallStamp = {
      package: install.npm,
      version: install.version,
      installedAt: new Date().toISOString(),
      durationMs: Math.round(performance.now() - started),
    };
    writeFileSync(join(scratch, STAMP_FILE), `${JSON.stringify(stamp, null, 2)}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(scratch, dir);
    return { dir, binPath, installed: true, durationMs: performance.now() - started };
  } finally {
    release();
  }
}

export interface AgentInstallStatus {
  id: string;
  package: string;
  pinnedVersion: string;
  dir: string;
  installed: boolean;
  /** What `<bin> --version` printed (the first version number in it), when it ran. */
  reportedVersion: string | null;
  /** The installed package's own version. */
  packageVersion: string | null;
  /** Why the CLI is not usable, when it is not. */
  problem: string | null;
}

/** Is the pinned CLI installed, and which version does it report? Runs `<bin> --version` unless told not to. */
export async function agentInstallStatus(
  def: AgentDefinition,
  home: Pick<HomeLayout, 'agents'>,
  options: { runVersion?: boolean; timeoutMs?: number } = {},
): Promise<AgentInstallStatus> {
  const install = installOf(def);
  const dir = agentInstallDir(def, home);
  const binPath = agentBinPath(def, home);
  const status: AgentInstallStatus = {
    id: def.id,
    package: install.npm,
    pinnedVersion: install.version,
    dir,
    installed: false,
    reportedVersion: null,
    packageVersion: null,
    problem: null,
  };
  if (!stampMatches(readStamp(dir), install) || !existsSync(binPath)) {
    status.problem = 'not installed';
    return status;
  }
  status.installed = true;
  status.packageVersion = packageVersion(dir, install);
  if (options.runVersion === false) return status;
  const result = await runProcess([binPath, '--version'], {
    cwd: dir,
    // Keep the CLIs off the network while they report their version.
    env: { ...process.env, DISABLE_AUTOUPDATER: '1', CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' },
    timeoutMs: options.timeoutMs ?? 120_000,
  });
  const versionPattern = /\b(\d+\.\d+\.\d+(?:-[\w.]+)?)\b/;
  const version = versionPattern.exec(result.stdout) ?? versionPattern.exec(result.output);
  status.reportedVersion = version ? version[1]! : null;
  if (result.code !== 0) {
    status.problem = result.timedOut ? '`--version` timed out' : `\`--version\` exited with ${result.code}`;
  } else if (status.reportedVersion !== install.version) {
    status.problem = `reports version ${status.reportedVersion ?? 'unknown'}, pinned ${install.version}`;
  }
  return status;
}
