import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { testPython } from '../helpers/tinyModel.ts';

/** `ptb run --config`: a grid runs once; running it again redoes nothing. */
describe('ptb run --config grid.yaml', () => {
  it('runs every cell, then finds them done on the next run', async () => {
    const home = tempHome();
    const env = { PTB_HOME: home, PTB_PYTHON: await testPython(), PTB_OFFLINE: '1' };
    const grid = join(home, 'grid.yaml');
    writeFileSync(
      grid,
      'experiment: smoke\nagents: [noop]\nmodels: [acme/tiny-base]\nbenchmarks: [gsm8k, aime2025]\n' +
        'hours: 0.01\ngpus_per_trial: 0\nengine: hf\nnetwork: none\n',
    );
    const first = await runCli(['run', '--config', grid, '--parallel', '2', '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    const trials = first.stdout
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as { status: string; agent_outcome: string; benchmark: string; substituted: boolean },
      );
    expect(trials.map((t) => t.benchmark).sort()).toEqual(['aime2025', 'gsm8k']);
    for (const t of trials) {
      expect(t.status).toBe('completed');
      expect(t.agent_outcome).toBe('finished');
      expect(t.substituted).toBe(true); // noop submits nothing: no metrics, base score (none recorded)
    }
    const again = await runCli(['run', '--config', grid], env);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/2 trials, 2 done or skipped, 0 to run/);
    const plan = await runCli(['run', '--config', grid, '--dry-run'], env);
    expect(plan.stdout.match(/completed/g)).toHaveLength(2);
    // `trial clean` removes the live workspace and keeps the results.
    const listed = (await runCli(['trials', '--json'], env)).stdout.trim().split('\n');
    const { id, dir } = JSON.parse(listed[0]!) as { id: string; dir: string };
    expect(existsSync(join(dir, 'work'))).toBe(true);
    const clean = await runCli(['trial', 'clean', id], env);
    expect(clean.code).toBe(0);
    expect(existsSync(join(dir, 'work'))).toBe(false);
    expect(existsSync(join(dir, 'solve_out.txt'))).toBe(true);
  }, 300_000);
});
