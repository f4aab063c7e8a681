import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import {
  freePort,
  groupIsAlive,
  killGroup,
  ServerStartError,
  spawnInGroup,
  tailFile,
  waitForHealth,
} from '../../src/engines/processes.ts';
import { pidIsRunning, rejection } from '../helpers/processes.ts';
import { startStandInEngine } from '../helpers/standInEngine.ts';

// A parent that starts a worker in its own group and writes the worker's pid, then idles.
const PARENT_WITH_WORKER = `
const { spawn } = require('node:child_process');
const w = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
require('node:fs').writeFileSync(process.argv[1], String(w.pid));
console.log('parent up');
setInterval(() => {}, 1000);
`;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ptb-proc-'));
});

describe('freePort', () => {
  it('returns a port that can be bound', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

describe('tailFile', () => {
  it('returns the last lines, and nothing for a missing file', () => {
    const path = join(dir, 'log.txt');
    writeFileSync(path, `${Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n')}\n`);
    expect(tailFile(path, 3)).toBe('line 97\nline 98\nline 99');
    expect(tailFile(join(dir, 'missing.txt'))).toBe('');
  });
});

describe('spawnInGroup and killGroup', () => {
  const started: number[] = [];
  afterEach(() => {
    for (const pid of started.splice(0)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  it('kills the leader and its worker, and nothing outside the group', async () => {
    const workerPidFile = join(dir, 'worker.pid');
    const logFile = join(dir, 'logs', 'server.log');
    const proc = await spawnInGroup(process.execPath, ['-e', PARENT_WITH_WORKER, workerPidFile], { logFile });
    started.push(proc.pid);
    const bystander = await spawnInGroup(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
      logFile: join(dir, 'bystander.log'),
    });
    started.push(bystander.pid);

    for (let i = 0; i < 100 && !tailFile(logFile).includes('parent up'); i++) await sleep(50);
    const workerPid = Number(readFileSync(workerPidFile, 'utf8'));
    expect(pidIsRunning(workerPid)).toBe(true);
    expect(groupIsAlive(proc.pid)).toBe(true);

    await killGroup(proc, { graceMs: 2_000 });
    expect(pidIsRunning(proc.pid)).toBe(false);
    expect(pidIsRunning(workerPid)).toBe(false);
    expect(groupIsAlive(proc.pid)).toBe(false);
    expect(proc.exitInfo()).toEqual({ code: null, signal: 'SIGTERM' });
    expect(pidIsRunning(bystander.pid)).toBe(true);

    await killGroup(proc); // idempotent
    await killGroup(bystander, { graceMs: 1_000 });
    expect(pidIsRunning(bystander.pid)).toBe(false);
  });

  it('escalates to SIGKILL when SIGTERM is ignored', async () => {
    const logFile = join(dir, 'stubborn.log');
    const proc = await spawnInGroup(
      process.execPath,
      [
        '-e',
        "process.on('SIGTERM', () => console.log('ignored')); console.log('up'); setInterval(() => {}, 1000)",
      ],
      { logFile },
    );
    started.push(proc.pid);
    for (let i = 0; i < 100 && !tailFile(logFile).includes('up'); i++) await sleep(50);
    const before = Date.now();
    await killGroup(proc, { graceMs: 300 });
    expect(Date.now() - before).toBeGreaterThanOrEqual(300);
    expect(pidIsRunning(proc.pid)).toBe(false);
    expect(proc.exitInfo()?.signal).toBe('SIGKILL');
    expect(tailFile(logFile)).toContain('ignored');
  });

  it('says clearly when the executable does not exist', async () => {
    const err = await rejection(
      spawnInGroup(join(dir, 'no-such-binary'), [], { logFile: join(dir, 'x.log') }),
    );
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toContain('ENOENT');
  });
});

describe('waitForHealth', () => {
  it('waits until the server reports healthy', async () => {
    const engine = await startStandInEngine({ healthyAfterMs: 400 });
    try {
      const before = Date.now();
      await waitForHealth({
        url: `http://127.0.0.1:${engine.port}/health`,
        what: 'stand-in',
        timeoutMs: 5_000,
        intervalMs: 50,
      });
      expect(Date.now() - before).toBeGreaterThanOrEqual(350);
      expect(engine.stats.requests).toBeGreaterThan(1);
    } finally {
      await engine.close();
    }
  });

  it('fails fast with the log tail when the process exits', async () => {
    const logFile = join(dir, 'dies.log');
    const proc = await spawnInGroup(
      process.execPath,
      ['-e', "console.log('loading'); console.error('fatal: no GPU found'); process.exit(3)"],
      { logFile },
    );
    const port = await freePort();
    const before = Date.now();
    const err = await rejection(
      waitForHealth({ url: `http://127.0.0.1:${port}/health`, what: 'test server', timeoutMs: 60_000, proc }),
    );
    expect(Date.now() - before).toBeLessThan(5_000);
    expect(err).toBeInstanceOf(ServerStartError);
    const e = err as ServerStartError;
    expect(e.message).toContain('test server exited with code 3 before it became healthy');
    expect(e.message).toContain('fatal: no GPU found');
    expect(e.logTail).toContain('loading');
    expect(e.hint).toContain(logFile);
  });

  it('gives up after the timeout, quoting the log', async () => {
    const logFile = join(dir, 'slow.log');
    const proc = await spawnInGroup(
      process.execPath,
      ['-e', "console.log('still loading'); setInterval(() => {}, 1000)"],
      {
        logFile,
      },
    );
    try {
      const port = await freePort();
      const err = (await rejection(
        waitForHealth({
          url: `http://127.0.0.1:${port}/health`,
          what: 'slow server',
          // Long enough for the group leader and the server to start on a loaded machine.
          timeoutMs: 3_000,
          intervalMs: 50,
          proc,
        }),
      )) as ServerStartError;
      expect(err).toBeInstanceOf(ServerStartError);
      expect(err.message).toContain('not healthy after');
      expect(err.logTail).toContain('still loading');
      expect(err.exit).toBeNull();
    } finally {
      await killGroup(proc, { graceMs: 1_000 });
    }
  });

  it('stops waiting when aborted', async () => {
    const port = await freePort();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const err = await rejection(
      waitForHealth({
        url: `http://127.0.0.1:${port}/health`,
        what: 'x',
        timeoutMs: 60_000,
        signal: controller.signal,
      }),
    );
    expect((err as Error).name).toBe('AbortError');
  });
});
