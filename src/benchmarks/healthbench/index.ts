import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UserError } from '../../core/errors.ts';
import type { ChatMessage, Metrics, Sample, Score } from '../../core/schemas.ts';
import { type AssetPin, githubRawUrl } from '../../hub/assetPin.ts';
import { readRecords } from '../../hub/records.ts';
import { limitRepetitions } from '../shared/limitRepetitions.ts';
import type { Sleep } from '../shared/openaiGrader.ts';
import { pythonShuffled } from '../shared/pythonRandom.ts';
import { pythonStrip } from '../shared/pythonText.ts';
import type { Benchmark, LoadContext, PreparedBenchmark, SelectOptions } from '../types.ts';
import { extractGraderTemplate, renderConversation } from './graderPrompt.ts';
import { type GradedExample, healthBenchMetrics, tagValue } from './metrics.ts';
import { exampleScore, gradeRubric, rubricPoints } from './rubricGrading.ts';

/**
 * HealthBench (the reference's 245-example "easy" subset), spec §3.8: the model answers a
 * multi-turn medical conversation; an LLM grader checks the answer against each rubric item,
 * one call per item; the example score is met points over positive points.
 */

const PTB_REPO = 'aisa-group/PostTrainBench';
const PTB_COMMIT = '9082063a62e10e040f1acacdec2ccfc1467e0c00';
const TASK_DIR = 'src/eval/tasks/healthbench/evaluation_code';
export const SELECTION_SEED = 42;

export const healthBenchAssets: readonly AssetPin[] = [
  {
    part: 'data',
    description: 'HealthBench subset: conversations (prompt), rubrics, example tags',
    url: githubRawUrl(PTB_REPO, PTB_COMMIT, `${TASK_DIR}/data/healthbench.jsonl`),
    sha256: '0febc8f013eb5d91e3b7e31bbbb0284ae6aa5fbd8cab68b81d63fa252837c0b0',
    format: 'jsonl',
    fileName: 'healthbench.jsonl',
    shape: { rows: 245, fields: ['prompt', 'rubrics'] },
  },
  {
    // The template is the module constant GRADER_TEMPLATE (with its .strip()) of this file.
    part: 'grader-prompt',
    description: 'reference grader module; the rubric grader template is read from GRADER_TEMPLATE',
    url: githubRawUrl(PTB_REPO, PTB_COMMIT, `${TASK_DIR}/grader.py`),
    sha256: null,
    format: 'text',
    fileName: 'grader.py',
    contains: ['GRADER_TEMPLATE'],
  },
];

const RubricSchema = z.looseObject({
  criterion: z.string(),
  points: z.number(),
  tags: z.array(z.string()).default([]),
});

const ExampleSchema = z.looseObject({
  prompt_id: z.string().min(1),
  prompt: z
    .array(z.looseObject({ role: z.enum(['system', 'user', 'assistant']), content: z.string() }))
    .min(1),
  rubrics: z.array(RubricSchema),
  example_tags: z.array(z.string()).default([]),
});
export type HealthBenchExample = z.infer<typeof ExampleSchema>;

export async function loadHealthBench(path: string): Promise<HealthBenchExample[]> {
  const rows = await readRecords(path);
  const seen = new Set<string>();
  return rows.map((row, i) => {
    const parsed = ExampleSchema.safeParse(row);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new UserError(
        `${path}: row ${i + 1} is not a HealthBench example (${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'})`,
        'Re-fetch the pinned file, or check the file passed as a local override.',
      );
    }
    if (seen.has(parsed.data.prompt_id))
      throw new UserError(`${path}: prompt_id ${parsed.data.prompt_id} appears twice`);
    seen.add(parsed.data.prompt_id);
    return parsed.data;
  });
}

/**
 * The answer the grader sees: trimmed; when it starts with `<think>`, the text after the first
 * `</think>` (unchanged when there is no closing tag); then the repetition limiter.
 */
export function cleanHealthBenchAnswer(reply: string): string {
  let text = pythonStrip(reply);
  const close = '</think>';
  if (text.startsWith('<think>')) {
    const end = text.indexOf(close);
    text = pythonStrip(end === -1 ? text : text.slice(end + close.length));
  }
  return limitRepetitions(text);
}

/** The reference always shuffles with random.Random(42), then keeps the first `limit` (all for -1/null). */
export function selectHealthBenchSamples(samples: Sample[], opts: SelectOptions): Sample[] {
  const shuffled = pythonShuffled(samples, SELECTION_SEED);
  return opts.limit === null || opts.limit === -1 ? shuffled : shuffled.slice(0, opts.limit);
}

interface HealthBenchDetails {
  judgedAnswer: string;
  grader: string;
  theme: string;
  /** criteria_met per rubric item, in rubric order. */
  criteriaMet: boolean[];
  grades: Array<{ criterion: string; points: number; met: boolean; failed: boolean; explanation: string }>;
  achievedPoints: number;
  possiblePoints: number;
  graderRequests: number;
}

export function aggregateHealthBench(scored: ReadonlyArray<{ sample: Sample; score: Score }>): Metrics {
  const examples: GradedExample[] = scored
    .filter(({ score }) => !score.dropped)
    .map(({ sample, score }) => {
      const record = sample.record as HealthBenchExample;
      const met = (score.details as Partial<HealthBenchDetails> | undefined)?.criteriaMet ?? [];
      return { exampleTags: record.example_tags, rubric: record.rubrics, met, score: score.value };
    });
  return healthBenchMetrics(examples);
}

export interface HealthBenchOptions {
  /** Pause between grader retries (tests pass a fast one). */
  sleep?: Sleep;
}

export function createHealthBenchBenchmark(options: HealthBenchOptions = {}): Benchmark {
  return {
    id: 'healthbench',
    displayName: 'HealthBench',
    sampleId: 'the example\'s "prompt_id" (a UUID)',
    weight: 0.184144830733019,
    defaults: {
      maxTokensLadder: [16384, 12288, 8192],
      agentLimit: 32,
      referenceConcurrency: 1,
      concurrency: 32,
      gpuMemoryUtilization: undefined,
      maxTokensFlag: '--max-new-tokens',
    },
    assets: healthBenchAssets,
    needsGrader: true,
    usesTools: false,
    async prepare(ctx: LoadContext): Promise<PreparedBenchmark> {
      const [dataAsset, promptAsset] = await Promise.all([ctx.asset('data'), ctx.asset('grader-prompt')]);
      const examples = await loadHealthBench(dataAsset.path);
      const template = extractGraderTemplate(readFileSync(promptAsset.path, 'utf8'), promptAsset.path);
      const samples: Sample[] = examples.map((e) => ({ id: e.prompt_id, record: e }));

      return {
        samples,
        request: (sample) => ({
          messages: (sample.record as HealthBenchExample).prompt.map(
            (turn): ChatMessage => ({ role: turn.role, content: turn.content }),
          ),
        }),
        async score(sample, reply, scoreCtx): Promise<Score> {
          if (!scoreCtx.grader) {
            throw new UserError(
              'healthbench needs an LLM grader to check rubric items',
              'Set PTB_GRADER_API_KEY (or OPENAI_API_KEY for the default OpenAI endpoint).',
            );
          }
          const example = sample.record as HealthBenchExample;
          const answer = cleanHealthBenchAnswer(reply.text);
          const conversation = renderConversation(example.prompt, answer);
          const grades = await gradeRubric(scoreCtx.grader, conversation, example.rubrics, template, {
            sleep: options.sleep,
            signal: scoreCtx.signal,
          });
          const met = grades.map((g) => g.criteriaMet);
          const value = exampleScore(example.rubrics, met);
          const { achieved: achievedPoints, possible: possiblePoints } = rubricPoints(example.rubrics, met);
          const failed = grades.filter((g) => g.failed).length;
          const details: HealthBenchDetails = {
            judgedAnswer: answer,
            grader: scoreCtx.grader.model,
            theme: tagValue(example.example_tags, 'theme'),
            criteriaMet: met,
            grades: example.rubrics.map((item, i) => ({
              criterion: item.criterion,
              points: item.points,
              met: met[i]!,
              failed: grades[i]!.failed,
              explanation: grades[i]!.explanation,
            })),
            achievedPoints,
            possiblePoints,
            graderRequests: grades.reduce((s, g) => s + g.calls, 0),
          };
          const metCount = met.filter(Boolean).length;
          return {
            value,
            answer: `${achievedPoints}/${possiblePoints}`,
            explanation:
              `${metCount} of ${met.length} rubric items met` +
              (failed > 0 ? `; ${failed} could not be graded and count as not met` : ''),
            details: details as unknown as Record<string, unknown>,
          };
        },
      };
    },
    select: selectHealthBenchSamples,
    aggregate: aggregateHealthBench,
  };
}

export const healthbenchBenchmark: Benchmark = createHealthBenchBenchmark();
