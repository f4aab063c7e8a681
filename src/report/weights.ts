import { BENCHMARK_IDS, type BenchmarkId } from '../core/schemas.ts';

/**
 * The reference's benchmark weights (`scripts/factors.json`, unchanged since 2026-01-24; paper
 * Table 5). They are 1/(instruct − base) normalised to sum 1, computed once from the 4-model means of
 * the official instruct models and of the zero-shot base models.
 */
export const REFERENCE_WEIGHTS: Readonly<Record<BenchmarkId, number>> = {
  aime2025: 0.226536549919078,
  arenahardwriting: 0.0903518275042778,
  bfcl: 0.0746078457817324,
  gpqamain: 0.22462215653948,
  gsm8k: 0.0935882347031865,
  healthbench: 0.184144830733019,
  humaneval: 0.106148554819225,
};

export type Weights = Record<string, number>;

/** Weights of `benchmarks` only, scaled to sum 1 (a subset of the seven is scored on its own scale). */
export function referenceWeights(benchmarks: readonly string[]): Weights {
  const picked: Weights = {};
  for (const b of benchmarks) {
    const w = (REFERENCE_WEIGHTS as Record<string, number>)[b];
    if (w === undefined) throw new Error(`no reference weight for benchmark ${b}`);
    picked[b] = w;
  }
  return normaliseWeights(picked);
}

export function normaliseWeights(weights: Weights): Weights {
  const total = Object.values(weights).reduce((a, w) => a + w, 0);
  return Object.fromEntries(Object.entries(weights).map(([b, w]) => [b, w / total]));
}

/** Why weights could not be derived for a benchmark. */
export interface WeightProblem {
  benchmark: string;
  reason: string;
}

/**
 * Paper Eq. 1: w_b = 1/(instruct_b − base_b), normalised. Inputs are per-benchmark means over the
 * models (fractions or percentages: the normalisation removes the scale). A benchmark whose gap is
 * missing or not positive makes the whole set undefined.
 */
export function weightsFromBaselines(
  benchmarks: readonly string[],
  instructMeans: Readonly<Record<string, number | null | undefined>>,
  baseMeans: Readonly<Record<string, number | null | undefined>>,
): { weights: Weights } | { problems: WeightProblem[] } {
  const raw: Weights = {};
  const problems: WeightProblem[] = [];
  for (const b of benchmarks) {
    const instruct = instructMeans[b];
    const base = baseMeans[b];
    if (instruct === null || instruct === undefined) {
      problems.push({ benchmark: b, reason: 'no instruct baseline' });
    } else if (base === null || base === undefined) {
      problems.push({ benchmark: b, reason: 'no base-model baseline' });
    } else if (instruct - base <= 0) {
      problems.push({ benchmark: b, reason: `instruct (${instruct}) does not beat base (${base})` });
    } else {
      raw[b] = 1 / (instruct - base);
    }
  }
  return problems.length > 0 ? { problems } : { weights: normaliseWeights(raw) };
}

/** Benchmarks in the reference's order (the order of every table). */
export function orderBenchmarks(ids: Iterable<string>): string[] {
  const order = new Map<string, number>(BENCHMARK_IDS.map((b, i) => [b, i]));
  return [...new Set(ids)].sort(
    (a, b) => (order.get(a) ?? 99) - (order.get(b) ?? 99) || (a < b ? -1 : a > b ? 1 : 0),
  );
}

/** Column labels as in the paper's Table 1. */
export const BENCHMARK_LABELS: Readonly<Record<BenchmarkId, string>> = {
  aime2025: 'AIME25',
  arenahardwriting: 'ArenaHard-W',
  bfcl: 'BFCL',
  gpqamain: 'GPQA',
  gsm8k: 'GSM8K',
  healthbench: 'HealthBench-Easy',
  humaneval: 'HumanEval',
};

export function benchmarkLabel(id: string): string {
  return (BENCHMARK_LABELS as Record<string, string>)[id] ?? id;
}
