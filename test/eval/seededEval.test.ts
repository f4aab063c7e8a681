import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOLS } from '../../src/core/protocols.ts';
import { openaiEngineFor } from '../../src/engines/openai.ts';
import { SERVER_SIDE_TEMPLATE } from '../../src/eval/chatTemplates.ts';
import { type EvalEvent, type EvalSettings, LadderExhausted } from '../../src/eval/runEval.ts';
import { aggregateSeedMetrics, greedyDecoding, runFinalEval } from '../../src/eval/seededEval.ts';
import { openDb } from '../../src/store/db.ts';
import { EvalRepo } from '../../src/store/evalRepo.ts';
import { numbersBenchmark } from '../helpers/numbersBenchmark.ts';
import { type StandInEngine, startStandInEngine } from '../helpers/standInEngine.ts';

const SEEDS = [72332, 87681, 38992, 92201, 13818];
const SAMPLING = { greedy: false };

let server: StandInEngine | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function setup(n: number) {
  server = await startStandInEngine({});
  const { benchmark } = numbersBenchmark(n);
  const prepared = await benchmark.prepare({ asset: async () => ({}) as never });
  const dir = mkdtempSync(join(tmpdir(), 'ptb-seeded-'));
  const repo = new EvalRepo(openDb(join(dir, 'ptb.db')));
  const settings: EvalSettings = {
    benchmark,
    prepared,
    provenance: [],
    model: server.modelName,
    engine: openaiEngineFor({ baseUrl: server.baseUrl, apiKey: server.apiKey }),
    template: SERVER_SIDE_TEMPLATE,
    limit: null,
    concurrency: 1,
    maxTokensLadder: benchmark.defaults.maxTokensLadder,
    sampling: {},
    seed: 0,
    evalsDir: join(dir, 'evals'),
    resume: 'auto',
    requestBackoffMs: 1,
    protocol: PROTOCOLS['v1.1'],
  };
  return { repo, settings, server };
}

/** Four failed requests (one try + three retries) fail one attempt. */
const failedAttempt = () => Array(4).fill({ kind: 'status', status: 500 });

describe('the seeded final evaluation (protocol v1.1)', () => {
  it('evaluates each fixed seed and writes the per-seed files and the mean as the reference does', async () => {
    const { repo, settings, server } = await setup(6);
    const result = await runFinalEval(repo, settings, SAMPLING);
    expect(result.protocol).toBe('v1.1');
    expect(result.seeds.map((o) => [o.seed, o.status])).toEqual(SEEDS.map((s) => [s, 'completed']));
    const files = readdirSync(result.outDir);
    for (const seed of SEEDS) {
      expect(files).toContain(`metrics_seed${seed}.json`);
      expect(files).toContain(`final_eval_seed${seed}_1.txt`);
    }
    expect(files).not.toContain('final_eval_1.txt');
    const metrics = JSON.parse(readFileSync(join(result.outDir, 'metrics.json'), 'utf8'));
    expect(metrics).toMatchObject({ accuracy: 2 / 6, num_seeds: 5, num_seeds_succeeded: 5 });
    expect(Object.keys(metrics.per_seed)).toEqual(SEEDS.map(String).sort());
    expect(metrics.per_seed['72332']).toEqual({ max_tokens_stage: 0, metrics: { accuracy: 2 / 6 } });
    // 5 seeds × 6 samples, every request with its own seed
    expect(server.stats.chatRequests).toBe(30);
    expect(new Set(server.received.map((r) => r.body.seed)).size).toBe(30);
  });

  it('uses only the first seed for a greedy model, and for the API-graded benchmarks', async () => {
    const { repo, settings, server } = await setup(3);
    const result = await runFinalEval(repo, settings, { greedy: true });
    expect(result.seeds.map((o) => o.seed)).toEqual([72332]);
    expect(server.stats.chatRequests).toBe(3);
    expect(JSON.parse(readFileSync(join(result.outDir, 'metrics.json'), 'utf8'))).toMatchObject({
      num_seeds: 1,
    });
  });

  it('later seeds start at the rung where the first seed succeeded', async () => {
    const { repo, settings, server } = await setup(2);
    // the first seed's four attempts at max tokens 400 fail; it succeeds at 300
    server.injectFaults(...Array.from({ length: 4 }, failedAttempt).flat());
    const result = await runFinalEval(repo, settings, SAMPLING);
    expect(result.seeds.map((o) => o.rung)).toEqual([1, 1, 1, 1, 1]);
    expect(result.maxTokens).toBe(300);
    const afterFirst = server.received.slice(16 + 2);
    expect(afterFirst.every((r) => r.body.max_tokens === 300)).toBe(true);
    expect(readdirSync(result.outDir)).toContain('final_eval_seed72332_5.txt');
    expect(readdirSync(result.outDir)).toContain('final_eval_seed87681_1.txt');
  });

  it('leaves a later seed that fails at every rung out of the mean', async () => {
    const { repo, settings, server } = await setup(2);
    const onEvent = (e: EvalEvent) => {
      // the second seed's 9 attempts all fail
      if (e.type === 'seed' && e.index === 1)
        server.injectFaults(...Array.from({ length: 9 }, failedAttempt).flat());
    };
    const result = await runFinalEval(repo, settings, SAMPLING, onEvent);
    expect(result.seeds.map((o) => o.status)).toEqual([
      'completed',
      'failed',
      'completed',
      'completed',
      'completed',
    ]);
    expect(result.metrics).toMatchObject({ num_seeds: 5, num_seeds_succeeded: 4 });
    expect(Object.keys(result.metrics.per_seed as object)).not.toContain('87681');
  });

  it('skips the other seeds when the first fails at every rung: no score (the base model scores)', async () => {
    const { repo, settings, server } = await setup(2);
    server.injectFaults(...Array.from({ length: 9 }, failedAttempt).flat());
    const events: EvalEvent[] = [];
    await expect(runFinalEval(repo, settings, SAMPLING, (e) => events.push(e))).rejects.toThrow(
      LadderExhausted,
    );
    expect(events.filter((e) => e.type === 'seed').map((e) => (e as { seed: number }).seed)).toEqual([72332]);
    const parent = repo.listRuns().find((r) => r.status === 'failed' && JSON.parse(r.config_json).seeds);
    expect(parent).toBeDefined();
    expect(existsSync(join(parent!.out_dir, 'metrics.json'))).toBe(false);
    expect(readdirSync(parent!.out_dir).filter((f) => f.startsWith('final_eval_seed'))).toHaveLength(9);
    const summary = JSON.parse(readFileSync(join(parent!.out_dir, 'seeds.json'), 'utf8'));
    expect(summary.outcomes.map((o: { status: string }) => o.status)).toEqual([
      'failed',
      'skipped',
      'skipped',
      'skipped',
      'skipped',
    ]);
  });

  it('resumes: seeds finished by an earlier invocation are not evaluated again', async () => {
    const { repo, settings, server } = await setup(2);
    const controller = new AbortController();
    const onEvent = (e: EvalEvent) => {
      if (e.type === 'seed' && e.index === 2) controller.abort(new Error('interrupted'));
    };
    await expect(runFinalEval(repo, settings, SAMPLING, onEvent, controller.signal)).rejects.toThrow();
    const before = server.stats.chatRequests;
    expect(before).toBe(4);
    const result = await runFinalEval(repo, settings, SAMPLING);
    expect(result.resumed).toBe(true);
    expect(server.stats.chatRequests - before).toBe(3 * 2);
    expect(result.metrics).toMatchObject({ num_seeds_succeeded: 5 });
  });

  it('v1.0 stays one unseeded evaluation with the single-run files', async () => {
    const { repo, settings, server } = await setup(2);
    const result = await runFinalEval(repo, { ...settings, protocol: PROTOCOLS['v1.0'] }, SAMPLING);
    expect(result.seeds).toEqual([]);
    expect(readdirSync(result.outDir)).toEqual(expect.arrayContaining(['metrics.json', 'final_eval_1.txt']));
    expect(server.received.every((r) => r.body.seed === undefined)).toBe(true);
  });
});

describe('seed aggregation (aggregate_seed_metrics.py)', () => {
  it('averages numeric metrics over the seeds that succeeded and keeps the rest per seed', () => {
    const ok = (seed: number, accuracy: number, rung: number) => ({
      seed,
      runId: 'r',
      status: 'completed' as const,
      rung,
      maxTokens: 1,
      metrics: { accuracy, stderr: 0.1, by_theme: { a: accuracy } },
      error: null,
    });
    const metrics = aggregateSeedMetrics([ok(1, 0.5, 0), ok(2, 0.7, 1)], 5);
    expect(metrics.accuracy).toBeCloseTo(0.6);
    expect(metrics.stderr).toBeCloseTo(0.1);
    expect(metrics).not.toHaveProperty('by_theme');
    expect(metrics).toMatchObject({ num_seeds: 5, num_seeds_succeeded: 2 });
    expect((metrics.per_seed as Record<string, unknown>)['2']).toEqual({
      max_tokens_stage: 1,
      metrics: { accuracy: 0.7, stderr: 0.1, by_theme: { a: 0.7 } },
    });
  });
});

describe('greedy decoding probe (default_temperature.py)', () => {
  const model = (files: Record<string, unknown>) => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-greedy-'));
    mkdirSync(dir, { recursive: true });
    for (const [name, value] of Object.entries(files)) writeFileSync(join(dir, name), JSON.stringify(value));
    return dir;
  };
  it('reads the temperature of generation_config.json, else config.json, else 1.0', () => {
    expect(
      greedyDecoding(model({ 'config.json': {}, 'generation_config.json': { temperature: 0 } }), {}),
    ).toBe(true);
    expect(
      greedyDecoding(model({ 'config.json': {}, 'generation_config.json': { temperature: 0.6 } }), {}),
    ).toBe(false);
    // a generation config without temperature uses vLLM's 1.0, even if config.json says 0
    expect(
      greedyDecoding(model({ 'config.json': { temperature: 0 }, 'generation_config.json': {} }), {}),
    ).toBe(false);
    expect(greedyDecoding(model({ 'config.json': { temperature: 0 } }), {})).toBe(true);
    expect(greedyDecoding(model({ 'config.json': {} }), {})).toBe(false);
    // an explicit override decides; a Hugging Face id cannot be probed (every seed is used)
    expect(greedyDecoding(model({ 'config.json': {} }), { temperature: 0 })).toBe(true);
    expect(greedyDecoding('Qwen/Qwen3-1.7B-Base', {})).toBeNull();
  });
});
