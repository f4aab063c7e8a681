import { describe, expect, it } from 'vitest';
import { PythonRandom, pythonShuffled } from '../../src/benchmarks/shared/pythonRandom.ts';
import { hasPython, runPythonJson } from '../helpers/python.ts';

const seeds = [0, 1, 42, 1234, -7, 2 ** 32 + 5, 2 ** 40 + 123456789];
const sizes = [0, 1, 2, 3, 10, 100, 1000];

describe('PythonRandom against CPython', () => {
  it.skipIf(!hasPython)('random() matches for several seeds', () => {
    const expected = runPythonJson(
      `import json,random\nprint(json.dumps({str(s): [repr(x) for x in (lambda r: [r.random() for _ in range(700)])(random.Random(s))] for s in ${JSON.stringify(seeds)}}))`,
    ) as Record<string, string[]>;
    for (const seed of seeds) {
      const rng = new PythonRandom(seed);
      const ours = Array.from({ length: 700 }, () => rng.random());
      expect(ours.map((x) => Number(x))).toEqual(expected[String(seed)]?.map(Number));
    }
  });

  it.skipIf(!hasPython)('getrandbits matches for small and large k', () => {
    const ks = [0, 1, 7, 31, 32, 33, 52, 53, 64, 65, 100, 200];
    const expected = runPythonJson(
      `import json,random\nr=random.Random(42)\nprint(json.dumps([str(r.getrandbits(k)) for k in ${JSON.stringify(ks)} for _ in range(3)]))`,
    ) as string[];
    const rng = new PythonRandom(42);
    const ours = ks.flatMap((k) => [0, 1, 2].map(() => rng.getrandbits(k).toString()));
    expect(ours).toEqual(expected);
  });

  it.skipIf(!hasPython)('randbelow matches _randbelow', () => {
    const ns = [1, 2, 3, 5, 10, 1000, 2 ** 31, 2 ** 32 + 1, 2 ** 45 - 3];
    const expected = runPythonJson(
      `import json,random\nr=random.Random(7)\nprint(json.dumps([r._randbelow(n) for n in ${JSON.stringify(ns)} for _ in range(4)]))`,
    ) as number[];
    const rng = new PythonRandom(7);
    expect(ns.flatMap((n) => [0, 1, 2, 3].map(() => rng.randbelow(n)))).toEqual(expected);
  });

  it.skipIf(!hasPython)('shuffle matches for several seeds and list sizes, including seed 42', () => {
    const expected = runPythonJson(
      `import json,random\nout={}\nfor s in ${JSON.stringify(seeds)}:\n  for n in ${JSON.stringify(sizes)}:\n    x=list(range(n)); random.Random(s).shuffle(x); out[f"{s}/{n}"]=x\nprint(json.dumps(out))`,
    ) as Record<string, number[]>;
    for (const seed of seeds) {
      for (const n of sizes) {
        const items = Array.from({ length: n }, (_, i) => i);
        expect(pythonShuffled(items, seed), `seed ${seed}, n ${n}`).toEqual(expected[`${seed}/${n}`]);
      }
    }
  });

  it.skipIf(!hasPython)('successive shuffles on one generator match', () => {
    const expected = runPythonJson(
      'import json,random\nr=random.Random(42)\nout=[]\nfor n in (5,50,7):\n  x=list(range(n)); r.shuffle(x); out.append(x)\nprint(json.dumps(out))',
    ) as number[][];
    const rng = new PythonRandom(42);
    const ours = [5, 50, 7].map((n) => {
      const x = Array.from({ length: n }, (_, i) => i);
      rng.shuffle(x);
      return x;
    });
    expect(ours).toEqual(expected);
  });
});

describe('PythonRandom without Python', () => {
  it('seed 42 starts with the well-known CPython value', () => {
    // random.Random(42).random() == 0.6394267984578837 in every CPython 3.x.
    expect(new PythonRandom(42).random()).toBe(0.6394267984578837);
  });

  it('pythonShuffled leaves its input alone and is a permutation', () => {
    const items = ['a', 'b', 'c', 'd', 'e'] as const;
    const out = pythonShuffled(items, 42);
    expect(items).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect([...out].sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('rejects a bad randbelow bound and a non-integer seed', () => {
    expect(() => new PythonRandom(1).randbelow(0)).toThrow(RangeError);
    expect(() => new PythonRandom(1.5)).toThrow(RangeError);
  });
});
