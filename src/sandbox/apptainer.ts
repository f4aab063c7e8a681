/**
 * The apptainer sandbox, as the reference runs its agents (`apptainer exec --nv -c --bind … --home …
 * --pwd … --writable-tmpfs IMAGE.sif`), made stricter: a clean environment (`--cleanenv`, values passed
 * as APPTAINERENV_* so that they never appear on a command line), private pid and IPC namespaces, and
 * `--net --network none` (the one network type unprivileged users may request) with the harness's
 * sockets bridged onto the container's loopback by the same forwarder as bwrap and podman.
 *
 * Apptainer cannot be installed on ptb's development machines: command construction is tested, a real
 * run is not (see README, Sandboxes). GPUs: `--nv` binds every NVIDIA device node and driver library;
 * the trial's GPUs are selected with CUDA_VISIBLE_DEVICES, as on the reference's Slurm cluster, where
 * Slurm's device cgroup hides the others.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { bridgeSocketTarget, bridgeWrapper, type SandboxResult } from './bwrap.ts';
import type { SandboxCapabilities } from './capabilities.ts';
import {
  assertPlainPath,
  bridgesOf,
  type ContainerSpec,
  DEFAULT_CONTAINER_USER,
  prepareBridgeSockets,
} from './container.ts';
import { groupSandboxResult, passedThrough, runProcessGroup } from './processGroup.ts';

export interface ApptainerProbe {
  /** Path of `apptainer` (or `singularity`), or null. */
  apptainer: string | null;
  version: string | null;
  root: boolean;
  /** /proc/sys/user/max_net_namespaces (0: sites that disable network namespaces), null when unknown. */
  maxNetNamespaces: number | null;
  nvidiaDriver: boolean;
}

export interface ApptainerCapabilities extends SandboxCapabilities {
  version: string | null;
}

function findExecutable(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/bin', '/usr/local/bin'])) {
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

export function probeApptainer(): ApptainerProbe {
  const apptainer = findExecutable('apptainer') ?? findExecutable('singularity');
  let maxNetNamespaces: number | null = null;
  try {
    maxNetNamespaces = Number(readFileSync('/proc/sys/user/max_net_namespaces', 'utf8').trim());
  } catch {
    // not Linux, or hidden
  }
  const probe: ApptainerProbe = {
    apptainer,
    version: null,
    root: process.getuid?.() === 0,
    maxNetNamespaces,
    nvidiaDriver: existsSync('/dev/nvidiactl'),
  };
  if (apptainer) {
    const result = spawnSync(apptainer, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    probe.version = /(\d+\.\d+\.\d+\S*)/.exec(result.stdout ?? '')?.[1] ?? null;
  }
  return probe;
}

/** What apptainer can give, from a probe (pure). */
export function apptainerCapabilitiesFrom(probe: ApptainerProbe): ApptainerCapabilities {
  if (!probe.apptainer) {
    return {
      available: false,
      gpus: false,
      networkPolicy: 'host',
      environment: 'image',
      version: null,
      reason: 'apptainer was not found on PATH (see apptainer.org for packages)',
    };
  }
  // Unprivileged `--net` needs network namespaces, which some sites disable (max_net_namespaces = 0).
  const netIsolation = probe.root || probe.maxNetNamespaces === null || probe.maxNetNamespaces > 0;
  return {
    available: true,
    gpus: probe.nvidiaDriver,
    networkPolicy: netIsolation ? 'bridged' : 'host',
    environment: 'image',
    version: probe.version,
    reason: [
      `apptainer ${probe.version ?? '?'}`,
      probe.nvidiaDriver ? 'GPUs through --nv' : 'no NVIDIA driver',
      netIsolation
        ? 'private network (--net --network none)'
        : 'network namespaces are disabled here (user.max_net_namespaces = 0)',
    ].join('; '),
  };
}

let cachedCapabilities: ApptainerCapabilities | undefined;

export function apptainerCapabilities(): ApptainerCapabilities {
  cachedCapabilities ??= apptainerCapabilitiesFrom(probeApptainer());
  return cachedCapabilities;
}

export interface ApptainerCommand {
  /** Arguments after `apptainer`. */
  args: string[];
  /** Environment of the apptainer process: PATH/HOME for apptainer itself, APPTAINERENV_* for the container. */
  env: Record<string, string>;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `apptainer exec …` for a spec. The home bind becomes `--home`, the rest `--bind src:dst:ro|rw`;
 * /tmp is apptainer's own private one (`--contain`) unless a bind targets it.
 */
export function apptainerExecArgs(
  spec: ContainerSpec,
  hostEnv: NodeJS.ProcessEnv = process.env,
  asRoot: boolean = process.getuid?.() === 0,
): ApptainerCommand {
  if (spec.tmpfs && spec.tmpfs.length > 0) {
    throw new UserError(
      `The apptainer sandbox cannot mount extra tmpfs (${spec.tmpfs.map((t) => t.path).join(', ')}).`,
      'bind a scratch directory there instead, or use the bwrap or podman sandbox',
    );
  }
  const args = ['exec', '--contain', '--cleanenv', '--pid', '--ipc', '--no-eval'];
  if (asRoot) {
    // Started by root, apptainer would run the command as root: drop to the sandbox user and every privilege.
    const user = spec.user ?? DEFAULT_CONTAINER_USER;
    args.push('--security', `uid:${user.uid},gid:${user.gid}`, '--no-privs');
  }
  if (spec.gpus.length > 0) args.push('--nv');
  const bridges = bridgesOf(spec.network);
  // Always a private network: the bridges (if any) are its only ways out.
  args.push('--net', '--network', 'none');
  if ((spec.rootfs ?? 'read-only') === 'ephemeral') args.push('--writable-tmpfs');
  if (spec.hostname !== undefined) args.push('--hostname', spec.hostname);
  const homeMount = spec.home
    ? spec.mounts.find((mount) => mount.target === spec.home && !mount.readOnly)
    : undefined;
  if (homeMount) {
    assertPlainPath(homeMount.source, 'home');
    args.push('--home', `${homeMount.source}:${homeMount.target}`);
  } else {
    args.push('--no-home');
  }
  for (const mount of spec.mounts) {
    if (mount === homeMount) continue;
    assertPlainPath(mount.source, 'bind source');
    assertPlainPath(mount.target, 'bind target');
    args.push('--bind', `${mount.source}:${mount.target}:${mount.readOnly ? 'ro' : 'rw'}`);
  }
  for (const bridge of bridges) {
    assertPlainPath(bridge.socketPath, 'bridge socket');
    args.push('--bind', `${bridge.socketPath}:${bridgeSocketTarget(bridge)}:ro`);
  }
  for (const device of spec.devices ?? []) {
    assertPlainPath(device, 'device');
    args.push('--bind', `${device}:${device}:rw`);
  }
  const limits = spec.limits ?? {};
  if (limits.memoryBytes !== undefined) {
    const bytes = String(Math.floor(limits.memoryBytes));
    args.push('--memory', bytes, '--memory-swap', bytes);
  }
  if (limits.pids !== undefined) args.push('--pids-limit', String(Math.max(1, Math.floor(limits.pids))));
  if (limits.cpus !== undefined) args.push('--cpus', String(limits.cpus));
  args.push('--pwd', spec.cwd, spec.image);
  if (bridges.length > 0) args.push(...bridgeWrapper(bridges, spec.bridgeNode ?? 'node'));
  args.push(...spec.argv);

  const env: Record<string, string> = {};
  for (const key of ['PATH', 'HOME', 'USER', 'TMPDIR', 'XDG_RUNTIME_DIR']) {
    const value = hostEnv[key];
    if (value !== undefined) env[key] = value;
  }
  for (const [key, value] of Object.entries(hostEnv)) {
    if (value !== undefined && /^APPTAINER_(CACHEDIR|TMPDIR|CONFIGDIR)$/.test(key)) env[key] = value;
  }
  const containerEnv: Record<string, string> = { ...spec.env };
  if (spec.gpus.length > 0) containerEnv.CUDA_VISIBLE_DEVICES = spec.gpus.join(',');
  for (const [key, value] of Object.entries(containerEnv)) {
    if (!ENV_NAME.test(key)) {
      throw new UserError(`The environment variable name '${key}' cannot be passed into a container.`);
    }
    env[`APPTAINERENV_${key}`] = value;
  }
  return { args, env };
}

export function assertApptainerAvailable(caps: ApptainerCapabilities = apptainerCapabilities()): void {
  if (!caps.available) {
    throw new UserError(
      `The apptainer sandbox is not available: ${caps.reason}.`,
      'install apptainer, or use the bwrap or podman sandbox',
    );
  }
}

/**
 * Run one command with apptainer, as the leader of its own process group: TERM to the group at the
 * deadline, KILL after the grace (with --pid, the container's init dies with it and takes the rest).
 */
export async function runInApptainer(spec: ContainerSpec): Promise<SandboxResult> {
  const caps = apptainerCapabilities();
  assertApptainerAvailable(caps);
  if (spec.gpus.length > 0 && !caps.gpus) {
    throw new UserError(
      `This run asks for ${spec.gpus.length} GPU(s) but apptainer cannot give GPUs here: ${caps.reason}.`,
    );
  }
  if (caps.networkPolicy !== 'bridged') {
    throw new UserError(
      `The apptainer sandbox cannot isolate the network here: ${caps.reason}.`,
      'use the bwrap or podman sandbox',
    );
  }
  const apptainer = probeApptainer().apptainer!;
  const asRoot = process.getuid?.() === 0;
  prepareBridgeSockets(
    bridgesOf(spec.network),
    asRoot
      ? (spec.user ?? DEFAULT_CONTAINER_USER)
      : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
  );
  const command = apptainerExecArgs(spec, process.env, asRoot);
  // apptainer has no per-run rlimits or tmpfs sizes: the command inherits ptb's own rlimits.
  const warnings: string[] = [];
  if (spec.ulimits && Object.keys(spec.ulimits).length > 0)
    warnings.push('rlimits are inherited from ptb (apptainer sets none)');
  if (spec.tmpSizeBytes !== undefined) warnings.push('the /tmp size cap is not applied (apptainer)');
  if (spec.shmSizeBytes !== undefined) warnings.push("/dev/shm is the host's (apptainer)");
  const run = await runProcessGroup({
    command: apptainer,
    args: command.args,
    env: command.env,
    ...passedThrough(spec),
  });
  return groupSandboxResult(run, {
    enforced: {
      memory: spec.limits?.memoryBytes !== undefined,
      pids: spec.limits?.pids !== undefined,
      cpu: spec.limits?.cpus !== undefined,
      treeKill: true,
    },
    warnings,
    startFailed:
      (run.exitCode === 255 && /FATAL:/.test(run.stderrHead)) ||
      (run.exitCode === 125 && run.stderrHead.includes('ptb: the network bridge did not start')),
  });
}
