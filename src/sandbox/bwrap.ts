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
 *
 * Network: the sandbox's namespace has only loopback. With `network: { bridges }` each host Unix socket
 * (the egress proxy, the model relay, the Hugging Face pass-through) is bound in read-only and a small
 * forwarder (bridge/forwarder.mjs) exposes it on the sandbox's 127.0.0.1:<port>; those sockets are
 * the only ways out. At a time limit or abort, `killGraceMs` gives every process SIGTERM first and
 * SIGKILL after the grace, as the reference's `timeout --kill-after`.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  chownSync,
  constants,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
} from 'node:fs';
import { delimiter, dirname, join, posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { UserError } from '../core/errors.ts';
import { FILE_OPENS_UNRECORDED, straceOptions } from '../ledgers/straceParser.ts';
import { validateBridgeSockets } from './bridgeSockets.ts';
import { CappedSink, drainInto } from './capture.ts';
import { type CgroupScope, createCgroupScope, type EnforcedLimits, type ResourceLimits } from './cgroup.ts';
import { armDeadline } from './deadline.ts';
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

/** A host Unix socket offered inside the sandbox as a TCP port on the sandbox's own loopback. */
export interface SandboxBridge {
  /** Port the in-sandbox forwarder listens on (127.0.0.1). */
  listenPort: number;
  /** Host Unix socket every connection to that port is piped to (e.g. the egress proxy). */
  socketPath: string;
}

/**
 * `none`: a private network namespace with loopback only. `{ bridges }`: the same, plus one forwarder
 * per bridge on the sandbox's loopback, so the host sockets named are the only ways out.
 */
export type SandboxNetwork = 'none' | { bridges: readonly SandboxBridge[] };

/** Where bridged sockets appear inside the sandbox (`<port>.sock`). */
export const BRIDGE_DIR = '/run/ptb/bridge';

/** Grace between SIGTERM and SIGKILL the reference gives an agent at its time limit. */
export const AGENT_KILL_GRACE_MS = 30_000;

/** What `onSpawn` receives: the host pid of bwrap and the run's cgroup directories (for monitoring). */
export interface SandboxProcessInfo {
  pid: number;
  /** cgroup directories of the run, keyed by what they account (absent when not created). */
  cgroups: { memory?: string; cpu?: string; pids?: string; unified?: string };
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
  /** Network of the sandbox (default `none`). */
  network?: SandboxNetwork;
  /** Interpreter for the bridge forwarder, a path inside the sandbox (default /usr/bin/node). */
  bridgeNode?: string;
  /** Wall-clock limit; the whole tree is stopped when it passes (see `killGraceMs`). */
  timeoutMs?: number;
  /**
   * On timeout or abort: SIGTERM every process of the sandbox, then SIGKILL the tree after this many
   * milliseconds (default 0: SIGKILL at once). Agents get AGENT_KILL_GRACE_MS, like the reference.
   */
  killGraceMs?: number;
  /** Device nodes bound into /dev (e.g. /dev/nvidia0, /dev/nvidiactl, /dev/nvidia-uvm). */
  devices?: readonly string[];
  /** Bind /sys read-only (CUDA and NCCL read PCI topology there). Default false. */
  sysfs?: boolean;
  /** Host name inside the sandbox (its own UTS namespace). */
  hostname?: string;
  /** cgroup limits on the whole tree. */
  limits?: ResourceLimits;
  rlimits?: SandboxRlimits;
  /** Bytes fed to the command's stdin (then closed). Without it stdin is empty. */
  stdin?: string | Uint8Array;
  /** Extra pipes the command can write to, as fds 3, 4, ...; their bytes come back in `extraOutputs`. */
  extraOutputFds?: number;
  /** Cap per captured stream (stdout, stderr, each extra fd); the rest is drained and dropped. */
  maxOutputBytes?: number;
  /**
   * Keep stdout/stderr in the result (default true). Off for long runs that stream with `onOutput`:
   * stdout is then empty and stderr holds only its first 4 KiB (enough to tell why a start failed).
   */
  captureOutput?: boolean;
  /** Every chunk of stdout/stderr as it arrives (live logs of a run that lasts hours). */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** Called once bwrap is spawned (e.g. to start a resource monitor on its pid and cgroups). */
  onSpawn?: (info: SandboxProcessInfo) => void;
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
  /**
   * Record the file opens, program starts and process tree of everything inside with strace (run
   * from the host, outside the sandbox's reach), into this file. Ignored with a warning when strace
   * cannot trace here (see `fileOpenTracer`); `SandboxResult.fileOpensTraced` says whether it ran.
   */
  traceFileOpens?: { outputPath: string };
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
  /** strace recorded the run's file opens (`traceFileOpens`). */
  fileOpensTraced?: boolean;
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
let cachedTracer: { ok: boolean; detail: string; strace: string | null } | undefined;

/**
 * Whether strace can record a sandbox's file opens here: installed, recent enough for a seccomp
 * filter and pid-namespace translation, and allowed to trace (checked once, by a real run).
 */
export function fileOpenTracer(): { ok: boolean; detail: string; strace: string | null } {
  if (cachedTracer) return cachedTracer;
  const strace = findExecutable('strace');
  if (!strace) {
    cachedTracer = { ok: false, detail: 'strace is not installed (apt-get install strace)', strace: null };
    return cachedTracer;
  }
  const version =
    spawnSync(strace, ['-V'], { encoding: 'utf8', timeout: 5000 }).stdout?.split('\n')[0]?.trim() ?? '';
  const probe = spawnSync(
    strace,
    [
      '--pidns-translation',
      '-f',
      '-qq',
      '--seccomp-bpf',
      '-e',
      'trace=openat',
      '-o',
      '/dev/null',
      '/bin/true',
    ],
    { encoding: 'utf8', timeout: 10_000 },
  );
  cachedTracer =
    probe.status === 0
      ? { ok: true, detail: version || strace, strace }
      : {
          ok: false,
          detail: `strace cannot trace here: ${(probe.stderr || String(probe.error)).trim().slice(0, 300)}`,
          strace,
        };
  return cachedTracer;
}

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
  // A node is bound at /dev/<name> inside, wherever the host keeps it (PTB_NVIDIA_DEV_DIR).
  for (const device of spec.devices ?? [])
    args.push('--dev-bind', device, posix.join('/dev', posix.basename(device)));
  if (spec.sysfs) args.push('--ro-bind', '/sys', '/sys');
  if (spec.hostname !== undefined) args.push('--hostname', spec.hostname);
  if (spec.tmpSizeBytes !== undefined) args.push('--size', String(Math.floor(spec.tmpSizeBytes)));
  args.push('--tmpfs', '/tmp');
  for (const entry of spec.tmpfs ?? []) {
    const tmpfs = typeof entry === 'string' ? { path: entry } : entry;
    if (tmpfs.sizeBytes !== undefined) args.push('--size', String(Math.floor(tmpfs.sizeBytes)));
    args.push('--tmpfs', tmpfs.path);
  }
  // Parents before children, whatever their kind: a read-only file inside a writable directory
  // (the task's evaluate.py) must be mounted after the directory, or the directory would hide it.
  const binds = [
    ...(spec.readOnlyBinds ?? []).map((entry) => ({ ...mountOf(entry), flag: '--ro-bind' })),
    ...(spec.writableBinds ?? []).map((entry) => ({ ...mountOf(entry), flag: '--bind' })),
  ].map((bind, order) => ({ ...bind, order, depth: bind.target.split('/').filter(Boolean).length }));
  binds.sort((a, b) => a.depth - b.depth || a.order - b.order);
  for (const bind of binds) args.push(bind.flag, bind.source, bind.target);
  for (const file of spec.maskedFiles ?? []) args.push('--ro-bind', '/dev/null', file);
  // A read-only bind still lets the sandbox connect to the socket; it cannot replace or remove it.
  for (const bridge of networkBridges(spec))
    args.push('--ro-bind', bridge.socketPath, bridgeSocketTarget(bridge));
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

export function networkBridges(spec: Pick<SandboxSpec, 'network'>): readonly SandboxBridge[] {
  return spec.network && spec.network !== 'none' ? spec.network.bridges : [];
}

export function bridgeSocketTarget(bridge: SandboxBridge): string {
  return `${BRIDGE_DIR}/${bridge.listenPort}.sock`;
}

const FORWARDER_SOURCE = readFileSync(new URL('./bridge/forwarder.mjs', import.meta.url), 'utf8');
const FORWARDER_EOF = 'PTB_FORWARDER_SOURCE_END';

/**
 * A server inside the sandbox offered to the harness: the forwarder listens on `socketPath` (a path
 * inside the sandbox, in a directory bound from the host) and pipes each connection to the sandbox's
 * own 127.0.0.1:`port`. The reverse of SandboxBridge: the harness calls in, nothing goes out.
 */
export interface InboundBridge {
  socketPath: string;
  port: number;
}

/**
 * In-sandbox prefix that starts the bridge forwarder in the background (reparented to the sandbox's
 * init, so the command never sees it as a child), waits for its "ready" line on a pipe, then execs
 * the command, which keeps its own exit status. The forwarder's source travels as a here-document,
 * so no host path has to be reachable by the sandbox user. Exit 125 when the bridge cannot start.
 * `inbound` bridges (servers the harness calls) are set up by the same forwarder.
 */
export function bridgeWrapper(
  bridges: readonly SandboxBridge[],
  node: string,
  inbound: readonly InboundBridge[] = [],
): string[] {
  const pairs = [
    ...bridges.map((bridge) => `${bridge.listenPort}=${bridgeSocketTarget(bridge)}`),
    ...inbound.map((bridge) => `in:${bridge.socketPath}=${bridge.port}`),
  ];
  const script = [
    'node=$1; n=$2; shift 2; pairs=',
    'while [ "$n" -gt 0 ]; do pairs="$pairs $1"; shift; n=$((n-1)); done',
    `ready=$( (exec 3>&1 >/dev/null; "$node" --input-type=module - $pairs <<'${FORWARDER_EOF}' &`,
    FORWARDER_SOURCE.trimEnd(),
    FORWARDER_EOF,
    ') )',
    '[ "$ready" = ready ] || { echo "ptb: the network bridge did not start" >&2; exit 125; }',
    'exec "$@"',
  ].join('\n');
  return ['/bin/sh', '-c', script, 'ptb-bridge', node, String(pairs.length), ...pairs];
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
 *   [setpriv pdeathsig] [sh join-cgroups] [strace …] [setpriv pdeathsig + drop to the host user] bwrap ARGS -- [prlimit] argv
 * The parent-death signal is set first so that ptb dying at any later point takes bwrap down; it is
 * set again after the uid change, which clears it.
 */
function launchCommand(
  tools: HostTools,
  bwrapArgsAndCommand: string[],
  procsFiles: string[],
  tracer: string[] = [],
): string[] {
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
  // The tracer runs as ptb's user, in the run's cgroups, before the drop to the sandbox user.
  command.push(...tracer);
  if (tools.setpriv) {
    const drop = isRoot()
      ? ['--reuid', String(DEFAULT_HOST_IDS.uid), '--regid', String(DEFAULT_HOST_IDS.gid), '--clear-groups']
      : [];
    if (drop.length > 0 || pdeathsig.length > 0) command.push(tools.setpriv, ...pdeathsig, ...drop, '--');
  }
  command.push(tools.bwrap ?? 'bwrap', ...bwrapArgsAndCommand);
  return command;
}

function bindSources(spec: SandboxSpec): string[] {
  return [...(spec.readOnlyBinds ?? []), ...(spec.writableBinds ?? [])].map((entry) => mountOf(entry).source);
}

const traversable = new Set<string>();

/** Can this user search (x) the directory, by its mode bits? */
function canSearch(dir: string, ids: { uid: number; gid: number }): boolean {
  const st = statSync(dir);
  if (st.uid === ids.uid) return (st.mode & 0o100) !== 0;
  if (st.gid === ids.gid) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

/**
 * Give `ids` search permission on every directory above `paths` that lacks it: `setfacl -m u:UID:x`
 * when available (only that user gains anything), else `chmod o+x`. Search permission lets a user
 * pass through a directory, not list it. Returns one note per change.
 */
export function grantTraversal(paths: readonly string[], ids: { uid: number; gid: number }): string[] {
  const notes: string[] = [];
  const setfacl = findExecutable('setfacl');
  for (const path of paths) {
    let dir = dirname(path);
    while (!traversable.has(dir)) {
      try {
        if (!canSearch(dir, ids)) {
          const acl = setfacl ? spawnSync(setfacl, ['-m', `u:${ids.uid}:x`, dir]).status === 0 : false;
          if (!acl) chmodSync(dir, statSync(dir).mode | 0o001);
          notes.push(
            `granted the sandbox user (uid ${ids.uid}) search permission on ${dir} (${acl ? 'ACL' : 'chmod o+x'})`,
          );
        }
      } catch {
        break; // a missing path: bwrap names it
      }
      traversable.add(dir);
      if (dir === '/') break;
      dir = dirname(dir);
    }
  }
  return notes;
}

/**
 * Let the sandbox user read these files and directory trees (data the harness hands to a sandbox run
 * as root: a base model saved with mode 600, data files): `setfacl -R -m u:UID:rX`, else `chmod -R o+rX`.
 * Only needed when ptb runs as root; a no-op otherwise.
 */
export function grantSandboxRead(
  paths: readonly string[],
  ids: { uid: number; gid: number } = DEFAULT_HOST_IDS,
): string[] {
  if (!isRoot()) return [];
  const notes = grantTraversal(paths, ids);
  const setfacl = findExecutable('setfacl');
  const walk = (path: string): void => {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) return;
    const wanted = st.isDirectory() ? 0o005 : 0o004;
    if ((st.mode & wanted) !== wanted) chmodSync(path, st.mode | wanted);
    if (st.isDirectory()) for (const name of readdirSync(path)) walk(join(path, name));
  };
  for (const path of paths) {
    if (!existsSync(path)) continue;
    if (setfacl && spawnSync(setfacl, ['-R', '-m', `u:${ids.uid}:rX`, path]).status === 0) continue;
    walk(path);
    notes.push(`made ${path} readable by others (chmod o+rX) for the sandbox user`);
  }
  return notes;
}

/** Every host process's parent, from one /proc scan: pid -> parent pid. */
function hostParentMap(): Map<number, number> {
  const parents = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return parents;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) follows the command name, which is in parentheses and may contain spaces.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parents.set(Number(entry), Number(rest[1]));
    } catch {
      // exited meanwhile
    }
  }
  return parents;
}

/**
 * Host pids of every process of the sandbox except bwrap itself and its in-namespace init: the
 * descendants of bwrap's init. Every process in the pid namespace descends from that init (orphans,
 * setsid'd and double-forked ones are reparented to it), so the walk misses none.
 */
function sandboxedProcesses(launchedPid: number, traced: boolean): number[] {
  const parents = hostParentMap();
  const children = new Map<number, number[]>();
  for (const [pid, parent] of parents) {
    const list = children.get(parent);
    if (list) list.push(pid);
    else children.set(parent, [pid]);
  }
  // Under strace the launched process is the tracer; bwrap is its child.
  const bwraps = traced ? (children.get(launchedPid) ?? []) : [launchedPid];
  const inits = bwraps.flatMap((pid) => children.get(pid) ?? []);
  const found: number[] = [];
  const queue = inits.flatMap((init) => children.get(init) ?? []);
  while (queue.length > 0) {
    const pid = queue.shift()!;
    found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}

/** Whether the sandbox user (host uid/gid) may open `path` for `want` (4 read, 2 write, 1 search). */
function hostUserMay(path: string, ids: { uid: number; gid: number }, want: number): boolean {
  const stat = statSync(path);
  if (stat.uid === ids.uid) return ((stat.mode >> 6) & want) === want;
  if (stat.gid === ids.gid) return ((stat.mode >> 3) & want) === want;
  return (stat.mode & want) === want;
}

/**
 * Bridge sockets must exist, and the host user bwrap runs as must reach them: search permission on
 * every parent directory and write permission on the socket. A socket ptb made for this run is handed
 * to that user; an unreachable directory is the caller's to fix.
 */
function checkBridges(bridges: readonly SandboxBridge[]): void {
  const ids = sandboxHostIds();
  validateBridgeSockets(bridges);
  for (const bridge of bridges) {
    if (!hostUserMay(bridge.socketPath, ids, 2) && isRoot()) chownSync(bridge.socketPath, ids.uid, ids.gid);
    for (let dir = dirname(bridge.socketPath); ; dir = dirname(dir)) {
      if (!hostUserMay(dir, ids, 1)) {
        throw new UserError(
          `The sandbox user (uid ${ids.uid}) cannot reach ${bridge.socketPath}: no search permission on ${dir}.`,
          `put the socket under a directory uid ${ids.uid} can traverse (chmod o+x ${dir})`,
        );
      }
      if (dir === dirname(dir)) break;
    }
  }
}

/** The run's cgroup directories by what they account, from the files each one offers. */
function cgroupDirsOf(scope: CgroupScope | null): SandboxProcessInfo['cgroups'] {
  const cgroups: SandboxProcessInfo['cgroups'] = {};
  for (const procs of scope?.procsFiles ?? []) {
    const dir = dirname(procs);
    if (existsSync(join(dir, 'cgroup.controllers'))) {
      cgroups.unified = dir;
      continue;
    }
    if (existsSync(join(dir, 'memory.usage_in_bytes'))) cgroups.memory = dir;
    if (existsSync(join(dir, 'cpuacct.usage')) || existsSync(join(dir, 'cpu.cfs_quota_us')))
      cgroups.cpu = dir;
    if (existsSync(join(dir, 'pids.max'))) cgroups.pids = dir;
  }
  return cgroups;
}

/** Run one command in a fresh bubblewrap sandbox. Rejects only when the sandbox cannot be launched. */
export async function runInSandbox(spec: SandboxSpec): Promise<SandboxResult> {
  assertBwrapAvailable();
  const tools = hostTools();
  const bridges = networkBridges(spec);
  const bridgeNode = spec.bridgeNode ?? '/usr/bin/node';
  if (bridges.length > 0) {
    checkBridges(bridges);
    if (spec.bridgeNode === undefined && !existsSync(bridgeNode)) {
      throw new UserError(
        'The network bridge needs /usr/bin/node inside the sandbox, and there is none.',
        'install nodejs system-wide or pass bridgeNode with the path of a node binary the sandbox can see',
      );
    }
  }
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
  // Running as root, bwrap starts as the unprivileged sandbox user, who must be able to reach every
  // bind source (a PTB_HOME under /root, a Python under /root/.pyenv): grant it search permission on
  // the directories above them (an ACL for that user only, where setfacl exists).
  if (isRoot() && tools.setpriv) warnings.push(...grantTraversal(bindSources(spec), DEFAULT_HOST_IDS));
  let tracer: string[] = [];
  if (spec.traceFileOpens) {
    const support = fileOpenTracer();
    if (support.ok) tracer = [cachedTracer!.strace!, ...straceOptions(spec.traceFileOpens.outputPath), '--'];
    else warnings.push(`${FILE_OPENS_UNRECORDED}: ${support.detail}`);
  }
  const command = launchCommand(
    tools,
    [
      ...bwrapArgs(spec, tools),
      ...(seccompFilter ? ['--seccomp', String(seccompFd)] : []),
      '--',
      ...rlimitArgs(spec.rlimits),
      ...(bridges.length > 0 ? bridgeWrapper(bridges, bridgeNode) : []),
      ...spec.argv,
    ],
    scope?.procsFiles ?? [],
    tracer,
  );
  const cap = spec.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const capture = spec.captureOutput !== false;
  const stdout = new CappedSink(capture ? cap : 0);
  const stderr = new CappedSink(capture ? cap : 0);
  // The first bytes of stderr are kept even without capture: they tell whether bwrap itself failed.
  const stderrHead = new CappedSink(4096);
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

  let killTimer: NodeJS.Timeout | undefined;
  let exitedAlready = false;
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
  // SIGTERM to every process inside (not to bwrap: it would die and take the tree down at once),
  // then SIGKILL once the grace has passed.
  const stopTree = () => {
    const grace = spec.killGraceMs ?? 0;
    if (grace <= 0 || child.pid === undefined) return killTree();
    if (killTimer) return;
    for (const pid of sandboxedProcesses(child.pid, tracer.length > 0)) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    killTimer = setTimeout(killTree, grace);
  };
  const deadline = armDeadline({
    timeoutMs: spec.timeoutMs,
    signal: spec.signal,
    exited: () => exitedAlready,
    stop: stopTree,
  });
  if (child.pid !== undefined && spec.onSpawn) {
    try {
      spec.onSpawn({ pid: child.pid, cgroups: cgroupDirsOf(scope) });
    } catch (err) {
      warnings.push(`onSpawn failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  const listener = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
    if (stream === 'stderr') stderrHead.push(chunk);
    if (!spec.onOutput) return;
    try {
      spec.onOutput(stream, chunk);
    } catch {
      // a failing log writer must not stall the run
    }
  };
  child.stdout?.on('data', listener('stdout'));
  child.stderr?.on('data', listener('stderr'));
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
  exitedAlready = true;
  if (killTimer) clearTimeout(killTimer);
  // Descendants died with the pid namespace; kill through the cgroup too so no pipe stays open.
  scope?.killAll();
  await streamsDone;
  deadline.clear();
  if (exit.error) {
    await scope?.dispose();
    throw exit.error;
  }
  const oomKilled = scope?.oomKilled() ?? false;
  const peakMemoryBytes = scope?.peakMemoryBytes() ?? null;
  await scope?.dispose();
  const head = stderrHead.bytes().toString('utf8');
  return {
    exitCode: exit.code,
    signal: exit.signal,
    timedOut: deadline.timedOut,
    aborted: deadline.aborted,
    oomKilled,
    stdout: stdout.bytes(),
    stderr: capture ? stderr.bytes() : stderrHead.bytes(),
    stdoutTruncated: capture && stdout.truncated,
    stderrTruncated: capture && stderr.truncated,
    extraOutputs: extras.map((sink) => sink.bytes()),
    durationMs: performance.now() - started,
    enforced: scope ? { ...scope.enforced } : { memory: false, pids: false, cpu: false, treeKill: false },
    warnings,
    peakMemoryBytes,
    startFailed:
      (exit.code === 1 && head.startsWith('bwrap: ')) ||
      (exit.code === 125 && head.includes('ptb: the network bridge did not start')),
    fileOpensTraced: tracer.length > 0,
  };
}
