/**
 * The agent-facing parts of the bwrap sandbox: bridged harness sockets as the only way out, live output,
 * device binds, TERM-then-KILL at the time limit, and an agent that cannot hurt the host or another
 * trial. Every connection goes to loopback servers or Unix sockets this file starts itself.
 */
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import {
  BRIDGE_DIR,
  bwrapArgs,
  runInSandbox,
  type SandboxProcessInfo,
  type SandboxResult,
  sandboxHostIds,
} from '../../src/sandbox/bwrap.ts';
import { hostProcessesMatching, isRoot, sandboxAvailable, uniqueToken, waitUntilGone } from './helpers.ts';

vi.setConfig({ testTimeout: 60_000 });

const text = (result: SandboxResult) => result.stdout.toString('utf8');
/** A port per test, so process scans for its forwarder match only this test's sandbox. */
const freshPort = () => 20_000 + Math.floor(Math.random() * 20_000);

describe('bwrap agent arguments', () => {
  it('binds devices, sysfs and bridge sockets, and sets the host name', () => {
    const args = bwrapArgs(
      {
        argv: ['true'],
        devices: ['/dev/nvidia0', '/dev/nvidiactl'],
        sysfs: true,
        hostname: 'trial-1',
        network: { bridges: [{ listenPort: 3128, socketPath: '/srv/egress.sock' }] },
      },
      { disableUserns: false },
    ).join(' ');
    expect(args).toContain(
      '--dev /dev --dev-bind /dev/nvidia0 /dev/nvidia0 --dev-bind /dev/nvidiactl /dev/nvidiactl',
    );
    expect(args).toContain('--ro-bind /sys /sys');
    expect(args).toContain('--hostname trial-1');
    expect(args).toContain(`--ro-bind /srv/egress.sock ${BRIDGE_DIR}/3128.sock`);
    expect(args).not.toContain('--share-net');
  });
});

describe.skipIf(!sandboxAvailable)('bwrap agent sandbox (real)', () => {
  let scratch: string;
  let socketPath: string;
  let bridgeServer: Server;
  let hostTcp: Server;
  let hostTcpPort = 0;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'ptb-bwrap-agent-'));
    chmodSync(scratch, 0o755); // the sandbox user must be able to reach the socket inside
    socketPath = join(scratch, 'harness.sock');
    bridgeServer = createServer((socket) => {
      socket.once('data', (data) => socket.end(`harness:${data.toString()}`));
    });
    await new Promise<void>((resolve) => bridgeServer.listen(socketPath, resolve));
    hostTcp = createServer((socket) => socket.end('host-tcp\n'));
    await new Promise<void>((resolve) => hostTcp.listen(0, '127.0.0.1', resolve));
    hostTcpPort = (hostTcp.address() as { port: number }).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => bridgeServer.close(resolve));
    await new Promise((resolve) => hostTcp.close(resolve));
    rmSync(scratch, { recursive: true, force: true });
  });

  function ownedDir(): string {
    const dir = mkdtempSync(join(scratch, 'out-'));
    const ids = sandboxHostIds();
    chownSync(dir, ids.uid, ids.gid);
    return dir;
  }

  it('reaches the bridged harness socket and nothing else; the exit status is the command’s own', async () => {
    const port = freshPort();
    const script = [
      'import socket, json, sys',
      'out = {}',
      `for key, addr in (("bridge", ("127.0.0.1", ${port})), ("hostTcp", ("127.0.0.1", ${hostTcpPort})), ("outside", ("192.0.2.1", 443))):`,
      '    s = socket.socket(); s.settimeout(3)',
      '    try:',
      '        s.connect(addr); s.sendall(b"hello"); out[key] = "connected:" + s.recv(100).decode()',
      '    except OSError as e:',
      '        out[key] = type(e).__name__ + ":" + str(e.errno)',
      'print(json.dumps(out)); sys.exit(7)',
    ].join('\n');
    const result = await runInSandbox({
      argv: ['/usr/bin/python3', '-c', script],
      network: { bridges: [{ listenPort: port, socketPath }] },
      timeoutMs: 20_000,
    });
    expect(result.stderr.toString()).toBe('');
    expect(result.exitCode).toBe(7);
    const out = JSON.parse(text(result)) as Record<string, string>;
    expect(out.bridge).toBe('connected:harness:hello');
    expect(out.hostTcp).toBe('ConnectionRefusedError:111'); // the host's loopback is not the sandbox's
    expect(out.outside).toBe('OSError:101'); // no route out of the namespace
    expect(await waitUntilGone(`${port}=${BRIDGE_DIR}`)).toEqual([]); // the forwarder died with the sandbox
  });

  it('starts the command only once the forwarder listens, and the forwarder is not the command’s child', async () => {
    const port = freshPort();
    const script = [
      'import os, socket',
      `s = socket.create_connection(("127.0.0.1", ${port}), timeout=3); s.sendall(b"first"); print(s.recv(100).decode())`,
      'try:',
      '    os.wait(); print("had a child")',
      'except ChildProcessError:',
      '    print("no children")',
      'print(os.getpid())',
    ].join('\n');
    const result = await runInSandbox({
      argv: ['/usr/bin/python3', '-c', script],
      network: { bridges: [{ listenPort: port, socketPath }] },
      timeoutMs: 20_000,
    });
    expect(text(result).trim().split('\n')).toEqual(['harness:first', 'no children', '2']);
  });

  it('refuses a missing bridge socket with a UserError and reports a forwarder that cannot start', async () => {
    await expect(
      runInSandbox({
        argv: ['/bin/true'],
        network: { bridges: [{ listenPort: 3128, socketPath: join(scratch, 'absent.sock') }] },
      }),
    ).rejects.toThrow(UserError);
    const result = await runInSandbox({
      argv: ['/bin/sh', '-c', 'echo command-ran'],
      network: { bridges: [{ listenPort: freshPort(), socketPath }] },
      bridgeNode: '/usr/bin/no-such-node',
      timeoutMs: 20_000,
    });
    expect(result.exitCode).toBe(125);
    expect(result.startFailed).toBe(true);
    expect(text(result)).not.toContain('command-ran');
  });

  it('streams output live and can skip buffering it', async () => {
    const chunks: Array<{ stream: string; text: string; at: number }> = [];
    const started = Date.now();
    const result = await runInSandbox({
      argv: ['/bin/sh', '-c', 'echo early; echo warn >&2; sleep 1; echo late'],
      captureOutput: false,
      onOutput: (stream, chunk) => chunks.push({ stream, text: chunk.toString(), at: Date.now() - started }),
      timeoutMs: 20_000,
    });
    const ended = Date.now() - started;
    expect(result.exitCode).toBe(0);
    expect(result.stdout.length).toBe(0);
    expect(result.stdoutTruncated).toBe(false);
    const early = chunks.find((c) => c.text.includes('early'));
    expect(early?.stream).toBe('stdout');
    expect(early!.at).toBeLessThan(ended - 500); // delivered while the command was still sleeping
    expect(
      chunks
        .filter((c) => c.stream === 'stderr')
        .map((c) => c.text)
        .join(''),
    ).toBe('warn\n');
    expect(chunks.map((c) => c.text).join('')).toContain('late');
  });

  it('binds only the listed devices and sets the host name', async () => {
    const probe = 'test -c /dev/fuse && echo fuse || echo no-fuse; hostname';
    const without = await runInSandbox({ argv: ['/bin/sh', '-c', probe], timeoutMs: 10_000 });
    const withDevice = await runInSandbox({
      argv: ['/bin/sh', '-c', probe],
      devices: ['/dev/fuse'],
      hostname: 'ptb-trial',
      timeoutMs: 10_000,
    });
    expect(text(without).split('\n')[0]).toBe('no-fuse');
    expect(text(withDevice).trim().split('\n')).toEqual(['fuse', 'ptb-trial']);
  });

  it('sends SIGTERM to every process at the time limit, then SIGKILL after the grace', async () => {
    const out = ownedDir();
    const token = uniqueToken();
    // The main shell and a double-forked setsid'd child both log TERM; a third ignores it and must be killed.
    const script = [
      `setsid sh -c 'trap "echo term > /out/detached; exit 0" TERM; while :; do sleep 0.05; done; # ${token}' &`,
      `(sh -c 'trap "" TERM; exec sleep 909.${token}' &)`,
      `trap 'echo term > /out/main' TERM`,
      `while :; do sleep 0.05; done # ${token}`,
    ].join('\n');
    const started = Date.now();
    const result = await runInSandbox({
      argv: ['/bin/sh', '-c', script],
      writableBinds: [{ source: out, target: '/out' }],
      timeoutMs: 800,
      killGraceMs: 1500,
    });
    const elapsed = Date.now() - started;
    expect(result.timedOut).toBe(true);
    expect(readFileSync(join(out, 'main'), 'utf8')).toBe('term\n');
    expect(readFileSync(join(out, 'detached'), 'utf8')).toBe('term\n');
    expect(elapsed).toBeGreaterThanOrEqual(800 + 1400); // the TERM-ignoring sleep held it until KILL
    expect(elapsed).toBeLessThan(20_000);
    expect(await waitUntilGone(token)).toEqual([]);
  });

  it('ends at TERM when the command exits on it, killing the leftovers with the namespace', async () => {
    const token = uniqueToken();
    const started = Date.now();
    const result = await runInSandbox({
      argv: ['/bin/sh', '-c', `(sh -c 'trap "" TERM; exec sleep 908.${token}' &); exec sleep 910.${token}`],
      timeoutMs: 500,
      killGraceMs: 30_000,
    });
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBe(143); // the command died of SIGTERM
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await waitUntilGone(token)).toEqual([]);
  });

  it('an agent running kill -9 -1 and pkill -9 -f node reaches neither the host nor another trial', async () => {
    const token = uniqueToken();
    const hostSleeper = spawn('sleep', [`931.${token}`], { stdio: 'ignore' });
    const port = freshPort();
    try {
      const neighbour = runInSandbox({
        argv: ['/bin/sh', '-c', `sleep 2.${token.slice(-3)} && echo neighbour-finished`],
        timeoutMs: 20_000,
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const rogue = await runInSandbox({
        // The patterns are spelled in pieces so that pkill does not match this shell's own command line.
        argv: [
          '/bin/sh',
          '-c',
          'n=no; s=sle; pkill -9 -f "$n"de; pkill -9 -f "$s"ep; kill -9 -1; ' +
            'for i in 1 2 3 4 5 6 7 8 9 10; do pgrep -x "$n"de >/dev/null || break; "$s"ep 0.1; done; ' +
            'pgrep -x "$n"de >/dev/null && echo forwarder-alive || echo forwarder-gone',
        ],
        network: { bridges: [{ listenPort: port, socketPath }] },
        timeoutMs: 20_000,
      });
      expect(rogue.exitCode).toBe(0);
      expect(text(rogue).trim()).toBe('forwarder-gone'); // inside, its own forwarder died: it hurt only itself
      expect(hostProcessesMatching(`931.${token}`, 'sleep')).toHaveLength(1);
      expect(hostSleeper.exitCode).toBeNull();
      const other = await neighbour;
      expect(other.exitCode).toBe(0);
      expect(text(other)).toBe('neighbour-finished\n');
    } finally {
      hostSleeper.kill('SIGKILL');
    }
  });

  it.skipIf(!isRoot)('caps a fork bomb and reports a memory hog’s OOM kill with bridges on', async () => {
    const port = freshPort();
    const spawned: SandboxProcessInfo[] = [];
    const hog = await runInSandbox({
      argv: ['/usr/bin/python3', '-c', 'x = bytearray(1 << 30); print("allocated")'],
      network: { bridges: [{ listenPort: port, socketPath }] },
      limits: { memoryBytes: 192 << 20 },
      onSpawn: (info) => spawned.push(info),
      timeoutMs: 30_000,
    });
    expect(hog.oomKilled).toBe(true);
    expect(hog.exitCode).toBe(137);
    expect(text(hog)).not.toContain('allocated');
    expect(spawned).toHaveLength(1);
    expect(spawned[0]!.pid).toBeGreaterThan(1);
    expect(spawned[0]!.cgroups.memory ?? spawned[0]!.cgroups.unified).toBeTruthy();

    const token = uniqueToken();
    const bomb = await runInSandbox({
      // The main shell then spins without forking: a full pids table cannot end it before the time limit.
      argv: ['/bin/sh', '-c', `f(){ f | f & }; f; : 907.${token}; while :; do :; done`],
      network: { bridges: [{ listenPort: freshPort(), socketPath }] },
      limits: { pids: 64 },
      timeoutMs: 2500,
      killGraceMs: 300,
    });
    expect(bomb.timedOut).toBe(true);
    expect(bomb.enforced.pids).toBe(true);
    expect(bomb.stderr.toString()).toContain('Cannot fork');
    expect(await waitUntilGone(token)).toEqual([]);
  });

  it('gives the socket to the sandbox user when ptb made it as root', async () => {
    const dir = mkdtempSync(join(scratch, 'sock-'));
    chmodSync(dir, 0o755);
    const privateSocket = join(dir, 'private.sock');
    const server = createServer((socket) => socket.end('private-ok'));
    await new Promise<void>((resolve) => server.listen(privateSocket, resolve));
    try {
      chmodSync(privateSocket, 0o700);
      const port = freshPort();
      const result = await runInSandbox({
        argv: [
          '/usr/bin/python3',
          '-c',
          `import socket; print(socket.create_connection(("127.0.0.1", ${port})).recv(50).decode())`,
        ],
        network: { bridges: [{ listenPort: port, socketPath: privateSocket }] },
        timeoutMs: 20_000,
      });
      expect(text(result).trim()).toBe('private-ok');
      expect(existsSync(privateSocket)).toBe(true);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
