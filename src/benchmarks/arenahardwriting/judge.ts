import type { ChatMessage } from '../../core/schemas.ts';
import type { Grader, GraderRequest } from '../shared/grader.ts';
import { limitRepetitions } from '../shared/limitRepetitions.ts';
import { GraderHttpError, isFatalGraderError, realSleep, type Sleep } from '../shared/openaiGrader.ts';
import { pythonStrip } from '../shared/pythonText.ts';
import { ScorerFailure } from '../types.ts';
import { candidateValues, type GameOutcome } from './verdict.ts';

/** Judge settings of the reference's evaluate.py (the YAML's temperature/max_tokens are unused). */
export const JUDGE_REASONING_EFFORT = 'medium' as const;
export const JUDGE_MAX_COMPLETION_TOKENS = 49152;
export const JUDGE_TRIES = 3;
/** Pause after failed try k (0-based) is 5·2^k s: 5, 10, 20. */
export const JUDGE_RETRY_BASE_MS = 5000;

/**
 * The answer the judge sees: trimmed, a leading `<think>…</think>` removed only when both tags
 * are there, then the repetition limiter.
 */
export function cleanCandidateAnswer(reply: string): string {
  let text = pythonStrip(reply);
  const close = '</think>';
  if (text.startsWith('<think>') && text.includes(close)) {
    text = pythonStrip(text.slice(text.indexOf(close) + close.length));
  }
  return limitRepetitions(text);
}

/** The user turn of a game (arena-hard-v2.0.yaml `prompt_template`, a format fact). */
export function judgeUserPrompt(question: string, answerA: string, answerB: string): string {
  return (
    `<|User Prompt|>\n${question}\n\n` +
    `<|The Start of Assistant A's Answer|>\n${answerA}\n<|The End of Assistant A's Answer|>\n\n` +
    `<|The Start of Assistant B's Answer|>\n${answerB}\n<|The End of Assistant B's Answer|>`
  );
}

export function judgeMessages(
  systemPrompt: string,
  question: string,
  answerA: string,
  answerB: string,
): ChatMessage[] {
  return [
    { role: 'system', content: systemPrompt },
    { role: 'user', content: judgeUserPrompt(question, answerA, answerB) },
  ];
}

/** A 400 that names reasoning: the endpoint does not take `reasoning_effort`. */
function rejectsReasoningEffort(err: unknown): boolean {
  if (!(err instanceof GraderHttpError) || err.status !== 400) return false;
  return `${err.message} ${err.body}`.toLowerCase().includes('reasoning');
}

export interface JudgeCallOptions {
  sleep?: Sleep;
  signal?: AbortSignal;
}

/**
 * One judge call with the reference's schedule: 3 tries, 5/10/20 s pauses after failures, and on
 * a reasoning-related 400 the next try drops `reasoning_effort` without pausing. Returns null
 * when every try failed. Errors no retry can fix (bad key, unknown model) and aborts propagate.
 */
export async function callJudge(
  grader: Grader,
  messages: ChatMessage[],
  options: JudgeCallOptions = {},
): Promise<string | null> {
  const sleep = options.sleep ?? realSleep;
  const request: GraderRequest = {
    messages,
    maxCompletionTokens: JUDGE_MAX_COMPLETION_TOKENS,
    reasoningEffort: JUDGE_REASONING_EFFORT,
  };
  for (let attempt = 0; attempt < JUDGE_TRIES; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await grader.complete(request, options.signal);
    } catch (err) {
      if (options.signal?.aborted || isFatalGraderError(err)) throw err;
      if (request.reasoningEffort !== undefined && rejectsReasoningEffort(err)) {
        delete request.reasoningEffort;
        continue;
      }
      await sleep(JUDGE_RETRY_BASE_MS * 2 ** attempt, options.signal);
    }
  }
  return null;
}

export interface GameRecord {
  /** Who was assistant A in this game. */
  a: 'baseline' | 'candidate';
  judgment: string | null;
  outcome: GameOutcome;
}

export interface QuestionJudgement {
  games: [GameRecord, GameRecord];
  /** Candidate's exploded values over both games; null when a game has no usable verdict. */
  values: number[] | null;
}

/**
 * Both games of one question: baseline as A, then candidate as A. They run concurrently; the
 * reference ran them one after the other, which changes nothing but wall time.
 */
export async function judgeQuestion(
  grader: Grader,
  input: { systemPrompt: string; question: string; baselineAnswer: string; candidateAnswer: string },
  options: JudgeCallOptions = {},
): Promise<QuestionJudgement> {
  const { systemPrompt, question, baselineAnswer, candidateAnswer } = input;
  const [first, second] = await Promise.all([
    callJudge(grader, judgeMessages(systemPrompt, question, baselineAnswer, candidateAnswer), options),
    callJudge(grader, judgeMessages(systemPrompt, question, candidateAnswer, baselineAnswer), options),
  ]);
  const games: [GameRecord, GameRecord] = [
    { a: 'baseline', judgment: first, outcome: candidateValues(first, false) },
    { a: 'candidate', judgment: second, outcome: candidateValues(second, true) },
  ];
  const [g1, g2] = games.map((g) => g.outcome) as [GameOutcome, GameOutcome];
  // The reference skips a question with a game that has no verdict label, but looks both labels up
  // in its score map otherwise: a label outside it raises KeyError and the whole evaluation
  // attempt fails (evaluate.py @ 9082063 and evaluate_final_eval.py @ 1b6c1a9, _judgments_to_battles).
  const labelled = (o: GameOutcome) => o.kind === 'scored' || o.kind === 'unknown-verdict';
  if (labelled(g1) && labelled(g2)) {
    const unknown = [g1, g2].find((o) => o.kind === 'unknown-verdict');
    if (unknown?.kind === 'unknown-verdict') {
      throw new ScorerFailure(
        `the judge gave the verdict ${JSON.stringify(unknown.verdict)}, which is not in the reference's score map: its evaluation raises KeyError there, failing the attempt`,
      );
    }
  }
  const values = g1.kind === 'scored' && g2.kind === 'scored' ? [...g1.values, ...g2.values] : null;
  return { games, values };
}
