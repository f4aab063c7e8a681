import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { groupIsAlive, tailFile } from '../../src/engines/processes.ts';
import { pidIsRunning } from '../helpers/processes.ts';

/**
 * Issue 13: an engine dies with the harness that started it. A harness process starts an "engine"
 * with spawnInGroup and is then killed with SIGKILL (no exit hook runs); the engine's group must
 * be gone within the grace period, without any later ptb run to reap it.
 */
async function harnessWithEngine(engineScript: string, graceMs: number) {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-orphan-'));
  const pidFile = join(dir, 'engine.pid');
  const logFile = join(dir, 'engine.log');
  const processes = join(repoRoot, 'src/engines/processes.ts');
  const harness = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `const { spawnInGroup } = await import(${JSON.stringify(processes)});
       const proc = await spawnInGroup(process.execPath, ['-e', ${JSON.stringify(engineScript)}, ${JSON.stringify(pidFile)}],
         { logFile: ${JSON.stringify(logFile)}, orphanGraceMs: ${graceMs} });
       process.stdout.write(String(proc.pid) + '\\n');
       setInterval(() => {}, 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const leader = await new Promise<number>((resolve, reject) => {
    harness.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    harness.once('exit', (code) => reject(new Error(`harness exited with ${code}`)));
  });
  for (let i = 0; i < 200 && !existsSync(pidFile); i++) await sleep(50);
  const engine = Number(readFileSync(pidFile, 'utf8'));
  return { harness, leader, engine, logFile };
}

async function gone(pid: number, withinMs: number): Promise<number> {
  const started = Date.now();
  while (pidIsRunning(pid) && Date.now() - started < withinMs) await sleep(50);
  return Date.now() - started;
}

async function groupGone(pgid: number, withinMs: number): Promise<void> {
  const started = Date.now();
  while (groupIsAlive(pgid) && Date.now() - started < withinMs) await sleep(50);
}

describe('engines die with their harness', () => {
  it('a SIGKILLed harness takes its engine group down', async () => {
    const { harness, leader, engine, logFile } = await harnessWithEngine(
      "require('node:fs').writeFileSync(process.argv[1], String(process.pid)); setInterval(() => {}, 1000);",
      5_000,
    );
    expect(pidIsRunning(engine)).toBe(true);
    harness.kill('SIGKILL');
    await gone(engine, 20_000);
    expect(pidIsRunning(engine)).toBe(false);
    await groupGone(leader, 10_000);
    expect(groupIsAlive(leader)).toBe(false);
    expect(tailFile(logFile)).toContain('the ptb process that started this engine is gone');
  }, 60_000);

  it('an engine that ignores SIGTERM is killed after the grace period', async () => {
    const { harness, leader, engine } = await harnessWithEngine(
      "process.on('SIGTERM', () => {}); require('node:fs').writeFileSync(process.argv[1], String(process.pid)); setInterval(() => {}, 1000);",
      3_000,
    );
    harness.kill('SIGKILL');
    await sleep(1_000);
    expect(pidIsRunning(engine)).toBe(true); // SIGTERM ignored, grace not over
    await gone(engine, 20_000);
    expect(pidIsRunning(engine)).toBe(false);
    await groupGone(leader, 10_000);
    expect(groupIsAlive(leader)).toBe(false);
  }, 60_000);
});
