import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import { ensurePythonEnv, splitShellWords, withDirLock } from '../../src/runtime/pythonEnv.ts';

const scratch = mkdtempSync(join(tmpdir(), 'ptb-pyenv-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('splitShellWords', () => {
  it('splits PTB_PIP_ARGS like a shell for words and quotes', () => {
    expect(splitShellWords('  torch==2.13.0+cpu --index-url "file:///opt/a b" \'--c d\' ')).toEqual([
      'torch==2.13.0+cpu',
      '--index-url',
      'file:///opt/a b',
      '--c d',
    ]);
    expect(splitShellWords('')).toEqual([]);
  });
});

describe('ensurePythonEnv', () => {
  it('returns PTB_PYTHON as is when it is executable, and refuses one that is not', async () => {
    const fake = join(scratch, 'python-fake');
    writeFileSync(fake, '#!/bin/sh\nexit 0\n');
    chmodSync(fake, 0o755);
    await expect(ensurePythonEnv({ home: join(scratch, 'unused'), env: { PTB_PYTHON: fake } })).resolves.toBe(
      fake,
    );
    expect(existsSync(join(scratch, 'unused'))).toBe(false);
    await expect(
      ensurePythonEnv({ home: scratch, env: { PTB_PYTHON: join(scratch, 'missing-python') } }),
    ).rejects.toThrow(/PTB_PYTHON points at .*missing-python/);
  });

  it('says which apt packages to install when python3 is missing', async () => {
    const emptyBin = join(scratch, 'empty-bin');
    mkdirSync(emptyBin, { recursive: true });
    const err = await ensurePythonEnv({
      home: join(scratch, 'nopython'),
      env: { PATH: emptyBin },
      onProgress: () => {},
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toMatch(/python3 is not installed/);
    expect((err as UserError).hint).toMatch(/apt-get install -y python3 python3-venv/);
  });

  it('creates the venv once, stamps it, and reuses it until the requirements change', async () => {
    const home = join(scratch, 'home');
    const requirements = join(scratch, 'requirements.txt');
    writeFileSync(requirements, '# nothing to install\n');
    const lines: string[] = [];
    const opts = {
      home,
      requirements,
      importCheck: ['json'],
      env: { ...process.env, PTB_PYTHON: '', PTB_PIP_ARGS: '--no-index' },
      onProgress: (l: string) => lines.push(l),
    };
    const python = await ensurePythonEnv(opts);
    expect(python).toBe(join(home, 'venv', 'bin', 'python'));
    expect(existsSync(python)).toBe(true);
    const stamp = JSON.parse(readFileSync(join(home, 'venv', 'ptb-env.json'), 'utf8'));
    expect(stamp.pipArgs).toEqual(['--no-index']);
    expect(lines.some((l) => l.startsWith('creating a Python'))).toBe(true);

    lines.length = 0;
    await expect(ensurePythonEnv(opts)).resolves.toBe(python);
    expect(lines).toEqual([]); // stamp matched: no pip run

    writeFileSync(requirements, '# changed\n');
    await ensurePythonEnv(opts);
    expect(lines.some((l) => l.startsWith('installing'))).toBe(true);
    expect(lines.some((l) => l.startsWith('creating'))).toBe(false); // the venv itself is kept
  }, 120_000);

  it('reports pip failures as a UserError with the end of pip output and the full log file', async () => {
    const requirements = join(scratch, 'bad-requirements.txt');
    writeFileSync(requirements, 'ptb-no-such-package-xyz==1.0\n');
    const lines: string[] = [];
    const err = await ensurePythonEnv({
      home: join(scratch, 'home'),
      requirements,
      importCheck: [],
      env: { ...process.env, PTB_PYTHON: '', PTB_PIP_ARGS: '--no-index' },
      onProgress: (l) => lines.push(l),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toMatch(/pip could not install[\s\S]*ptb-no-such-package-xyz/);
    // Progress got a summary (pip's ERROR lines), not pip's raw chatter; the log file has all of it.
    expect(lines.some((l) => l.startsWith('pip: ERROR'))).toBe(true);
    expect(lines.every((l) => !l.startsWith('Looking in') && !l.startsWith('WARNING'))).toBe(true);
    const logPath = /full pip output is in (\S+\.log)/.exec((err as UserError).hint ?? '')?.[1];
    expect(logPath).toContain(join(scratch, 'home', 'logs', 'python-env-'));
    expect(readFileSync(logPath!, 'utf8')).toMatch(/ERROR: .*ptb-no-such-package-xyz/);
  }, 120_000);
});

describe('withDirLock', () => {
  it('lets one holder in at a time', async () => {
    const lock = join(scratch, 'locks', 'a.lock');
    const events: string[] = [];
    const holder = (name: string) =>
      withDirLock(lock, async () => {
        events.push(`${name}:in`);
        await sleep(150);
        events.push(`${name}:out`);
      });
    await Promise.all([holder('a'), holder('b')]);
    expect(events).toHaveLength(4);
    expect(events[0]?.endsWith(':in') && events[1]?.endsWith(':out')).toBe(true);
    expect(events[0]?.split(':')[0]).toBe(events[1]?.split(':')[0]);
    expect(existsSync(lock)).toBe(false);
  });

  it('takes over a lock whose owner process is gone', async () => {
    const lock = join(scratch, 'locks', 'stale.lock');
    mkdirSync(lock, { recursive: true });
    const { hostname } = await import('node:os');
    // pid 2^22+1 is above Linux's pid_max default, so no process has it.
    writeFileSync(join(lock, 'owner.json'), JSON.stringify({ pid: 4_194_305, host: hostname(), since: '' }));
    await expect(withDirLock(lock, async () => 'got it', { timeoutMs: 2_000 })).resolves.toBe('got it');
  });

  it('times out with a UserError while a live owner holds the lock', async () => {
    const lock = join(scratch, 'locks', 'held.lock');
    let release: () => void = () => {};
    const held = withDirLock(lock, () => new Promise<void>((r) => (release = r)));
    await sleep(50);
    await expect(withDirLock(lock, async () => 'never', { timeoutMs: 300 })).rejects.toThrow(
      /timed out waiting for the lock/,
    );
    release();
    await held;
  });
});
