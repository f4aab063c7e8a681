import type { Metrics } from '../../core/schemas.ts';

/**
 * The two metrics inspect attaches to `match()` and `choice()`: `accuracy()` (a plain running sum
 * divided by n) and `stderr()` (numpy's `std(values, ddof=1) / sqrt(n)`, 0 when n < 2).
 */

/** inspect `accuracy()`: sequential sum / n (0 for no values, where inspect would divide by zero). */
export function mean(values: readonly number[]): number {
  if (values.length === 0) return 0;
  let total = 0;
  for (const v of values) total += v;
  return total / values.length;
}

/** numpy's pairwise summation (blocks of 8 partial sums below 128 items, halving above). */
function pairwiseSum(values: readonly number[], start: number, n: number): number {
  if (n < 8) {
    let res = -0;
    for (let i = start; i < start + n; i++) res += values[i]!;
    return res;
  }
  if (n <= 128) {
    const r = values.slice(start, start + 8);
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j]! += values[start + i + j]!;
    }
    let res = r[0]! + r[1]! + (r[2]! + r[3]!) + (r[4]! + r[5]! + (r[6]! + r[7]!));
    for (; i < n; i++) res += values[start + i]!;
    return res;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return pairwiseSum(values, start, half) + pairwiseSum(values, start + half, n - half);
}

/** `np.std(values, ddof=1)`: mean and squared deviations summed pairwise, as numpy does. */
export function sampleStd(values: readonly number[]): number {
  const n = values.length;
  if (n < 2) return 0;
  const avg = pairwiseSum(values, 0, n) / n;
  const squares = values.map((v) => (v - avg) * (v - avg));
  return Math.sqrt(pairwiseSum(squares, 0, n) / (n - 1));
}

/** inspect `stderr()`: sample standard deviation over √n; 0 for fewer than two values. */
export function stderrOfMean(values: readonly number[]): number {
  const n = values.length;
  if (n < 2) return 0;
  return sampleStd(values) / Math.sqrt(n);
}

/** metrics.json of a `match()`/`choice()` task: `{accuracy, stderr}`. */
export function accuracyMetrics(values: readonly number[]): Metrics & { stderr: number } {
  return { accuracy: mean(values), stderr: stderrOfMean(values) };
}
