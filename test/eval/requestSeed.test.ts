import { describe, expect, it } from 'vitest';
import { requestSeed } from '../../src/eval/requestSeed.ts';
import { hasPython, runPythonJson } from '../helpers/python.ts';

describe('per-request seeds (per_sample_seed.py)', () => {
  it('is a non-negative 31-bit int that changes with the run seed, the sample, the epoch and the call', () => {
    const base = requestSeed(72332, '1');
    expect(base).toBeGreaterThanOrEqual(0);
    expect(base).toBeLessThan(2 ** 31);
    expect(requestSeed(72332, '1')).toBe(base);
    for (const other of [
      requestSeed(87681, '1'),
      requestSeed(72332, '2'),
      requestSeed(72332, '1', 2),
      requestSeed(72332, '1', 1, 1),
    ]) {
      expect(other).not.toBe(base);
    }
    // ints and their decimal strings name the same sample, as in Python's f-string
    expect(requestSeed(72332, 1)).toBe(base);
  });

  it.skipIf(!hasPython)('agrees with sha256(f"{run_seed}:{sample_id}:{epoch}:{call}") in Python', () => {
    const cases: Array<[number, string, number, number]> = [
      [72332, '1', 1, 0],
      [13818, 'HumanEval/0', 1, 0],
      [38992, 'rec06pnAkLOr2t2mp', 1, 3],
      [0, 'c2e8d4a1-uid', 2, 0],
    ];
    const expected = runPythonJson(
      'import hashlib,json,sys\nout=[]\nfor s,i,e,c in json.load(sys.stdin):\n    d=hashlib.sha256(f"{s}:{i}:{e}:{c}".encode()).digest()\n    out.append(int.from_bytes(d[:4],"little") & 0x7FFFFFFF)\nprint(json.dumps(out))',
      cases,
    );
    expect(cases.map(([s, i, e, c]) => requestSeed(s, i, e, c))).toEqual(expected);
  });
});
