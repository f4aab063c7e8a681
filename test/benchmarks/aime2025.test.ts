import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { aime2025Benchmark, prepareAime2025, scoreAime } from '../../src/benchmarks/aime2025/index.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { PROTOCOLS } from '../../src/core/protocols.ts';
import { jsonLines, localAssets, textReply, writeAssetFiles } from '../helpers/benchmarkFixtures.ts';

const sharedData = resolve(repoRoot, '../shared/data');

// Shaped like inspect_evals aime2024.py (own wording).
const PROMPT_SOURCE = `import re

USER_PROMPT_TEMPLATE = """
Solve it step by step.
Last line: "ANSWER: $ANSWER".

{prompt}

Again, "ANSWER: $ANSWER" on its own line; no \\\\boxed needed.
""".strip()
`;

function writeSynthetic(testPath?: string): Record<string, string> {
  const rows = [
    { problem: 'Find $x$ with $x^2 = 4900$.', answer: 70, id: '0' },
    { problem: 'Compute the remainder.', answer: '16', id: '1' },
  ];
  const files = writeAssetFiles('aime', {
    test: ['test.jsonl', jsonLines(rows)],
    'prompt-source': ['aime2024.py', PROMPT_SOURCE],
  });
  if (testPath) files.test = testPath;
  return files;
}

const V10 = PROTOCOLS['v1.0'].scoring;

describe('aime2025', () => {
  it('loads ids and string targets, and fills the template', async () => {
    const prepared = await prepareAime2025(localAssets(writeSynthetic()));
    expect(prepared.samples.map((s) => [s.id, s.target])).toEqual([
      ['0', '70'],
      ['1', '16'],
    ]);
    const req = prepared.request(prepared.samples[0]!, { seed: 3 });
    expect(req.messages).toEqual([
      {
        role: 'user',
        content:
          'Solve it step by step.\nLast line: "ANSWER: $ANSWER".\n\nFind $x$ with $x^2 = 4900$.\n\nAgain, "ANSWER: $ANSWER" on its own line; no \\boxed needed.',
      },
    ]);
  });

  it('unwraps \\boxed{} and strips think blocks before the numeric match', () => {
    expect(scoreAime('so the answer is $\\boxed{70}$', '70', V10)).toMatchObject({ value: 1, answer: '70' });
    expect(scoreAime('<think>try \\boxed{69}</think>\nANSWER: 70', '70', V10)).toMatchObject({ value: 1 });
    expect(scoreAime('<think>never closed ... 69', '70', V10)).toMatchObject({ value: 0, answer: '69' });
    // Greedy within a line: only the outer braces go, leaving "70} or \boxed{71" with no clean number.
    expect(scoreAime('\\boxed{70} or \\boxed{71}', '70', V10)).toMatchObject({
      value: 0,
      answer: '\\boxed{71',
    });
    expect(scoreAime('ANSWER: 070', '70', V10)).toMatchObject({ value: 1 });
    expect(scoreAime('I cannot solve this', '70', V10)).toMatchObject({ value: 0 });
  });

  it('carries the reference defaults', () => {
    expect(aime2025Benchmark.defaults).toMatchObject({
      maxTokensLadder: [16000, 12000, 8000],
      agentLimit: null,
      referenceConcurrency: 6,
      gpuMemoryUtilization: 0.8,
    });
    expect(aime2025Benchmark.weight).toBe(0.226536549919078);
    expect(aime2025Benchmark.displayName).toBe('American Invitational Mathematics Examination (AIME) 2025');
    expect(aime2025Benchmark.assets.find((a) => a.part === 'test')?.sha256).toBe(
      'b4e273c02d3e7fe1b74b59eae768fc8230bfb0f79539890cb56f4361caac0331',
    );
  });

  const realTest = join(sharedData, 'aime2025/test.jsonl');
  it.skipIf(!existsSync(realTest))(
    'scores the answer field of every real problem as correct (30/30)',
    async () => {
      const prepared = await prepareAime2025(localAssets(writeSynthetic(realTest)));
      expect(prepared.samples.map((s) => s.id)).toEqual(Array.from({ length: 30 }, (_, i) => String(i)));
      const answers = readFileSync(realTest, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => String((JSON.parse(l) as { answer: unknown }).answer));
      let correct = 0;
      for (const [i, sample] of prepared.samples.entries()) {
        correct += (await prepared.score(sample, textReply(answers[i]!), { request: { messages: [] } }))
          .value;
      }
      expect(correct).toBe(30);
    },
  );
});
