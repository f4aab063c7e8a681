/**
 * The podman sandbox: one command in a fresh container of the agent image. No network but the
 * container's loopback (plus the harness's Unix sockets bridged onto it, as in bwrap), a read-only
 * image filesystem with only the binds and tmpfs writable, an unprivileged user, no capabilities,
 * no privilege gain, podman's pids/memory/CPU limits, and GPUs through a CDI spec or the NVIDIA hook.
 *
 * Podman facts this relies on (measured with podman 4.3, rootful, runc, cgroup v1 hybrid):
 * - Killing the `podman run` client leaves the container running, so deadlines and aborts go through
 *   `podman exec … kill -TERM -1` (every process but the container's init and the bridge) and then
 *   `podman kill`; `--timeout` is a backstop for a ptb that died, and an exit hook kills live containers.
 * - runc refuses podman's default rlimits where the host's hard limits are lower, so every run passes
 *   explicit `--ulimit nofile/nproc` (ptb's own limits unless the spec asks for less).
 * - `podman inspect` does not report OOM kills on cgroup v1; as root with the cgroupfs manager the
 *   container is started under a ptb cgroup (`--cgroup-parent`) whose counters give the peak memory,
 *   and the container's own memory group is watched for OOM kills while it runs.
 * - Containers are not started with `--rm` so that their state can be read after exit; ptb removes
 *   them itself, and removes leftovers of ptb processes that died.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
} from 'node:fs';
import { delimiter, join, posix } from 'node:path';
import { UserError } from '../core/errors.ts';
import { FILE_OPENS_UNRECORDED } from '../ledgers/straceParser.ts';
import {
  BRIDGE_DIR,
  bridgeSocketTarget,
  bridgeWrapper,
  fileOpenTracer,
  type SandboxProcessInfo,
  type SandboxResult,
} from './bwrap.ts';
import type { SandboxCapabilities } from './capabilities.ts';
import { CappedSink, drainInto } from './capture.ts';
import {
  assertPlainPath,
  bridgesOf,
  type ContainerSpec,
  DEFAULT_CONTAINER_USER,
  ownRlimits,
  prepareBridgeSockets,
} from './container.ts';
import { armDeadline } from './deadline.ts';
import { FILE_OPENS_ANNOTATION, releasePipeReader, runtimeWrapper, traceMarker } from './runtimeTrace.ts';

export type PodmanGpuMode = 'cdi' | 'hook';

export interface PodmanProbe {
  /** Path of the podman executable, or null. */
  podman: string | null;
  version: string | null;
  /** Why `podman info` failed, or null. */
  infoError: string | null;
  ociRuntime: string | null;
  /** Path of podman's default OCI runtime (`podman info`), or null. */
  ociRuntimePath?: string | null;
  cgroupVersion: string | null;
  cgroupManager: string | null;
  rootless: boolean;
  runc: string | null;
  /** catatonit, podman's `--init` (a Recommends of Debian's podman package, so not always there). */
  init: string | null;
  /** CDI spec files that name NVIDIA GPUs. */
  cdiSpecs: string[];
  /** OCI hook files of the NVIDIA container toolkit. */
  nvidiaHooks: string[];
  /** /dev/nvidiactl exists (an NVIDIA driver is loaded). */
  nvidiaDriver: boolean;
}

export interface PodmanCapabilities extends SandboxCapabilities {
  version: string | null;
  /** `--runtime` to pass (runc where installed: crun refuses cgroup v1 hybrid hosts), or null for podman's default. */
  runtime: string | null;
  /** The path of the runtime that runs (the file-open ledger wraps it: runtimeTrace.ts), or null. */
  runtimePath: string | null;
  gpuMode: PodmanGpuMode | null;
  rootless: boolean;
  /** Runs get a ptb cgroup parent (root, cgroupfs manager, cgroup v1): peak memory and OOM kills are known. */
  cgroupParent: boolean;
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

const CDI_DIRS = ['/etc/cdi', '/var/run/cdi', '/run/cdi'];
const HOOK_DIRS = ['/usr/share/containers/oci/hooks.d', '/etc/containers/oci/hooks.d'];

function filesIn(dirs: readonly string[], keep: (name: string, text: string) => boolean): string[] {
  const found: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const path = join(dir, name);
      try {
        if (keep(name, readFileSync(path, 'utf8'))) found.push(path);
      } catch {
        // unreadable: not ours to use
      }
    }
  }
  return found;
}

/** Ask this machine about podman (runs `podman info` once). */
export function probePodman(): PodmanProbe {
  const podman = findExecutable('podman');
  const probe: PodmanProbe = {
    podman,
    version: null,
    infoError: null,
    ociRuntime: null,
    cgroupVersion: null,
    cgroupManager: null,
    rootless: process.getuid?.() !== 0,
    runc: findExecutable('runc'),
    init:
      findExecutable('catatonit') ??
      (existsSync('/usr/libexec/podman/catatonit') ? '/usr/libexec/podman/catatonit' : null),
    cdiSpecs: filesIn(
      CDI_DIRS,
      (name, text) => /\.(ya?ml|json)$/.test(name) && /nvidia\.com\/gpu/.test(text),
    ),
    nvidiaHooks: filesIn(HOOK_DIRS, (name, text) => name.endsWith('.json') && /nvidia/i.test(text)),
    nvidiaDriver: existsSync('/dev/nvidiactl'),
  };
  if (!podman) return probe;
  const info = spawnSync(
    podman,
    [
      'info',
      '--format',
      '{{.Version.Version}}|{{.Host.OCIRuntime.Name}}|{{.Host.CgroupsVersion}}|{{.Host.CgroupManager}}|{{.Host.Security.Rootless}}|{{.Host.OCIRuntime.Path}}',
    ],
    { encoding: 'utf8', timeout: 30_000 },
  );
  if (info.status !== 0) {
    probe.infoError =
      (info.stderr || String(info.error ?? `exit ${info.status}`)).trim().split('\n').pop() ?? '';
    return probe;
  }
  const [version, runtime, cgroupVersion, manager, rootless, runtimePath] = info.stdout.trim().split('|');
  probe.version = version || null;
  probe.ociRuntime = runtime || null;
  probe.cgroupVersion = cgroupVersion || null;
  probe.cgroupManager = manager || null;
  probe.rootless = rootless === 'true';
  probe.ociRuntimePath = runtimePath || null;
  return probe;
}

/** What podman can give, from a probe (pure, so that every branch is testable). */
export function podmanCapabilitiesFrom(probe: PodmanProbe): PodmanCapabilities {
  const base = {
    version: probe.version,
    runtime: null,
    runtimePath: null,
    gpuMode: null,
    rootless: probe.rootless,
    cgroupParent: false,
    environment: 'image' as const,
  };
  if (!probe.podman) {
    return {
      ...base,
      available: false,
      gpus: false,
      networkPolicy: 'bridged',
      reason: 'podman was not found on PATH (apt-get install podman runc)',
    };
  }
  if (probe.infoError !== null) {
    return {
      ...base,
      available: false,
      gpus: false,
      networkPolicy: 'bridged',
      reason: `podman info failed: ${probe.infoError}`,
    };
  }
  const runtime = probe.runc ? 'runc' : null;
  if (!runtime && probe.ociRuntime === 'crun' && probe.cgroupVersion === 'v1') {
    return {
      ...base,
      available: false,
      gpus: false,
      networkPolicy: 'bridged',
      reason: 'podman uses crun, which cannot run containers on this cgroup v1 host; install runc',
    };
  }
  if (!probe.init) {
    // pid 1 must reap orphans and pass signals on; without it the deadline's TERM would not reach the command.
    return {
      ...base,
      available: false,
      gpus: false,
      networkPolicy: 'bridged',
      reason: 'catatonit (podman --init) is not installed; apt-get install catatonit',
    };
  }
  const gpuMode: PodmanGpuMode | null =
    probe.cdiSpecs.length > 0 ? 'cdi' : probe.nvidiaHooks.length > 0 ? 'hook' : null;
  const gpus = probe.nvidiaDriver && gpuMode !== null;
  const gpuNote = !probe.nvidiaDriver
    ? 'no NVIDIA driver'
    : gpuMode === 'cdi'
      ? `GPUs through CDI (${probe.cdiSpecs[0]})`
      : gpuMode === 'hook'
        ? `GPUs through the NVIDIA hook (${probe.nvidiaHooks[0]})`
        : 'an NVIDIA driver but no CDI spec: nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml';
  return {
    ...base,
    runtime,
    runtimePath: runtime === 'runc' ? probe.runc : (probe.ociRuntimePath ?? null),
    gpuMode,
    cgroupParent: !probe.rootless && probe.cgroupManager === 'cgroupfs' && probe.cgroupVersion === 'v1',
    available: true,
    gpus,
    networkPolicy: 'bridged',
    reason: `podman ${probe.version ?? '?'} (${runtime ?? probe.ociRuntime ?? 'default runtime'}, cgroups ${probe.cgroupVersion ?? '?'}${probe.rootless ? ', rootless' : ''}); ${gpuNote}`,
  };
}

let cachedCapabilities: PodmanCapabilities | undefined;

/** What podman can give on this machine (probed once per process). */
export function podmanCapabilities(): PodmanCapabilities {
  cachedCapabilities ??= podmanCapabilitiesFrom(probePodman());
  return cachedCapabilities;
}

/** The host side of one run: decided by ptb, not by the spec. */
export interface PodmanHost {
  name: string;
  runtime: string | null;
  gpuMode: PodmanGpuMode | null;
  rootless: boolean;
  /** cgroup path the container's group is created under (absent: podman's default). */
  cgroupParent?: string;
  /** Pass `--rm` (runInPodman does not: it reads the container's state after exit, then removes it). */
  remove: boolean;
  /** pid recorded on the container so that leftovers of a dead ptb can be found. */
  ownerPid: number;
  /** This process's rlimits (the ceiling for --ulimit). */
  ownLimits: ReturnType<typeof ownRlimits>;
  /** Host environment podman itself needs (PATH, HOME, XDG_*, CONTAINERS_*). */
  hostEnv: NodeJS.ProcessEnv;
  /** uid/gid of the invoking user (rootless podman maps it into the container). */
  invoker: { uid: number; gid: number };
  /** OCI annotations on the container (the file-open ledger's pipe: runtimeTrace.ts). */
  annotations?: Record<string, string>;
}

export interface PodmanCommand {
  /** Arguments after `podman`. */
  args: string[];
  /** Environment of the podman client: what podman needs, plus the container's values passed by name. */
  env: Record<string, string>;
}

export const CONTAINER_LABEL = 'ptb.sandbox';
export const OWNER_LABEL = 'ptb.owner';
/** RLIMIT_NPROC podman 4.3 sets for itself (measured): a container cannot be given more. */
const PODMAN_NPROC = 32768;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Host variables the podman client reads itself; a container value of the same name travels in argv. */
const CLIENT_ENV =
  /^(PATH|HOME|USER|LOGNAME|TMPDIR|XDG_[A-Z_]+|CONTAINERS_[A-Z_]+|CONTAINER_[A-Z_]+|REGISTRY_AUTH_FILE|DBUS_SESSION_BUS_ADDRESS)$/;

function defaultHost(name: string): PodmanHost {
  const caps = podmanCapabilities();
  return {
    name,
    runtime: caps.runtime,
    gpuMode: caps.gpuMode,
    rootless: caps.rootless,
    remove: true,
    ownerPid: process.pid,
    ownLimits: ownRlimits(),
    hostEnv: process.env,
    invoker: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
  };
}

/** min(wanted, ceiling) where -1 means unlimited. */
function capLimit(wanted: number, ceiling: number): number {
  if (ceiling < 0) return wanted;
  if (wanted < 0) return ceiling;
  return Math.min(wanted, ceiling);
}

function tmpfsOption(path: string, sizeBytes: number | undefined, mode?: string): string {
  const options = ['rw', 'nosuid', 'nodev', ...(mode ? [`mode=${mode}`] : [])];
  if (sizeBytes !== undefined) options.push(`size=${Math.floor(sizeBytes)}`);
  return `${path}:${options.join(',')}`;
}

/**
 * The `podman run` command for a spec (arguments after `podman`, and the client's environment).
 * Environment values never appear in the arguments (other users can read a command line): they are
 * passed by name and podman copies them from its own environment.
 */
export function podmanRunArgs(
  spec: ContainerSpec,
  host: PodmanHost = defaultHost(`ptb-${process.pid}`),
): PodmanCommand {
  const args = ['run', ...(host.remove ? ['--rm'] : []), '--name', host.name];
  args.push('--label', `${CONTAINER_LABEL}=1`, '--label', `${OWNER_LABEL}=${host.ownerPid}`);
  if (host.runtime) args.push('--runtime', host.runtime);
  for (const [key, value] of Object.entries(host.annotations ?? {}))
    args.push('--annotation', `${key}=${value}`);
  // Never reach a registry at run time; catatonit as pid 1 reaps orphans and forwards signals.
  args.push('--pull', 'never', '--init', '--log-driver', 'passthrough');
  args.push('--network', 'none', '--http-proxy=false');
  if ((spec.rootfs ?? 'read-only') === 'read-only') args.push('--read-only', '--read-only-tmpfs=false');
  const targets = new Set(spec.mounts.map((mount) => mount.target));
  if (!targets.has('/tmp')) args.push('--tmpfs', tmpfsOption('/tmp', spec.tmpSizeBytes, '1777'));
  for (const tmpfs of spec.tmpfs ?? []) {
    assertPlainPath(tmpfs.path, 'tmpfs');
    args.push('--tmpfs', tmpfsOption(tmpfs.path, tmpfs.sizeBytes));
  }
  // The bridge sockets' directory must exist in a read-only image: a tmpfs there holds the mount points.
  const bridges = bridgesOf(spec.network);
  if (bridges.length > 0 && !targets.has(BRIDGE_DIR)) args.push('--tmpfs', tmpfsOption(BRIDGE_DIR, 1 << 20));

  if (host.rootless) {
    // keep-id maps the invoking user to the same uid inside, so files in binds stay theirs.
    args.push('--userns', 'keep-id', '--user', `${host.invoker.uid}:${host.invoker.gid}`);
  } else {
    const user = spec.user ?? DEFAULT_CONTAINER_USER;
    args.push('--userns', 'host', '--user', `${user.uid}:${user.gid}`);
  }
  args.push('--cap-drop', 'all', '--security-opt', 'no-new-privileges');

  const limits = spec.limits ?? {};
  if (limits.pids !== undefined) args.push('--pids-limit', String(Math.max(1, Math.floor(limits.pids))));
  if (limits.memoryBytes !== undefined) {
    const bytes = `${Math.floor(limits.memoryBytes)}b`;
    // Swap equal to memory: no swap beyond the limit (as bwrap's memsw limit).
    args.push('--memory', bytes, '--memory-swap', bytes);
  }
  if (limits.cpus !== undefined) args.push('--cpus', String(limits.cpus));
  const ulimits = spec.ulimits ?? {};
  const [nofileSoft, nofileHard] = host.ownLimits.openFiles;
  // podman runs itself (and so conmon and runc) with at most PODMAN_NPROC processes: a higher limit fails.
  const [nprocSoft, nprocHard] = host.ownLimits.processes.map((value) => capLimit(PODMAN_NPROC, value));
  const nofile = ulimits.openFiles !== undefined ? capLimit(ulimits.openFiles, nofileHard) : undefined;
  const nproc = ulimits.processes !== undefined ? capLimit(ulimits.processes, nprocHard!) : undefined;
  args.push(
    '--ulimit',
    nofile !== undefined ? `nofile=${nofile}:${nofile}` : `nofile=${nofileSoft}:${nofileHard}`,
  );
  args.push('--ulimit', nproc !== undefined ? `nproc=${nproc}:${nproc}` : `nproc=${nprocSoft}:${nprocHard}`);
  const extra: Array<[string, number | undefined]> = [
    ['fsize', ulimits.fileSizeBytes],
    ['core', ulimits.coreBytes],
    ['cpu', ulimits.cpuSeconds],
    ['as', ulimits.addressSpaceBytes],
  ];
  for (const [name, value] of extra) {
    if (value !== undefined) args.push('--ulimit', `${name}=${Math.floor(value)}:${Math.floor(value)}`);
  }
  if (host.cgroupParent) args.push('--cgroup-parent', host.cgroupParent);
  if (spec.hostname !== undefined) args.push('--hostname', spec.hostname);
  if (spec.shmSizeBytes !== undefined) args.push('--shm-size', `${Math.floor(spec.shmSizeBytes)}b`);

  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(host.hostEnv)) {
    if (value !== undefined && CLIENT_ENV.test(key)) env[key] = value;
  }
  const containerEnv: Record<string, string> = { ...spec.env };
  if (spec.gpus.length > 0) {
    if (host.gpuMode === 'cdi') {
      for (const index of spec.gpus) args.push('--device', `nvidia.com/gpu=${index}`);
    } else if (host.gpuMode === 'hook') {
      // The toolkit's hook reads these and injects the devices and driver libraries.
      containerEnv.NVIDIA_VISIBLE_DEVICES = spec.gpus.join(',');
      containerEnv.NVIDIA_DRIVER_CAPABILITIES ??= 'compute,utility';
    } else {
      throw new UserError(
        'The podman sandbox cannot give this run GPUs: there is no NVIDIA CDI spec or hook on this machine.',
        'generate a CDI spec (nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml) or use the bwrap sandbox',
      );
    }
  }
  for (const device of spec.devices ?? []) {
    assertPlainPath(device, 'device');
    args.push('--device', device);
  }
  for (const mount of spec.mounts) {
    assertPlainPath(mount.source, 'bind source');
    assertPlainPath(mount.target, 'bind target');
    args.push('--volume', `${mount.source}:${mount.target}:${mount.readOnly ? 'ro' : 'rw'}`);
  }
  for (const bridge of bridges) {
    assertPlainPath(bridge.socketPath, 'bridge socket');
    args.push('--volume', `${bridge.socketPath}:${bridgeSocketTarget(bridge)}:ro`);
  }
  for (const [key, value] of Object.entries(containerEnv)) {
    if (!ENV_NAME.test(key)) {
      throw new UserError(`The environment variable name '${key}' cannot be passed into a container.`);
    }
    if (CLIENT_ENV.test(key)) {
      args.push('--env', `${key}=${value}`);
    } else {
      env[key] = value;
      args.push('--env', key);
    }
  }
  args.push('--workdir', spec.cwd);
  if (spec.stdin !== undefined) args.push('--interactive');
  if (spec.timeoutMs !== undefined) {
    // Backstop for a ptb that died: conmon stops the container a minute after ptb's own deadline.
    const seconds = Math.ceil((spec.timeoutMs + (spec.killGraceMs ?? 0)) / 1000) + 60;
    args.push('--timeout', String(seconds));
  }
  args.push(spec.image);
  if (bridges.length > 0) args.push(...bridgeWrapper(bridges, spec.bridgeNode ?? 'node'));
  args.push(...spec.argv);
  return { args, env };
}

// ---- running ----

interface CallResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function podmanCall(podman: string, args: string[], timeoutMs = 30_000): Promise<CallResult> {
  return new Promise((resolve) => {
    const child = spawn(podman, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: stderr || err.message });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Containers this process started and has not removed yet: killed if ptb exits first. */
const liveContainers = new Set<string>();
let exitHookInstalled = false;
let swept = false;
let runCounter = 0;

function installExitHook(podman: string): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const name of liveContainers)
      spawnSync(podman, ['rm', '--force', '--time', '0', name], { timeout: 10_000 });
  });
}

function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove containers left by ptb processes that died before cleaning up (once per process). */
async function sweepStaleContainers(podman: string): Promise<string[]> {
  if (swept) return [];
  swept = true;
  return removeStaleContainers(podman);
}

/** Remove (killing first) every ptb container whose owning ptb process is gone; returns their names. */
export async function removeStaleContainers(
  podman = findExecutable('podman') ?? 'podman',
): Promise<string[]> {
  const listed = await podmanCall(podman, [
    'ps',
    '--all',
    '--filter',
    `label=${CONTAINER_LABEL}=1`,
    '--format',
    `{{.Names}}\t{{index .Labels "${OWNER_LABEL}"}}`,
  ]);
  if (listed.code !== 0) return [];
  const stale = listed.stdout
    .split('\n')
    .map((line) => line.trim().split('\t'))
    .filter(([name, owner]) => name && owner && Number(owner) !== process.pid && !isPidAlive(Number(owner)))
    .map(([name]) => name!);
  if (stale.length > 0) await podmanCall(podman, ['rm', '--force', '--time', '0', ...stale], 60_000);
  return stale;
}

// ---- the cgroup parent (root + cgroupfs + v1) ----

interface CgroupMount {
  mountPoint: string;
  root: string;
  controllers: string[];
}

function cgroupMounts(): CgroupMount[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const mounts: CgroupMount[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [fsType, , superOptions = ''] = right.split(' ');
    if (fsType !== 'cgroup' && fsType !== 'cgroup2') continue;
    mounts.push({
      mountPoint: fields[4] ?? '',
      root: fields[3] ?? '/',
      controllers: superOptions.split(','),
    });
  }
  return mounts;
}

/** This process's group path in the v1 memory hierarchy (the container's parent goes below it). */
function ownMemoryGroup(): string | null {
  try {
    for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
      const match = /^\d+:([^:]*):(.*)$/.exec(line.trim());
      if (match?.[1]?.split(',').includes('memory')) return match[2] ?? '/';
    }
  } catch {
    // no /proc
  }
  return null;
}

class CgroupParent {
  readonly path: string;
  private readonly memoryDir: string | null;
  /** Per hierarchy, the directories below the mount that did not exist before (removed afterwards). */
  private readonly created: string[] = [];

  constructor(path: string) {
    this.path = path;
    const mounts = cgroupMounts().filter((mount) => mount.root === '/');
    const memory = mounts.find((mount) => mount.controllers.includes('memory'));
    this.memoryDir = memory ? join(memory.mountPoint, path) : null;
    for (const mount of mounts) {
      // Record the first missing ancestor in each hierarchy: runc creates it, we remove it.
      let dir = mount.mountPoint;
      for (const part of path.split('/').filter(Boolean)) {
        dir = join(dir, part);
        if (!existsSync(dir)) {
          this.created.push(dir);
          break;
        }
      }
    }
    if (this.memoryDir) mkdirSync(this.memoryDir, { recursive: true });
  }

  /** The container's own memory group (for its OOM counter). */
  containerMemoryDir(containerId: string): string | null {
    return this.memoryDir ? join(this.memoryDir, `libpod-${containerId}`) : null;
  }

  dirs(): SandboxProcessInfo['cgroups'] {
    const mounts = cgroupMounts().filter((mount) => mount.root === '/');
    const dirFor = (controller: string) => {
      const mount = mounts.find((m) => m.controllers.includes(controller));
      return mount ? join(mount.mountPoint, this.path) : undefined;
    };
    const cgroups: SandboxProcessInfo['cgroups'] = {};
    const memory = dirFor('memory');
    const cpu = dirFor('cpuacct') ?? dirFor('cpu');
    const pids = dirFor('pids');
    if (memory) cgroups.memory = memory;
    if (cpu) cgroups.cpu = cpu;
    if (pids) cgroups.pids = pids;
    return cgroups;
  }

  peakMemoryBytes(): number | null {
    if (!this.memoryDir) return null;
    try {
      const value = Number(readFileSync(join(this.memoryDir, 'memory.max_usage_in_bytes'), 'utf8').trim());
      return Number.isFinite(value) ? value : null;
    } catch {
      return null;
    }
  }

  /** Remove the groups (conmon's subgroup first), deepest first, retrying while the kernel reaps. */
  async dispose(): Promise<void> {
    for (const top of this.created) {
      const walk = (dir: string): string[] => {
        let names: string[] = [];
        try {
          names = readdirSync(dir, { withFileTypes: true })
            .filter((entry) => entry.isDirectory())
            .map((entry) => entry.name);
        } catch {
          return [];
        }
        return [...names.flatMap((name) => walk(join(dir, name))), dir];
      };
      for (let attempt = 0; attempt < 50; attempt++) {
        let left = 0;
        for (const dir of walk(top)) {
          try {
            rmdirSync(dir);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') left++;
          }
        }
        if (left === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }
}

function oomKillCount(memoryDir: string | null): number {
  if (!memoryDir) return 0;
  try {
    const match = /^oom_kill (\d+)$/m.exec(readFileSync(join(memoryDir, 'memory.oom_control'), 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Throw a UserError that says how to get podman when it cannot run here. */
export function assertPodmanAvailable(caps: PodmanCapabilities = podmanCapabilities()): void {
  if (!caps.available) {
    throw new UserError(
      `The podman sandbox is not available: ${caps.reason}.`,
      'install podman and runc (apt-get install podman runc), or use the bwrap sandbox',
    );
  }
}

/**
 * The file-open ledger of a container run: podman runs the container through a runtime wrapper that
 * starts its processes under strace (runtimeTrace.ts). Null when not asked for; without strace or a
 * known runtime the run goes on untraced and `finish` says so.
 */
function fileOpenTracing(spec: ContainerSpec, caps: PodmanCapabilities, warnings: string[]) {
  if (!spec.traceFileOpens) return null;
  const pipe = spec.traceFileOpens.outputPath;
  const support = fileOpenTracer();
  const why =
    !support.ok || !support.strace
      ? support.detail
      : !caps.runtimePath
        ? "podman's OCI runtime was not found (podman info names none)"
        : /["\n\\]/.test(pipe)
          ? `the ledger's path ${JSON.stringify(pipe)} cannot travel in an annotation`
          : null;
  if (why) warnings.push(`${FILE_OPENS_UNRECORDED}: ${why}`);
  const runtime = why === null ? runtimeWrapper(caps.runtimePath!, support.strace!) : null;
  rmSync(traceMarker(pipe), { force: true });
  return {
    /** The wrapper podman runs as its runtime (null: untraced); with the annotation naming the pipe. */
    runtime,
    annotations: { [FILE_OPENS_ANNOTATION]: pipe },
    /** After the container: whether strace ran; if not, the ledger's reader gets its end. */
    async finish(): Promise<boolean> {
      const traced = runtime !== null && existsSync(traceMarker(pipe));
      rmSync(traceMarker(pipe), { force: true });
      if (traced) return true;
      if (runtime) warnings.push(`${FILE_OPENS_UNRECORDED}: the runtime wrapper did not start strace`);
      await releasePipeReader(pipe);
      return false;
    },
  };
}

/**
 * Run one command in a fresh podman container. Same result shape as bwrap's runInSandbox; rejects
 * only when the container cannot be launched at all.
 */
export async function runInPodman(spec: ContainerSpec): Promise<SandboxResult> {
  const caps = podmanCapabilities();
  assertPodmanAvailable(caps);
  if (spec.gpus.length > 0 && !caps.gpus) {
    throw new UserError(
      `This run asks for ${spec.gpus.length} GPU(s) but the podman sandbox cannot give GPUs here: ${caps.reason}.`,
      'generate a CDI spec (nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml) or use the bwrap sandbox',
    );
  }
  const podman = findExecutable('podman')!;
  const warnings: string[] = [];
  const user = caps.rootless
    ? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }
    : (spec.user ?? DEFAULT_CONTAINER_USER);
  if (caps.rootless && spec.user && spec.user.uid !== user.uid) {
    warnings.push(`rootless podman runs the command as uid ${user.uid} (keep-id), not ${spec.user.uid}`);
  }
  prepareBridgeSockets(bridgesOf(spec.network), user);
  const stale = await sweepStaleContainers(podman);
  if (stale.length > 0) warnings.push(`removed ${stale.length} container(s) left by ptb processes that died`);

  const name = spec.name ?? `ptb-${process.pid}-${++runCounter}-${Math.random().toString(36).slice(2, 8)}`;
  let parent: CgroupParent | null = null;
  if (caps.cgroupParent) {
    const base = ownMemoryGroup();
    if (base !== null) {
      try {
        parent = new CgroupParent(posix.join(base, `ptb-podman-${process.pid}-${runCounter}`));
      } catch (err) {
        warnings.push(
          `no cgroup parent for the container: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    }
  }
  const tracing = fileOpenTracing(spec, caps, warnings);
  const command = podmanRunArgs(spec, {
    ...defaultHost(name),
    ...(tracing?.runtime ? { runtime: tracing.runtime, annotations: tracing.annotations } : {}),
    remove: false,
    ...(parent ? { cgroupParent: parent.path } : {}),
  });

  const started = performance.now();
  const cap = spec.maxOutputBytes ?? 1 << 20;
  const capture = spec.captureOutput !== false;
  const stdout = new CappedSink(capture ? cap : 0);
  const stderr = new CappedSink(capture ? cap : 0);
  const stderrHead = new CappedSink(4096);

  installExitHook(podman);
  liveContainers.add(name);
  let child: ChildProcess;
  try {
    child = spawn(podman, command.args, { stdio: ['pipe', 'pipe', 'pipe'], env: command.env });
  } catch (err) {
    liveContainers.delete(name);
    await parent?.dispose();
    throw err;
  }

  let exited = false;
  let killTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  const killContainer = () => {
    void podmanCall(podman, ['kill', '--signal', 'KILL', name]);
  };
  // SIGTERM to every process of the container but its init and the bridge forwarder (kill -1 from
  // inside spares the caller and pid 1), then SIGKILL to the whole container after the grace.
  const stopContainer = () => {
    if (stopping) return;
    stopping = true;
    const grace = spec.killGraceMs ?? 0;
    if (grace <= 0) return killContainer();
    void podmanCall(podman, ['exec', name, '/bin/sh', '-c', 'kill -TERM -1']).then((result) => {
      if (result.code !== 0) void podmanCall(podman, ['kill', '--signal', 'TERM', name]);
    });
    killTimer = setTimeout(killContainer, grace);
  };
  const deadline = armDeadline({
    timeoutMs: spec.timeoutMs,
    signal: spec.signal,
    exited: () => exited,
    stop: stopContainer,
  });

  // Once the container runs: its init's host pid and cgroups for the monitor, and its OOM counter.
  let containerMemoryDir: string | null = null;
  let oomSeen = false;
  const watch = (async () => {
    for (let attempt = 0; attempt < 300 && !exited; attempt++) {
      const inspected = await podmanCall(
        podman,
        ['inspect', '--format', '{{.State.Pid}} {{.Id}}', name],
        10_000,
      );
      const [pid, id] = inspected.stdout.trim().split(' ');
      if (inspected.code === 0 && Number(pid) > 0 && id) {
        containerMemoryDir = parent?.containerMemoryDir(id) ?? null;
        // A deadline or abort that came while podman was still creating the container found nothing to stop.
        if (stopping) killContainer();
        try {
          spec.onSpawn?.({ pid: Number(pid), cgroups: parent?.dirs() ?? {} });
        } catch (err) {
          warnings.push(`onSpawn failed: ${err instanceof Error ? err.message : String(err)}`);
        }
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  const oomPoll = setInterval(() => {
    if (oomKillCount(containerMemoryDir) > 0) oomSeen = true;
  }, 500);

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
  const streamsDone = Promise.all([drainInto(child.stdout, stdout), drainInto(child.stderr, stderr)]);
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      child.once('error', (error) => resolve({ code: null, signal: null, error }));
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.stdin?.on('error', () => {
        // the command may exit without reading its input
      });
      if (spec.stdin !== undefined) child.stdin?.end(spec.stdin);
      else child.stdin?.end();
    },
  );
  exited = true;
  if (oomKillCount(containerMemoryDir) > 0) oomSeen = true;
  clearInterval(oomPoll);
  deadline.clear();
  if (killTimer) clearTimeout(killTimer);
  await watch;
  const fileOpensTraced = tracing ? await tracing.finish() : undefined;

  // The client is gone; the container may not be (a killed client leaves it running).
  const state = await podmanCall(podman, [
    'inspect',
    '--format',
    '{{.State.ExitCode}} {{.State.OOMKilled}} {{.State.Running}}',
    name,
  ]);
  const [stateExit, stateOom, running] = state.stdout.trim().split(' ');
  if (running === 'true')
    warnings.push('the podman client ended while its container still ran; the container was killed');
  await podmanCall(podman, ['rm', '--force', '--time', '0', name], 60_000);
  liveContainers.delete(name);
  await streamsDone;
  const peakMemoryBytes = parent?.peakMemoryBytes() ?? null;
  await parent?.dispose();
  if (exit.error) throw exit.error;

  const exitCode = exit.code ?? (state.code === 0 && stateExit !== undefined ? Number(stateExit) : null);
  const memoryLimit = spec.limits?.memoryBytes;
  // cgroup v1 hides OOM kills from podman; a SIGKILL ptb did not send, with the memory peak at the
  // limit, is the kernel's OOM killer too.
  const oomKilled =
    oomSeen ||
    stateOom === 'true' ||
    (exitCode === 137 &&
      !deadline.timedOut &&
      !deadline.aborted &&
      memoryLimit !== undefined &&
      peakMemoryBytes !== null &&
      peakMemoryBytes >= memoryLimit * 0.95);
  const head = stderrHead.bytes().toString('utf8');
  return {
    exitCode,
    signal: exit.signal,
    timedOut: deadline.timedOut,
    aborted: deadline.aborted,
    oomKilled,
    stdout: stdout.bytes(),
    stderr: capture ? stderr.bytes() : stderrHead.bytes(),
    stdoutTruncated: capture && stdout.truncated,
    stderrTruncated: capture && stderr.truncated,
    extraOutputs: [],
    durationMs: performance.now() - started,
    enforced: {
      memory: memoryLimit !== undefined,
      pids: spec.limits?.pids !== undefined,
      cpu: spec.limits?.cpus !== undefined,
      treeKill: true,
    },
    warnings,
    peakMemoryBytes,
    ...(fileOpensTraced !== undefined ? { fileOpensTraced } : {}),
    startFailed:
      ((exitCode === 125 || exitCode === 126 || exitCode === 127) && /^Error: /m.test(head)) ||
      // catatonit (--init) could not start the command.
      (exitCode === 1 && /^ERROR \(catatonit:\d+\): failed to exec pid1/m.test(head)) ||
      (exitCode === 125 && head.includes('ptb: the network bridge did not start')),
  };
}
