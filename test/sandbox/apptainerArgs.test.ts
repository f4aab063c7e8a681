/** Apptainer cannot be installed on ptb's machines: its command construction and capabilities are tested here. */
import { describe, expect, it } from 'vitest';
import {
  type ApptainerProbe,
  apptainerCapabilitiesFrom,
  apptainerExecArgs,
} from '../../src/sandbox/apptainer.ts';
import { BRIDGE_DIR } from '../../src/sandbox/bwrap.ts';
import type { ContainerSpec } from '../../src/sandbox/container.ts';

const spec = (over: Partial<ContainerSpec> = {}): ContainerSpec => ({
  image: '/images/ptb-agent-abc.sif',
  argv: ['bash', '/home/agent/agent_solve.sh'],
  mounts: [
    { source: '/trials/t1/work/home', target: '/home/agent', readOnly: false },
    { source: '/trials/t1/work/tmp', target: '/tmp', readOnly: false },
    { source: '/models/base', target: '/opt/base_model', readOnly: true },
  ],
  home: '/home/agent',
  env: { HOME: '/home/agent', ANTHROPIC_API_KEY: 'relay-token-9' },
  cwd: '/home/agent/task',
  network: 'none',
  gpus: [],
  ...over,
});

const hostEnv = {
  PATH: '/usr/bin',
  HOME: '/home/me',
  SECRET: 'host-only',
  APPTAINER_CACHEDIR: '/scratch/cache',
};

function valuesOf(args: readonly string[], flag: string): string[] {
  return args.flatMap((arg, index) => (arg === flag ? [args[index + 1]!] : []));
}

describe('apptainerExecArgs', () => {
  it('contains the run: clean env, private pid/ipc/network, home and binds, working directory', () => {
    const { args } = apptainerExecArgs(spec(), hostEnv, false);
    expect(args.slice(0, 6)).toEqual(['exec', '--contain', '--cleanenv', '--pid', '--ipc', '--no-eval']);
    expect(args.join(' ')).toContain('--net --network none');
    expect(valuesOf(args, '--home')).toEqual(['/trials/t1/work/home:/home/agent']);
    expect(valuesOf(args, '--bind')).toEqual([
      '/trials/t1/work/tmp:/tmp:rw',
      '/models/base:/opt/base_model:ro',
    ]);
    expect(valuesOf(args, '--pwd')).toEqual(['/home/agent/task']);
    expect(args.slice(-3)).toEqual(['/images/ptb-agent-abc.sif', 'bash', '/home/agent/agent_solve.sh']);
    expect(args).not.toContain('--nv');
    expect(args).not.toContain('--writable-tmpfs');
    expect(args).not.toContain('--security');
  });

  it('passes the environment as APPTAINERENV_* (never on the command line) and nothing else from the host', () => {
    const { args, env } = apptainerExecArgs(spec(), hostEnv, false);
    expect(args.join(' ')).not.toContain('relay-token-9');
    expect(env).toEqual({
      PATH: '/usr/bin',
      HOME: '/home/me',
      APPTAINER_CACHEDIR: '/scratch/cache',
      APPTAINERENV_HOME: '/home/agent',
      APPTAINERENV_ANTHROPIC_API_KEY: 'relay-token-9',
    });
  });

  it('gives GPUs with --nv and selects the trial’s with CUDA_VISIBLE_DEVICES', () => {
    const { args, env } = apptainerExecArgs(spec({ gpus: [2, 5] }), hostEnv, false);
    expect(args).toContain('--nv');
    expect(env.APPTAINERENV_CUDA_VISIBLE_DEVICES).toBe('2,5');
  });

  it('writable image layer only when asked (the reference’s --writable-tmpfs)', () => {
    expect(apptainerExecArgs(spec({ rootfs: 'ephemeral' }), hostEnv, false).args).toContain(
      '--writable-tmpfs',
    );
  });

  it('without a home bind, mounts no home at all', () => {
    const { args } = apptainerExecArgs(spec({ home: undefined }), hostEnv, false);
    expect(args).toContain('--no-home');
    expect(valuesOf(args, '--bind')).toContain('/trials/t1/work/home:/home/agent:rw');
  });

  it('started by root, drops to the sandbox user and every privilege', () => {
    const { args } = apptainerExecArgs(spec({ user: { uid: 1000, gid: 1000 } }), hostEnv, true);
    expect(valuesOf(args, '--security')).toEqual(['uid:1000,gid:1000']);
    expect(args).toContain('--no-privs');
  });

  it('sets cgroup limits, hostname and devices', () => {
    const { args } = apptainerExecArgs(
      spec({
        limits: { memoryBytes: 2 ** 30, pids: 100, cpus: 2 },
        hostname: 'trial',
        devices: ['/dev/fuse'],
      }),
      hostEnv,
      false,
    );
    expect(valuesOf(args, '--memory')).toEqual(['1073741824']);
    expect(valuesOf(args, '--memory-swap')).toEqual(['1073741824']);
    expect(valuesOf(args, '--pids-limit')).toEqual(['100']);
    expect(valuesOf(args, '--cpus')).toEqual(['2']);
    expect(valuesOf(args, '--hostname')).toEqual(['trial']);
    expect(valuesOf(args, '--bind')).toContain('/dev/fuse:/dev/fuse:rw');
  });

  it('bridges the harness sockets and runs the forwarder with the image’s node before the command', () => {
    const { args } = apptainerExecArgs(
      spec({
        network: { bridges: [{ listenPort: 8800, socketPath: '/run/ptb-1/proxy.sock' }] },
        bridgeNode: '/usr/local/bin/node',
      }),
      hostEnv,
      false,
    );
    expect(valuesOf(args, '--bind')).toContain(`/run/ptb-1/proxy.sock:${BRIDGE_DIR}/8800.sock:ro`);
    const after = args.slice(args.indexOf('/images/ptb-agent-abc.sif') + 1);
    expect(after.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(after.slice(3, 7)).toEqual([
      'ptb-bridge',
      '/usr/local/bin/node',
      '1',
      `8800=${BRIDGE_DIR}/8800.sock`,
    ]);
    expect(after.slice(-2)).toEqual(['bash', '/home/agent/agent_solve.sh']);
  });

  it('refuses what apptainer cannot do: extra tmpfs, bad paths, odd variable names', () => {
    expect(() => apptainerExecArgs(spec({ tmpfs: [{ path: '/scratch' }] }), hostEnv, false)).toThrow(/tmpfs/);
    expect(() =>
      apptainerExecArgs(spec({ mounts: [{ source: '/a,b', target: '/x', readOnly: true }] }), hostEnv, false),
    ).toThrow(/bind syntax/);
    expect(() => apptainerExecArgs(spec({ env: { 'A-B': '1' } }), hostEnv, false)).toThrow(
      /cannot be passed/,
    );
  });
});

const probe = (over: Partial<ApptainerProbe> = {}): ApptainerProbe => ({
  apptainer: '/usr/bin/apptainer',
  version: '1.3.4',
  root: false,
  maxNetNamespaces: 63000,
  nvidiaDriver: true,
  ...over,
});

describe('apptainer capabilities', () => {
  it('is unavailable without apptainer', () => {
    const caps = apptainerCapabilitiesFrom(probe({ apptainer: null }));
    expect(caps.available).toBe(false);
    expect(caps.reason).toMatch(/apptainer was not found/);
  });

  it('bridges the network where network namespaces are allowed, else only the host network', () => {
    expect(apptainerCapabilitiesFrom(probe()).networkPolicy).toBe('bridged');
    const disabled = apptainerCapabilitiesFrom(probe({ maxNetNamespaces: 0 }));
    expect(disabled.networkPolicy).toBe('host');
    expect(disabled.reason).toMatch(/max_net_namespaces = 0/);
    expect(apptainerCapabilitiesFrom(probe({ maxNetNamespaces: 0, root: true })).networkPolicy).toBe(
      'bridged',
    );
  });

  it('offers GPUs with an NVIDIA driver and runs the image’s programs', () => {
    const caps = apptainerCapabilitiesFrom(probe());
    expect([caps.gpus, caps.environment]).toEqual([true, 'image']);
    expect(apptainerCapabilitiesFrom(probe({ nvidiaDriver: false })).gpus).toBe(false);
  });
});
