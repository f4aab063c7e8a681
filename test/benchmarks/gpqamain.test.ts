import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseChoiceAnswer } from '../../src/benchmarks/gpqamain/answerParsing.ts';
import {
  type GpqaRequestMeta,
  gpqamainBenchmark,
  originalChoices,
  prepareGpqaMain,
  seededChoiceOrders,
} from '../../src/benchmarks/gpqamain/index.ts';
import type { PreparedBenchmark } from '../../src/benchmarks/types.ts';
import type { Sample } from '../../src/core/schemas.ts';
import { localAssets, textReply, writeAssetFiles } from '../helpers/benchmarkFixtures.ts';
import { hasPython } from '../helpers/python.ts';

// Shaped like inspect_ai's _multiple_choice.py (own wording): raw triple-quoted constants + .strip().
const PROMPT_SOURCE = `import re

SINGLE_ANSWER_TEMPLATE = r"""
Pick one of {letters}. Reply 'ANSWER: $LETTER' only.

{question}

{choices}
""".strip()

SINGLE_ANSWER_TEMPLATE_COT = r"""
Pick one of {letters}; end with a line 'ANSWER: $LETTER'. Think first.

{question}

{choices}
""".strip()
`;

// Synthetic items in the gpqa_main.csv schema (extra columns as upstream has them).
const CSV = [
  'Pre-Revision Question,Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3,Record ID,High-level domain',
  'x,"Which gas, at STP, is lightest?",Hydrogen,Helium,Neon,Argon,recAAA,Chemistry',
  'x,"Pick the prime:\nthink carefully",7,8,9,N/A,recBBB,Math',
  'x,Which is a vector?,Force,Mass,Time,Energy,recCCC,Physics',
].join('\r\n');

async function prepare(): Promise<PreparedBenchmark> {
  const files = writeAssetFiles('gpqa', {
    test: ['gpqa_main.csv', CSV],
    'prompt-source': ['_multiple_choice.py', PROMPT_SOURCE],
  });
  return prepareGpqaMain(localAssets(files));
}

describe('gpqa answer parsing', () => {
  it.each([
    ['Thinking...\nANSWER: B', 'B', 'strict'],
    ['ANSWER: C.', 'C', 'strict'],
    ['answer :  d', null, 'strict'],
    ['The answer is ANSWER: C, I think', null, 'loose'],
    ['so ANSWER: D!', 'D', 'loose'],
    ['ANSWER: B is correct.', null, 'strict'],
    ['ANSWER: A\nANSWER: B', 'A', 'strict'],
    ['ANSWER: E', null, 'strict'],
    ['The answer is (B).', null, 'none'],
  ])('%j → %j via %s', (text, letter, rule) => {
    const parsed = parseChoiceAnswer(text, 4);
    expect(parsed.letters).toEqual(letter === null ? [] : [letter]);
    expect(parsed.rule).toBe(rule);
  });
});

describe('gpqamain benchmark', () => {
  it('loads Record IDs, keeps CSV quoting, and reads pandas NA cells as "None"', async () => {
    const prepared = await prepare();
    expect(prepared.samples.map((s) => s.id)).toEqual(['recAAA', 'recBBB', 'recCCC']);
    expect(originalChoices(prepared.samples[1]!.record)).toEqual(['7', '8', '9', 'None']);
  });

  it('formats the CoT template with shuffled choices and records the order in meta', async () => {
    const prepared = await prepare();
    const req = prepared.request(prepared.samples[0]!, { seed: 42 });
    // random.Random(42): the first sample's positions become [2, 1, 3, 0].
    expect(req.meta).toEqual({ choiceOrder: [2, 1, 3, 0], target: 'D' });
    expect(req.messages).toEqual([
      {
        role: 'user',
        content:
          "Pick one of A,B,C,D; end with a line 'ANSWER: $LETTER'. Think first.\n\nWhich gas, at STP, is lightest?\n\nA) Neon\nB) Helium\nC) Argon\nD) Hydrogen",
      },
    ]);
    expect(prepared.request(prepared.samples[1]!, { seed: 42 }).meta).toEqual({
      choiceOrder: [3, 2, 0, 1],
      target: 'C',
    });
  });

  it.skipIf(!hasPython)('seeded orders equal inspect shuffle_choices(seed) in CPython', () => {
    const ids = Array.from({ length: 50 }, (_, i) => `rec${i}`);
    for (const seed of [0, 42, 1234]) {
      const out = spawnSync(
        'python3',
        [
          '-c',
          `import json,random\nr=random.Random(${seed})\nres=[]\nfor _ in range(50):\n  p=list(range(4)); r.shuffle(p); res.append(p)\nprint(json.dumps(res))`,
        ],
        { encoding: 'utf8' },
      );
      expect([...seededChoiceOrders(ids, seed).values()]).toEqual(JSON.parse(out.stdout));
    }
  });

  it('round-trips the shuffle: the score reads the order from the request it was given', async () => {
    const prepared = await prepare();
    const sample = prepared.samples[2]! as Sample;
    for (let k = 0; k < 20; k++) {
      const request = prepared.request(sample, { seed: null });
      const meta = request.meta as unknown as GpqaRequestMeta;
      const shown = request.messages[0]!.content!;
      expect(shown).toContain(`${meta.target}) Force`);
      const right = await prepared.score(sample, textReply(`Reasoning.\nANSWER: ${meta.target}`), {
        request,
      });
      expect(right).toMatchObject({ value: 1, answer: meta.target });
      const wrongLetter = meta.target === 'A' ? 'B' : 'A';
      const wrong = await prepared.score(sample, textReply(`ANSWER: ${wrongLetter}`), { request });
      expect(wrong).toMatchObject({ value: 0, answer: wrongLetter });
    }
  });

  it('uses unseeded orders when no seed is given', async () => {
    const prepared = await prepare();
    const orders = new Set<string>();
    for (let k = 0; k < 60; k++) {
      const meta = prepared.request(prepared.samples[0]!, { seed: null }).meta as unknown as GpqaRequestMeta;
      expect([...meta.choiceOrder].sort()).toEqual([0, 1, 2, 3]);
      orders.add(meta.choiceOrder.join(''));
    }
    expect(orders.size).toBeGreaterThan(5);
  });

  it('scores after dropping the think block and rejects requests without an order', async () => {
    const prepared = await prepare();
    const sample = prepared.samples[0]!;
    const request = prepared.request(sample, { seed: 42 });
    expect(
      await prepared.score(sample, textReply('<think>ANSWER: A</think>\nANSWER: D'), { request }),
    ).toMatchObject({
      value: 1,
      answer: 'D',
    });
    expect(await prepared.score(sample, textReply('no letter here'), { request })).toMatchObject({
      value: 0,
      answer: null,
    });
    await expect(
      prepared.score(sample, textReply('ANSWER: D'), { request: { messages: [] } }),
    ).rejects.toThrow(/choice order/);
  });

  it('carries the reference defaults', () => {
    expect(gpqamainBenchmark.defaults).toMatchObject({
      maxTokensLadder: [16000, 12000, 8000],
      agentLimit: 50,
      referenceConcurrency: 6,
      gpuMemoryUtilization: 0.8,
    });
    expect(gpqamainBenchmark.displayName).toBe('GPQA');
    expect(gpqamainBenchmark.assets.find((a) => a.part === 'test')?.gated).toBe(true);
  });
});
