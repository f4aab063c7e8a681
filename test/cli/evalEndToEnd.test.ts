import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { openDb } from '../../src/store/db.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { ensureTinyModel, testPython, tinyChatTemplate, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/**
 * `ptb eval` end to end on CPU: the real CLI, the hf engine serving the tiny model, synthetic
 * GSM8K-schema data, the store; then a SIGKILLed evaluation resumed by running the command again.
 */

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

const dir = mkdtempSync(join(tmpdir(), 'ptb-e2e-'));
let model: string;
let python: string;
let args: string[];

beforeAll(async () => {
  model = await ensureTinyModel();
  python = await testPython();
  const rows = Array.from({ length: 10 }, (_, i) => ({
    question: `Bo has ${i + 2} pens. How many pens?`,
    answer: `${i + 2} pens.\n#### ${i + 2}`,
  }));
  writeFileSync(join(dir, 'test.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  writeFileSync(join(dir, 'gsm8k.py'), 'MATH_PROMPT_TEMPLATE = """\n{prompt}\n\nReasoning:\n""".strip()\n');
  writeFileSync(join(dir, 'tiny.jinja'), tinyChatTemplate);
  args = [
    'eval',
    '-m',
    model,
    '-b',
    'gsm8k',
    '--engine',
    'hf',
    '--template',
    join(dir, 'tiny.jinja'),
    '--data',
    `test=${join(dir, 'test.jsonl')}`,
    '--data',
    `train=${join(dir, 'test.jsonl')}`,
    '--data',
    `prompt-source=${join(dir, 'gsm8k.py')}`,
    '--max-tokens',
    '12',
    '--offline',
    '--json',
    '--protocol',
    'v1.0',
  ];
}, tinyModelTimeoutMs);

describe('ptb eval (hf engine, tiny model, CPU)', () => {
  it('evaluates, writes upstream-compatible metrics.json and per-sample records', async () => {
    const home = tempHome();
    const run = await runCli([...args, '--limit', '6'], { PTB_HOME: home, PTB_PYTHON: python });
    expect(run.stderr).not.toMatch(/ptb: /);
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out).toMatchObject({ benchmark: 'gsm8k', max_tokens: 12, attempts: 1, resumed: false });
    const metrics = JSON.parse(readFileSync(join(out.out_dir, 'metrics.json'), 'utf8'));
    expect(metrics.accuracy).toBeGreaterThanOrEqual(0);
    expect(metrics.accuracy).toBeLessThanOrEqual(1);
    expect(metrics).toHaveProperty('stderr');
    const samples = readFileSync(join(out.out_dir, 'samples.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(samples.map((s) => s.id)).toEqual(['0', '1', '2', '3', '4', '5']);
    expect(
      samples.every(
        (s) => typeof s.response === 'string' && s.completion_tokens > 0 && s.completion_tokens <= 12,
      ),
    ).toBe(true);
    const evalJson = JSON.parse(readFileSync(join(out.out_dir, 'eval.json'), 'utf8'));
    expect(evalJson.template).toMatchObject({ source: 'override', reason: 'flag' });
    // A local checkpoint is served from the bwrap model sandbox by default, and the run says so.
    expect(evalJson.isolation).toMatchObject({ sandbox: 'bwrap', gpuIndices: [] });
    expect(out.engine_isolation).toMatchObject({ sandbox: 'bwrap' });
    expect(evalJson.data.map((d: { part: string; source: string }) => [d.part, d.source])).toContainEqual([
      'test',
      'local',
    ]);
    expect(readFileSync(join(out.out_dir, 'final_eval_1.txt'), 'utf8').length).toBeGreaterThan(0);
    const listed = await runCli(['evals', '--json'], { PTB_HOME: home });
    expect(JSON.parse(listed.stdout)[0]).toMatchObject({ id: out.run_id, status: 'completed' });
  }, 300_000);

  it('protocol v1.1 evaluates each fixed seed and writes the per-seed files of the reference', async () => {
    const home = tempHome();
    const v11 = args.map((a) => (a === 'v1.0' ? 'v1.1' : a));
    const run = await runCli([...v11, '--limit', '3'], { PTB_HOME: home, PTB_PYTHON: python });
    expect(run.stderr).not.toMatch(/ptb: /);
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.protocol).toBe('v1.1');
    // the tiny model samples (no generation config temperature of 0), so all five seeds run
    const seeds = [72332, 87681, 38992, 92201, 13818];
    expect(out.seeds.map((s: { seed: number; status: string }) => [s.seed, s.status])).toEqual(
      seeds.map((s) => [s, 'completed']),
    );
    const files = readdirSync(out.out_dir);
    for (const seed of seeds) {
      expect(files).toContain(`metrics_seed${seed}.json`);
      expect(files).toContain(`final_eval_seed${seed}_1.txt`);
    }
    const metrics = JSON.parse(readFileSync(join(out.out_dir, 'metrics.json'), 'utf8'));
    expect(metrics).toMatchObject({ num_seeds: 5, num_seeds_succeeded: 5 });
    const perSeed = seeds.map(
      (s) => JSON.parse(readFileSync(join(out.out_dir, `metrics_seed${s}.json`), 'utf8')).accuracy as number,
    );
    expect(metrics.accuracy).toBeCloseTo(perSeed.reduce((a, b) => a + b, 0) / 5, 12);
    const listed = JSON.parse((await runCli(['evals', '--json'], { PTB_HOME: home })).stdout);
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ id: out.run_id, protocol: 'v1.1', status: 'completed' });
  }, 600_000);

  it('resumes an evaluation whose process was killed with SIGKILL, without losing or redoing samples', async () => {
    const home = tempHome();
    // On the host (the opt-out): a sandboxed engine dies with ptb instead (test/engines/hfSandboxed.test.ts).
    const child = spawn(
      process.execPath,
      [join(repoRoot, 'bin/ptb.js'), ...args, '--concurrency', '1', '--engine-sandbox', 'none'],
      {
        env: { ...process.env, PTB_HOME: home, PTB_PYTHON: python },
        stdio: 'ignore',
      },
    );
    const dbPath = join(home, 'ptb.db');
    const recorded = () => {
      try {
        const db = openDb(dbPath);
        const n = (db.prepare('SELECT COUNT(*) AS n FROM eval_samples').get() as { n: number }).n;
        db.close();
        return n;
      } catch {
        return 0;
      }
    };
    const deadline = Date.now() + 120_000;
    while (recorded() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const before = recorded();
    // The engine server of the killed ptb is still running until the resumed evaluation reaps it.
    const enginePid = (
      JSON.parse(
        readFileSync(join(home, 'evals', readdirSync(join(home, 'evals'))[0]!, 'engine_1.json'), 'utf8'),
      ) as { pid: number }
    ).pid;
    expect(groupAlive(enginePid)).toBe(true);
    expect(before).toBeGreaterThanOrEqual(3);
    expect(before).toBeLessThan(10);
    const db = openDb(dbPath);
    const kept = db.prepare('SELECT sample_id, reply_text FROM eval_samples ORDER BY position').all();
    db.close();

    const run = await runCli([...args, '--engine-sandbox', 'none'], { PTB_HOME: home, PTB_PYTHON: python });
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    const dbDiag = openDb(dbPath);
    const diag = JSON.stringify(
      dbDiag.prepare('SELECT id, status, config_key, config_json FROM eval_runs').all(),
    );
    dbDiag.close();
    expect(out.resumed, `${run.stderr}\n${diag}`).toBe(true);
    const db2 = openDb(dbPath);
    const rows = db2
      .prepare('SELECT sample_id, reply_text FROM eval_samples ORDER BY position')
      .all() as Array<{ sample_id: string }>;
    const attempts = db2.prepare('SELECT status FROM eval_attempts ORDER BY n').all();
    db2.close();
    expect(rows).toHaveLength(10);
    // The samples recorded before the kill are unchanged.
    expect(rows.slice(0, before)).toEqual(kept);
    expect(attempts).toEqual([{ status: 'interrupted' }, { status: 'completed' }]);
    expect(groupAlive(enginePid)).toBe(false);
  }, 300_000);

  it('reports a missing or corrupt model directory clearly and records nothing', async () => {
    const home = tempHome();
    const missing = await runCli([...args.slice(0, 2), join(dir, 'nope'), ...args.slice(3)], {
      PTB_HOME: home,
      PTB_PYTHON: python,
    });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/neither a local directory nor a Hugging Face id/);
    const broken = join(dir, 'broken-model');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(broken, { recursive: true });
    writeFileSync(join(broken, 'config.json'), '{not json');
    const corrupt = await runCli([...args.slice(0, 2), broken, ...args.slice(3)], {
      PTB_HOME: home,
      PTB_PYTHON: python,
    });
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toMatch(/config\.json/);
  });
});
