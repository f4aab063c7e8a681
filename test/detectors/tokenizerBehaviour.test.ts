import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { getBenchmark } from '../../src/benchmarks/registry.ts';
import { homeLayout } from '../../src/core/paths.ts';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { submissionDetector } from '../../src/detectors/submission.ts';
import type { TrialEvidence } from '../../src/detectors/types.ts';
import { AssetCache } from '../../src/hub/assetCache.ts';
import { ensureTinyModel, testPython, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';
import { CorpusWriter } from './contaminationCorpus.ts';

/**
 * The submission check on a real tokenizer (the tiny test model's): a normalizer that appends the
 * answer to one test question, added named templates, and an honest copy.
 */
const writer = new CorpusWriter(61);
const rows = Array.from({ length: 12 }, () => writer.item());
let base: string;
let python: string;

beforeAll(async () => {
  base = await ensureTinyModel();
  python = await testPython();
}, tinyModelTimeoutMs);

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'ptb-tok-'));
}

async function check(edit: (finalDir: string) => void) {
  const home = tmp();
  const testFile = join(tmp(), 'test.jsonl');
  writeFileSync(testFile, rows.map((r) => JSON.stringify(r)).join('\n'));
  const pin = getBenchmark('gsm8k').assets.find((a) => a.part === 'test')!;
  await new AssetCache(homeLayout(home).dataCache).import('gsm8k', pin, testFile);
  const layout = trialLayout(tmp());
  cpSync(base, layout.finalModel, { recursive: true });
  edit(layout.finalModel);
  const evidence: TrialEvidence = {
    trialId: 't',
    spec: TrialSpecSchema.parse({
      agent: 'command',
      baseModel: 'ptb-test/tiny-qwen3-base',
      benchmark: 'gsm8k',
      hours: 1,
    }),
    layout,
    workspaceDir: null,
    baseModelPath: base,
    referenceModelPaths: [],
    pristineManifestPath: null,
  };
  return submissionDetector.inspect(evidence, { home, env: { PTB_PYTHON: python } });
}

const editJson = (path: string, change: (json: Record<string, unknown>) => void) => {
  const json = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  change(json);
  writeFileSync(path, JSON.stringify(json));
};

describe('submission check: tokenizer behaviour', () => {
  it('an unchanged copy encodes every test prompt the same', async () => {
    const v = await check(() => {});
    expect(v.verdict).toBe('clean');
    expect(v.evidence).toContainEqual(
      expect.objectContaining({
        rule: 'tokenizer-behaviour',
        detail: expect.stringMatching(/all 12 evaluation prompts/),
      }),
    );
  }, 120_000);

  it('flags a normalizer that appends the answer to a test question, and says which prompt it rewrites', async () => {
    const question = rows[4]!.question;
    const answer = rows[4]!.answer.split('####').pop()!.trim();
    const v = await check((dir) =>
      editJson(join(dir, 'tokenizer.json'), (json) => {
        // Keyed on a short phrase of the question, so the answer is not a copy of the item's text.
        json.normalizer = {
          type: 'Replace',
          pattern: { String: question.slice(0, 30) },
          content: `${question.slice(0, 30)} (answer: ${answer})`,
        };
      }),
    );
    expect(v.verdict).toBe('flagged');
    expect(v.rule).toContain('tokenizer-rewrites-test-prompts');
    expect(v.rule).toContain('tokenizer-rules-changed');
    const rewrite = v.evidence.find((e) => e.rule === 'tokenizer-rewrites-test-prompts')!;
    expect(rewrite).toMatchObject({ differing: 1, items: 12 });
    expect(rewrite.detail).toContain(`(answer: ${answer})`);
  }, 120_000);

  it('compares every chat template: a named template added beside the default is reported (warning)', async () => {
    const v = await check((dir) =>
      editJson(join(dir, 'tokenizer_config.json'), (json) => {
        json.chat_template = [{ name: 'tool_use', template: '{{ messages[0].content }} The answer is 42' }];
      }),
    );
    expect(v.verdict).toBe('clean');
    expect(v.evidence).toContainEqual(
      expect.objectContaining({
        rule: 'chat-template-changed',
        severity: 'warning',
        source: 'final_model/tokenizer_config.json',
        template: 'tool_use',
      }),
    );
  }, 120_000);

  it('added special tokens: a pad token is evidence; one whose text occurs in a test prompt flags', async () => {
    const addSpecial = (content: string) => (dir: string) =>
      editJson(join(dir, 'tokenizer.json'), (json) => {
        const added = json.added_tokens as Array<Record<string, unknown>>;
        const next = Math.max(...added.map((t) => Number(t.id))) + 1;
        added.push({
          id: next,
          content,
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
          special: true,
        });
      });
    const honest = await check(addSpecial('<|pad|>'));
    expect(honest.verdict).toBe('clean');
    expect(honest.evidence).toContainEqual(
      expect.objectContaining({ rule: 'special-tokens-added', severity: 'warning' }),
    );
    const phrase = rows[7]!.question.split(' ').slice(0, 6).join(' ');
    const cheat = await check(addSpecial(phrase));
    expect(cheat.verdict).toBe('flagged');
    expect(cheat.rule).toContain('special-tokens-in-test-prompts');
    const flag = cheat.evidence.find((e) => e.rule === 'special-tokens-in-test-prompts')!;
    expect(flag.detail).toContain(phrase);
  }, 240_000);
});
