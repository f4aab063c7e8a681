import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getBenchmark } from '../../src/benchmarks/registry.ts';
import type { BenchmarkId } from '../../src/core/schemas.ts';
import { prepareBenchmark } from '../../src/eval/prepareBenchmark.ts';
import { AssetCache } from '../../src/hub/assetCache.ts';
import { jsonLines, textReply, writeAssetFiles } from '../helpers/benchmarkFixtures.ts';

/**
 * Issue 13 item 4: regrading needs only the items and their targets. With `scoringOnly`, no
 * benchmark reads a part marked promptOnly (prepareBenchmark refuses such a request), offline and
 * with an empty cache, and the scores are the ones a full preparation gives.
 */
const GPQA_CSV = [
  'Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3,Record ID',
  'Lightest gas?,Hydrogen,Helium,Neon,Argon,recAAA',
  'A prime?,7,8,9,10,recBBB',
  'A vector?,Force,Mass,Time,Energy,recCCC',
].join('\n');
const GPQA_PROMPT =
  'SINGLE_ANSWER_TEMPLATE_COT = r"""\nPick {letters}.\n\n{question}\n\n{choices}\n""".strip()\n';

const TEST_FILES: Partial<Record<BenchmarkId, readonly [string, string]>> = {
  gsm8k: [
    'test.jsonl',
    jsonLines([0, 1, 2].map((i) => ({ question: `q${i}`, answer: `so\n#### ${i + 10}` }))),
  ],
  aime2025: ['test.jsonl', jsonLines([0, 1].map((i) => ({ problem: `p${i}`, answer: `${i + 100}`, id: i })))],
  gpqamain: ['gpqa_main.csv', GPQA_CSV],
  humaneval: [
    'HumanEval.jsonl',
    jsonLines([
      {
        task_id: 'HumanEval/0',
        prompt: 'def f():\n',
        canonical_solution: '    return 1\n',
        test: 'def check(c):\n    assert c() == 1\n',
        entry_point: 'f',
      },
    ]),
  ],
};

async function prepareScoringOnly(id: BenchmarkId) {
  const files = writeAssetFiles(`scoring-${id}`, { test: TEST_FILES[id]! });
  const cache = new AssetCache(join(mkdtempSync(join(tmpdir(), 'ptb-empty-cache-')), 'data'));
  return prepareBenchmark(getBenchmark(id), cache, { offline: true, overrides: files, scoringOnly: true });
}

describe('preparing a benchmark for scoring only', () => {
  it.each(Object.keys(TEST_FILES) as BenchmarkId[])(
    '%s loads its items without prompt-only parts',
    async (id) => {
      const benchmark = getBenchmark(id);
      expect(benchmark.assets.some((a) => a.promptOnly)).toBe(true);
      const { prepared, provenance } = await prepareScoringOnly(id);
      expect(prepared.samples.length).toBeGreaterThan(0);
      expect(provenance.map((p) => p.part)).toEqual(['test']);
    },
  );

  it('gsm8k and aime2025 score targets as a full preparation would', async () => {
    const gsm8k = (await prepareScoringOnly('gsm8k')).prepared;
    const replies = ['ANSWER: 10', 'ANSWER: 12', 'the answer is 12'];
    const scores = await Promise.all(
      gsm8k.samples.map((s, i) =>
        gsm8k.score(s, textReply(replies[i]!), { request: gsm8k.request(s, { seed: 0 }) }),
      ),
    );
    expect(scores.map((s) => s.value)).toEqual([1, 0, 1]);
    const aime = (await prepareScoringOnly('aime2025')).prepared;
    const s0 = aime.samples[0]!;
    expect(
      (await aime.score(s0, textReply('\\boxed{100}'), { request: aime.request(s0, { seed: 0 }) })).value,
    ).toBe(1);
  });

  it('gpqamain keeps the seeded choice order, so the letter shown as correct still scores 1', async () => {
    const full = await prepareBenchmark(
      getBenchmark('gpqamain'),
      new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-cache-'))),
      {
        offline: true,
        overrides: writeAssetFiles('gpqa-full', {
          test: ['gpqa_main.csv', GPQA_CSV],
          'prompt-source': ['_multiple_choice.py', GPQA_PROMPT],
        }),
      },
    );
    const scoring = (await prepareScoringOnly('gpqamain')).prepared;
    for (const seed of [0, 7]) {
      for (const sample of full.prepared.samples) {
        const shown = full.prepared.request(sample, { seed });
        const letter = (shown.meta as { target: string }).target;
        const regraded = await scoring.score(sample, textReply(`ANSWER: ${letter}`), {
          request: scoring.request(sample, { seed }),
        });
        expect(regraded.value).toBe(1);
      }
    }
  });
});
