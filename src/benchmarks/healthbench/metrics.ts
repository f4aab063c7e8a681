import { PythonRandom } from '../shared/pythonRandom.ts';
import type { RubricItem } from './rubricGrading.ts';

/**
 * HealthBench metrics (spec §3.8, the reference's scoring.py): accuracy is the mean example
 * score clipped to [0, 1]; stderr is the standard deviation of 1000 bootstrap means, each
 * clipped; by_theme averages example scores per `theme:` tag (then clips); by_axis pools the
 * rubric items of each `axis:` tag over all examples (met points / positive points, clipped).
 */

export const BOOTSTRAP_RESAMPLES = 1000;
export const BOOTSTRAP_SEED = 42;

export function clip01(x: number): number {
  return Math.min(1, Math.max(0, x));
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/**
 * Bootstrap standard error of the clipped mean. The reference draws with numpy's
 * `default_rng(42).choice`; ptb draws with CPython's `random.Random(42)` the way
 * `rng.choices(scores, k=n)` does (index = floor(random()·n)), one stream for all resamples, and
 * takes the population std of the 1000 clipped means. The value is therefore reproducible in
 * plain Python but differs from numpy's draw in the third or fourth decimal.
 */
export function bootstrapStderr(
  scores: readonly number[],
  resamples: number = BOOTSTRAP_RESAMPLES,
  seed: number = BOOTSTRAP_SEED,
): number {
  const n = scores.length;
  if (n < 2) return 0;
  const rng = new PythonRandom(seed);
  const means: number[] = [];
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let k = 0; k < n; k++) sum += scores[Math.floor(rng.random() * n)]!;
    means.push(clip01(sum / n));
  }
  const centre = mean(means);
  return Math.sqrt(means.reduce((acc, m) => acc + (m - centre) ** 2, 0) / means.length);
}

/** The part after the first colon of the first tag with this prefix (`theme:hedging` → `hedging`). */
export function tagValue(tags: readonly string[], prefix: 'theme' | 'axis'): string {
  const tag = tags.find((t) => t.startsWith(`${prefix}:`));
  return tag === undefined ? 'unknown' : tag.split(':')[1]!;
}

export interface GradedExample {
  exampleTags: readonly string[];
  rubric: readonly RubricItem[];
  /** criteria_met per rubric item, in rubric order; empty when the example was not graded. */
  met: readonly boolean[];
  /** Unclipped example score. */
  score: number;
}

export interface HealthBenchMetrics {
  [key: string]: unknown;
  accuracy: number;
  stderr: number;
  n_examples: number;
  total_grader_calls: number;
  by_theme: Record<string, number>;
  by_axis: Record<string, number>;
}

export function healthBenchMetrics(examples: readonly GradedExample[]): HealthBenchMetrics {
  if (examples.length === 0) {
    return { accuracy: 0, stderr: 0, n_examples: 0, total_grader_calls: 0, by_theme: {}, by_axis: {} };
  }
  const scores = examples.map((e) => e.score);
  return {
    accuracy: clip01(mean(scores)),
    stderr: bootstrapStderr(scores),
    n_examples: examples.length,
    // The reference counts one call per graded rubric item, not per HTTP attempt.
    total_grader_calls: examples.reduce((sum, e) => sum + e.met.length, 0),
    by_theme: scoresByTheme(examples),
    by_axis: scoresByAxis(examples),
  };
}

function scoresByTheme(examples: readonly GradedExample[]): Record<string, number> {
  const groups = new Map<string, number[]>();
  for (const e of examples) {
    const theme = tagValue(e.exampleTags, 'theme');
    const group = groups.get(theme) ?? [];
    group.push(e.score);
    groups.set(theme, group);
  }
  return Object.fromEntries([...groups].map(([theme, scores]) => [theme, clip01(mean(scores))]));
}

function scoresByAxis(examples: readonly GradedExample[]): Record<string, number> {
  const totals = new Map<string, { achieved: number; possible: number }>();
  for (const e of examples) {
    // Like Python's zip: an ungraded example (no grades) contributes nothing.
    const paired = Math.min(e.rubric.length, e.met.length);
    for (let i = 0; i < paired; i++) {
      const item = e.rubric[i]!;
      const axis = tagValue(item.tags, 'axis');
      const total = totals.get(axis) ?? { achieved: 0, possible: 0 };
      if (item.points > 0) total.possible += item.points;
      if (e.met[i]) total.achieved += item.points;
      totals.set(axis, total);
    }
  }
  const byAxis: Record<string, number> = {};
  for (const [axis, { achieved, possible }] of totals) {
    if (possible !== 0) byAxis[axis] = clip01(achieved / possible);
  }
  return byAxis;
}
