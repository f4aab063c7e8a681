import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import type { BenchmarkId } from '../../src/core/schemas.ts';
import { benchmarkItems } from '../../src/detectors/contamination/benchmarkItems.ts';
import { NgramIndex } from '../../src/detectors/contamination/ngramIndex.ts';
import { type ContaminationFinding, scanPaths } from '../../src/detectors/contamination/scanFiles.ts';

/**
 * Real benchmark files (../shared/data, read in place, never copied): every item the index can hold
 * is found in the benchmark's own file and again with every number changed, and no item of one
 * benchmark is reported in another benchmark's files.
 */
const data = resolve(repoRoot, '../shared/data');
const FILES: ReadonlyArray<[BenchmarkId, string]> = [
  ['gsm8k', 'gsm8k/test.jsonl'],
  ['humaneval', 'humaneval/HumanEval.jsonl.gz'],
  ['bfcl', 'bfcl/BFCL_v3_exec_simple.json'],
  ['aime2025', 'aime2025/test.jsonl'],
  ['arenahardwriting', 'arenahardwriting/question.jsonl'],
  ['healthbench', 'healthbench/healthbench.jsonl'],
];
const present = FILES.filter(([, f]) => existsSync(join(data, f)));

async function findings(index: NgramIndex, paths: string[]): Promise<ContaminationFinding[]> {
  const out: ContaminationFinding[] = [];
  await scanPaths(index, paths, {
    onFinding: (f) => out.push(f),
    onError: (s, m) => out.push({ source: s, span: m } as ContaminationFinding),
  });
  return out;
}

describe.skipIf(present.length === 0)('contamination scan on real benchmark data', () => {
  for (const [benchmark, file] of present) {
    it(`${benchmark}: finds its own items, also with every number changed`, async () => {
      const path = join(data, file);
      const items = await benchmarkItems(benchmark, path);
      const index = new NgramIndex(items);
      const indexable = items.length - index.unindexable().length;
      // short prompts (a few Arena questions) and fully generic texts are the only ones left out
      expect(indexable / items.length).toBeGreaterThan(0.9);
      const own = new Set((await findings(index, [path])).map((f) => f.item));
      expect(own.size).toBe(indexable);
      const changed = join(mkdtempSync(join(tmpdir(), 'ptb-contam-real-')), 'changed.jsonl');
      writeFileSync(
        changed,
        items
          .map((it) =>
            JSON.stringify({
              texts: it.texts.map((t) => t.replace(/\d+/g, (d) => String((Number(d) * 7 + 3) % 997))),
            }),
          )
          .join('\n'),
      );
      const found = new Set((await findings(index, [changed])).map((f) => f.item));
      expect(found.size / indexable).toBeGreaterThanOrEqual(0.99);
    }, 60_000);
  }

  it.skipIf(present.length < 2)(
    'reports no item of one benchmark in the files of the others',
    async () => {
      for (const [benchmark, file] of present) {
        const index = new NgramIndex(await benchmarkItems(benchmark, join(data, file)));
        const others = present.filter(([b]) => b !== benchmark).map(([, f]) => join(data, f));
        expect(await findings(index, others), benchmark).toEqual([]);
      }
    },
    60_000,
  );

  it.skipIf(!existsSync(join(data, 'gsm8k/test.jsonl')))(
    'gsm8k: the second half of the test split holds no copy of the first half (two known near-duplicates aside)',
    async () => {
      const items = await benchmarkItems('gsm8k', join(data, 'gsm8k/test.jsonl'));
      const half = items.length >> 1;
      const second = join(mkdtempSync(join(tmpdir(), 'ptb-contam-real-')), 'second.jsonl');
      writeFileSync(
        second,
        items
          .slice(half)
          .map((it) => JSON.stringify(it.texts))
          .join('\n'),
      );
      const found = await findings(new NgramIndex(items.slice(0, half)), [second]);
      expect(found.length).toBeLessThanOrEqual(2);
    },
    60_000,
  );

  it.skipIf(!existsSync(join(data, 'gsm8k/train.jsonl')) || !existsSync(join(data, 'gsm8k/test.jsonl')))(
    'gsm8k: with half the allowed train split as allowed data, the other half holds no test item; copies are still found',
    async () => {
      const test = await benchmarkItems('gsm8k', join(data, 'gsm8k/test.jsonl'));
      const train = await benchmarkItems('gsm8k', join(data, 'gsm8k/train.jsonl'));
      const half = train.length >> 1;
      const dir = mkdtempSync(join(tmpdir(), 'ptb-contam-real-'));
      const write = (name: string, rows: string[]) => {
        writeFileSync(join(dir, name), rows.map((t) => JSON.stringify({ text: t })).join('\n'));
        return join(dir, name);
      };
      // Calibration: without the allowed data, honest GSM8K-style solutions match some test answers.
      const heldOut = write(
        'held-out.jsonl',
        train.slice(half).map((it) => it.texts.join('\n')),
      );
      const index = new NgramIndex(
        test,
        train.slice(0, half).flatMap((it) => it.texts),
      );
      expect(index.allowedDropped).toBeGreaterThan(0);
      expect(await findings(index, [heldOut])).toEqual([]);
      const kinds = {
        verbatim: test.map((it) => it.texts.join('\n')),
        renumbered: test.map((it) =>
          it.texts.join('\n').replace(/\d+/g, (d) => String((Number(d) * 7 + 3) % 997)),
        ),
        question: test.map((it) => it.texts[0]!),
      };
      for (const [kind, rows] of Object.entries(kinds)) {
        const found = new Set((await findings(index, [write(`${kind}.jsonl`, rows)])).map((f) => f.item));
        expect(found.size / test.length, kind).toBeGreaterThanOrEqual(0.99);
      }
    },
    120_000,
  );
});
