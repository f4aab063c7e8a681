import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { openDb } from '../../src/store/db.ts';
import { TrialRepo } from '../../src/store/trialRepo.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { ensureTinyModel, testPython, tinyChatTemplate, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/**
 * `ptb baseline` end to end on CPU: the tiny model served by the hf engine on synthetic GSM8K-schema
 * items, recorded as a base-model baseline that the report then substitutes and weighs with.
 */

const dir = mkdtempSync(join(tmpdir(), 'ptb-baseline-'));
let model: string;
let python: string;

beforeAll(async () => {
  model = await ensureTinyModel();
  python = await testPython();
  // GSM8K takes its 10 few-shot examples from the train part: 10 rows serve as both.
  const rows = Array.from({ length: 10 }, (_, i) => ({
    question: `Ana has ${i + 3} apples. How many apples?`,
    answer: `${i + 3} apples.\n#### ${i + 3}`,
  }));
  writeFileSync(join(dir, 'test.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  writeFileSync(join(dir, 'gsm8k.py'), 'MATH_PROMPT_TEMPLATE = """\n{prompt}\n\nReasoning:\n""".strip()\n');
  writeFileSync(join(dir, 'tiny.jinja'), tinyChatTemplate);
}, tinyModelTimeoutMs);

describe('ptb baseline (hf engine, tiny model, CPU)', () => {
  it('evaluates zero-shot, records the baseline, and the report substitutes and weighs with it', async () => {
    const home = tempHome();
    const run = await runCli(
      [
        'baseline',
        '--models',
        model,
        '--benchmarks',
        'gsm8k',
        '--kind',
        'base',
        '--engine',
        'hf',
        '--template',
        join(dir, 'tiny.jinja'),
        '--data',
        `gsm8k:test=${join(dir, 'test.jsonl')}`,
        '--data',
        `train=${join(dir, 'test.jsonl')}`,
        '--data',
        `prompt-source=${join(dir, 'gsm8k.py')}`,
        '--max-tokens',
        '8',
        '--limit',
        '4',
        '--offline',
        '--json',
      ],
      { PTB_HOME: home, PTB_PYTHON: python },
    );
    expect(run.stderr).not.toMatch(/ptb: /);
    expect(run.code, run.stdout).toBe(0);
    const { baselines: outcomes } = JSON.parse(run.stdout);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ model, benchmark: 'gsm8k', kind: 'base' });
    expect(outcomes[0].error).toBeUndefined();
    const accuracy: number = outcomes[0].accuracy;
    expect(accuracy).toBeGreaterThanOrEqual(0);
    expect(accuracy).toBeLessThanOrEqual(1);

    const db = openDb(join(home, 'ptb.db'));
    const repo = new TrialRepo(db);
    const stored = repo.baselines();
    expect(stored).toEqual([
      expect.objectContaining({
        model,
        benchmark: 'gsm8k',
        kind: 'base',
        accuracy,
        source: 'ptb baseline',
        eval_run_id: outcomes[0].runId,
      }),
    ]);
    const evalRun = db.prepare('SELECT status, benchmark FROM eval_runs WHERE id = ?').get(outcomes[0].runId);
    expect(evalRun).toEqual({ status: 'completed', benchmark: 'gsm8k' });

    // A flagged trial of this base model scores as its baseline.
    const trial = repo.create(
      TrialSpecSchema.parse({
        experiment: 'tiny',
        agent: 'sft',
        baseModel: model,
        benchmark: 'gsm8k',
        hours: 1,
      }),
      (id) => join(home, 'trials', id),
    );
    repo.update(trial.id, { status: 'completed', accuracy: 0.99, audit_verdict: 'flagged' });
    // An instruct twin makes --weights from-baselines defined (one benchmark: weight 1).
    repo.addBaseline({
      model: 'org/tiny-instruct',
      benchmark: 'gsm8k',
      kind: 'instruct',
      accuracy: accuracy + 0.5,
      source: 'test',
    });
    db.close();
    const report = await runCli(['report', '--format', 'json', '--weights', 'from-baselines'], {
      PTB_HOME: home,
    });
    expect(report.code).toBe(0);
    const doc = JSON.parse(report.stdout);
    expect(doc.weights.values).toEqual({ gsm8k: 1 });
    expect(doc.rows[0].runs[0].cells[0]).toMatchObject({
      value: accuracy,
      reason: 'flagged',
      substituted: true,
      accuracy: 0.99,
    });
    expect(doc.rows[0].avg).toBe(accuracy);
    expect(doc.baselines.base.avg).toBe(accuracy);
  }, 300_000);
});
