import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import { BRIDGE_DIR, type SandboxSpec } from '../../src/sandbox/bwrap.ts';
import { type ContainerSpec, ownRlimits, toContainerSpec } from '../../src/sandbox/container.ts';
import {
  type PodmanHost,
  type PodmanProbe,
  podmanCapabilitiesFrom,
  podmanRunArgs,
} from '../../src/sandbox/podman.ts';

const host = (over: Partial<PodmanHost> = {}): PodmanHost => ({
  name: 'ptb-test-1',
  runtime: 'runc',
  gpuMode: null,
  rootless: false,
  remove: true,
  ownerPid: 4242,
  ownLimits: { openFiles: [20000, 20000], processes: [96364, 96364] },
  hostEnv: {
    PATH: '/usr/bin:/bin',
    HOME: '/root',
    SECRET_ON_HOST: 'host-only',
    XDG_RUNTIME_DIR: '/run/user/0',
  },
  invoker: { uid: 0, gid: 0 },
  ...over,
});

const base = (over: Partial<ContainerSpec> = {}): ContainerSpec => ({
  image: 'localhost/ptb-agent:abc',
  argv: ['bash', '/home/agent/agent_solve.sh'],
  mounts: [],
  env: {},
  cwd: '/home/agent/task',
  network: 'none',
  gpus: [],
  ...over,
});

/** The value following a flag, for every occurrence. */
function valuesOf(args: readonly string[], flag: string): string[] {
  return args.flatMap((arg, index) => (arg === flag ? [args[index + 1]!] : []));
}

describe('podmanRunArgs', () => {
  it('isolates by default: no network, read-only image, uid 1000, no capabilities, no privilege gain', () => {
    const { args } = podmanRunArgs(base(), host());
    expect(args.slice(0, 2)).toEqual(['run', '--rm']);
    expect(valuesOf(args, '--name')).toEqual(['ptb-test-1']);
    expect(valuesOf(args, '--label')).toEqual(['ptb.sandbox=1', 'ptb.owner=4242']);
    expect(valuesOf(args, '--runtime')).toEqual(['runc']);
    expect(valuesOf(args, '--network')).toEqual(['none']);
    expect(args).toContain('--http-proxy=false');
    expect(valuesOf(args, '--pull')).toEqual(['never']);
    expect(args).toContain('--init');
    expect(args).toContain('--read-only');
    expect(args).toContain('--read-only-tmpfs=false');
    expect(valuesOf(args, '--tmpfs')).toEqual(['/tmp:rw,nosuid,nodev,mode=1777']);
    expect(valuesOf(args, '--userns')).toEqual(['host']);
    expect(valuesOf(args, '--user')).toEqual(['1000:1000']);
    expect(valuesOf(args, '--cap-drop')).toEqual(['all']);
    expect(valuesOf(args, '--security-opt')).toEqual(['no-new-privileges']);
    expect(valuesOf(args, '--workdir')).toEqual(['/home/agent/task']);
    // The image, then the command, at the end.
    expect(args.slice(-3)).toEqual(['localhost/ptb-agent:abc', 'bash', '/home/agent/agent_solve.sh']);
    expect(args).not.toContain('--interactive');
    expect(args).not.toContain('--timeout');
  });

  it('keeps the container for inspection when told (runInPodman removes it itself)', () => {
    expect(podmanRunArgs(base(), host({ remove: false })).args).not.toContain('--rm');
  });

  it('uses podman’s default runtime when runc is absent', () => {
    expect(podmanRunArgs(base(), host({ runtime: null })).args).not.toContain('--runtime');
  });

  it('binds read-only and writable paths, and skips the /tmp tmpfs when a bind is /tmp', () => {
    const { args } = podmanRunArgs(
      base({
        mounts: [
          { source: '/srv/work', target: '/home/agent', readOnly: false },
          { source: '/srv/tmp', target: '/tmp', readOnly: false },
          { source: '/srv/task/evaluate.py', target: '/home/agent/task/evaluate.py', readOnly: true },
        ],
        tmpfs: [{ path: '/scratch', sizeBytes: 1 << 20 }],
      }),
      host(),
    );
    expect(valuesOf(args, '--volume')).toEqual([
      '/srv/work:/home/agent:rw',
      '/srv/tmp:/tmp:rw',
      '/srv/task/evaluate.py:/home/agent/task/evaluate.py:ro',
    ]);
    expect(valuesOf(args, '--tmpfs')).toEqual(['/scratch:rw,nosuid,nodev,size=1048576']);
  });

  it('sizes /tmp and makes the image writable only when asked (ephemeral rootfs)', () => {
    const { args } = podmanRunArgs(base({ tmpSizeBytes: 5_000_000, rootfs: 'ephemeral' }), host());
    expect(valuesOf(args, '--tmpfs')).toEqual(['/tmp:rw,nosuid,nodev,mode=1777,size=5000000']);
    expect(args).not.toContain('--read-only');
  });

  it('passes environment values by name only, so they never appear on the command line', () => {
    const { args, env } = podmanRunArgs(
      base({ env: { ANTHROPIC_API_KEY: 'relay-token-123', HOME: '/home/agent', PATH: '/opt/bin:/usr/bin' } }),
      host(),
    );
    expect(args.join(' ')).not.toContain('relay-token-123');
    expect(valuesOf(args, '--env')).toEqual([
      'ANTHROPIC_API_KEY',
      'HOME=/home/agent',
      'PATH=/opt/bin:/usr/bin',
    ]);
    // The client keeps its own PATH/HOME (podman needs them) and carries the container's values.
    expect(env.ANTHROPIC_API_KEY).toBe('relay-token-123');
    expect(env.PATH).toBe('/usr/bin:/bin');
    expect(env.HOME).toBe('/root');
    expect(env.XDG_RUNTIME_DIR).toBe('/run/user/0');
    // Nothing else from the host environment reaches podman (nor the container).
    expect(env.SECRET_ON_HOST).toBeUndefined();
  });

  it('refuses environment names podman would read as patterns', () => {
    expect(() => podmanRunArgs(base({ env: { 'BAD*': 'x' } }), host())).toThrow(UserError);
  });

  it('sets pids, memory (no swap beyond it) and CPU limits', () => {
    const { args } = podmanRunArgs(base({ limits: { pids: 512, memoryBytes: 2 ** 30, cpus: 1.5 } }), host());
    expect(valuesOf(args, '--pids-limit')).toEqual(['512']);
    expect(valuesOf(args, '--memory')).toEqual(['1073741824b']);
    expect(valuesOf(args, '--memory-swap')).toEqual(['1073741824b']);
    expect(valuesOf(args, '--cpus')).toEqual(['1.5']);
  });

  it('always sets nofile/nproc ulimits within what ptb and podman themselves have', () => {
    const { args } = podmanRunArgs(base(), host());
    // nofile: ptb's own; nproc: capped at podman's own 32768.
    expect(valuesOf(args, '--ulimit')).toEqual(['nofile=20000:20000', 'nproc=32768:32768']);
    const asked = podmanRunArgs(
      base({
        ulimits: {
          openFiles: 1_000_000,
          processes: 100,
          fileSizeBytes: 1e9,
          coreBytes: 0,
          cpuSeconds: 60,
          addressSpaceBytes: 2e9,
        },
      }),
      host(),
    ).args;
    expect(valuesOf(asked, '--ulimit')).toEqual([
      'nofile=20000:20000',
      'nproc=100:100',
      'fsize=1000000000:1000000000',
      'core=0:0',
      'cpu=60:60',
      'as=2000000000:2000000000',
    ]);
  });

  it('maps GPUs to CDI devices, or to the NVIDIA hook’s variables', () => {
    const cdi = podmanRunArgs(base({ gpus: [2, 3] }), host({ gpuMode: 'cdi' }));
    expect(valuesOf(cdi.args, '--device')).toEqual(['nvidia.com/gpu=2', 'nvidia.com/gpu=3']);
    const hook = podmanRunArgs(base({ gpus: [1] }), host({ gpuMode: 'hook' }));
    expect(valuesOf(hook.args, '--device')).toEqual([]);
    expect(valuesOf(hook.args, '--env')).toEqual(
      expect.arrayContaining(['NVIDIA_VISIBLE_DEVICES', 'NVIDIA_DRIVER_CAPABILITIES']),
    );
    expect(hook.env.NVIDIA_VISIBLE_DEVICES).toBe('1');
    expect(() => podmanRunArgs(base({ gpus: [0] }), host({ gpuMode: null }))).toThrow(/no NVIDIA CDI spec/);
  });

  it('passes other devices, hostname, shm size, cgroup parent and stdin', () => {
    const { args } = podmanRunArgs(
      base({ devices: ['/dev/fuse'], hostname: 'trial', shmSizeBytes: 2 ** 33, stdin: 'hi' }),
      host({ cgroupParent: '/process_api/x/ptb-podman-1-1' }),
    );
    expect(valuesOf(args, '--device')).toEqual(['/dev/fuse']);
    expect(valuesOf(args, '--hostname')).toEqual(['trial']);
    expect(valuesOf(args, '--shm-size')).toEqual(['8589934592b']);
    expect(valuesOf(args, '--cgroup-parent')).toEqual(['/process_api/x/ptb-podman-1-1']);
    expect(args).toContain('--interactive');
  });

  it('bridges each harness socket into the container and runs the forwarder with the image’s node', () => {
    const { args } = podmanRunArgs(
      base({
        network: {
          bridges: [
            { listenPort: 9001, socketPath: '/run/ptb-x/proxy.sock' },
            { listenPort: 9002, socketPath: '/run/ptb-x/relay.sock' },
          ],
        },
      }),
      host(),
    );
    expect(valuesOf(args, '--network')).toEqual(['none']);
    expect(valuesOf(args, '--volume')).toEqual([
      `/run/ptb-x/proxy.sock:${BRIDGE_DIR}/9001.sock:ro`,
      `/run/ptb-x/relay.sock:${BRIDGE_DIR}/9002.sock:ro`,
    ]);
    const image = args.indexOf('localhost/ptb-agent:abc');
    const after = args.slice(image + 1);
    expect(after[0]).toBe('/bin/sh');
    expect(after[2]).toContain('--input-type=module');
    expect(after.slice(3, 8)).toEqual([
      'ptb-bridge',
      'node',
      '2',
      `9001=${BRIDGE_DIR}/9001.sock`,
      `9002=${BRIDGE_DIR}/9002.sock`,
    ]);
    expect(after.slice(-2)).toEqual(['bash', '/home/agent/agent_solve.sh']);
  });

  it('sets a backstop --timeout a minute past the deadline and its grace', () => {
    const { args } = podmanRunArgs(base({ timeoutMs: 3_600_000, killGraceMs: 30_000 }), host());
    expect(valuesOf(args, '--timeout')).toEqual([String(3600 + 30 + 60)]);
  });

  it('maps the invoking user with keep-id under rootless podman', () => {
    const { args } = podmanRunArgs(
      base({ user: { uid: 1000, gid: 1000 } }),
      host({ rootless: true, invoker: { uid: 1234, gid: 99 } }),
    );
    expect(valuesOf(args, '--userns')).toEqual(['keep-id']);
    expect(valuesOf(args, '--user')).toEqual(['1234:99']);
  });

  it('refuses paths that bind syntax cannot carry', () => {
    expect(() =>
      podmanRunArgs(base({ mounts: [{ source: '/srv/a:b', target: '/x', readOnly: true }] }), host()),
    ).toThrow(/bind syntax/);
    expect(() =>
      podmanRunArgs(base({ mounts: [{ source: 'relative', target: '/x', readOnly: true }] }), host()),
    ).toThrow(/absolute/);
  });
});

const probe = (over: Partial<PodmanProbe> = {}): PodmanProbe => ({
  podman: '/usr/bin/podman',
  version: '4.3.1',
  infoError: null,
  ociRuntime: 'runc',
  cgroupVersion: 'v1',
  cgroupManager: 'cgroupfs',
  rootless: false,
  runc: '/usr/sbin/runc',
  init: '/usr/bin/catatonit',
  cdiSpecs: [],
  nvidiaHooks: [],
  nvidiaDriver: false,
  ...over,
});

describe('podman capabilities', () => {
  it('is unavailable without podman, or when podman info fails, and says why', () => {
    const missing = podmanCapabilitiesFrom(probe({ podman: null }));
    expect(missing.available).toBe(false);
    expect(missing.reason).toMatch(/podman was not found/);
    const broken = podmanCapabilitiesFrom(probe({ infoError: 'cannot connect' }));
    expect(broken.available).toBe(false);
    expect(broken.reason).toMatch(/podman info failed: cannot connect/);
  });

  it('needs catatonit for --init', () => {
    const caps = podmanCapabilitiesFrom(probe({ init: null }));
    expect(caps.available).toBe(false);
    expect(caps.reason).toMatch(/apt-get install catatonit/);
  });

  it('needs runc where crun meets cgroup v1', () => {
    const crunOnly = podmanCapabilitiesFrom(probe({ runc: null, ociRuntime: 'crun' }));
    expect(crunOnly.available).toBe(false);
    expect(crunOnly.reason).toMatch(/install runc/);
    const withRunc = podmanCapabilitiesFrom(probe({ ociRuntime: 'crun' }));
    expect(withRunc.available).toBe(true);
    expect(withRunc.runtime).toBe('runc');
  });

  it('offers GPUs only with a driver and a CDI spec or the NVIDIA hook', () => {
    expect(podmanCapabilitiesFrom(probe()).gpus).toBe(false);
    const noSpec = podmanCapabilitiesFrom(probe({ nvidiaDriver: true }));
    expect(noSpec.gpus).toBe(false);
    expect(noSpec.reason).toMatch(/nvidia-ctk cdi generate/);
    const cdi = podmanCapabilitiesFrom(probe({ nvidiaDriver: true, cdiSpecs: ['/etc/cdi/nvidia.yaml'] }));
    expect([cdi.gpus, cdi.gpuMode]).toEqual([true, 'cdi']);
    const hook = podmanCapabilitiesFrom(
      probe({ nvidiaDriver: true, nvidiaHooks: ['/usr/share/containers/oci/hooks.d/oci-nvidia-hook.json'] }),
    );
    expect([hook.gpus, hook.gpuMode]).toEqual([true, 'hook']);
  });

  it('bridges the network, runs the image’s programs, and uses a cgroup parent only as root on cgroupfs v1', () => {
    const caps = podmanCapabilitiesFrom(probe());
    expect([caps.networkPolicy, caps.environment, caps.cgroupParent]).toEqual(['bridged', 'image', true]);
    expect(podmanCapabilitiesFrom(probe({ cgroupVersion: 'v2' })).cgroupParent).toBe(false);
    expect(podmanCapabilitiesFrom(probe({ rootless: true })).cgroupParent).toBe(false);
  });
});

describe('toContainerSpec', () => {
  const spec: SandboxSpec = {
    argv: ['bash', 'run.sh'],
    readOnlyBinds: ['/opt/data', { source: '/srv/ptb', target: '/opt/ptb' }, { source: '/root/.pyenv' }],
    writableBinds: [
      { source: '/srv/home', target: '/home/agent' },
      { source: '/srv/tmp', target: '/tmp' },
    ],
    maskedFiles: ['/opt/ptb/secret'],
    env: { HOME: '/home/agent', FOO: 'bar' },
    cwd: '/home/agent/task',
    network: { bridges: [{ listenPort: 9000, socketPath: '/run/p.sock' }] },
    bridgeNode: '/usr/local/bin/node-on-host',
    timeoutMs: 1000,
    killGraceMs: 500,
    limits: { pids: 10, memoryBytes: 1 << 30 },
    rlimits: { openFiles: 512, coreBytes: 0 },
    devices: ['/dev/nvidia0', '/dev/nvidiactl', '/dev/fuse'],
    hostname: 'h',
    tmpSizeBytes: 1 << 20,
    captureOutput: false,
  };

  it('carries binds (parents first), env, cwd, network, limits, deadline and GPUs', () => {
    const c = toContainerSpec(spec, {
      image: 'img',
      gpuIndices: [3],
      dropSources: ['/root/.pyenv'],
      bridgeNode: '/usr/local/bin/node',
    });
    expect(c.mounts).toEqual([
      { source: '/srv/tmp', target: '/tmp', readOnly: false },
      { source: '/opt/data', target: '/opt/data', readOnly: true },
      { source: '/srv/ptb', target: '/opt/ptb', readOnly: true },
      { source: '/srv/home', target: '/home/agent', readOnly: false },
      { source: '/dev/null', target: '/opt/ptb/secret', readOnly: true },
    ]);
    expect(c.home).toBe('/home/agent');
    expect(c.env).toEqual({ HOME: '/home/agent', FOO: 'bar' });
    expect(c.cwd).toBe('/home/agent/task');
    expect(c.network).toEqual(spec.network);
    expect(c.bridgeNode).toBe('/usr/local/bin/node');
    expect(c.gpus).toEqual([3]);
    expect(c.devices).toEqual(['/dev/fuse']);
    expect(c.limits).toEqual({ pids: 10, memoryBytes: 1 << 30 });
    expect(c.ulimits).toEqual({ openFiles: 512, coreBytes: 0 });
    expect([c.timeoutMs, c.killGraceMs, c.hostname, c.tmpSizeBytes, c.captureOutput]).toEqual([
      1000,
      500,
      'h',
      1 << 20,
      false,
    ]);
    expect(c.user).toEqual({ uid: 1000, gid: 1000 });
    expect(c.rootfs).toBe('read-only');
  });

  it('refuses what a container cannot honour instead of dropping it', () => {
    expect(() => toContainerSpec(spec, { image: 'img' })).toThrow(/NVIDIA device nodes/);
    expect(() => toContainerSpec({ argv: ['x'], denySyscalls: ['ptrace'] }, { image: 'img' })).toThrow(
      /seccomp/,
    );
    expect(() => toContainerSpec({ argv: ['x'], extraOutputFds: 1 }, { image: 'img' })).toThrow(
      /output pipes/,
    );
  });
});

describe('ownRlimits', () => {
  it('reads soft and hard limits, with unlimited as -1', () => {
    const text = [
      'Limit                     Soft Limit           Hard Limit           Units',
      'Max processes             unlimited            unlimited            processes',
      'Max open files            1024                 524288               files',
    ].join('\n');
    expect(ownRlimits(text)).toEqual({ openFiles: [1024, 524288], processes: [-1, -1] });
  });
});
