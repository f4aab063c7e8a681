import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PythonRandom } from '../../src/benchmarks/shared/pythonRandom.ts';
import { accuracyMetrics, mean, sampleStd, stderrOfMean } from '../../src/benchmarks/shared/stats.ts';

const hasNumpy = spawnSync('python3', ['-c', 'import numpy']).status === 0;

describe('inspect accuracy/stderr', () => {
  it('computes mean, sample std (ddof=1) and stderr', () => {
    expect(mean([1, 0, 1, 1])).toBe(0.75);
    expect(sampleStd([1, 0, 1, 1])).toBe(0.5);
    expect(stderrOfMean([1, 0, 1, 1])).toBe(0.25);
    expect(accuracyMetrics([1, 0, 1, 1])).toEqual({ accuracy: 0.75, stderr: 0.25 });
  });

  it('returns 0 stderr for fewer than two values and 0 accuracy for none', () => {
    expect(accuracyMetrics([1])).toEqual({ accuracy: 1, stderr: 0 });
    expect(accuracyMetrics([])).toEqual({ accuracy: 0, stderr: 0 });
  });

  it.skipIf(!hasNumpy)('matches numpy bit for bit, including pairwise summation', () => {
    const rng = new PythonRandom(5);
    const arrays = [2, 7, 8, 9, 127, 128, 129, 300, 1319, 9000].map((n) =>
      Array.from({ length: n }, () => (rng.random() - 0.3) * 10 ** Math.floor(rng.random() * 5)),
    );
    const out = spawnSync(
      'python3',
      [
        '-c',
        'import json,sys,numpy as np; print(json.dumps([float(np.std(a, ddof=1)/np.sqrt(len(a))) for a in json.load(sys.stdin)]))',
      ],
      { input: JSON.stringify(arrays), encoding: 'utf8', maxBuffer: 1e8 },
    );
    expect(arrays.map((a) => stderrOfMean(a))).toEqual(JSON.parse(out.stdout));
  });
});
