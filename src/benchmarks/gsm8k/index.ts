import { UserError } from '../../core/errors.ts';
import type { ChatRequest, Sample } from '../../core/schemas.ts';
import { type AssetPin, githubRawUrl } from '../../hub/assetPin.ts';
import { readRecords } from '../../hub/records.ts';
import {
  aggregateAccuracy,
  INSPECT_EVALS_COMMIT,
  INSPECT_EVALS_REPO,
  pythonFormat,
  readPromptConstant,
  selectFirst,
} from '../shared/inspectTask.ts';
import { numericMatchScore } from '../shared/numericMatch.ts';
import { pythonStrip } from '../shared/pythonText.ts';
import { stripThinkInspect } from '../shared/thinking.ts';
import { type Benchmark, type LoadContext, type PreparedBenchmark, scoringRules } from '../types.ts';
import { numpyPermutation } from './numpyPermutation.ts';

/**
 * GSM8K (spec §3.3): inspect_evals `gsm8k` with its defaults — 10 few-shot train examples in one
 * system message, the step-by-step template ending in "Reasoning:", and `match(numeric=True)`.
 */

// The reference reads HF `openai/gsm8k` (config main) at its default revision. That dataset was
// converted from these two files of the original release, rows in the same order, so the pinned
// GitHub files give the same samples and the same few-shot draw (the draw depends only on the
// train split's length and order). The HF revision later pinned by inspect_evals is
// cc7b047b6e5bb11b4f1af84efc572db110a51b3c; its parquet hashes are not known here.
const GSM8K_REPO = 'openai/grade-school-math';
const GSM8K_COMMIT = '3101c7d5072418e28b9008a6636bde82a006892c';

export const gsm8kAssets: readonly AssetPin[] = [
  {
    part: 'test',
    description: 'GSM8K test split (1319 rows: question, answer ending "#### N")',
    url: githubRawUrl(GSM8K_REPO, GSM8K_COMMIT, 'grade_school_math/data/test.jsonl'),
    sha256: '3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14',
    format: 'jsonl',
    fileName: 'test.jsonl',
    shape: { rows: 1319, fields: ['question', 'answer'] },
  },
  {
    part: 'train',
    description: 'GSM8K train split (7473 rows), source of the 10 few-shot examples',
    url: githubRawUrl(GSM8K_REPO, GSM8K_COMMIT, 'grade_school_math/data/train.jsonl'),
    sha256: null,
    format: 'jsonl',
    fileName: 'train.jsonl',
    shape: { rows: 7473, fields: ['question', 'answer'] },
    promptOnly: true,
  },
  {
    part: 'prompt-source',
    description: 'inspect_evals gsm8k.py; the user template is its MATH_PROMPT_TEMPLATE constant',
    url: githubRawUrl(INSPECT_EVALS_REPO, INSPECT_EVALS_COMMIT, 'src/inspect_evals/gsm8k/gsm8k.py'),
    sha256: null,
    format: 'text',
    fileName: 'gsm8k.py',
    contains: ['MATH_PROMPT_TEMPLATE'],
    promptOnly: true,
  },
];

export const FEWSHOT_COUNT = 10;
export const FEWSHOT_SEED = 42;
export const PROMPT_CONSTANT = 'MATH_PROMPT_TEMPLATE';

export interface Gsm8kRecord extends Record<string, unknown> {
  question: string;
  answer: string;
}

export interface Gsm8kAnswer {
  /** Text after the last `####`, stripped (commas kept, as the reference keeps them). */
  target: string;
  /** Everything before it, stripped (calculator annotations `<<…>>` included). */
  reasoning: string;
}

/** inspect_evals `record_to_sample`: split on `####`, the last piece is the target. */
export function splitGsm8kAnswer(answer: string): Gsm8kAnswer {
  const pieces = answer.split('####');
  const target = pythonStrip(pieces.pop()!);
  return { target, reasoning: pythonStrip(pieces.join('####')) };
}

function parseRows(rows: unknown[], path: string): Gsm8kRecord[] {
  return rows.map((row, i) => {
    const r = row as Record<string, unknown>;
    if (typeof r?.question !== 'string' || typeof r.answer !== 'string') {
      throw new UserError(
        `${path}: row ${i + 1} is not a GSM8K record (needs string fields "question" and "answer")`,
        'Re-fetch the pinned file, or check the file passed as a local override.',
      );
    }
    return r as Gsm8kRecord;
  });
}

/**
 * Rows the reference's few-shot draw picks: `hf_dataset(split="train", shuffle=True, seed=42,
 * limit=10)` shuffles with `datasets`' numpy permutation and keeps the first ten.
 */
export function fewshotIndices(trainSize: number, count = FEWSHOT_COUNT, seed = FEWSHOT_SEED): number[] {
  if (trainSize < count) {
    throw new UserError(
      `the GSM8K train split has ${trainSize} rows; ${count} few-shot examples are needed`,
      'Use the pinned train split (7473 rows).',
    );
  }
  return numpyPermutation(trainSize, seed).slice(0, count);
}

/** inspect_evals `sample_to_fewshot` for each drawn row, joined by blank lines. */
export function buildFewshotText(train: readonly Gsm8kRecord[], indices: readonly number[]): string {
  return indices
    .map((i) => {
      const row = train[i]!;
      const { target, reasoning } = splitGsm8kAnswer(row.answer);
      return `${row.question}\n\nReasoning:\n${reasoning}\n\nANSWER: ${target}`;
    })
    .join('\n\n');
}

export interface Gsm8kPrompt {
  /** MATH_PROMPT_TEMPLATE as read from the pinned source. */
  template: string;
  /** The joined few-shot examples (the system message before formatting). */
  fewshot: string;
}

/**
 * The conversation inspect builds: `system_message(fewshot)` then `prompt_template(template)`;
 * both format with the sample's metadata (`reasoning`), unknown fields left alone.
 */
export function buildGsm8kRequest(record: Gsm8kRecord, prompt: Gsm8kPrompt): ChatRequest {
  const { reasoning } = splitGsm8kAnswer(record.answer);
  const metadata = { reasoning };
  return {
    messages: [
      { role: 'system', content: pythonFormat(prompt.fewshot, metadata, { keepUnknown: true }) },
      { role: 'user', content: pythonFormat(prompt.template, { ...metadata, prompt: record.question }) },
    ],
  };
}

async function loadGsm8kPrompt(ctx: LoadContext): Promise<Gsm8kPrompt> {
  const [trainAsset, promptAsset] = await Promise.all([ctx.asset('train'), ctx.asset('prompt-source')]);
  const train = parseRows(await readRecords(trainAsset.path), trainAsset.path);
  return {
    template: readPromptConstant(promptAsset, PROMPT_CONSTANT, ['prompt']),
    fewshot: buildFewshotText(train, fewshotIndices(train.length)),
  };
}

export async function prepareGsm8k(ctx: LoadContext): Promise<PreparedBenchmark> {
  const testAsset = await ctx.asset('test');
  const test = parseRows(await readRecords(testAsset.path), testAsset.path);
  // Scoring reads only the targets: the few-shot split and the prompt source are not needed.
  const prompt = ctx.scoringOnly ? null : await loadGsm8kPrompt(ctx);
  const samples: Sample[] = test.map((record, i) => ({
    id: String(i),
    record,
    target: splitGsm8kAnswer(record.answer).target,
  }));
  return {
    samples,
    request: (sample) =>
      prompt ? buildGsm8kRequest(sample.record as Gsm8kRecord, prompt) : { messages: [] },
    score: async (sample, reply, ctx) =>
      numericMatchScore(stripThinkInspect(reply.text), String(sample.target), scoringRules(ctx), {
        signedTargets: true,
      }),
  };
}

export const gsm8kBenchmark: Benchmark = {
  id: 'gsm8k',
  displayName: 'GSM8K (Grade School Math 8K)',
  sampleId: 'the 0-based line number in the test split, as a string ("0" … "1318")',
  weight: 0.0935882347031865,
  defaults: {
    maxTokensLadder: [4000, 3000, 2000],
    agentLimit: 150,
    referenceConcurrency: 2,
    concurrency: 64,
    gpuMemoryUtilization: 0.3,
    maxTokensFlag: '--max-tokens',
  },
  assets: gsm8kAssets,
  needsGrader: false,
  usesTools: false,
  prepare: prepareGsm8k,
  select: selectFirst,
  // inspect_evals' gsm8k records carry no id, so inspect numbers them 1, 2, … in dataset order
  // (inspect_ai _eval/run.py: `sample.id = id + 1`); ptb's ids are the 0-based rows.
  referenceSampleId: (sample) => String(Number(sample.id) + 1),
  aggregate: aggregateAccuracy,
};
