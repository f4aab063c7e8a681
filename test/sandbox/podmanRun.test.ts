/**
 * Real podman runs (podman 4.3 rootful + runc on the development machines). They need podman and an
 * image (see podmanImage.ts: a cached Debian rootfs, or a skeleton built in a second). Without podman
 * the suite is skipped and says why, in its name and on stderr.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SandboxResult } from '../../src/sandbox/bwrap.ts';
import type { ContainerSpec } from '../../src/sandbox/container.ts';
import { podmanCapabilities, removeStaleContainers, runInPodman } from '../../src/sandbox/podman.ts';
import { podmanTestImage } from './podmanImage.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

const image = podmanTestImage();
if (!image.ok) process.stderr.write(`podman run tests skipped: ${image.reason}\n`);
const title = image.ok
  ? `podman runs (${image.kind} image ${image.image})`
  : `podman runs (skipped: ${image.reason})`;

const text = (result: SandboxResult) => result.stdout.toString('utf8');

describe.skipIf(!image.ok)(title, () => {
  let work: string;
  let sockDir: string;
  let server: Server;
  const spec = (over: Partial<ContainerSpec>): ContainerSpec => ({
    image: image.ok ? image.image : '',
    argv: ['true'],
    mounts: [...(image.ok ? image.mounts : []), { source: work, target: '/work', readOnly: false }],
    env: { HOME: '/work' },
    cwd: '/work',
    network: 'none',
    gpus: [],
    ...over,
  });

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ptb-podman-work-'));
    if (process.getuid?.() === 0) chownSync(work, 1000, 1000);
    sockDir = mkdtempSync(join(tmpdir(), 'ptb-podman-sock-'));
    server = createServer((client) => client.end('reply-from-host\n'));
    await new Promise<void>((resolve) => server.listen(join(sockDir, 'relay.sock'), resolve));
  });

  afterAll(() => {
    server?.close();
    rmSync(work, { recursive: true, force: true });
    rmSync(sockDir, { recursive: true, force: true });
  });

  it('runs as uid 1000 with a writable bind, a read-only image, the environment, and streams output live', async () => {
    const chunks: Array<{ at: number; text: string }> = [];
    const started = Date.now();
    const result = await runInPodman(
      spec({
        argv: [
          'sh',
          '-c',
          'id -u; echo "$GREETING"; echo written > /work/out.txt; touch /usr/x 2>/dev/null || echo image-read-only; ' +
            'touch /not-here 2>/dev/null || echo root-read-only; sleep 1; echo late',
        ],
        env: { HOME: '/work', GREETING: 'hello-from-env' },
        onOutput: (_stream, chunk) => chunks.push({ at: Date.now() - started, text: chunk.toString() }),
      }),
    );
    expect(result.exitCode).toBe(0);
    expect(text(result).split('\n')).toEqual([
      '1000',
      'hello-from-env',
      'image-read-only',
      'root-read-only',
      'late',
      '',
    ]);
    expect(readFileSync(join(work, 'out.txt'), 'utf8')).toBe('written\n');
    // The first lines arrived a second before the last: streamed, not buffered until exit.
    const first = chunks.find((c) => c.text.includes('1000'))!;
    const last = chunks.find((c) => c.text.includes('late'))!;
    expect(last.at - first.at).toBeGreaterThan(700);
    // The container is gone afterwards.
    const left = spawnSync(
      'podman',
      ['ps', '-a', '--filter', `label=ptb.owner=${process.pid}`, '--format', '{{.Names}}'],
      {
        encoding: 'utf8',
      },
    );
    expect(left.stdout.trim()).toBe('');
  });

  it('has no network but loopback, and reaches the host only through a bridged socket', async () => {
    const result = await runInPodman(
      spec({
        argv: [
          'sh',
          '-c',
          "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; " +
            `node -e "require('net').connect(9100,'127.0.0.1').on('data',d=>process.stdout.write(d))"`,
        ],
        network: { bridges: [{ listenPort: 9100, socketPath: join(sockDir, 'relay.sock') }] },
      }),
    );
    expect(result.stderr.toString()).toBe('');
    expect(text(result)).toBe('lo\nreply-from-host\n');
  });

  it('enforces the pids limit', async () => {
    const result = await runInPodman(
      spec({
        argv: [
          'sh',
          '-c',
          // The subshell counts its successful forks (with builtins) and dies at the first one the
          // limit refuses; once the sleeps end, the count can be read.
          'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; ' +
            '( n=0; for i in $(seq 1 40); do sleep 1 & n=$((n+1)); echo "running=$n" > /work/forks; done ) 2>/dev/null; ' +
            'until cat /work/forks 2>/dev/null; do :; done',
        ],
        limits: { pids: 16 },
      }),
    );
    const [max, running] = text(result).trim().split('\n');
    expect(max).toBe('16');
    const count = Number(running?.split('=')[1]);
    expect(count).toBeGreaterThan(5);
    expect(count).toBeLessThanOrEqual(16);
    expect(result.enforced.pids).toBe(true);
  });

  it('at the deadline sends TERM, and KILL after the grace to what ignores it', async () => {
    const started = Date.now();
    const result = await runInPodman(
      spec({
        argv: ['sh', '-c', 'trap "" TERM; echo up; sleep 30'],
        timeoutMs: 1500,
        killGraceMs: 1000,
      }),
    );
    const elapsed = Date.now() - started;
    expect(result.timedOut).toBe(true);
    expect(text(result)).toBe('up\n');
    expect(result.exitCode).not.toBe(0);
    expect(elapsed).toBeGreaterThanOrEqual(2400);
    expect(elapsed).toBeLessThan(15_000);
  });

  it('lets a command that honours TERM finish within the grace', async () => {
    const result = await runInPodman(
      spec({
        argv: ['sh', '-c', 'trap "echo got-term; exit 3" TERM; sleep 30 & wait'],
        timeoutMs: 1500,
        killGraceMs: 10_000,
      }),
    );
    expect(result.timedOut).toBe(true);
    expect(text(result)).toBe('got-term\n');
    expect(result.exitCode).toBe(3);
  });

  it('stops on abort', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 1000);
    const result = await runInPodman(spec({ argv: ['sleep', '30'], signal: controller.signal }));
    expect(result.aborted).toBe(true);
    expect(result.timedOut).toBe(false);
    expect(result.exitCode).not.toBe(0);
  });

  it('reports an OOM kill at the memory limit', async () => {
    const result = await runInPodman(
      spec({
        argv: ['sh', '-c', 'x=$(head -c 300000000 /dev/zero | tr "\\0" a); echo survived'],
        limits: { memoryBytes: 64 * 1024 * 1024 },
      }),
    );
    expect(text(result)).not.toContain('survived');
    expect(result.oomKilled).toBe(true);
  });

  it('removes containers a dead ptb left running (a killed podman client does not stop its container)', async () => {
    // A pid that is surely not running: a child that has exited.
    const dead = spawnSync('true').pid!;
    const name = `ptb-stale-test-${process.pid}`;
    const runtime = podmanCapabilities().runtime ? ['--runtime', podmanCapabilities().runtime!] : [];
    const mounts = image.ok ? image.mounts.flatMap((m) => ['--volume', `${m.source}:${m.target}:ro`]) : [];
    const started = spawnSync(
      'podman',
      [
        'run',
        '-d',
        '--name',
        name,
        '--label',
        'ptb.sandbox=1',
        '--label',
        `ptb.owner=${dead}`,
        ...runtime,
        '--ulimit',
        'nofile=1024:1024',
        '--ulimit',
        'nproc=4096:4096',
        '--network',
        'none',
        ...mounts,
        image.ok ? image.image : '',
        'sleep',
        '60',
      ],
      { encoding: 'utf8' },
    );
    expect(started.status, started.stderr).toBe(0);
    expect(await removeStaleContainers()).toContain(name);
    expect(spawnSync('podman', ['container', 'exists', name]).status).not.toBe(0);
  });

  it('says when the container could not start', async () => {
    const result = await runInPodman(spec({ argv: ['/no/such/program'] }));
    expect(result.startFailed).toBe(true);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr.toString()).toMatch(/no such file/i);
  });
});
