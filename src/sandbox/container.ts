/**
 * What the image-based sandboxes (podman, apptainer) run: a ContainerSpec. It says the same things as
 * bwrap's SandboxSpec (binds, environment, network bridges, limits, deadline, output streaming) but
 * the programs come from an image instead of the host, and GPUs are named by index rather than by
 * device node. `toContainerSpec` translates a SandboxSpec and refuses what a container cannot honour,
 * so a trial is never run with less isolation than it asked for.
 */
import { chownSync, readFileSync } from 'node:fs';
import { UserError } from '../core/errors.ts';
import { validateBridgeSockets } from './bridgeSockets.ts';
import type {
  SandboxBridge,
  SandboxMount,
  SandboxNetwork,
  SandboxProcessInfo,
  SandboxSpec,
} from './bwrap.ts';
import type { ResourceLimits } from './cgroup.ts';

export interface ContainerMount {
  /** Path on the host. */
  source: string;
  /** Path inside the container. */
  target: string;
  readOnly: boolean;
}

export interface ContainerTmpfs {
  path: string;
  sizeBytes?: number;
}

/** setrlimit values for the container's processes (soft = hard). */
export interface ContainerUlimits {
  openFiles?: number;
  processes?: number;
  fileSizeBytes?: number;
  coreBytes?: number;
  cpuSeconds?: number;
  addressSpaceBytes?: number;
}

export interface ContainerSpec {
  /** podman: an image reference (`localhost/ptb-agent:<digest>`); apptainer: a .sif path. */
  image: string;
  argv: readonly string[];
  /** Binds, applied parents first whatever their order here. */
  mounts: readonly ContainerMount[];
  /** Extra tmpfs mounts; /tmp is always a fresh tmpfs unless a bind targets /tmp. */
  tmpfs?: readonly ContainerTmpfs[];
  tmpSizeBytes?: number;
  /** The command's whole environment on top of the image's own (nothing from the host). */
  env: Readonly<Record<string, string>>;
  /** Working directory inside. */
  cwd: string;
  /** The bind that is $HOME (apptainer's --home); podman treats it as any other bind. */
  home?: string;
  network: SandboxNetwork;
  /** Node inside the image that runs the bridge forwarder (default: `node` on the image's PATH). */
  bridgeNode?: string;
  /** Host GPU indices the container gets (nvidia-smi numbering); inside they are numbered from 0. */
  gpus: readonly number[];
  /** Other device nodes passed through. */
  devices?: readonly string[];
  limits?: ResourceLimits;
  ulimits?: ContainerUlimits;
  /** Host uid/gid the command runs as (default 1000:1000, as bwrap's sandbox user). */
  user?: { uid: number; gid: number };
  hostname?: string;
  /**
   * `read-only` (default): only binds and tmpfs take writes. `ephemeral`: the image's filesystem is
   * writable and thrown away with the container (the reference's `--writable-tmpfs`, so that
   * `uv pip install --system` works).
   */
  rootfs?: 'read-only' | 'ephemeral';
  /** Size of /dev/shm (podman's default is 64 MiB; torch data loaders and NCCL want more). */
  shmSizeBytes?: number;
  timeoutMs?: number;
  /** SIGTERM to every process at the deadline or on abort, SIGKILL this much later (default 0). */
  killGraceMs?: number;
  stdin?: string | Uint8Array;
  maxOutputBytes?: number;
  captureOutput?: boolean;
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  onSpawn?: (info: SandboxProcessInfo) => void;
  signal?: AbortSignal;
  /** Container name (podman); generated when absent. */
  name?: string;
  /** Record the file opens of everything inside with strace from the host (podman; see runtimeTrace.ts). */
  traceFileOpens?: { outputPath: string };
}

export const DEFAULT_CONTAINER_USER = { uid: 1000, gid: 1000 } as const;

function mountOf(entry: string | SandboxMount, readOnly: boolean): ContainerMount {
  return typeof entry === 'string'
    ? { source: entry, target: entry, readOnly }
    : { source: entry.source, target: entry.target ?? entry.source, readOnly };
}

/** Parents before children, stable otherwise: a read-only file inside a writable directory stays visible. */
export function orderMounts(mounts: readonly ContainerMount[]): ContainerMount[] {
  return mounts
    .map((mount, order) => ({ mount, order, depth: mount.target.split('/').filter(Boolean).length }))
    .sort((a, b) => a.depth - b.depth || a.order - b.order)
    .map((entry) => entry.mount);
}

export interface ToContainerOptions {
  image: string;
  /** Host GPU indices; required when the spec binds NVIDIA device nodes. */
  gpuIndices?: readonly number[];
  user?: { uid: number; gid: number };
  /** Node inside the image for the bridge forwarder (the spec's bridgeNode is a host path). */
  bridgeNode?: string;
  /** Drop binds whose source is one of these host paths (host Python, host node: the image has its own). */
  dropSources?: readonly string[];
  rootfs?: ContainerSpec['rootfs'];
  shmSizeBytes?: number;
}

const NVIDIA_DEVICE = /(^|\/)nvidia[^/]*$/;

/**
 * A bwrap SandboxSpec as a ContainerSpec. Throws a UserError for what a container cannot give the
 * same way (a seccomp deny-list, extra output pipes, NVIDIA device nodes without GPU indices) instead
 * of quietly running with less.
 */
export function toContainerSpec(spec: SandboxSpec, options: ToContainerOptions): ContainerSpec {
  if (spec.denySyscalls && spec.denySyscalls.length > 0) {
    throw new UserError(
      'This run asks for a seccomp deny-list, which the container sandboxes do not apply.',
      'use the bwrap sandbox for it',
    );
  }
  if (spec.extraOutputFds) {
    throw new UserError(
      'This run asks for extra output pipes, which the container sandboxes do not pass through.',
      'use the bwrap sandbox for it',
    );
  }
  const devices = spec.devices ?? [];
  const nvidia = devices.filter((device) => NVIDIA_DEVICE.test(device));
  if (nvidia.length > 0 && !options.gpuIndices?.length) {
    throw new UserError(
      `This run binds NVIDIA device nodes (${nvidia.join(', ')}) but names no GPU indices for the container.`,
      'pass the GPU indices the trial was given (gpuIndices)',
    );
  }
  const dropped = new Set(options.dropSources ?? []);
  const mounts = [
    ...(spec.readOnlyBinds ?? []).map((entry) => mountOf(entry, true)),
    ...(spec.writableBinds ?? []).map((entry) => mountOf(entry, false)),
    ...(spec.maskedFiles ?? []).map((file) => ({ source: '/dev/null', target: file, readOnly: true })),
  ].filter((mount) => !dropped.has(mount.source));
  const home = spec.env?.HOME;
  const rlimits = spec.rlimits ?? {};
  const ulimits: ContainerUlimits = {
    ...(rlimits.openFiles !== undefined ? { openFiles: rlimits.openFiles } : {}),
    ...(rlimits.fileSizeBytes !== undefined ? { fileSizeBytes: rlimits.fileSizeBytes } : {}),
    ...(rlimits.coreBytes !== undefined ? { coreBytes: rlimits.coreBytes } : {}),
    ...(rlimits.cpuSeconds !== undefined ? { cpuSeconds: rlimits.cpuSeconds } : {}),
    ...(rlimits.addressSpaceBytes !== undefined ? { addressSpaceBytes: rlimits.addressSpaceBytes } : {}),
  };
  return {
    image: options.image,
    argv: spec.argv,
    mounts: orderMounts(mounts),
    tmpfs: (spec.tmpfs ?? []).map((entry) => (typeof entry === 'string' ? { path: entry } : entry)),
    ...(spec.tmpSizeBytes !== undefined ? { tmpSizeBytes: spec.tmpSizeBytes } : {}),
    env: { ...(spec.env ?? {}) },
    cwd: spec.cwd ?? '/tmp',
    ...(home && mounts.some((mount) => mount.target === home && !mount.readOnly) ? { home } : {}),
    network: spec.network ?? 'none',
    ...(options.bridgeNode ? { bridgeNode: options.bridgeNode } : {}),
    gpus: [...(options.gpuIndices ?? [])],
    devices: devices.filter((device) => !NVIDIA_DEVICE.test(device)),
    ...(spec.limits ? { limits: { ...spec.limits } } : {}),
    ulimits,
    user: options.user ?? {
      uid: spec.sandboxUid ?? DEFAULT_CONTAINER_USER.uid,
      gid: spec.sandboxUid ?? DEFAULT_CONTAINER_USER.gid,
    },
    ...(spec.hostname !== undefined ? { hostname: spec.hostname } : {}),
    rootfs: options.rootfs ?? 'read-only',
    ...(options.shmSizeBytes !== undefined ? { shmSizeBytes: options.shmSizeBytes } : {}),
    ...(spec.timeoutMs !== undefined ? { timeoutMs: spec.timeoutMs } : {}),
    ...(spec.killGraceMs !== undefined ? { killGraceMs: spec.killGraceMs } : {}),
    ...(spec.stdin !== undefined ? { stdin: spec.stdin } : {}),
    ...(spec.maxOutputBytes !== undefined ? { maxOutputBytes: spec.maxOutputBytes } : {}),
    ...(spec.captureOutput !== undefined ? { captureOutput: spec.captureOutput } : {}),
    ...(spec.onOutput ? { onOutput: spec.onOutput } : {}),
    ...(spec.onSpawn ? { onSpawn: spec.onSpawn } : {}),
    ...(spec.signal ? { signal: spec.signal } : {}),
    ...(spec.traceFileOpens ? { traceFileOpens: spec.traceFileOpens } : {}),
  };
}

/** Bridges of a network setting (none for `none`). */
export function bridgesOf(network: SandboxNetwork): readonly SandboxBridge[] {
  return network === 'none' ? [] : network.bridges;
}

/**
 * Bridge sockets must exist, be sockets, use distinct ports, and be connectable by the container's
 * host user: when ptb is root, a socket it made is handed to that user (the same as bwrap does).
 */
export function prepareBridgeSockets(
  bridges: readonly SandboxBridge[],
  user: { uid: number; gid: number },
): void {
  const stats = validateBridgeSockets(bridges);
  bridges.forEach((bridge, i) => {
    const stat = stats[i]!;
    if (process.getuid?.() === 0 && stat.uid !== user.uid) chownSync(bridge.socketPath, user.uid, user.gid);
  });
}

/** Bind paths a container runtime cannot express (podman's `:` and `,` separators, apptainer's too). */
export function assertPlainPath(path: string, what: string): void {
  if (!path.startsWith('/')) throw new UserError(`${what} ${path} is not an absolute path.`);
  if (/[:,\n]/.test(path)) {
    throw new UserError(
      `${what} ${path} contains ':' , ',' or a newline, which container bind syntax cannot carry.`,
      'rename the directory or choose another location',
    );
  }
}

/**
 * This process's own rlimits (soft, hard) for open files and processes. A container may not raise
 * them (root cannot here either), and podman's defaults are higher than many hosts allow, so the
 * container gets what ptb itself has unless the spec asks for less.
 */
export function ownRlimits(limitsText?: string): {
  openFiles: [number, number];
  processes: [number, number];
} {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      text = '';
    }
  }
  const pair = (label: string, fallback: [number, number]): [number, number] => {
    const match = new RegExp(`^${label}\\s+(\\S+)\\s+(\\S+)`, 'm').exec(text ?? '');
    if (!match) return fallback;
    const value = (field: string) => (field === 'unlimited' ? -1 : Number(field));
    return [value(match[1]!), value(match[2]!)];
  };
  return { openFiles: pair('Max open files', [1024, 1024]), processes: pair('Max processes', [4096, 4096]) };
}
