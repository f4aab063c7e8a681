import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UserError } from '../../core/errors.ts';
import type { Metrics, Sample, Score } from '../../core/schemas.ts';
import { type AssetPin, githubRawUrl } from '../../hub/assetPin.ts';
import { readRecords } from '../../hub/records.ts';
import type { Sleep } from '../shared/openaiGrader.ts';
import { pythonShuffled } from '../shared/pythonRandom.ts';
import { PythonSourceError, pythonNestedDictString } from '../shared/pythonText.ts';
import type { Benchmark, LoadContext, PreparedBenchmark, SelectOptions } from '../types.ts';
import { cleanCandidateAnswer, type GameRecord, judgeQuestion } from './judge.ts';

/**
 * Arena-Hard-v2.0 (Writing), spec §3.7: 250 creative-writing prompts; each answer is judged
 * twice against the Qwen3-1.7B baseline answers shipped with the reference (once in each
 * position) and the candidate's win rate over the exploded verdict values is the score.
 */

const PTB_REPO = 'aisa-group/PostTrainBench';
const PTB_COMMIT = '9082063a62e10e040f1acacdec2ccfc1467e0c00';
const TASK_DIR = 'src/eval/tasks/arenahardwriting/evaluation_code';

/** Arena-hard's category whose judge settings (baseline, system prompt) the reference uses. */
export const ARENA_CATEGORY = 'creative_writing';
export const SELECTION_SEED = 42;

export const arenaAssets: readonly AssetPin[] = [
  {
    part: 'questions',
    description: 'Arena-Hard-v2.0 creative-writing questions (uid, category, subcategory, prompt)',
    url: githubRawUrl(PTB_REPO, PTB_COMMIT, `${TASK_DIR}/data/arena-hard-v2.0/question.jsonl`),
    sha256: 'f337df1022d723b2062bcc530e8e7fbc367548c31fbc87d0ae668f0b6c7609a5',
    format: 'jsonl',
    fileName: 'question.jsonl',
    shape: { rows: 250, fields: ['uid', 'category', 'prompt'] },
  },
  {
    part: 'baseline',
    description: 'Qwen3-1.7B answers the candidate is judged against',
    url: githubRawUrl(PTB_REPO, PTB_COMMIT, `${TASK_DIR}/data/arena-hard-v2.0/model_answer/Qwen3-1.7B.jsonl`),
    sha256: '87a72bb89edfd05fc8dd32152750649e1bab60ba1b62ebcd055610a729023c30',
    format: 'jsonl',
    fileName: 'Qwen3-1.7B.jsonl',
    shape: { rows: 250, fields: ['uid', 'messages'] },
  },
  {
    // The judge system prompt is JUDGE_SETTINGS["creative_writing"]["system_prompt"] in this file.
    part: 'judge-prompt',
    description: 'judge settings module; the system prompt is read from JUDGE_SETTINGS["creative_writing"]',
    url: githubRawUrl(PTB_REPO, PTB_COMMIT, `${TASK_DIR}/utils/judge_utils.py`),
    sha256: null,
    format: 'text',
    fileName: 'judge_utils.py',
    contains: ['JUDGE_SETTINGS'],
  },
];

const QuestionSchema = z.looseObject({ uid: z.string().min(1), category: z.string(), prompt: z.string() });
export type ArenaQuestion = z.infer<typeof QuestionSchema>;

const BaselineSchema = z.looseObject({
  uid: z.string().min(1),
  messages: z
    .array(z.looseObject({ role: z.string(), content: z.unknown() }))
    .min(1)
    .refine((messages) => typeof answerOf(messages[messages.length - 1]?.content) === 'string', {
      message: 'last message content must be {"answer": string}',
    }),
});

function answerOf(content: unknown): string | undefined {
  if (content && typeof content === 'object' && 'answer' in content) {
    const answer = (content as { answer: unknown }).answer;
    return typeof answer === 'string' ? answer : undefined;
  }
  return undefined;
}

function parseRows<T>(rows: unknown[], schema: z.ZodType<T>, what: string, path: string): T[] {
  return rows.map((row, i) => {
    const parsed = schema.safeParse(row);
    if (!parsed.success) {
      throw new UserError(
        `${path}: row ${i + 1} is not an Arena-Hard ${what} record (${parsed.error.issues[0]?.message ?? 'invalid'})`,
        'Re-fetch the pinned file, or check the file passed as a local override.',
      );
    }
    return parsed.data;
  });
}

export async function loadArenaQuestions(path: string): Promise<ArenaQuestion[]> {
  const questions = parseRows(await readRecords(path), QuestionSchema, 'question', path);
  const seen = new Set<string>();
  for (const q of questions) {
    if (seen.has(q.uid)) throw new UserError(`${path}: question uid ${q.uid} appears twice`);
    seen.add(q.uid);
    if (q.category !== ARENA_CATEGORY) {
      throw new UserError(
        `${path}: question ${q.uid} has category ${JSON.stringify(q.category)}; only ${ARENA_CATEGORY} is judged`,
        'Use the pinned creative-writing question file.',
      );
    }
  }
  return questions;
}

/** uid → the baseline's answer text (`messages[-1].content.answer`). */
export async function loadArenaBaseline(path: string): Promise<Map<string, string>> {
  const rows = parseRows(await readRecords(path), BaselineSchema, 'model answer', path);
  const answers = new Map<string, string>();
  // Later rows win, as the reference builds a dict keyed by uid.
  for (const row of rows) answers.set(row.uid, answerOf(row.messages[row.messages.length - 1]!.content)!);
  return answers;
}

/** Extraction rule: the string value of JUDGE_SETTINGS["creative_writing"]["system_prompt"]. */
export function extractJudgeSystemPrompt(pythonSource: string, origin: string): string {
  let prompt: string;
  try {
    prompt = pythonNestedDictString(pythonSource, ARENA_CATEGORY, 'system_prompt');
  } catch (err) {
    if (!(err instanceof PythonSourceError)) throw err;
    throw new UserError(
      `${origin}: cannot read the ${ARENA_CATEGORY} judge system prompt (${err.message})`,
      'The file must define JUDGE_SETTINGS with a "creative_writing" entry holding "system_prompt".',
    );
  }
  if (!prompt.includes('[[A>>B]]')) {
    throw new UserError(
      `${origin}: the ${ARENA_CATEGORY} system prompt does not ask for [[A>>B]]-style verdicts`,
      'Check that the judge prompt asset is the pinned arena-hard judge_utils.py.',
    );
  }
  return prompt;
}

export function selectArenaSamples(samples: Sample[], opts: SelectOptions): Sample[] {
  const shuffled = pythonShuffled(samples, SELECTION_SEED);
  // Python slicing semantics: a negative limit other than -1 drops from the end.
  return opts.limit === null || opts.limit === -1 ? shuffled : shuffled.slice(0, opts.limit);
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Win rate over every exploded value of every kept question; stderr = sample std / √n. */
export function aggregateArena(scored: ReadonlyArray<{ sample: Sample; score: Score }>): Metrics {
  const values = scored
    .filter(({ score }) => !score.dropped)
    .flatMap(({ score }) => score.values ?? [score.value]);
  const n = values.length;
  if (n === 0) return { accuracy: 0, stderr: 0 };
  const accuracy = mean(values);
  if (n === 1) return { accuracy, stderr: 0 };
  const variance = values.reduce((acc, v) => acc + (v - accuracy) ** 2, 0) / (n - 1);
  return { accuracy, stderr: Math.sqrt(variance) / Math.sqrt(n) };
}

function describeGame(game: GameRecord, index: number): string {
  const label = `game ${index + 1} (${game.a} as A)`;
  switch (game.outcome.kind) {
    case 'scored':
      return `${label}: ${game.outcome.verdict}`;
    case 'no-judgment':
      return `${label}: judge failed on every try`;
    case 'no-verdict':
      return `${label}: no verdict label in the judgment`;
    case 'unknown-verdict':
      return `${label}: unknown verdict ${game.outcome.verdict}`;
  }
}

export interface ArenaOptions {
  /** Pause between judge retries (tests pass a fast one). */
  sleep?: Sleep;
}

export function createArenaHardWritingBenchmark(options: ArenaOptions = {}): Benchmark {
  return {
    id: 'arenahardwriting',
    displayName: 'Arena-Hard-v2.0 (Writing)',
    sampleId: 'the question\'s "uid" (a hex string)',
    weight: 0.0903518275042778,
    defaults: {
      maxTokensLadder: [16384, 12288, 8192],
      agentLimit: 32,
      referenceConcurrency: 1,
      concurrency: 32,
      gpuMemoryUtilization: undefined,
      maxTokensFlag: '--max-new-tokens',
    },
    assets: arenaAssets,
    needsGrader: true,
    usesTools: false,
    async prepare(ctx: LoadContext): Promise<PreparedBenchmark> {
      const [questionsAsset, baselineAsset, promptAsset] = await Promise.all([
        ctx.asset('questions'),
        ctx.asset('baseline'),
        ctx.asset('judge-prompt'),
      ]);
      const questions = await loadArenaQuestions(questionsAsset.path);
      const baseline = await loadArenaBaseline(baselineAsset.path);
      const systemPrompt = extractJudgeSystemPrompt(readFileSync(promptAsset.path, 'utf8'), promptAsset.path);
      const samples: Sample[] = questions.map((q) => ({ id: q.uid, record: q }));

      return {
        samples,
        request: (sample) => ({
          messages: [{ role: 'user', content: (sample.record as ArenaQuestion).prompt }],
        }),
        async score(sample, reply, scoreCtx): Promise<Score> {
          if (!scoreCtx.grader) {
            throw new UserError(
              'arenahardwriting needs an LLM grader to judge answers',
              'Set PTB_GRADER_API_KEY (or OPENAI_API_KEY for the default OpenAI endpoint).',
            );
          }
          const candidateAnswer = cleanCandidateAnswer(reply.text);
          const baselineAnswer = baseline.get(sample.id);
          if (baselineAnswer === undefined) {
            // The reference skips a question the baseline did not answer.
            return {
              value: 0,
              values: [],
              dropped: true,
              explanation: `no baseline answer for question ${sample.id}`,
              details: { judgedAnswer: candidateAnswer },
            };
          }
          const judged = await judgeQuestion(
            scoreCtx.grader,
            {
              systemPrompt,
              question: (sample.record as ArenaQuestion).prompt,
              baselineAnswer,
              candidateAnswer,
            },
            { sleep: options.sleep, signal: scoreCtx.signal },
          );
          const verdicts = judged.games.map((g) =>
            g.outcome.kind === 'scored' || g.outcome.kind === 'unknown-verdict' ? g.outcome.verdict : null,
          );
          const details = {
            judgedAnswer: candidateAnswer,
            judge: scoreCtx.grader.model,
            verdicts,
            judgments: judged.games.map((g) => g.judgment),
          };
          const explanation = judged.games.map(describeGame).join('; ');
          const verdictPair = verdicts.map((v) => v ?? '-').join(' | ');
          if (judged.values === null) {
            return { value: 0, values: [], dropped: true, answer: verdictPair, explanation, details };
          }
          return {
            value: mean(judged.values),
            values: judged.values,
            answer: verdictPair,
            explanation,
            details,
          };
        },
      };
    },
    select: selectArenaSamples,
    aggregate: aggregateArena,
  };
}

export const arenahardwritingBenchmark: Benchmark = createArenaHardWritingBenchmark();
