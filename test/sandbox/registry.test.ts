import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import { SANDBOX_KINDS } from '../../src/core/trial.ts';
import type { SandboxCapabilities } from '../../src/sandbox/capabilities.ts';
import { assertSandboxCan, SANDBOXES } from '../../src/sandbox/registry.ts';
import { runUnsandboxed } from '../../src/sandbox/unsandboxed.ts';
import { podmanTestImage } from './podmanImage.ts';

vi.setConfig({ testTimeout: 60_000 });

const caps = (over: Partial<SandboxCapabilities> = {}): SandboxCapabilities => ({
  available: true,
  gpus: true,
  networkPolicy: 'bridged',
  environment: 'image',
  reason: 'probe summary',
  ...over,
});

function refusal(fn: () => unknown): UserError {
  try {
    fn();
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('the sandbox registry', () => {
  it('has every sandbox kind, each saying what it can give', () => {
    expect(Object.keys(SANDBOXES).sort()).toEqual([...SANDBOX_KINDS].sort());
    for (const kind of SANDBOX_KINDS) expect(SANDBOXES[kind].kind).toBe(kind);
    expect(SANDBOXES.bwrap.capabilities().environment).toBe('host');
    expect(SANDBOXES.none.capabilities()).toMatchObject({
      available: true,
      networkPolicy: 'host',
      environment: 'host',
    });
    const podman = SANDBOXES.podman.capabilities();
    expect(podman.environment).toBe('image');
    expect(typeof podman.reason).toBe('string');
  });
});

describe('assertSandboxCan', () => {
  it('refuses the none sandbox without the explicit opt-out, and allows it with', () => {
    const err = refusal(() => assertSandboxCan('none', { gpus: 0, network: 'open' }));
    expect(err.message).toMatch(/no isolation/);
    expect(err.hint).toMatch(/--unsafe-no-sandbox/);
    expect(
      assertSandboxCan('none', { gpus: 2, network: 'allowlist', unsafeNoSandbox: true }).networkPolicy,
    ).toBe('host');
  });

  it('refuses a sandbox that is not available, with how to get it', () => {
    const err = refusal(() =>
      assertSandboxCan(
        'podman',
        { gpus: 0, network: 'open' },
        caps({ available: false, reason: 'podman was not found on PATH' }),
      ),
    );
    expect(err.message).toBe('The podman sandbox is not available here: podman was not found on PATH.');
    expect(err.hint).toMatch(/apt-get install podman runc/);
    expect(err.hint).toMatch(/ptb image build/);
  });

  it('refuses GPUs the sandbox cannot give instead of running without them', () => {
    const err = refusal(() =>
      assertSandboxCan('podman', { gpus: 1, network: 'none' }, caps({ gpus: false, reason: 'no CDI spec' })),
    );
    expect(err.message).toBe(
      'This trial asks for 1 GPU(s), but the podman sandbox cannot give GPUs here: no CDI spec.',
    );
    expect(err.hint).toMatch(/nvidia-ctk cdi generate/);
    const bwrap = refusal(() =>
      assertSandboxCan('bwrap', { gpus: 2, network: 'none' }, caps({ gpus: false })),
    );
    expect(bwrap.hint).toMatch(/--gpus 0/);
    expect(assertSandboxCan('podman', { gpus: 0, network: 'none' }, caps({ gpus: false })).available).toBe(
      true,
    );
  });

  it('refuses a network policy the sandbox cannot enforce', () => {
    const open = refusal(() =>
      assertSandboxCan(
        'apptainer',
        { gpus: 0, network: 'open' },
        caps({ networkPolicy: 'host', reason: 'netns off' }),
      ),
    );
    expect(open.message).toBe(
      "This trial's network policy 'open' needs a private network whose only way out is the harness proxy, but the apptainer sandbox here offers 'host': netns off.",
    );
    const none = refusal(() =>
      assertSandboxCan('apptainer', { gpus: 0, network: 'none' }, caps({ networkPolicy: 'host' })),
    );
    expect(none.message).toMatch(/needs a private network with no way out/);
    // A sandbox that isolates but cannot bridge serves `none`, not `open` or `allowlist`.
    expect(
      assertSandboxCan('podman', { gpus: 0, network: 'none' }, caps({ networkPolicy: 'none-only' }))
        .available,
    ).toBe(true);
    expect(() =>
      assertSandboxCan('podman', { gpus: 0, network: 'allowlist' }, caps({ networkPolicy: 'none-only' })),
    ).toThrow(UserError);
  });

  it('refuses a missing image with how to build it', () => {
    const err = refusal(() =>
      assertSandboxCan('apptainer', { gpus: 0, network: 'open', image: '/nowhere/ptb-agent.sif' }, caps()),
    );
    expect(err.message).toBe('The apptainer image /nowhere/ptb-agent.sif is not there.');
    expect(err.hint).toBe('build it with `ptb image build --kind apptainer`');
  });
});

describe('the none sandbox (runs on the host)', () => {
  it('runs with a clean environment in the working directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-none-'));
    process.env.PTB_TEST_HOST_ONLY = 'leak';
    try {
      const result = await runUnsandboxed({
        argv: ['sh', '-c', 'pwd; echo "$FOO"; [ -z "$PTB_TEST_HOST_ONLY" ] && echo clean'],
        cwd: dir,
        env: { FOO: 'bar' },
      });
      expect(result.stdout.toString()).toBe(`${dir}\nbar\nclean\n`);
      expect(result.warnings[0]).toMatch(/no sandbox/);
      expect(result.enforced).toEqual({ memory: false, pids: false, cpu: false, treeKill: false });
    } finally {
      delete process.env.PTB_TEST_HOST_ONLY;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops the whole process group at the deadline: TERM, then KILL after the grace', async () => {
    const started = Date.now();
    const result = await runUnsandboxed({
      argv: ['sh', '-c', 'trap "" TERM; (trap "" TERM; sleep 30) & sleep 30'],
      timeoutMs: 500,
      killGraceMs: 500,
    });
    expect(result.timedOut).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('cannot move paths, so refuses binds elsewhere', async () => {
    await expect(
      runUnsandboxed({
        argv: ['true'],
        readOnlyBinds: [{ source: '/srv/model', target: '/opt/base_model' }],
      }),
    ).rejects.toThrow(/cannot show paths elsewhere: \/srv\/model -> \/opt\/base_model/);
  });

  it('exposes bridged sockets on the host loopback', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-none-sock-'));
    const socketPath = join(dir, 'relay.sock');
    const server = createServer((client) => client.end('via-bridge\n'));
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const port = 20000 + Math.floor(Math.random() * 20000);
    writeFileSync(
      join(dir, 'client.mjs'),
      `import net from 'node:net'; net.connect(${port}, '127.0.0.1').on('data', (d) => process.stdout.write(d));`,
    );
    try {
      const result = await runUnsandboxed({
        argv: [process.execPath, join(dir, 'client.mjs')],
        network: { bridges: [{ listenPort: port, socketPath }] },
      });
      expect(result.stdout.toString()).toBe('via-bridge\n');
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const image = podmanTestImage();
describe.skipIf(!image.ok)(
  `podman through the registry (${image.ok ? image.image : `skipped: ${image.reason}`})`,
  () => {
    it('runs a bwrap-style SandboxSpec in a container', async () => {
      if (!image.ok) return;
      const home = mkdtempSync(join(tmpdir(), 'ptb-reg-home-'));
      writeFileSync(join(home, 'x.txt'), 'made-on-host\n');
      // The container's user is host uid 1000, as bwrap's: it must be able to read what it is given.
      chmodSync(home, 0o755);
      try {
        const result = await SANDBOXES.podman.run(
          {
            argv: ['sh', '-c', 'echo "$HOME $(id -u)"; cat /opt/input/x.txt'],
            readOnlyBinds: [
              ...image.mounts.map((m) => ({ source: m.source, target: m.target })),
              { source: home, target: '/opt/input' },
            ],
            env: { HOME: '/home/agent' },
            cwd: '/',
          },
          { image: image.image },
        );
        expect(result.stdout.toString()).toBe('/home/agent 1000\nmade-on-host\n');
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    }, 60_000);
  },
);
