import type { Grader, GraderRequest } from '../shared/grader.ts';
import { isFatalGraderError, realSleep, type Sleep } from '../shared/openaiGrader.ts';
import { pythonStrip } from '../shared/pythonText.ts';
import { renderGraderPrompt, renderRubricItem } from './graderPrompt.ts';

/** The reference grader's schedule: 5 attempts, 2·(k+1) s pause after a failed call k (not after the last). */
export const GRADER_ATTEMPTS = 5;
export const GRADER_RETRY_BASE_MS = 2000;
/** Criteria of one example graded at once (the reference's criteria_workers). */
export const CRITERIA_WORKERS = 8;
export const REASONING_MAX_COMPLETION_TOKENS = 49152;
export const PLAIN_MAX_TOKENS = 512;

/**
 * The reference treats models whose name contains gpt-5, o1 or o3 as reasoning models: no
 * temperature, a large max_completion_tokens. Others get temperature 0 and max_tokens 512.
 */
export function isReasoningGraderModel(model: string): boolean {
  return model.includes('gpt-5') || model.includes('o1') || model.includes('o3');
}

export function graderRequestFor(model: string, prompt: string): GraderRequest {
  const messages = [{ role: 'user' as const, content: prompt }];
  return isReasoningGraderModel(model)
    ? { messages, maxCompletionTokens: REASONING_MAX_COMPLETION_TOKENS }
    : { messages, temperature: 0, maxTokens: PLAIN_MAX_TOKENS };
}

const JSON_FENCE = /^```json\s*|\s*```$/g;

/**
 * The grader's verdict from its reply: a ```json fence around the object is removed, and the
 * object must carry a boolean `criteria_met`. Anything else is null (a bad output).
 */
export function parseGraderReply(reply: string): { criteriaMet: boolean; explanation: string } | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(pythonStrip(reply).replace(JSON_FENCE, ''));
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
  const record = parsed as Record<string, unknown>;
  if (typeof record.criteria_met !== 'boolean') return null;
  const explanation = 'explanation' in record ? String(record.explanation) : 'No explanation provided';
  return { criteriaMet: record.criteria_met, explanation };
}

export interface RubricItem {
  criterion: string;
  points: number;
  tags: string[];
}

export interface CriterionGrade {
  criteriaMet: boolean;
  explanation: string;
  /** Every attempt failed (call errors or bad outputs); counted as not met. */
  failed: boolean;
  /** Grader calls made for this criterion, including failed ones. */
  calls: number;
}

export interface GradingOptions {
  sleep?: Sleep;
  signal?: AbortSignal;
}

/**
 * One rubric item: up to 5 attempts. A call that throws is followed by a pause; a reply without
 * a boolean `criteria_met` is retried at once. When all attempts fail the item is not met.
 * Errors no retry can fix (bad key, unknown model) and aborts propagate.
 */
export async function gradeCriterion(
  grader: Grader,
  conversation: string,
  item: RubricItem,
  template: string,
  options: GradingOptions = {},
): Promise<CriterionGrade> {
  const sleep = options.sleep ?? realSleep;
  const prompt = renderGraderPrompt(template, conversation, renderRubricItem(item.criterion, item.points));
  const request = graderRequestFor(grader.model, prompt);
  let lastProblem = 'no attempt made';
  for (let attempt = 0; attempt < GRADER_ATTEMPTS; attempt++) {
    options.signal?.throwIfAborted();
    try {
      const reply = await grader.complete(request, options.signal);
      const verdict = parseGraderReply(reply);
      if (verdict) return { ...verdict, failed: false, calls: attempt + 1 };
      lastProblem = 'no boolean criteria_met in the reply';
    } catch (err) {
      if (options.signal?.aborted || isFatalGraderError(err)) throw err;
      lastProblem = err instanceof Error ? err.message : String(err);
      if (attempt < GRADER_ATTEMPTS - 1) await sleep(GRADER_RETRY_BASE_MS * (attempt + 1), options.signal);
    }
  }
  return {
    criteriaMet: false,
    explanation: `Grading failed after ${GRADER_ATTEMPTS} attempts: ${lastProblem}`,
    failed: true,
    calls: GRADER_ATTEMPTS,
  };
}

/** Grade every item of one example, CRITERIA_WORKERS at a time; results keep the rubric order. */
export async function gradeRubric(
  grader: Grader,
  conversation: string,
  items: readonly RubricItem[],
  template: string,
  options: GradingOptions = {},
): Promise<CriterionGrade[]> {
  const grades: CriterionGrade[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      grades[index] = await gradeCriterion(grader, conversation, items[index]!, template, options);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CRITERIA_WORKERS, items.length) }, worker));
  return grades;
}

/** Points of met items (negative ones included) and the sum of positive points. */
export function rubricPoints(
  items: readonly RubricItem[],
  met: readonly boolean[],
): { achieved: number; possible: number } {
  let achieved = 0;
  let possible = 0;
  items.forEach((item, i) => {
    if (met[i]) achieved += item.points;
    possible += Math.max(item.points, 0);
  });
  return { achieved, possible };
}

/**
 * Met points over positive points; not clipped, so an example can score below zero. 0 when the
 * rubric has no positive points.
 */
export function exampleScore(items: readonly RubricItem[], met: readonly boolean[]): number {
  const { achieved, possible } = rubricPoints(items, met);
  return possible > 0 ? achieved / possible : 0;
}
