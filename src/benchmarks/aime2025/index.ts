import { UserError } from '../../core/errors.ts';
import type { ScoringRules } from '../../core/protocols.ts';
import type { ChatRequest, Sample, Score } from '../../core/schemas.ts';
import { type AssetPin, githubRawUrl, huggingFaceDatasetUrl } from '../../hub/assetPin.ts';
import { readRecords } from '../../hub/records.ts';
import {
  aggregateAccuracy,
  INSPECT_EVALS_COMMIT,
  INSPECT_EVALS_REPO,
  pythonFormat,
  readPromptConstant,
  selectFirst,
} from '../shared/inspectTask.ts';
import { numericMatchScore, removeBoxed } from '../shared/numericMatch.ts';
import { stripThinkInspect } from '../shared/thinking.ts';
import { type Benchmark, type LoadContext, type PreparedBenchmark, scoringRules } from '../types.ts';

/**
 * AIME 2025 (spec §3.2): inspect_evals `aime2025` — the 30 problems of HF `math-ai/aime25`, the
 * aime2024 solver's prompt template, and a scorer that unwraps `\boxed{…}` before inspect's
 * `match(numeric=True)`.
 */

// Revision of math-ai/aime25 whose test.jsonl has this sha256 (also the AReaL copy in ../shared/data).
const AIME_REVISION = '563bb8404243c5f09de6ec262f2db674fe5bce9b';

export const aime2025Assets: readonly AssetPin[] = [
  {
    part: 'test',
    description: 'AIME 2025 I and II (30 rows: problem, answer, id)',
    url: huggingFaceDatasetUrl('math-ai/aime25', AIME_REVISION, 'test.jsonl'),
    sha256: 'b4e273c02d3e7fe1b74b59eae768fc8230bfb0f79539890cb56f4361caac0331',
    format: 'jsonl',
    fileName: 'test.jsonl',
    shape: { rows: 30, fields: ['problem', 'answer', 'id'] },
  },
  {
    // aime2025 runs `aime2024_solver()`, whose template is this module's USER_PROMPT_TEMPLATE.
    part: 'prompt-source',
    description: 'inspect_evals aime2024.py; the user template is its USER_PROMPT_TEMPLATE constant',
    url: githubRawUrl(INSPECT_EVALS_REPO, INSPECT_EVALS_COMMIT, 'src/inspect_evals/aime2024/aime2024.py'),
    sha256: null,
    format: 'text',
    fileName: 'aime2024.py',
    contains: ['USER_PROMPT_TEMPLATE'],
    promptOnly: true,
  },
];

export const PROMPT_CONSTANT = 'USER_PROMPT_TEMPLATE';

export interface AimeRecord extends Record<string, unknown> {
  problem: string;
  answer: string | number;
  id: string | number;
}

/** Python `str()` of a JSON scalar as `datasets` hands it over (ints print without a decimal point). */
function pythonStr(value: string | number): string {
  return typeof value === 'number' && Number.isInteger(value) ? value.toFixed(0) : String(value);
}

function parseRows(rows: unknown[], path: string): AimeRecord[] {
  return rows.map((row, i) => {
    const r = row as Record<string, unknown>;
    const scalar = (v: unknown) => typeof v === 'string' || typeof v === 'number';
    if (typeof r?.problem !== 'string' || !scalar(r.answer) || !scalar(r.id)) {
      throw new UserError(
        `${path}: row ${i + 1} is not an AIME record (needs "problem", "answer" and "id")`,
        'Re-fetch the pinned file, or check the file passed as a local override.',
      );
    }
    return r as AimeRecord;
  });
}

export function buildAimeRequest(record: AimeRecord, template: string): ChatRequest {
  return { messages: [{ role: 'user', content: pythonFormat(template, { prompt: record.problem }) }] };
}

/** The AIME scorer: think block out (inspect), `\boxed{}` unwrapped, then numeric match at the end. */
export function scoreAime(replyText: string, target: string, rules: ScoringRules): Score {
  const cleaned = removeBoxed(stripThinkInspect(replyText));
  return numericMatchScore(cleaned, target, rules, { signedTargets: false });
}

export async function prepareAime2025(ctx: LoadContext): Promise<PreparedBenchmark> {
  const testAsset = await ctx.asset('test');
  const rows = parseRows(await readRecords(testAsset.path), testAsset.path);
  const template = ctx.scoringOnly
    ? null
    : readPromptConstant(await ctx.asset('prompt-source'), PROMPT_CONSTANT, ['prompt']);
  const samples: Sample[] = rows.map((record) => ({
    id: pythonStr(record.id),
    record,
    target: pythonStr(record.answer),
  }));
  return {
    samples,
    request: (sample) =>
      template === null ? { messages: [] } : buildAimeRequest(sample.record as AimeRecord, template),
    score: async (sample, reply, ctx) => scoreAime(reply.text, String(sample.target), scoringRules(ctx)),
  };
}

export const aime2025Benchmark: Benchmark = {
  id: 'aime2025',
  displayName: 'American Invitational Mathematics Examination (AIME) 2025',
  sampleId: 'the "id" field of the test file, as a string ("0" … "29")',
  weight: 0.226536549919078,
  defaults: {
    maxTokensLadder: [16000, 12000, 8000],
    agentLimit: null,
    referenceConcurrency: 6,
    concurrency: 64,
    gpuMemoryUtilization: 0.8,
    maxTokensFlag: '--max-tokens',
  },
  assets: aime2025Assets,
  needsGrader: false,
  usesTools: false,
  prepare: prepareAime2025,
  select: selectFirst,
  aggregate: aggregateAccuracy,
};
