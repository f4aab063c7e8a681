/**
 * A general bubblewrap launcher: one untrusted command in fresh namespaces (user, pid, net, ipc, uts,
 * mount, cgroup), no capabilities, no network but its own loopback, a clean environment, only the
 * paths the spec names, and cgroup limits on memory, processes and CPU. Killing bwrap kills the whole
 * tree because bwrap's reaper is pid 1 of the sandbox's pid namespace (setsid and double forks
 * included); the per-run cgroup is killed as well, as a second line.
 *
 * When ptb runs as root, bwrap itself is started as an unprivileged host user (uid/gid 1000 by
 * default) through `setpriv`, so the sandbox's uid 1000 is not host root in disguise: files it writes
 * belong to that user and host files owned by root stay out of reach even where a bind exposes them.
 * Writable binds must then be writable by that user (see `sandboxHostIds`).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, lstatSync, readlinkSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { UserError } from '../core/errors.ts';
import { CappedSink, drainInto } from './capture.ts';
import { type CgroupScope, createCgroupScope, type EnforcedLimits, type ResourceLimits } from './cgroup.ts';
import { buildSeccompFilter, currentSeccompArch, type DeniableSyscall } from './seccomp.ts';

export type { EnforcedLimits, ResourceLimits } from './cgroup.ts';

export interface SandboxMount {
  /** Path on the host. */
  source: string;
  /** Path inside the sandbox; defaults to `source`. */
  target?: string;
}

export interface SandboxTmpfs {
  path: string;
  /** Size cap of the tmpfs (its pages also count against the memory limit). */
  sizeBytes?: number;
}

/** Resource limits set with setrlimit on the command itself (inside the sandbox, via prlimit). */
export interface SandboxRlimits {
  /** RLIMIT_AS. Never for Node or other V8 programs: V8 reserves address space up front and aborts. */
  addressSpaceBytes?: number;
  /** RLIMIT_FSIZE: largest file the command may write. */
  fileSizeBytes?: number;
  /** RLIMIT_NOFILE. */
  openFiles?: number;
  /** RLIMIT_CORE (0 = no core dumps). */
  coreBytes?: number;
  /** RLIMIT_CPU in seconds of CPU time. */
  cpuSeconds?: number;
}

export interface SandboxSpec {
  /** Command and arguments, resolved inside the sandbox. */
  argv: readonly string[];
  /**
   * Base filesystem: `full` binds /usr and /etc read-only, `usr` binds only /usr. Both recreate
   * /bin, /sbin, /lib, /lib64 as on the host (symlinks into /usr on merged-/usr systems).
   */
  system?: 'full' | 'usr';
  readOnlyBinds?: ReadonlyArray<string | SandboxMount>;
  writableBinds?: ReadonlyArray<string | SandboxMount>;
  /** Extra tmpfs mounts. /tmp is always a fresh tmpfs. */
  tmpfs?: ReadonlyArray<string | SandboxTmpfs>;
  /** Size cap of the /tmp tmpfs. */
  tmpSizeBytes?: number;
  /** Files hidden behind an empty read-only file (e.g. a native module inside a read-only bind). */
  maskedFiles?: readonly string[];
  /** Mount a /proc for the sandbox's pid namespace (default true). */
  proc?: boolean;
  /**
   * The whole environment of the command: nothing is inherited from the host. PATH, HOME and LANG get
   * neutral defaults unless given here.
   */
  env?: Readonly<Record<string, string>>;
  /** Working directory inside the sandbox (default /tmp). */
  cwd?: string;
  /** Only `none` exists so far: a private network namespace with loopback only. */
  network?: 'none';
  /** Wall-clock limit; the whole tree is killed when it passes. */
  timeoutMs?: number;
  /** cgroup limits on the whole tree. */
  limits?: ResourceLimits;
  rlimits?: SandboxRlimits;
  /** Bytes fed to the command's stdin (then closed). Without it stdin is empty. */
  stdin?: string | Uint8Array;
  /** Extra pipes the command can write to, as fds 3, 4, ...; their bytes come back in `extraOutputs`. */
  extraOutputFds?: number;
  /** Cap per captured stream (stdout, stderr, each extra fd); the rest is drained and dropped. */
  maxOutputBytes?: number;
  signal?: AbortSignal;
  /**
   * Syscalls that fail with EPERM inside (seccomp), e.g. INSPECTION_SYSCALLS to stop one sandboxed
   * process from reading another's memory. Ignored with a warning on architectures without a table.
   */
  denySyscalls?: readonly DeniableSyscall[];
  /** Use per-run cgroups (default true). Off only to test the pid namespace on its own. */
  cgroups?: boolean;
  /** Uid and gid the command sees inside (default 1000). */
  sandboxUid?: number;
}

export interface SandboxResult {
  /** Exit status of the command (128 + n when it was killed by signal n), null if bwrap was killed. */
  exitCode: number | null;
  /** Signal that ended bwrap itself (timeout, abort), if any. */
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
  /** The kernel's OOM killer fired inside the run's memory cgroup. */
  oomKilled: boolean;
  stdout: Buffer;
  stderr: Buffer;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  extraOutputs: Buffer[];
  durationMs: number;
  /** Which cgroup protections were really in place. */
  enforced: EnforcedLimits;
  /** Why a protection is missing, or other setup notes. */
  warnings: string[];
  peakMemoryBytes: number | null;
  /** bwrap itself failed before running the command (heuristic: exit 1 with a `bwrap:` message). */
  startFailed: boolean;
}

const DEFAULT_MAX_OUTPUT = 1 << 20;
const DEFAULT_SANDBOX_UID = 1000;
/** Unprivileged host user bwrap runs as when ptb is root. */
const DEFAULT_HOST_IDS = { uid: 1000, gid: 1000 };

interface HostTools {
  bwrap: string | null;
  setpriv: string | null;
  /** setpriv knows --pdeathsig (util-linux >= 2.33). */
  setprivPdeathsig: boolean;
  /** bwrap knows --disable-userns (>= 0.8). */
  disableUserns: boolean;
}

let cachedTools: HostTools | undefined;
let cachedUsable: { ok: boolean; detail: string } | undefined;

function findExecutable(name: string): string | null {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/bin', '/bin', '/usr/sbin', '/sbin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}

function hostTools(): HostTools {
  if (cachedTools) return cachedTools;
  const bwrap = findExecutable('bwrap');
  const setpriv = findExecutable('setpriv');
  const helpOf = (bin: string | null) =>
    bin ? (spawnSync(bin, ['--help'], { encoding: 'utf8', timeout: 5000 }).stdout ?? '') : '';
  cachedTools = {
    bwrap,
    setpriv,
    setprivPdeathsig: helpOf(setpriv).includes('--pdeathsig'),
    disableUserns: helpOf(bwrap).includes('--disable-userns'),
  };
  return cachedTools;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Host uid/gid the sandbox's files belong to: the unprivileged user bwrap is started as when ptb runs
 * as root, else ptb's own user. Writable binds must be writable by it.
 */
export function sandboxHostIds(): { uid: number; gid: number } {
  if (isRoot() && hostTools().setpriv) return { ...DEFAULT_HOST_IDS };
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/** bwrap is installed and can create the namespaces the sandbox needs (checked once, by a real run). */
export function isBwrapAvailable(): boolean {
  return bwrapUsability().ok;
}

function bwrapUsability(): { ok: boolean; detail: string } {
  if (cachedUsable) return cachedUsable;
  const tools = hostTools();
  if (!tools.bwrap) {
    cachedUsable = { ok: false, detail: 'bwrap was not found on PATH' };
    return cachedUsable;
  }
  const command = launchCommand(tools, ['--unshare-all', ...baseSystemArgs('usr'), '--', '/bin/true'], []);
  const probe = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', timeout: 10_000 });
  cachedUsable =
    probe.status === 0
      ? { ok: true, detail: tools.bwrap }
      : {
          ok: false,
          detail: `bwrap cannot create a sandbox here: ${(probe.stderr || String(probe.error)).trim()}`,
        };
  return cachedUsable;
}

/** Throw a UserError that says how to get bubblewrap when it is missing or unusable. */
export function assertBwrapAvailable(): void {
  const usability = bwrapUsability();
  if (!usability.ok) {
    throw new UserError(
      `The bwrap sandbox is not available: ${usability.detail}.`,
      'install bubblewrap (apt-get install bubblewrap); in a container, allow user namespaces',
    );
  }
}

/** /usr (and /etc) read-only, plus /bin, /sbin, /lib, /lib64 exactly as the host has them. */
function baseSystemArgs(system: 'full' | 'usr'): string[] {
  const args = ['--ro-bind', '/usr', '/usr'];
  if (system === 'full') args.push('--ro-bind', '/etc', '/etc');
  for (const dir of ['/bin', '/sbin', '/lib', '/lib64', '/lib32', '/libx32']) {
    let stat: ReturnType<typeof lstatSync>;
    try {
      stat = lstatSync(dir);
    } catch {
      continue;
    }
    if (stat.isSymbolicLink()) args.push('--symlink', readlinkSync(dir), dir);
    else if (stat.isDirectory()) args.push('--ro-bind', dir, dir);
  }
  return args;
}

function mountOf(entry: string | SandboxMount): { source: string; target: string } {
  return typeof entry === 'string'
    ? { source: entry, target: entry }
    : { source: entry.source, target: entry.target ?? entry.source };
}

/** bwrap's own arguments for a spec (everything between `bwrap` and `--`). Exported for tests. */
export function bwrapArgs(
  spec: SandboxSpec,
  tools: Pick<HostTools, 'disableUserns'> = hostTools(),
): string[] {
  const uid = String(spec.sandboxUid ?? DEFAULT_SANDBOX_UID);
  const args = ['--unshare-all', '--die-with-parent', '--new-session', '--cap-drop', 'ALL'];
  args.push('--unshare-user', '--uid', uid, '--gid', uid);
  if (tools.disableUserns) args.push('--disable-userns');
  args.push(...baseSystemArgs(spec.system ?? 'full'));
  if (spec.proc !== false) args.push('--proc', '/proc');
  args.push('--dev', '/dev');
  if (spec.tmpSizeBytes !== undefined) args.push('--size', String(Math.floor(spec.tmpSizeBytes)));
  args.push('--tmpfs', '/tmp');
  for (const entry of spec.tmpfs ?? []) {
    const tmpfs = typeof entry === 'string' ? { path: entry } : entry;
    if (tmpfs.sizeBytes !== undefined) args.push('--size', String(Math.floor(tmpfs.sizeBytes)));
    args.push('--tmpfs', tmpfs.path);
  }
  for (const entry of spec.readOnlyBinds ?? []) {
    const { source, target } = mountOf(entry);
    args.push('--ro-bind', source, target);
  }
  for (const entry of spec.writableBinds ?? []) {
    const { source, target } = mountOf(entry);
    args.push('--bind', source, target);
  }
  for (const file of spec.maskedFiles ?? []) args.push('--ro-bind', '/dev/null', file);
  // The sandbox root is bwrap's own tmpfs: make it read-only so only the listed places take writes.
  args.push('--remount-ro', '/');
  args.push('--clearenv');
  const env: Record<string, string> = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: spec.cwd ?? '/tmp',
    LANG: 'C.UTF-8',
    ...spec.env,
  };
  for (const [key, value] of Object.entries(env)) args.push('--setenv', key, value);
  args.push('--chdir', spec.cwd ?? '/tmp');
  return args;
}

function rlimitArgs(rlimits: SandboxRlimits | undefined): string[] {
  if (!rlimits) return [];
  const flags: string[] = [];
  const add = (flag: string, value: number | undefined) => {
    if (value !== undefined) flags.push(`--${flag}=${Math.floor(value)}`);
  };
  add('as', rlimits.addressSpaceBytes);
  add('fsize', rlimits.fileSizeBytes);
  add('nofile', rlimits.openFiles);
  add('core', rlimits.coreBytes);
  add('cpu', rlimits.cpuSeconds);
  return flags.length > 0 ? ['/usr/bin/prlimit', ...flags, '--'] : [];
}

// Runs as ptb's user before anything untrusted: joins the run's cgroups, then becomes the sandbox.
const JOIN_CGROUPS_SCRIPT =
  'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';

/**
 * The full host command line:
 *   [setpriv pdeathsig] [sh join-cgroups] [setpriv pdeathsig + drop to the host user] bwrap ARGS -- [prlimit] argv
 * The parent-death signal is set first so that ptb dying at any later point takes bwrap down; it is
 * set again after the uid change, which clears it.
 */
function launchCommand(tools: HostTools, bwrapArgsAndCommand: string[], procsFiles: string[]): string[] {
  const command: string[] = [];
  const pdeathsig = tools.setpriv && tools.setprivPdeathsig ? ['--pdeathsig', 'KILL'] : [];
  if (procsFiles.length > 0) {
    if (pdeathsig.length > 0) command.push(tools.setpriv!, ...pdeathsig, '--');
    command.push(
      '/bin/sh',
      '-c',
      JOIN_CGROUPS_SCRIPT,
      'ptb-sandbox',
      String(procsFiles.length),
      ...procsFiles,
    );
  }
  if (tools.setpriv) {
    const drop = isRoot()
      ? ['--reuid', String(DEFAULT_HOST_IDS.uid), '--regid', String(DEFAULT_HOST_IDS.gid), '--clear-groups']
      : [];
    if (drop.length > 0 || pdeathsig.length > 0) command.push(tools.setpriv, ...pdeathsig, ...drop, '--');
  }
  command.push(tools.bwrap ?? 'bwrap', ...bwrapArgsAndCommand);
  return command;
}

/** Run one command in a fresh bubblewrap sandbox. Rejects only when the sandbox cannot be launched. */
export async function runInSandbox(spec: SandboxSpec): Promise<SandboxResult> {
  assertBwrapAvailable();
  const tools = hostTools();
  const started = performance.now();
  const scope: CgroupScope | null = spec.cgroups === false ? null : createCgroupScope(spec.limits ?? {});
  const warnings = scope ? [...scope.warnings] : ['cgroups disabled for this run'];
  if (isRoot() && !tools.setpriv) warnings.push('setpriv not found: bwrap runs as host root (uid 0 outside)');

  const extraFds = spec.extraOutputFds ?? 0;
  let seccompFilter: Buffer | null = null;
  if (spec.denySyscalls && spec.denySyscalls.length > 0) {
    const arch = currentSeccompArch();
    if (arch) seccompFilter = buildSeccompFilter(spec.denySyscalls, arch);
    else warnings.push(`no seccomp syscall table for ${process.arch}: syscalls not filtered`);
  }
  // The filter travels on the fd right after the extra output pipes; bwrap reads it before exec.
  const seccompFd = 3 + extraFds;
  const command = launchCommand(
    tools,
    [
      ...bwrapArgs(spec, tools),
      ...(seccompFilter ? ['--seccomp', String(seccompFd)] : []),
      '--',
      ...rlimitArgs(spec.rlimits),
      ...spec.argv,
    ],
    scope?.procsFiles ?? [],
  );
  const cap = spec.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const stdout = new CappedSink(cap);
  const stderr = new CappedSink(cap);
  const extras = Array.from({ length: extraFds }, () => new CappedSink(cap));

  let child: ChildProcess;
  try {
    child = spawn(command[0]!, command.slice(1), {
      stdio: [
        'pipe',
        'pipe',
        'pipe',
        ...extras.map(() => 'pipe' as const),
        ...(seccompFilter ? ['pipe' as const] : []),
      ],
      env: {},
    });
  } catch (err) {
    await scope?.dispose();
    throw err;
  }

  let timedOut = false;
  let aborted = false;
  const killTree = () => {
    if (child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    scope?.killAll();
  };
  const timer =
    spec.timeoutMs !== undefined
      ? setTimeout(() => {
          timedOut = true;
          killTree();
        }, spec.timeoutMs)
      : undefined;
  const onAbort = () => {
    aborted = true;
    killTree();
  };
  if (spec.signal?.aborted) onAbort();
  else spec.signal?.addEventListener('abort', onAbort, { once: true });

  const streamsDone = Promise.all([
    drainInto(child.stdout, stdout),
    drainInto(child.stderr, stderr),
    ...extras.map((sink, index) => drainInto(child.stdio[3 + index] as Readable | null, sink)),
  ]);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      child.once('error', (error) => resolve({ code: null, signal: null, error }));
      child.once('exit', (code, signal) => resolve({ code, signal }));
    },
  );

  child.stdin?.on('error', () => {
    // the command may exit without reading its input
  });
  if (spec.stdin !== undefined) child.stdin?.end(spec.stdin);
  else child.stdin?.end();
  if (seccompFilter) {
    const seccompPipe = child.stdio[seccompFd] as Writable | null;
    seccompPipe?.on('error', () => {
      // bwrap closes it once read
    });
    seccompPipe?.end(seccompFilter);
  }

  const exit = await exited;
  // Descendants died with the pid namespace; kill through the cgroup too so no pipe stays open.
  scope?.killAll();
  await streamsDone;
  if (timer) clearTimeout(timer);
  spec.signal?.removeEventListener('abort', onAbort);
  if (exit.error) {
    await scope?.dispose();
    throw exit.error;
  }
  const oomKilled = scope?.oomKilled() ?? false;
  const peakMemoryBytes = scope?.peakMemoryBytes() ?? null;
  await scope?.dispose();
  const stderrBytes = stderr.bytes();
  return {
    exitCode: exit.code,
    signal: exit.signal,
    timedOut,
    aborted,
    oomKilled,
    stdout: stdout.bytes(),
    stderr: stderrBytes,
    stdoutTruncated: stdout.truncated,
    stderrTruncated: stderr.truncated,
    extraOutputs: extras.map((sink) => sink.bytes()),
    durationMs: performance.now() - started,
    enforced: scope ? { ...scope.enforced } : { memory: false, pids: false, cpu: false, treeKill: false },
    warnings,
    peakMemoryBytes,
    startFailed: exit.code === 1 && stderrBytes.subarray(0, 7).toString() === 'bwrap: ',
  };
}
