import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildFewshotText,
  fewshotIndices,
  gsm8kBenchmark,
  prepareGsm8k,
  splitGsm8kAnswer,
} from '../../src/benchmarks/gsm8k/index.ts';
import { numpyPermutation } from '../../src/benchmarks/gsm8k/numpyPermutation.ts';
import { pythonFormat } from '../../src/benchmarks/shared/inspectTask.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { PROTOCOLS } from '../../src/core/protocols.ts';
import type { Sample } from '../../src/core/schemas.ts';
import { jsonLines, localAssets, textReply, writeAssetFiles } from '../helpers/benchmarkFixtures.ts';

const sharedData = resolve(repoRoot, '../shared/data');
const hasNumpy = spawnSync('python3', ['-c', 'import numpy']).status === 0;

// A prompt source shaped like inspect_evals gsm8k.py (own wording, same constant and layout).
const PROMPT_SOURCE = `from inspect_ai import Task, task

# instructions
MATH_PROMPT_TEMPLATE = """
Work this out in steps; finish with "ANSWER: $ANSWER".

{prompt}

No need for a \\\\boxed command.

Reasoning:
""".strip()


def other():
    return "{prompt}"
`;

const trainRows = Array.from({ length: 12 }, (_, i) => ({
  question: `Train question ${i}?`,
  answer: `Step for ${i} <<${i}+1=${i + 1}>>${i + 1}.\n#### ${i + 1}`,
}));
const testRows = [
  { question: 'How many eggs? Use {braces}.', answer: 'She has 18.\n#### 18' },
  { question: 'What is the price?', answer: 'It is 1,000 dollars.\n#### 1,000' },
  { question: 'What is the change?', answer: 'Down by 3.\n#### -3' },
];

function writeSynthetic(): Record<string, string> {
  return writeAssetFiles('gsm8k', {
    test: ['test.jsonl', jsonLines(testRows)],
    train: ['train.jsonl', jsonLines(trainRows)],
    'prompt-source': ['gsm8k.py', PROMPT_SOURCE],
  });
}

describe('gsm8k few-shot draw', () => {
  it('picks the rows numpy default_rng(42).permutation picks', () => {
    expect(fewshotIndices(7473)).toEqual([3082, 2184, 5897, 2437, 6330, 819, 3812, 5878, 5302, 5876]);
    expect(numpyPermutation(12, 42)).toEqual([0, 7, 6, 9, 11, 3, 5, 2, 4, 10, 1, 8]);
  });

  it.skipIf(!hasNumpy)('agrees with numpy for other sizes and seeds', () => {
    const cases = [
      [1, 0],
      [10, 1],
      [500, 42],
      [7473, 7],
      [1319, 2 ** 40 + 3],
    ] as const;
    const out = spawnSync(
      'python3',
      [
        '-c',
        'import json,sys,numpy as np; print(json.dumps([np.random.default_rng(s).permutation(n).tolist() for n,s in json.load(sys.stdin)]))',
      ],
      { input: JSON.stringify(cases), encoding: 'utf8', maxBuffer: 1e8 },
    );
    expect(cases.map(([n, s]) => numpyPermutation(n, s))).toEqual(JSON.parse(out.stdout));
  });

  it('refuses a train split smaller than the number of shots', () => {
    expect(() => fewshotIndices(9)).toThrow(/10 few-shot/);
  });
});

describe('gsm8k benchmark', () => {
  it('splits answers on the last ####, keeping commas in the target', () => {
    expect(splitGsm8kAnswer('a #### b\n#### 1,000 ')).toEqual({ target: '1,000', reasoning: 'a #### b' });
  });

  it('builds the 10-shot system message and the templated user turn', async () => {
    const prepared = await prepareGsm8k(localAssets(writeSynthetic()));
    expect(prepared.samples.map((s) => [s.id, s.target])).toEqual([
      ['0', '18'],
      ['1', '1,000'],
      ['2', '-3'],
    ]);
    const req = prepared.request(prepared.samples[0]!, { seed: null });
    expect(req.messages.map((m) => m.role)).toEqual(['system', 'user']);
    const system = req.messages[0]!.content!;
    const shots = system.split(/\n\n(?=Train question)/);
    expect(shots).toHaveLength(10);
    const order = [0, 7, 6, 9, 11, 3, 5, 2, 4, 10];
    expect(shots.map((s) => Number(/^Train question (\d+)/.exec(s)![1]))).toEqual(order);
    expect(shots[1]).toBe('Train question 7?\n\nReasoning:\nStep for 7 <<7+1=8>>8.\n\nANSWER: 8');
    expect(system).toBe(buildFewshotText(trainRows, order));
    expect(req.messages[1]!.content).toBe(
      'Work this out in steps; finish with "ANSWER: $ANSWER".\n\nHow many eggs? Use {braces}.\n\nNo need for a \\boxed command.\n\nReasoning:',
    );
  });

  it('scores the last number after dropping the think block (v1.0: inspect match)', async () => {
    const prepared = await prepareGsm8k(localAssets(writeSynthetic()));
    const [eggs, price, change] = prepared.samples as [Sample, Sample, Sample];
    const score = (s: Sample, text: string) =>
      prepared.score(s, textReply(text), {
        request: prepared.request(s, { seed: null }),
        scoring: PROTOCOLS['v1.0'].scoring,
      });
    expect(await score(eggs, '<think>maybe 17</think>\nShe sells 18 eggs.\nANSWER: 18')).toMatchObject({
      value: 1,
      answer: '18',
    });
    expect(await score(eggs, 'ANSWER: 18\n<think>unclosed 17')).toMatchObject({ value: 0, answer: '17' });
    expect(await score(eggs, 'ANSWER: $18.00.')).toMatchObject({ value: 1 });
    expect(await score(eggs, 'no idea')).toMatchObject({ value: 0, answer: 'idea' });
    expect((await score(price, 'ANSWER: 1,000')).value).toBe(1);
    expect((await score(price, 'ANSWER: 1000')).value).toBe(0);
    expect((await score(change, 'ANSWER: -3')).value).toBe(1);
    expect((await score(change, 'ANSWER: 13')).value).toBe(1);
  });

  it('v1.1 compares the last signed number by value', async () => {
    const prepared = await prepareGsm8k(localAssets(writeSynthetic()));
    const [eggs, price, change] = prepared.samples as [Sample, Sample, Sample];
    const score = (s: Sample, text: string) =>
      prepared.score(s, textReply(text), {
        request: prepared.request(s, { seed: null }),
        scoring: PROTOCOLS['v1.1'].scoring,
      });
    expect(await score(eggs, 'ANSWER: **18**')).toMatchObject({ value: 1, answer: '18' });
    expect((await score(eggs, 'ANSWER: 118')).value).toBe(0);
    expect((await score(price, 'ANSWER: 1000')).value).toBe(1);
    expect((await score(change, 'ANSWER: 13')).value).toBe(0);
    expect((await score(change, 'ANSWER: -3')).value).toBe(1);
  });

  it('selects the first N and aggregates accuracy with stderr', async () => {
    const prepared = await prepareGsm8k(localAssets(writeSynthetic()));
    expect(gsm8kBenchmark.select(prepared.samples, { limit: 2 }).map((s) => s.id)).toEqual(['0', '1']);
    expect(gsm8kBenchmark.select(prepared.samples, { limit: -1 })).toHaveLength(3);
    expect(gsm8kBenchmark.select(prepared.samples, { limit: null })).toHaveLength(3);
    const scored = prepared.samples.map((sample, i) => ({ sample, score: { value: i === 0 ? 0 : 1 } }));
    const metrics = gsm8kBenchmark.aggregate(scored);
    expect(metrics.accuracy).toBeCloseTo(2 / 3, 12);
    expect(metrics.stderr).toBeCloseTo(Math.sqrt(1 / 3) / Math.sqrt(3), 12);
  });

  it('carries the reference defaults', () => {
    expect(gsm8kBenchmark.defaults).toMatchObject({
      maxTokensLadder: [4000, 3000, 2000],
      agentLimit: 150,
      referenceConcurrency: 2,
      gpuMemoryUtilization: 0.3,
      maxTokensFlag: '--max-tokens',
      concurrency: 64,
    });
    expect(gsm8kBenchmark.assets.map((a) => a.part)).toEqual(['test', 'train', 'prompt-source']);
    expect(gsm8kBenchmark.displayName).toBe('GSM8K (Grade School Math 8K)');
  });

  it('formats templates like Python str.format', () => {
    expect(pythonFormat('a {x} {{y}} {z}', { x: '1' }, { keepUnknown: true })).toBe('a 1 {y} {z}');
    expect(() => pythonFormat('a {z}', {})).toThrow(/KeyError/);
    expect(() => pythonFormat('a } b', {})).toThrow(/Single/);
  });
});

describe.skipIf(!existsSync(join(sharedData, 'gsm8k/test.jsonl')))('gsm8k validation on real data', () => {
  async function preparedOnRealTest() {
    const files = { ...writeSynthetic(), test: join(sharedData, 'gsm8k/test.jsonl') };
    return prepareGsm8k(localAssets(files));
  }

  it('scores every reference solution as correct', async () => {
    const prepared = await preparedOnRealTest();
    expect(prepared.samples).toHaveLength(1319);
    let correct = 0;
    for (const sample of prepared.samples) {
      const text = (sample.record as { answer: string }).answer;
      const score = await prepared.score(sample, textReply(text), { request: { messages: [] } });
      correct += score.value;
    }
    expect(correct).toBe(1319);
  });

  const solutionsPath = join(sharedData, 'outputs/gsm8k/example_model_solutions.jsonl');
  it.skipIf(!existsSync(solutionsPath))('agrees with the labelled model outputs', async () => {
    const prepared = await preparedOnRealTest();
    const rows = readFileSync(solutionsPath, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows).toHaveLength(1319);
    const models = ['6b_finetuning', '6b_verification', '175b_finetuning', '175b_verification'];
    const agreement: Record<string, number> = {};
    const unexplained: string[] = [];
    const classes = { endswith: 0, textTarget: 0 };
    for (const model of models) {
      let agree = 0;
      for (let i = 0; i < rows.length; i++) {
        const entry = rows[i]![model] as { solution: string; is_correct: boolean };
        const sample = prepared.samples[i]!;
        const target = String(sample.target);
        const score = await prepared.score(sample, textReply(entry.solution), { request: { messages: [] } });
        if ((score.value === 1) === entry.is_correct) {
          agree++;
          continue;
        }
        // The labels compare the final "A: N" numerically; the reference differs in two known ways:
        // the extracted number only has to END with the target ("544" passes "44"), and targets that
        // are not plain digits ("65,960", "-3") are compared as text ("65960" fails, "13" passes "-3").
        const endswithQuirk =
          score.value === 1 && score.answer !== target && String(score.answer).endsWith(target);
        const textTarget = !/^\d+$/.test(target);
        if (endswithQuirk) classes.endswith++;
        else if (textTarget) classes.textTarget++;
        else unexplained.push(`${model}#${i}`);
      }
      agreement[model] = agree / rows.length;
    }
    console.log('gsm8k label agreement', agreement, 'disagreements by cause', classes);
    expect(unexplained).toEqual([]);
    for (const model of models) expect(agreement[model]).toBeGreaterThan(0.97);
  });
});
