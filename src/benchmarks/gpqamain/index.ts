import { randomInt } from 'node:crypto';
import { UserError } from '../../core/errors.ts';
import type { ChatRequest, Sample, Score } from '../../core/schemas.ts';
import { type AssetPin, githubRawUrl, huggingFaceDatasetUrl } from '../../hub/assetPin.ts';
import { readRecords } from '../../hub/records.ts';
import { aggregateAccuracy, pythonFormat, readPromptConstant, selectFirst } from '../shared/inspectTask.ts';
import { PythonRandom } from '../shared/pythonRandom.ts';
import { stripThinkInspect } from '../shared/thinking.ts';
import type { Benchmark, LoadContext, PreparedBenchmark, RequestContext, ScoreContext } from '../types.ts';
import { answerLetter, parseChoiceAnswer } from './answerParsing.ts';

/**
 * GPQA main (spec §3.4): the reference's own inspect Task — HF `Idavidrein/gpqa` config
 * `gpqa_main`, choices [correct, incorrect 1–3] shuffled per sample, `multiple_choice(cot=True)`
 * and the `choice()` scorer.
 */

// No immutable revision of this gated dataset could be established offline; `main` is what the
// reference loads (hf_dataset without a revision). The sha256 is recorded on first fetch.
const GPQA_REVISION = 'main';
// inspect_ai release the reference's fork (rank-and-file/inspect_ai_vllm_stdout, base ccb0576)
// is built on; its full base commit hash could not be resolved, so the release tag is pinned.
const INSPECT_AI_REF = '0.3.150';

export const gpqamainAssets: readonly AssetPin[] = [
  {
    part: 'test',
    description: 'GPQA main set (448 rows; Question, Correct Answer, Incorrect Answer 1-3, Record ID)',
    url: huggingFaceDatasetUrl('Idavidrein/gpqa', GPQA_REVISION, 'gpqa_main.csv'),
    sha256: null,
    format: 'csv',
    gated: true,
    fileName: 'gpqa_main.csv',
    shape: {
      rows: 448,
      fields: [
        'Question',
        'Correct Answer',
        'Incorrect Answer 1',
        'Incorrect Answer 2',
        'Incorrect Answer 3',
        'Record ID',
      ],
    },
  },
  {
    part: 'prompt-source',
    description: 'inspect_ai multiple-choice solver; the template is its SINGLE_ANSWER_TEMPLATE_COT constant',
    url: githubRawUrl(
      'UKGovernmentBEIS/inspect_ai',
      INSPECT_AI_REF,
      'src/inspect_ai/solver/_multiple_choice.py',
    ),
    sha256: null,
    format: 'text',
    fileName: '_multiple_choice.py',
    contains: ['SINGLE_ANSWER_TEMPLATE_COT'],
    promptOnly: true,
  },
];

export const PROMPT_CONSTANT = 'SINGLE_ANSWER_TEMPLATE_COT';
const CHOICE_FIELDS = [
  'Correct Answer',
  'Incorrect Answer 1',
  'Incorrect Answer 2',
  'Incorrect Answer 3',
] as const;

// `datasets` reads CSV through pandas, whose default NA markers turn these exact cells into
// null; the reference's `str(record[...])` then shows the choice as "None".
const PANDAS_NA = new Set([
  '',
  '#N/A',
  '#N/A N/A',
  '#NA',
  '-1.#IND',
  '-1.#QNAN',
  '-NaN',
  '-nan',
  '1.#IND',
  '1.#QNAN',
  '<NA>',
  'N/A',
  'NA',
  'NULL',
  'NaN',
  'None',
  'n/a',
  'nan',
  'null',
]);

export interface GpqaRecord extends Record<string, unknown> {
  Question: string;
  'Record ID': string;
}

/** The four options in the dataset's order; index 0 is the correct one (target "A"). */
export function originalChoices(record: Record<string, unknown>): string[] {
  return CHOICE_FIELDS.map((field) => {
    const cell = String(record[field] ?? '');
    return PANDAS_NA.has(cell) ? 'None' : cell;
  });
}

function parseRows(rows: unknown[], path: string): GpqaRecord[] {
  const seen = new Set<string>();
  return rows.map((row, i) => {
    const r = row as Record<string, unknown>;
    const missing = ['Question', 'Record ID', ...CHOICE_FIELDS].find((f) => typeof r?.[f] !== 'string');
    if (missing !== undefined) {
      throw new UserError(
        `${path}: row ${i + 1} has no "${missing}" column; this is not the GPQA main CSV`,
        'Re-fetch the pinned gpqa_main.csv (needs HF_TOKEN with access to Idavidrein/gpqa) or check the local override.',
      );
    }
    const id = r['Record ID'] as string;
    if (seen.has(id)) throw new UserError(`${path}: Record ID ${id} appears twice`);
    seen.add(id);
    return r as GpqaRecord;
  });
}

/**
 * Choice orders as inspect's `shuffle_choices(seed)` makes them: one `random.Random(seed)` walks
 * the whole dataset in order and shuffles each sample's positions. order[k] = original index
 * shown as letter k.
 */
export function seededChoiceOrders(sampleIds: readonly string[], seed: number): Map<string, number[]> {
  const rng = new PythonRandom(seed);
  const orders = new Map<string, number[]>();
  for (const id of sampleIds) {
    const positions = CHOICE_FIELDS.map((_, i) => i);
    rng.shuffle(positions);
    orders.set(id, positions);
  }
  return orders;
}

/** An unseeded order, as `shuffle_choices=True` gives (fresh randomness every evaluation). */
export function unseededChoiceOrder(): number[] {
  const positions = CHOICE_FIELDS.map((_, i) => i);
  for (let i = positions.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [positions[i], positions[j]] = [positions[j]!, positions[i]!];
  }
  return positions;
}

export interface GpqaRequestMeta {
  /** order[k] = index in [correct, incorrect 1, 2, 3] of the option shown as letter k. */
  choiceOrder: number[];
  /** Letter the correct answer was shown under. */
  target: string;
}

/** `multiple_choice(cot=True)`: template.format(question, choices "A) …\nB) …", letters "A,B,C,D"). */
export function buildGpqaRequest(
  record: GpqaRecord,
  order: readonly number[],
  template: string,
): ChatRequest {
  const options = originalChoices(record);
  const shown = order.map((original, k) => `${answerLetter(k)}) ${options[original]}`).join('\n');
  const letters = order.map((_, k) => answerLetter(k)).join(',');
  const meta: GpqaRequestMeta = { choiceOrder: [...order], target: answerLetter(order.indexOf(0)) };
  return {
    messages: [
      {
        role: 'user',
        content: pythonFormat(template, { question: record.Question, choices: shown, letters }),
      },
    ],
    meta: { ...meta },
  };
}

function requestMeta(ctx: ScoreContext, sampleId: string): GpqaRequestMeta {
  const meta = ctx.request.meta as Partial<GpqaRequestMeta> | undefined;
  const order = meta?.choiceOrder;
  const valid =
    Array.isArray(order) &&
    order.length === CHOICE_FIELDS.length &&
    [...order].sort().every((v, i) => v === i) &&
    typeof meta?.target === 'string' &&
    meta.target === answerLetter(order.indexOf(0));
  if (!valid) throw new Error(`GPQA sample ${sampleId}: request.meta carries no valid choice order`);
  return meta as GpqaRequestMeta;
}

/** The `choice()` scorer: correct iff the one parsed letter is the letter the correct option had. */
export function scoreGpqa(replyText: string, meta: GpqaRequestMeta): Score {
  const parsed = parseChoiceAnswer(stripThinkInspect(replyText), meta.choiceOrder.length);
  const answer = parsed.letters[0] ?? null;
  return {
    value: answer !== null && answer === meta.target ? 1 : 0,
    answer,
    details: { target: meta.target, choiceOrder: meta.choiceOrder, rule: parsed.rule },
  };
}

export async function prepareGpqaMain(ctx: LoadContext): Promise<PreparedBenchmark> {
  const testAsset = await ctx.asset('test');
  const rows = parseRows(await readRecords(testAsset.path), testAsset.path);
  // Scoring needs the choice order (request.meta), not the template's text.
  const template = ctx.scoringOnly
    ? ''
    : readPromptConstant(await ctx.asset('prompt-source'), PROMPT_CONSTANT, ['question', 'choices']);
  const samples: Sample[] = rows.map((record) => ({ id: record['Record ID'], record, target: 'A' }));
  const ids = samples.map((s) => s.id);
  const ordersBySeed = new Map<number, Map<string, number[]>>();
  const orderFor = (sample: Sample, rc: RequestContext): number[] => {
    if (rc.seed === null) return unseededChoiceOrder();
    let orders = ordersBySeed.get(rc.seed);
    if (!orders) {
      orders = seededChoiceOrders(ids, rc.seed);
      ordersBySeed.set(rc.seed, orders);
    }
    const order = orders.get(sample.id);
    if (!order) throw new Error(`GPQA sample ${sample.id} is not part of the loaded dataset`);
    return order;
  };
  return {
    samples,
    request: (sample, rc) => buildGpqaRequest(sample.record as GpqaRecord, orderFor(sample, rc), template),
    score: async (sample, reply, sc) => scoreGpqa(reply.text, requestMeta(sc, sample.id)),
  };
}

export const gpqamainBenchmark: Benchmark = {
  id: 'gpqamain',
  displayName: 'GPQA',
  sampleId: 'the row\'s "Record ID" ("rec…")',
  weight: 0.22462215653948,
  defaults: {
    maxTokensLadder: [16000, 12000, 8000],
    agentLimit: 50,
    referenceConcurrency: 6,
    concurrency: 64,
    gpuMemoryUtilization: 0.8,
    maxTokensFlag: '--max-tokens',
  },
  assets: gpqamainAssets,
  needsGrader: false,
  usesTools: false,
  prepare: prepareGpqaMain,
  select: selectFirst,
  aggregate: aggregateAccuracy,
};
