import { spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import { repoRoot } from '../../src/core/paths.ts';
import {
  assertBwrapAvailable,
  bwrapArgs,
  runInSandbox,
  type SandboxResult,
  sandboxHostIds,
} from '../../src/sandbox/bwrap.ts';
import { INSPECTION_SYSCALLS } from '../../src/sandbox/seccomp.ts';
import {
  hostProcessesMatching,
  isRoot,
  requireSandbox,
  sandboxAvailable,
  uniqueToken,
  waitUntilGone,
} from './helpers.ts';

// Real processes on possibly busy CI machines: allow far more than the default 5 s per test.
vi.setConfig({ testTimeout: 60_000 });

const text = (result: SandboxResult) => result.stdout.toString('utf8');

describe('bwrap arguments', () => {
  it('unshares everything, drops capabilities and maps the command to uid 1000', () => {
    const args = bwrapArgs({ argv: ['true'] }, { disableUserns: false });
    for (const flag of [
      '--unshare-all',
      '--die-with-parent',
      '--new-session',
      '--unshare-user',
      '--clearenv',
    ]) {
      expect(args).toContain(flag);
    }
    expect(args.join(' ')).toContain('--cap-drop ALL');
    expect(args.join(' ')).toContain('--uid 1000 --gid 1000');
    expect(args.join(' ')).toContain('--ro-bind /usr /usr');
    expect(args.join(' ')).toContain('--ro-bind /etc /etc');
    expect(args.join(' ')).toContain('--proc /proc');
    expect(args.join(' ')).toContain('--tmpfs /tmp');
    expect(args).not.toContain('--share-net');
  });

  it('binds exactly what the spec lists, masks files, and sets only the given environment', () => {
    const args = bwrapArgs(
      {
        argv: ['true'],
        system: 'usr',
        proc: false,
        readOnlyBinds: ['/opt/data', { source: '/srv/in', target: '/in' }],
        writableBinds: [{ source: '/srv/out', target: '/out' }],
        maskedFiles: ['/usr/lib/secret.so'],
        env: { FOO: 'bar' },
        cwd: '/out',
      },
      { disableUserns: true },
    ).join(' ');
    expect(args).not.toContain('/etc');
    expect(args).not.toContain('--proc');
    expect(args).toContain('--disable-userns');
    expect(args).toContain('--ro-bind /opt/data /opt/data');
    expect(args).toContain('--ro-bind /srv/in /in');
    expect(args).toContain('--bind /srv/out /out');
    expect(args).toContain('--ro-bind /dev/null /usr/lib/secret.so');
    expect(args).toContain('--setenv FOO bar');
    expect(args).toContain('--chdir /out');
    expect(args).toContain('--setenv HOME /out');
  });
});

describe('bwrap availability', () => {
  it.skipIf(!requireSandbox)('is available in CI', () => {
    expect(sandboxAvailable).toBe(true);
  });

  it.skipIf(sandboxAvailable)('says how to install bubblewrap when it is missing', () => {
    expect(() => assertBwrapAvailable()).toThrow(UserError);
    expect(() => assertBwrapAvailable()).toThrow(/apt-get install bubblewrap/);
  });
});

describe.skipIf(!sandboxAvailable)('bwrap sandbox (real)', () => {
  let hostServer: Server;
  let hostPort = 0;
  let scratch: string;

  beforeAll(async () => {
    hostServer = createServer((socket) => socket.end('host-secret\n'));
    await new Promise<void>((resolve) => hostServer.listen(0, '127.0.0.1', resolve));
    hostPort = (hostServer.address() as { port: number }).port;
    scratch = mkdtempSync(join(tmpdir(), 'ptb-bwrap-test-'));
  });

  afterAll(async () => {
    await new Promise((resolve) => hostServer.close(resolve));
    rmSync(scratch, { recursive: true, force: true });
  });

  it('runs the command as uid 1000 with no capabilities and only the base system visible', async () => {
    const result = await runInSandbox({
      argv: ['/bin/sh', '-c', 'id -u; id -g; grep CapEff /proc/self/status; ls /'],
      timeoutMs: 10_000,
    });
    expect(result.exitCode).toBe(0);
    const lines = text(result).trim().split('\n');
    expect(lines[0]).toBe('1000');
    expect(lines[1]).toBe('1000');
    expect(lines[2]).toMatch(/CapEff:\s+0+$/);
    const rootEntries = lines.slice(3).sort();
    expect(rootEntries).toEqual(expect.arrayContaining(['dev', 'etc', 'proc', 'tmp', 'usr']));
    for (const hidden of ['root', 'home', 'work', 'var', 'srv', 'opt', 'mnt'])
      expect(rootEntries).not.toContain(hidden);
  });

  it('has no network: only loopback, the host loopback is unreachable, other addresses too', async () => {
    const script = [
      'import socket, json',
      'out = {"interfaces": [name for _, name in socket.if_nameindex()]}',
      `for key, addr in (("host", ("127.0.0.1", ${hostPort})), ("outside", ("192.0.2.1", 80))):`,
      '    s = socket.socket(); s.settimeout(2)',
      '    try:',
      '        s.connect(addr); out[key] = "connected:" + s.recv(100).decode()',
      '    except OSError as e:',
      '        out[key] = type(e).__name__ + ":" + str(e.errno)',
      'print(json.dumps(out))',
    ].join('\n');
    const result = await runInSandbox({ argv: ['/usr/bin/python3', '-c', script], timeoutMs: 10_000 });
    expect(result.exitCode).toBe(0);
    const out = JSON.parse(text(result)) as Record<string, unknown>;
    expect(out.interfaces).toEqual(['lo']);
    expect(out.host).toBe('ConnectionRefusedError:111'); // the sandbox's own loopback, nobody listening
    expect(out.outside).toBe('OSError:101'); // ENETUNREACH: no route leaves the namespace
  });

  it('refuses writes outside the writable binds and keeps host paths that were not bound invisible', async () => {
    const hostOnly = join(scratch, 'host-only.txt');
    writeFileSync(hostOnly, 'not for the sandbox');
    const result = await runInSandbox({
      argv: [
        '/bin/sh',
        '-c',
        `for p in /usr/x /etc/x /x /bin/x ${hostOnly}; do if echo hi > "$p" 2>/dev/null; then echo "wrote $p"; else echo "refused $p"; fi; done; ` +
          `cat ${hostOnly} 2>/dev/null || echo "no host file"; echo ok > /tmp/inside && echo "tmp ok"`,
      ],
      timeoutMs: 10_000,
    });
    expect(result.exitCode).toBe(0);
    const out = text(result);
    for (const path of ['/usr/x', '/etc/x', '/x', '/bin/x', hostOnly])
      expect(out).toContain(`refused ${path}`);
    expect(out).toContain('no host file');
    expect(out).toContain('tmp ok');
    expect(existsSync('/usr/x')).toBe(false);
    expect(readFileSync(hostOnly, 'utf8')).toBe('not for the sandbox');
  });

  it('lets the command write to a writable bind; the files belong to the sandbox host user', async () => {
    const out = mkdtempSync(join(tmpdir(), 'ptb-bwrap-out-'));
    try {
      const ids = sandboxHostIds();
      chownSync(out, ids.uid, ids.gid);
      const result = await runInSandbox({
        argv: ['/bin/sh', '-c', 'echo result > /out/file.txt'],
        writableBinds: [{ source: out, target: '/out' }],
        readOnlyBinds: [{ source: scratch, target: '/in' }],
        timeoutMs: 10_000,
      });
      expect(result.exitCode).toBe(0);
      expect(readFileSync(join(out, 'file.txt'), 'utf8')).toBe('result\n');
      expect(statSync(join(out, 'file.txt')).uid).toBe(ids.uid);
      if (isRoot) expect(ids.uid).not.toBe(0);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('hides the host environment: only the listed variables exist', async () => {
    process.env.PTB_TEST_SECRET_KEY = 'sk-should-never-be-seen';
    try {
      const result = await runInSandbox({
        argv: ['/usr/bin/env'],
        env: { ONLY_THIS: 'yes' },
        timeoutMs: 10_000,
      });
      expect(result.exitCode).toBe(0);
      const names = text(result)
        .trim()
        .split('\n')
        .map((line) => line.split('=')[0])
        .sort();
      expect(names).toEqual(['HOME', 'LANG', 'ONLY_THIS', 'PATH', 'PWD']); // PWD: set by bwrap's --chdir
      expect(text(result)).not.toContain('sk-should-never-be-seen');
    } finally {
      delete process.env.PTB_TEST_SECRET_KEY;
    }
  });

  it('passes stdin, captures extra fds and caps output', async () => {
    const result = await runInSandbox({
      argv: ['/bin/sh', '-c', 'cat; echo side >&3; head -c 100000 /dev/zero'],
      stdin: 'from stdin\n',
      extraOutputFds: 1,
      maxOutputBytes: 1000,
      timeoutMs: 10_000,
    });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.length).toBe(1000);
    expect(result.stdout.subarray(0, 11).toString()).toBe('from stdin\n');
    expect(result.stdoutTruncated).toBe(true);
    expect(result.extraOutputs[0]?.toString()).toBe('side\n');
  });

  it('sets rlimits inside the sandbox', async () => {
    const result = await runInSandbox({
      argv: ['/bin/sh', '-c', 'ulimit -n; ulimit -c'],
      rlimits: { openFiles: 77, coreBytes: 0 },
      timeoutMs: 10_000,
    });
    expect(text(result).trim().split('\n')).toEqual(['77', '0']);
  });

  for (const cgroups of [false, true]) {
    it(`kills a forking, setsid'ing, sleeping tree at the time limit (cgroups ${cgroups ? 'on' : 'off'})`, async () => {
      const token = uniqueToken();
      const started = Date.now();
      const result = await runInSandbox({
        argv: [
          '/bin/sh',
          '-c',
          `setsid sleep 901.${token} & (sleep 902.${token} &) ; sh -c 'sleep 903.${token} & wait' & sleep 904.${token}`,
        ],
        cgroups,
        timeoutMs: 700,
      });
      expect(result.timedOut).toBe(true);
      expect(result.exitCode).toBeNull();
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await waitUntilGone(token)).toEqual([]);
    });
  }

  it('takes the whole sandbox down when ptb itself is killed', async () => {
    const token = uniqueToken();
    const script = join(scratch, 'orphan.mts');
    writeFileSync(
      script,
      `import { runInSandbox } from ${JSON.stringify(join(repoRoot, 'src/sandbox/bwrap.ts'))};\n` +
        `await runInSandbox({ argv: ['/bin/sh', '-c', 'setsid sleep 912.${token} & sleep 911.${token}'], timeoutMs: 60_000 });\n`,
    );
    const ptb = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, stdio: 'ignore' });
    const deadline = Date.now() + 15_000;
    // Kill only once the sandbox is fully up: bwrap's own command line carries the token from the start.
    while (hostProcessesMatching(`911.${token}`, 'sleep').length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(hostProcessesMatching(`911.${token}`, 'sleep')).toHaveLength(1);
    ptb.kill('SIGKILL');
    expect(await waitUntilGone(token)).toEqual([]);
  }, 30_000);

  it('kills the tree when the caller aborts', async () => {
    const token = uniqueToken();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const result = await runInSandbox({
      argv: ['/bin/sh', '-c', `sleep 905.${token} & sleep 906.${token}`],
      signal: controller.signal,
      timeoutMs: 30_000,
    });
    expect(result.aborted).toBe(true);
    expect(await waitUntilGone(token)).toEqual([]);
  });

  it.skipIf(!isRoot)('stops a memory hog at the cgroup memory limit', async () => {
    const result = await runInSandbox({
      argv: ['/usr/bin/python3', '-c', 'x = bytearray(1 << 30); print("allocated")'],
      limits: { memoryBytes: 128 << 20 },
      timeoutMs: 30_000,
    });
    expect(result.enforced.memory).toBe(true);
    expect(result.oomKilled).toBe(true);
    expect(result.exitCode).toBe(137);
    expect(text(result)).not.toContain('allocated');
  });

  it.skipIf(!isRoot)('stops a fork bomb at the pids limit', async () => {
    const counted = await runInSandbox({
      argv: [
        '/usr/bin/python3',
        '-c',
        'import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(60); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print(n, e.errno)',
      ],
      limits: { pids: 24 },
      timeoutMs: 30_000,
    });
    expect(counted.enforced.pids).toBe(true);
    const [forks, errno] = text(counted).trim().split(' ').map(Number);
    expect(errno).toBe(11); // EAGAIN from the pids controller
    expect(forks).toBeLessThan(24);

    const token = uniqueToken();
    const bomb = await runInSandbox({
      // The main shell then spins without forking: a full pids table cannot end it before the time limit.
      argv: ['/bin/sh', '-c', `f(){ f | f & }; f; : 907.${token}; while :; do :; done`],
      limits: { pids: 64 },
      timeoutMs: 1500,
    });
    expect(bomb.timedOut).toBe(true);
    expect(bomb.stderr.toString()).toContain('Cannot fork');
    expect(await waitUntilGone(token)).toEqual([]);
  });

  it.skipIf(!isRoot)('applies a CPU quota', async () => {
    // Two busy threads for 1 s of wall time get about 0.25 s of CPU under a quarter-core quota.
    const script =
      'import threading, time, resource\n' +
      'def spin():\n    end = time.time() + 1.0\n    while time.time() < end: pass\n' +
      't = [threading.Thread(target=spin) for _ in range(2)]\n[x.start() for x in t]; [x.join() for x in t]\n' +
      'u = resource.getrusage(resource.RUSAGE_SELF)\nprint(u.ru_utime + u.ru_stime)';
    const result = await runInSandbox({
      argv: ['/usr/bin/python3', '-c', script],
      limits: { cpus: 0.25 },
      timeoutMs: 30_000,
    });
    expect(result.enforced.cpu).toBe(true);
    expect(Number(text(result).trim())).toBeLessThan(0.6);
  });

  it('refuses ptrace and process_vm_readv when asked to', async () => {
    const script =
      'import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n' +
      'r = libc.ptrace(16, os.getppid(), 0, 0)\nprint(r, ctypes.get_errno())\n' +
      'r = libc.process_vm_readv(os.getppid(), None, 0, None, 0, 0)\nprint(r, ctypes.get_errno())';
    const denied = await runInSandbox({
      argv: ['/usr/bin/python3', '-c', script],
      denySyscalls: INSPECTION_SYSCALLS,
      timeoutMs: 10_000,
    });
    expect(text(denied).trim().split('\n')).toEqual(['-1 1', '-1 1']); // EPERM twice
  });

  it('reports which limits were enforced', async () => {
    const result = await runInSandbox({
      argv: ['/bin/true'],
      limits: { memoryBytes: 64 << 20, pids: 16, cpus: 1 },
      timeoutMs: 10_000,
    });
    expect(result.exitCode).toBe(0);
    if (isRoot) {
      expect(result.enforced).toEqual({ memory: true, pids: true, cpu: true, treeKill: true });
      expect(result.warnings).toEqual([]);
    } else {
      expect(result.warnings.length).toBeGreaterThan(0);
    }
  });
});
