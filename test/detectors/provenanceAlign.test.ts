import { describe, expect, it } from 'vitest';
import { matchUnits } from '../../src/detectors/provenance/align.ts';

/** Unit matching on its own: recovers a relabelling under noise, refuses to invent one. */
function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 2 ** 32;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

describe('matchUnits', () => {
  // Large enough (1500² × 192) to run on worker threads.
  const n = 1500;
  const f = 192;
  const rand = gaussian(7);
  const base = Float32Array.from({ length: n * f }, rand);
  const perm = Array.from({ length: n }, (_, i) => (i * 7 + 3) % n); // base unit j sits at model row perm[j]
  const model = new Float32Array(n * f);
  for (let j = 0; j < n; j++)
    for (let k = 0; k < f; k++) model[perm[j]! * f + k] = base[j * f + k]! + 0.6 * rand();

  it('recovers a relabelling of noisy units (correlation ≈ 0.86) and calls it significant', async () => {
    const m = await matchUnits(model, base, n, f);
    expect(m.significant).toBe(true);
    expect(m.perm.filter((p, j) => p === perm[j]).length).toBeGreaterThan(0.99 * n);
    expect(m.nullLevel).toBeLessThan(0.4);
  });

  it('finds no correspondence between unrelated units, however good the best pairs look', async () => {
    const other = Float32Array.from({ length: n * f }, gaussian(99));
    const m = await matchUnits(other, base, n, f);
    expect(m.significant).toBe(false);
    expect(Math.max(...m.corr)).toBeGreaterThan(0.2); // the best of 1500 partners always looks like something
  });
});
