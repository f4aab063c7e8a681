import type { ProtocolId } from '../core/protocols.ts';
import { BENCHMARK_IDS } from '../core/schemas.ts';
import type { TrialStatus, VerdictValue } from '../core/trial.ts';
import { stripSeedSuffix, upstreamSafe } from './grouping.ts';
import { instructTwin, type ModelKind, REFERENCE_BASE_SHORT, shortModelName } from './models.ts';
import { type MeanStd, meanOrNull, meanStd } from './stats.ts';
import { orderBenchmarks, referenceWeights, type Weights, weightsFromBaselines } from './weights.ts';

/**
 * Leaderboard math of the reference (spec §6), as pure functions over plain records:
 *  1. newest finished trial per (run, base model, benchmark) cell;
 *  2. the base model's zero-shot score when the cell is flagged, unverified or has no metrics;
 *     (imported runs: any judge error counts as unverified, so every non-empty judge cell substitutes);
 *  3. per benchmark the mean over the base models, then the weighted sum over benchmarks;
 *  4. runs (seeds) of one agent row combined as mean and sample standard deviation.
 * A run with an empty cell is reported as incomplete and left out of the row's average.
 */

export interface ReportTrial {
  id: string;
  experiment: string;
  source: 'ptb' | 'import';
  agent: string;
  agentConfig: string;
  hours: number;
  gpus: number;
  seed: number;
  baseModel: string;
  benchmark: string;
  /** Upstream cluster id (imports); newest = highest, compared as numbers. */
  runNumber: number | null;
  createdAt: string;
  status: TrialStatus;
  accuracy: number | null;
  /** Evaluation protocol the trial's score was produced under (core/protocols.ts). */
  protocol: ProtocolId;
  verdict: VerdictValue | 'not_audited' | null;
  unverifiedPolicy: 'base-score' | 'keep-score';
  agentSeconds: number | null;
  inputTokens: number | null;
  outputTokens: number | null;
  costUsd: number | null;
  /** Attempts thrown away and redone (preemption, node loss) and the time they had used. */
  lostAttempts?: number;
  lostSeconds?: number;
}

export interface ReportBaseline {
  model: string;
  benchmark: string;
  kind: ModelKind;
  accuracy: number | null;
  createdAt: string;
}

export type WeightsChoice = 'reference' | 'from-baselines';

export interface AggregateOptions {
  /** Base models (ids, paths or short names); default: every base model the trials use. */
  models?: readonly string[];
  /** Benchmarks; default: every benchmark the trials use. */
  benchmarks?: readonly string[];
  weights?: WeightsChoice;
  /** Explicit experiment → row name mapping (`--group`); other experiments group by seed suffix. */
  groups?: ReadonlyMap<string, string>;
}

/**
 * Why a cell holds what it holds. Kept scores: clean, kept-unverified (policy keep-score),
 * not-audited (no audit ran; the reference has no such state, its judge always runs). Substituted:
 * flagged, unverified, no-metrics. Empty: no-trial, unfinished.
 */
export type CellReason =
  | 'clean'
  | 'kept-unverified'
  | 'flagged'
  | 'unverified'
  | 'not-audited'
  | 'no-metrics'
  | 'no-trial'
  | 'unfinished';

export interface Cell {
  model: string;
  benchmark: string;
  value: number | null;
  reason: CellReason;
  substituted: boolean;
  trialId: string | null;
  accuracy: number | null;
}

export interface RunResult {
  /** The method (upstream folder name, or the ptb experiment plus what tells its seeds apart). */
  name: string;
  row: string;
  experiment: string;
  agent: string;
  agentConfig: string;
  hours: number;
  cells: Cell[];
  perBenchmark: Record<string, number | null>;
  avg: number | null;
  complete: boolean;
  problems: string[];
  substitutedCells: number;
  /** Mean agent time over cells that recorded one. */
  timeSeconds: number | null;
  budgetFraction: number | null;
  /** Total over the run's trials; trials without a figure count as the run's mean (as the reference). */
  costUsd: number | null;
  inputTokens: number | null;
  outputTokens: number | null;
  /** Restarts of the run's trials (preemption, node loss) and the time lost to them (not in timeSeconds). */
  lostAttempts: number;
  lostSeconds: number;
}

export interface LeaderboardRow {
  name: string;
  agent: string;
  agentConfig: string;
  hours: number | null;
  runs: RunResult[];
  /** Complete runs, the ones avg/std are over. */
  nRuns: number;
  avg: number | null;
  std: number | null;
  perBenchmark: Record<string, MeanStd>;
  status: 'complete' | 'partial' | 'incomplete';
  time: MeanStd;
  budgetFraction: number | null;
  cost: MeanStd;
  inputTokens: MeanStd;
  outputTokens: MeanStd;
}

export interface BaselineSummary {
  kind: 'base' | 'instruct';
  /** Short names the means are over. */
  models: string[];
  perBenchmark: Record<string, number | null>;
  avg: number | null;
  missing: string[];
}

export interface Leaderboard {
  /** The protocol every score in it was evaluated under (null: no trials). */
  protocol: ProtocolId | null;
  models: string[];
  benchmarks: string[];
  weights: { source: WeightsChoice; values: Weights; subset: boolean };
  baselines: { base: BaselineSummary; instruct: BaselineSummary };
  rows: LeaderboardRow[];
}

export class WeightsError extends Error {}

const FINISHED: ReadonlySet<TrialStatus> = new Set(['completed', 'failed']);

/** Newest first: higher run number (numeric), then later creation, then id. */
export function compareNewest(a: ReportTrial, b: ReportTrial): number {
  const ra = a.runNumber ?? Number.NEGATIVE_INFINITY;
  const rb = b.runNumber ?? Number.NEGATIVE_INFINITY;
  if (ra !== rb) return rb - ra;
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

function configKey(t: ReportTrial): string {
  return JSON.stringify([t.agent, t.agentConfig, t.hours, t.gpus]);
}

/**
 * The run (method) each trial belongs to. Imported trials: their experiment (one upstream folder).
 * ptb trials: the experiment, plus the agent configuration when the experiment holds several (else
 * `_<n>gpu` for trials with n > 1 GPUs, the reference's GPU_SUFFIX, unless the name already says it),
 * plus `_seed<n>` when it holds several seeds — the same name `ptb export` gives the folder.
 */
export function methodNames(trials: readonly ReportTrial[]): Map<string, string> {
  const perExperiment = new Map<string, { configs: Set<string>; seeds: Set<number> }>();
  for (const t of trials) {
    if (t.source !== 'ptb') continue;
    const e = perExperiment.get(t.experiment) ?? { configs: new Set(), seeds: new Set() };
    e.configs.add(configKey(t));
    e.seeds.add(t.seed);
    perExperiment.set(t.experiment, e);
  }
  const names = new Map<string, string>();
  for (const t of trials) {
    const e = perExperiment.get(t.experiment);
    let name = t.experiment;
    if (t.source === 'ptb' && e) {
      const gpuSuffix = t.gpus > 1 ? `_${t.gpus}gpu` : '';
      if (e.configs.size > 1) {
        const config = t.agentConfig ? `_${upstreamSafe(t.agentConfig)}` : '';
        name += `_${t.agent}${config}_${t.hours}h${gpuSuffix}`;
      } else if (gpuSuffix && !`${name}_`.includes(`${gpuSuffix}_`)) {
        // The reference's GPU_SUFFIX (spec §1.2): a multi-GPU run never shares a folder name with a 1-GPU one.
        name += gpuSuffix;
      }
      if (e.seeds.size > 1) name += `_seed${t.seed}`;
    }
    names.set(t.id, name);
  }
  return names;
}

function resolveModels(opts: AggregateOptions, trials: readonly ReportTrial[]): string[] {
  if (opts.models && opts.models.length > 0) {
    return [
      ...new Set(
        opts.models.flatMap((m) => (m === 'reference' ? REFERENCE_BASE_SHORT : [shortModelName(m)])),
      ),
    ];
  }
  const seen = [...new Set(trials.map((t) => shortModelName(t.baseModel)))].sort();
  return seen.length > 0 ? seen : [...REFERENCE_BASE_SHORT];
}

function resolveBenchmarks(opts: AggregateOptions, trials: readonly ReportTrial[]): string[] {
  if (opts.benchmarks && opts.benchmarks.length > 0) return orderBenchmarks(opts.benchmarks);
  return orderBenchmarks(trials.map((t) => t.benchmark));
}

type BaselineIndex = Map<string, ReportBaseline>;

function baselineKey(model: string, benchmark: string): string {
  return `${shortModelName(model)}\u0000${benchmark}`;
}

/** Newest baseline per (short model name, benchmark). */
function indexBaselines(baselines: readonly ReportBaseline[]): BaselineIndex {
  const index: BaselineIndex = new Map();
  const sorted = [...baselines].sort((a, b) =>
    a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0,
  );
  for (const b of sorted) index.set(baselineKey(b.model, b.benchmark), b);
  return index;
}

function baselineValue(index: BaselineIndex, model: string, benchmark: string): number | null {
  const b = index.get(baselineKey(model, benchmark));
  return b && b.accuracy !== null && Number.isFinite(b.accuracy) ? b.accuracy : null;
}

export function summariseBaselines(
  kind: 'base' | 'instruct',
  models: readonly string[],
  benchmarks: readonly string[],
  baselines: readonly ReportBaseline[],
  weights: Weights | null,
): BaselineSummary {
  const index = indexBaselines(baselines);
  let group: string[];
  if (kind === 'base') {
    group = [...models];
  } else {
    const twins = models.map(instructTwin);
    group = twins.every((t) => t !== undefined)
      ? (twins as string[])
      : [
          ...new Set(baselines.filter((b) => b.kind === 'instruct').map((b) => shortModelName(b.model))),
        ].sort();
  }
  const perBenchmark: Record<string, number | null> = {};
  const missing: string[] = [];
  for (const b of benchmarks) {
    const values = group.map((m) => baselineValue(index, m, b));
    values.forEach((v, i) => {
      if (v === null) missing.push(`${b} × ${group[i]}`);
    });
    perBenchmark[b] =
      group.length > 0 && values.every((v) => v !== null) ? meanOrNull(values as number[]) : null;
  }
  return {
    kind,
    models: group,
    perBenchmark,
    avg: weightedAverage(perBenchmark, benchmarks, weights),
    missing,
  };
}

function weightedAverage(
  perBenchmark: Record<string, number | null>,
  benchmarks: readonly string[],
  weights: Weights | null,
): number | null {
  if (!weights || benchmarks.length === 0) return null;
  let total = 0;
  for (const b of benchmarks) {
    const v = perBenchmark[b];
    if (v === null || v === undefined) return null;
    total += (weights[b] ?? 0) * v;
  }
  return total;
}

function chooseCell(
  candidates: readonly ReportTrial[],
  model: string,
  benchmark: string,
  baselines: BaselineIndex,
): { cell: Cell; trial: ReportTrial | null; problem?: string } {
  const empty = (reason: CellReason): Cell => ({
    model,
    benchmark,
    value: null,
    reason,
    substituted: false,
    trialId: null,
    accuracy: null,
  });
  if (candidates.length === 0) {
    return { cell: empty('no-trial'), trial: null, problem: `${benchmark} × ${model}: no trial` };
  }
  const finished = candidates.filter((t) => FINISHED.has(t.status)).sort(compareNewest);
  const trial = finished[0];
  if (!trial) {
    return { cell: empty('unfinished'), trial: null, problem: `${benchmark} × ${model}: not finished` };
  }
  const accuracy = trial.accuracy !== null && Number.isFinite(trial.accuracy) ? trial.accuracy : null;
  // Same order as the trial's finalize phase (src/trial/finalize.ts): flag, unverified, no metrics.
  let reason: CellReason;
  if (trial.verdict === 'flagged') reason = 'flagged';
  else if (trial.verdict === 'unverified' && trial.unverifiedPolicy === 'base-score') reason = 'unverified';
  else if (accuracy === null) reason = 'no-metrics';
  else if (trial.verdict === 'unverified') reason = 'kept-unverified';
  else if (trial.verdict === 'clean') reason = 'clean';
  else reason = 'not-audited';
  const base = { model, benchmark, reason, trialId: trial.id, accuracy };
  if (reason === 'clean' || reason === 'kept-unverified' || reason === 'not-audited') {
    return { cell: { ...base, value: accuracy, substituted: false }, trial };
  }
  const substitute = baselineValue(baselines, model, benchmark);
  return {
    cell: { ...base, value: substitute, substituted: true },
    trial,
    ...(substitute === null
      ? { problem: `${benchmark} × ${model}: ${reason}, and no zero-shot baseline to substitute` }
      : {}),
  };
}

/** Sum of the values; missing ones count as the mean of the known (the reference's cost rule). */
function totalWithFill(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (known.length === 0) return null;
  return (known.reduce((a, v) => a + v, 0) / known.length) * values.length;
}

function aggregateRun(
  name: string,
  row: string,
  trials: readonly ReportTrial[],
  models: readonly string[],
  benchmarks: readonly string[],
  weights: Weights | null,
  baselines: BaselineIndex,
): RunResult {
  const byCell = new Map<string, ReportTrial[]>();
  for (const t of trials) {
    const key = `${shortModelName(t.baseModel)}\u0000${t.benchmark}`;
    byCell.set(key, [...(byCell.get(key) ?? []), t]);
  }
  const cells: Cell[] = [];
  const chosen: ReportTrial[] = [];
  const problems: string[] = [];
  const perBenchmark: Record<string, number | null> = {};
  for (const b of benchmarks) {
    const values: (number | null)[] = [];
    for (const m of models) {
      const { cell, trial, problem } = chooseCell(byCell.get(`${m}\u0000${b}`) ?? [], m, b, baselines);
      cells.push(cell);
      values.push(cell.value);
      if (trial) chosen.push(trial);
      if (problem) problems.push(problem);
    }
    perBenchmark[b] = values.every((v) => v !== null) ? meanOrNull(values as number[]) : null;
  }
  const complete = cells.every((c) => c.value !== null) && cells.length > 0;
  const first = [...trials].sort(compareNewest)[0]!;
  const seconds = chosen.map((t) => t.agentSeconds).filter((s): s is number => s !== null);
  const timeSeconds = meanOrNull(seconds);
  const hours = first.hours;
  return {
    name,
    row,
    experiment: first.experiment,
    agent: first.agent,
    agentConfig: first.agentConfig,
    hours,
    cells,
    perBenchmark,
    avg: complete ? weightedAverage(perBenchmark, benchmarks, weights) : null,
    complete,
    problems,
    substitutedCells: cells.filter((c) => c.substituted).length,
    timeSeconds,
    budgetFraction: timeSeconds === null ? null : timeSeconds / (hours * 3600),
    costUsd: totalWithFill(chosen.map((t) => t.costUsd)),
    inputTokens: totalWithFill(chosen.map((t) => t.inputTokens)),
    outputTokens: totalWithFill(chosen.map((t) => t.outputTokens)),
    lostAttempts: chosen.reduce((n, t) => n + (t.lostAttempts ?? 0), 0),
    lostSeconds: chosen.reduce((n, t) => n + (t.lostSeconds ?? 0), 0),
  };
}

function distinct<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

function aggregateRow(name: string, runs: RunResult[], benchmarks: readonly string[]): LeaderboardRow {
  const complete = runs.filter((r) => r.complete);
  const avgStats = meanStd(complete.map((r) => r.avg!));
  const perBenchmark: Record<string, MeanStd> = {};
  for (const b of benchmarks) {
    perBenchmark[b] = meanStd(
      runs.map((r) => r.perBenchmark[b]).filter((v): v is number => v !== null && v !== undefined),
    );
  }
  const present = <K extends keyof RunResult>(key: K) =>
    runs.map((r) => r[key]).filter((v): v is NonNullable<RunResult[K]> => v !== null) as number[];
  const hours = distinct(runs.map((r) => r.hours));
  const fractions = present('budgetFraction');
  return {
    name,
    agent: distinct(runs.map((r) => r.agent)).join(', '),
    agentConfig: distinct(runs.map((r) => r.agentConfig)).join(', '),
    hours: hours.length === 1 ? hours[0]! : null,
    runs,
    nRuns: complete.length,
    avg: avgStats.mean,
    std: avgStats.std,
    perBenchmark,
    status: complete.length === runs.length ? 'complete' : complete.length > 0 ? 'partial' : 'incomplete',
    time: meanStd(present('timeSeconds')),
    budgetFraction: meanOrNull(fractions),
    cost: meanStd(present('costUsd')),
    inputTokens: meanStd(present('inputTokens')),
    outputTokens: meanStd(present('outputTokens')),
  };
}

/** Build the leaderboard. Throws WeightsError when --weights from-baselines cannot be derived. */
export function aggregate(
  trials: readonly ReportTrial[],
  baselines: readonly ReportBaseline[],
  opts: AggregateOptions = {},
): Leaderboard {
  const models = resolveModels(opts, trials);
  const benchmarks = resolveBenchmarks(opts, trials);
  const modelSet = new Set(models);
  const benchmarkSet = new Set(benchmarks);
  const source = opts.weights ?? 'reference';

  let weights: Weights;
  const base = summariseBaselines('base', models, benchmarks, baselines, null);
  const instruct = summariseBaselines('instruct', models, benchmarks, baselines, null);
  if (source === 'from-baselines') {
    const derived = weightsFromBaselines(benchmarks, instruct.perBenchmark, base.perBenchmark);
    if ('problems' in derived) {
      throw new WeightsError(derived.problems.map((p) => `${p.benchmark}: ${p.reason}`).join('; '));
    }
    weights = derived.weights;
  } else {
    weights = referenceWeights(benchmarks);
  }
  base.avg = weightedAverage(base.perBenchmark, benchmarks, weights);
  instruct.avg = weightedAverage(instruct.perBenchmark, benchmarks, weights);

  const index = indexBaselines(baselines);
  const names = methodNames(trials);
  const byRun = new Map<string, { row: string; trials: ReportTrial[] }>();
  for (const t of trials) {
    if (!modelSet.has(shortModelName(t.baseModel)) || !benchmarkSet.has(t.benchmark)) continue;
    const name = names.get(t.id)!;
    const row = opts.groups?.get(t.experiment) ?? stripSeedSuffix(name);
    const entry = byRun.get(name) ?? { row, trials: [] };
    entry.trials.push(t);
    byRun.set(name, entry);
  }
  const runsByRow = new Map<string, RunResult[]>();
  for (const [name, { row, trials: runTrials }] of [...byRun].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const run = aggregateRun(name, row, runTrials, models, benchmarks, weights, index);
    runsByRow.set(row, [...(runsByRow.get(row) ?? []), run]);
  }
  const rows = [...runsByRow].map(([name, runs]) => aggregateRow(name, runs, benchmarks));
  rows.sort((a, b) => {
    if (a.avg !== null && b.avg !== null && a.avg !== b.avg) return b.avg - a.avg;
    if ((a.avg === null) !== (b.avg === null)) return a.avg === null ? 1 : -1;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
  const protocols = [...new Set(trials.map((t) => t.protocol))];
  if (protocols.length > 1) {
    // buildReport refuses this with the reason; aggregating would average incomparable scores.
    throw new Error(`internal: trials of several protocols in one leaderboard (${protocols.join(', ')})`);
  }
  return {
    protocol: protocols[0] ?? null,
    models,
    benchmarks,
    weights: { source, values: weights, subset: !BENCHMARK_IDS.every((b) => benchmarkSet.has(b)) },
    baselines: { base, instruct },
    rows,
  };
}
