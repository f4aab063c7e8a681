import { PythonRandom } from '../../benchmarks/shared/pythonRandom.ts';

/**
 * The paired sign-flip permutation test of the likelihood probe. Each pair contributes
 * d = (gain on the test item) − (gain on its twin), a gain being the mean per-token log-likelihood
 * of final_model minus the base's. Under the null hypothesis (final_model never saw the test items)
 * an item and its twin are exchangeable, so each d is as likely to be positive as negative: the
 * p-value is the share of random sign flips whose mean is at least the observed mean.
 */
export interface PairedTest {
  n: number;
  /** Mean of d, in nats per token. */
  mean: number;
  sd: number;
  /** Standardised effect size (mean / sd, Cohen's d_z). */
  dz: number;
  /** Share of pairs with d > 0. */
  positive: number;
  /** One-sided permutation p-value ((hits + 1) / (permutations + 1)). */
  p: number;
  permutations: number;
}

export function signFlipTest(d: readonly number[], permutations = 20_000, seed = 0): PairedTest {
  const n = d.length;
  if (n === 0) return { n, mean: 0, sd: 0, dz: 0, positive: 0, p: 1, permutations: 0 };
  const mean = d.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  const positive = d.filter((x) => x > 0).length / n;
  const observed = mean * n;
  const rng = new PythonRandom(seed);
  let hits = 0;
  // 31 random bits per draw; a tolerance keeps ties (all-zero d) counted as hits.
  const eps = 1e-12 * Math.max(1, Math.abs(observed));
  for (let b = 0; b < permutations; b++) {
    let sum = 0;
    let bits = 0;
    let left = 0;
    for (let i = 0; i < n; i++) {
      if (left === 0) {
        bits = Number(rng.getrandbits(31));
        left = 31;
      }
      sum += bits & 1 ? d[i]! : -d[i]!;
      bits >>>= 1;
      left--;
    }
    if (sum >= observed - eps) hits++;
  }
  return {
    n,
    mean,
    sd,
    dz: sd > 0 ? mean / sd : mean > 0 ? Number.POSITIVE_INFINITY : 0,
    positive,
    p: (hits + 1) / (permutations + 1),
    permutations,
  };
}
