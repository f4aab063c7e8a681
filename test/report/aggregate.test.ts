import { describe, expect, it } from 'vitest';
import {
  aggregate,
  methodNames,
  type ReportBaseline,
  type ReportTrial,
  WeightsError,
} from '../../src/report/aggregate.ts';
import { parseUpstreamMethod } from '../../src/report/grouping.ts';
import { REFERENCE_WEIGHTS } from '../../src/report/weights.ts';

let counter = 0;
function trial(over: Partial<ReportTrial>): ReportTrial {
  counter++;
  return {
    id: `t${String(counter).padStart(4, '0')}`,
    experiment: 'exp',
    source: 'ptb',
    agent: 'claude',
    agentConfig: 'opus',
    hours: 10,
    gpus: 1,
    seed: 0,
    baseModel: 'Qwen/Qwen3-1.7B-Base',
    benchmark: 'gsm8k',
    runNumber: null,
    createdAt: `2026-01-01T00:00:${String(counter % 60).padStart(2, '0')}.000Z`,
    status: 'completed',
    accuracy: 0.5,
    protocol: 'v1.1',
    verdict: 'clean',
    unverifiedPolicy: 'base-score',
    agentSeconds: null,
    inputTokens: null,
    outputTokens: null,
    costUsd: null,
    ...over,
  };
}

const base = (
  model: string,
  benchmark: string,
  accuracy: number | null,
  kind: ReportBaseline['kind'] = 'base',
): ReportBaseline => ({
  model,
  benchmark,
  kind,
  accuracy,
  createdAt: '2026-01-01T00:00:00.000Z',
});

/** Two models × two benchmarks: hand-checkable grids. */
const MODELS = ['org/A-Base', 'org/B-Base'];
function grid(
  experiment: string,
  values: [number, number, number, number],
  over: Partial<ReportTrial> = {},
): ReportTrial[] {
  return [
    trial({ experiment, baseModel: MODELS[0], benchmark: 'gsm8k', accuracy: values[0], ...over }),
    trial({ experiment, baseModel: MODELS[1], benchmark: 'gsm8k', accuracy: values[1], ...over }),
    trial({ experiment, baseModel: MODELS[0], benchmark: 'humaneval', accuracy: values[2], ...over }),
    trial({ experiment, baseModel: MODELS[1], benchmark: 'humaneval', accuracy: values[3], ...over }),
  ];
}
const BASELINES = [
  base('org/A-Base', 'gsm8k', 0.1),
  base('org/B-Base', 'gsm8k', 0.3),
  base('org/A-Base', 'humaneval', 0.05),
  base('org/B-Base', 'humaneval', 0.15),
];
// gsm8k and humaneval weights rescaled to sum 1.
const W_GSM = REFERENCE_WEIGHTS.gsm8k / (REFERENCE_WEIGHTS.gsm8k + REFERENCE_WEIGHTS.humaneval);
const W_HE = 1 - W_GSM;

describe('aggregate', () => {
  it('averages models per benchmark, weights benchmarks, and combines seeds as mean and sample std', () => {
    const trials = [...grid('opus_run1', [0.4, 0.6, 0.2, 0.4]), ...grid('opus_run2', [0.6, 0.8, 0.4, 0.6])];
    const lb = aggregate(trials, BASELINES);
    expect(lb.models).toEqual(['A-Base', 'B-Base']);
    expect(lb.benchmarks).toEqual(['gsm8k', 'humaneval']);
    expect(lb.weights.subset).toBe(true);
    expect(lb.rows).toHaveLength(1);
    const row = lb.rows[0]!;
    expect(row.name).toBe('opus');
    expect(row.runs.map((r) => r.name)).toEqual(['opus_run1', 'opus_run2']);
    const run1 = W_GSM * 0.5 + W_HE * 0.3;
    const run2 = W_GSM * 0.7 + W_HE * 0.5;
    expect(row.runs[0]!.avg).toBeCloseTo(run1, 12);
    expect(row.runs[1]!.avg).toBeCloseTo(run2, 12);
    expect(row.avg).toBeCloseTo((run1 + run2) / 2, 12);
    // n − 1: two values differing by 0.2 have sample std 0.2/√2.
    expect(row.std).toBeCloseTo(Math.abs(run2 - run1) / Math.SQRT2, 12);
    expect(row.nRuns).toBe(2);
    expect(row.perBenchmark.gsm8k).toEqual({
      mean: expect.closeTo(0.6, 12),
      std: expect.closeTo(0.2 / Math.SQRT2, 12),
      n: 2,
    });
    expect(row.status).toBe('complete');
    // Baseline rows: base means 0.2 / 0.1.
    expect(lb.baselines.base.perBenchmark).toEqual({
      gsm8k: expect.closeTo(0.2, 12),
      humaneval: expect.closeTo(0.1, 12),
    });
    expect(lb.baselines.base.avg).toBeCloseTo(W_GSM * 0.2 + W_HE * 0.1, 12);
  });

  it('one run: std is null, not 0', () => {
    const lb = aggregate(grid('solo', [0.4, 0.6, 0.2, 0.4]), BASELINES);
    expect(lb.rows[0]!.std).toBeNull();
    expect(lb.rows[0]!.perBenchmark.gsm8k!.std).toBeNull();
  });

  it('takes the newest trial per cell: the higher run number as a number (10 > 9), then the later one', () => {
    const trials = [
      ...grid('m', [0.4, 0.6, 0.2, 0.4], { source: 'import' }).map((t, i) => ({ ...t, runNumber: 100 + i })),
      trial({
        experiment: 'm',
        source: 'import',
        baseModel: MODELS[0],
        benchmark: 'gsm8k',
        runNumber: 9,
        accuracy: 0.99,
      }),
      trial({
        experiment: 'm',
        source: 'import',
        baseModel: MODELS[1],
        benchmark: 'gsm8k',
        runNumber: 10,
        accuracy: 0.9,
      }),
    ];
    // cell A/gsm8k: 100 beats 9; cell B/gsm8k: run 101 (0.6) beats run 10 (0.9).
    trials[0]!.runNumber = 10;
    trials[4]!.runNumber = 9;
    const lb = aggregate(trials, BASELINES);
    const cells = lb.rows[0]!.runs[0]!.cells;
    expect(cells.find((c) => c.model === 'A-Base' && c.benchmark === 'gsm8k')!.value).toBe(0.4);
    expect(cells.find((c) => c.model === 'B-Base' && c.benchmark === 'gsm8k')!.value).toBe(0.6);

    const older = trial({ experiment: 'p', createdAt: '2026-01-01T00:00:00.000Z', accuracy: 0.1 });
    const newer = trial({ experiment: 'p', createdAt: '2026-01-02T00:00:00.000Z', accuracy: 0.7 });
    const running = trial({
      experiment: 'p',
      createdAt: '2026-01-03T00:00:00.000Z',
      status: 'running',
      accuracy: null,
    });
    const ptb = aggregate([running, older, newer], [], {
      models: ['Qwen/Qwen3-1.7B-Base'],
      benchmarks: ['gsm8k'],
    });
    expect(ptb.rows[0]!.runs[0]!.cells[0]).toMatchObject({ value: 0.7, trialId: newer.id, reason: 'clean' });
  });

  it("substitutes the base model's zero-shot score for flagged, unverified and metric-less cells", () => {
    const trials = [
      trial({ experiment: 'x', baseModel: MODELS[0], benchmark: 'gsm8k', accuracy: 0.9, verdict: 'flagged' }),
      trial({
        experiment: 'x',
        baseModel: MODELS[1],
        benchmark: 'gsm8k',
        accuracy: 0.9,
        verdict: 'unverified',
      }),
      trial({
        experiment: 'x',
        baseModel: MODELS[0],
        benchmark: 'humaneval',
        accuracy: null,
        status: 'failed',
      }),
      trial({
        experiment: 'x',
        baseModel: MODELS[1],
        benchmark: 'humaneval',
        accuracy: 0.5,
        verdict: 'unverified',
        unverifiedPolicy: 'keep-score',
      }),
    ];
    const run = aggregate(trials, BASELINES).rows[0]!.runs[0]!;
    const by = (m: string, b: string) => run.cells.find((c) => c.model === m && c.benchmark === b)!;
    expect(by('A-Base', 'gsm8k')).toMatchObject({
      value: 0.1,
      reason: 'flagged',
      substituted: true,
      accuracy: 0.9,
    });
    expect(by('B-Base', 'gsm8k')).toMatchObject({ value: 0.3, reason: 'unverified', substituted: true });
    expect(by('A-Base', 'humaneval')).toMatchObject({ value: 0.05, reason: 'no-metrics', substituted: true });
    expect(by('B-Base', 'humaneval')).toMatchObject({
      value: 0.5,
      reason: 'kept-unverified',
      substituted: false,
    });
    expect(run.substitutedCells).toBe(3);
    expect(run.perBenchmark.gsm8k).toBeCloseTo(0.2, 12);
    expect(run.perBenchmark.humaneval).toBeCloseTo(0.275, 12);
    expect(run.complete).toBe(true);
  });

  it('reports incomplete grids instead of averaging them: a missing cell, an unfinished one, no baseline', () => {
    const complete = grid('good', [0.4, 0.6, 0.2, 0.4]);
    const holes = [
      trial({ experiment: 'holes', baseModel: MODELS[0], benchmark: 'gsm8k', accuracy: 0.5 }),
      trial({
        experiment: 'holes',
        baseModel: MODELS[1],
        benchmark: 'gsm8k',
        status: 'running',
        accuracy: null,
      }),
      trial({ experiment: 'holes', baseModel: MODELS[0], benchmark: 'humaneval', verdict: 'flagged' }),
    ];
    const lb = aggregate([...complete, ...holes], BASELINES.slice(0, 2));
    const row = lb.rows.find((r) => r.name === 'holes')!;
    expect(row.avg).toBeNull();
    expect(row.status).toBe('incomplete');
    expect(row.nRuns).toBe(0);
    expect(row.runs[0]!.problems).toEqual([
      'gsm8k × B-Base: not finished',
      'humaneval × A-Base: flagged, and no zero-shot baseline to substitute',
      'humaneval × B-Base: no trial',
    ]);
    expect(row.perBenchmark.gsm8k).toEqual({ mean: null, std: null, n: 0 });
    // Complete rows rank first; incomplete ones last.
    expect(lb.rows.map((r) => r.name)).toEqual(['good', 'holes']);
  });

  it('a row with one incomplete seed averages the complete ones and says so', () => {
    const trials = [
      ...grid('a_seed1', [0.4, 0.6, 0.2, 0.4]),
      ...grid('a_seed2', [0.6, 0.8, 0.4, 0.6]).slice(0, 3),
    ];
    const row = aggregate(trials, BASELINES).rows[0]!;
    expect(row.status).toBe('partial');
    expect(row.nRuns).toBe(1);
    expect(row.runs).toHaveLength(2);
    expect(row.avg).toBeCloseTo(W_GSM * 0.5 + W_HE * 0.3, 12);
    // gsm8k is complete in both seeds, humaneval only in the first.
    expect(row.perBenchmark.gsm8k!.n).toBe(2);
    expect(row.perBenchmark.humaneval!.n).toBe(1);
  });

  it('groups by explicit --group mapping over the suffix rule', () => {
    const trials = [...grid('first', [0.4, 0.6, 0.2, 0.4]), ...grid('second', [0.6, 0.8, 0.4, 0.6])];
    expect(
      aggregate(trials, BASELINES)
        .rows.map((r) => r.name)
        .sort(),
    ).toEqual(['first', 'second']);
    const grouped = aggregate(trials, BASELINES, {
      groups: new Map([
        ['first', 'both'],
        ['second', 'both'],
      ]),
    });
    expect(grouped.rows.map((r) => [r.name, r.nRuns])).toEqual([['both', 2]]);
  });

  it('names ptb runs by seed and agent configuration when one experiment holds several', () => {
    const trials = [
      trial({ experiment: 'grid', seed: 0 }),
      trial({ experiment: 'grid', seed: 1 }),
      trial({ experiment: 'grid', seed: 0, agent: 'codex', agentConfig: 'gpt-5.2' }),
      trial({ experiment: 'solo', seed: 3 }),
      trial({ experiment: 'up_run2', source: 'import', seed: 2 }),
    ];
    expect([...methodNames(trials).values()]).toEqual([
      'grid_claude_opus_10h_seed0',
      'grid_claude_opus_10h_seed1',
      'grid_codex_gpt-5.2_10h_seed0',
      'solo',
      'up_run2',
    ]);
    const lb = aggregate(trials, [], { benchmarks: ['gsm8k'] });
    expect(lb.rows.map((r) => `${r.name}:${r.runs.length}`).sort()).toEqual([
      'grid_claude_opus_10h:2',
      'grid_codex_gpt-5.2_10h:1',
      'solo:1',
      'up:1',
    ]);
  });

  it("adds the reference's _<n>gpu suffix to multi-GPU runs (spec §1.2), once", () => {
    const trials = [
      trial({ experiment: 'wide', gpus: 2 }),
      trial({ experiment: 'sft_2gpu_try', gpus: 2 }),
      trial({ experiment: 'mixed', gpus: 1 }),
      trial({ experiment: 'mixed', gpus: 4 }),
      trial({ experiment: 'narrow', gpus: 1 }),
    ];
    expect([...methodNames(trials).values()]).toEqual([
      'wide_2gpu',
      'sft_2gpu_try',
      'mixed_claude_opus_10h',
      'mixed_claude_opus_10h_4gpu',
      'narrow',
    ]);
    expect(parseUpstreamMethod('mixed_claude_opus_10h_4gpu')).toMatchObject({ gpus: 4, hours: 10 });
  });

  it('sums cost over a run, filling trials without a figure with the run mean; time is a mean per trial', () => {
    const trials = grid('c', [0.4, 0.6, 0.2, 0.4]);
    trials[0]!.costUsd = 2;
    trials[1]!.costUsd = 4;
    trials[0]!.agentSeconds = 3600;
    trials[1]!.agentSeconds = 7200;
    trials[2]!.inputTokens = 100;
    const run = aggregate(trials, BASELINES).rows[0]!.runs[0]!;
    expect(run.costUsd).toBe(12); // mean 3 × 4 trials
    expect(run.inputTokens).toBe(400);
    expect(run.outputTokens).toBeNull();
    expect(run.timeSeconds).toBe(5400);
    expect(run.budgetFraction).toBeCloseTo(5400 / 36000, 12);
  });

  it('keeps the score of a trial that was never audited (as the finalize phase does)', () => {
    const run = aggregate([trial({ verdict: 'not_audited', accuracy: 0.4 })], []).rows[0]!.runs[0]!;
    expect(run.cells[0]).toMatchObject({ value: 0.4, reason: 'not-audited', substituted: false });
  });

  it('--models reference is the four base models of the paper; the grid follows the flags', () => {
    const lb = aggregate([trial({})], [], { models: ['reference'], benchmarks: ['gsm8k'] });
    expect(lb.models).toEqual(['Qwen3-1.7B-Base', 'Qwen3-4B-Base', 'SmolLM3-3B-Base', 'gemma-3-4b-pt']);
    expect(lb.rows[0]!.runs[0]!.problems).toHaveLength(3);
  });

  it('weights from baselines: normalised 1/(instruct − base); refused when a gap is missing', () => {
    const instruct = [
      base('Qwen/Qwen3-1.7B', 'gsm8k', 0.7, 'instruct'),
      base('Qwen/Qwen3-1.7B', 'humaneval', 0.45, 'instruct'),
      base('Qwen/Qwen3-1.7B-Base', 'gsm8k', 0.2),
      base('Qwen/Qwen3-1.7B-Base', 'humaneval', 0.2),
    ];
    const trials = [trial({ benchmark: 'gsm8k' }), trial({ benchmark: 'humaneval' })];
    const lb = aggregate(trials, instruct, { weights: 'from-baselines' });
    // gaps 0.5 and 0.25 → 2 : 4 → 1/3, 2/3.
    expect(lb.weights.values.gsm8k).toBeCloseTo(1 / 3, 12);
    expect(lb.weights.values.humaneval).toBeCloseTo(2 / 3, 12);
    expect(lb.baselines.instruct.models).toEqual(['Qwen3-1.7B']);
    expect(lb.baselines.instruct.avg).toBeCloseTo(0.7 / 3 + (0.45 * 2) / 3, 12);
    expect(() => aggregate(trials, instruct.slice(1), { weights: 'from-baselines' })).toThrow(WeightsError);
  });
});
