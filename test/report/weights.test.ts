import { describe, expect, it } from 'vitest';
import { BENCHMARKS } from '../../src/benchmarks/registry.ts';
import { BENCHMARK_IDS } from '../../src/core/schemas.ts';
import { REFERENCE_WEIGHTS, referenceWeights, weightsFromBaselines } from '../../src/report/weights.ts';

// Paper Table 1 rows "Official Instruct Models" and "Base Model (Zero-Shot)" (4-model means, %), spec §6.2.
const INSTRUCT = {
  aime2025: 29.2,
  arenahardwriting: 70.2,
  bfcl: 85.0,
  gpqamain: 36.2,
  gsm8k: 87.0,
  healthbench: 43.3,
  humaneval: 71.5,
};
const BASE = {
  aime2025: 1.7,
  arenahardwriting: 1.3,
  bfcl: 1.5,
  gpqamain: 8.5,
  gsm8k: 20.4,
  healthbench: 9.5,
  humaneval: 12.8,
};

function weighted(values: Record<string, number>, weights: Record<string, number>): number {
  return BENCHMARK_IDS.reduce((a, b) => a + weights[b]! * values[b]!, 0);
}

describe('benchmark weights', () => {
  it('are factors.json: sum 1 and equal to each benchmark definition', () => {
    expect(Object.values(REFERENCE_WEIGHTS).reduce((a, w) => a + w, 0)).toBeCloseTo(1, 12);
    for (const id of BENCHMARK_IDS) expect(REFERENCE_WEIGHTS[id]).toBe(BENCHMARKS[id].weight);
  });

  it("recomputed from the paper's rounded averages give the factors to within 0.0002", () => {
    const derived = weightsFromBaselines(BENCHMARK_IDS, INSTRUCT, BASE);
    if (!('weights' in derived)) throw new Error(JSON.stringify(derived));
    for (const id of BENCHMARK_IDS) {
      expect(Math.abs(derived.weights[id]! - REFERENCE_WEIGHTS[id])).toBeLessThanOrEqual(0.0002);
    }
    // Spec §6.2: gap 27.5 for AIME → 0.2264.
    expect(derived.weights.aime2025).toBeCloseTo(0.2264, 4);
  });

  it('weight the instruct models to 51.1 and the zero-shot base models to 7.5', () => {
    expect(weighted(INSTRUCT, REFERENCE_WEIGHTS).toFixed(1)).toBe('51.1');
    expect(weighted(BASE, REFERENCE_WEIGHTS).toFixed(1)).toBe('7.5');
    const derived = weightsFromBaselines(BENCHMARK_IDS, INSTRUCT, BASE);
    if (!('weights' in derived)) throw new Error('no weights');
    expect(weighted(INSTRUCT, derived.weights).toFixed(1)).toBe('51.1');
    expect(weighted(BASE, derived.weights).toFixed(1)).toBe('7.5');
  });

  it('a subset is rescaled to sum 1, keeping the ratios', () => {
    const w = referenceWeights(['gsm8k', 'humaneval']);
    expect(w.gsm8k! + w.humaneval!).toBeCloseTo(1, 12);
    expect(w.gsm8k! / w.humaneval!).toBeCloseTo(REFERENCE_WEIGHTS.gsm8k / REFERENCE_WEIGHTS.humaneval, 12);
  });

  it('cannot be derived without both baselines or with a gap that is not positive', () => {
    const result = weightsFromBaselines(
      ['gsm8k', 'bfcl', 'aime2025'],
      { gsm8k: 0.5, bfcl: 0.2 },
      { gsm8k: 0.6, bfcl: 0.1 },
    );
    expect(result).toEqual({
      problems: [
        { benchmark: 'gsm8k', reason: 'instruct (0.5) does not beat base (0.6)' },
        { benchmark: 'aime2025', reason: 'no instruct baseline' },
      ],
    });
  });
});
