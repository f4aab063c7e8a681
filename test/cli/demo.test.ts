import { describe, expect, it } from 'vitest';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { testPython } from '../helpers/tinyModel.ts';

/** The README's main command, shortened: the whole offline pipeline on CPU. */
describe('ptb demo', () => {
  it('builds, fine-tunes and evaluates the tiny model offline and prints the score table', async () => {
    const home = tempHome();
    const env = { PTB_HOME: home, PTB_PYTHON: await testPython() };
    const run = await runCli(['demo', '--items', '8', '--train-steps', '10', '--json'], env);
    expect(run.stderr).not.toMatch(/ptb: /);
    expect(run.code).toBe(0);
    const rows = JSON.parse(run.stdout) as Array<{
      model: string;
      accuracy: number;
      samples: number;
      formatted: number;
      runId: string;
    }>;
    expect(rows.map((r) => r.model)).toEqual(['tiny base model', 'after fine-tuning']);
    for (const r of rows) {
      expect(r.samples).toBe(8);
      expect(r.accuracy).toBeGreaterThanOrEqual(0);
      expect(r.accuracy).toBeLessThanOrEqual(1);
    }
    // An untrained model with a fresh tokenizer cannot produce the answer format.
    expect(rows[0]!.formatted).toBe(0);
    const listed = JSON.parse((await runCli(['evals', '--json'], env)).stdout) as Array<{
      id: string;
      status: string;
    }>;
    expect(listed.map((e) => e.status)).toEqual(['completed', 'completed']);
    expect(new Set(listed.map((e) => e.id))).toEqual(new Set(rows.map((r) => r.runId)));
  }, 600_000);
});
