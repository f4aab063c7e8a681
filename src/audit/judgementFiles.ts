import { writeFileAtomic } from '../core/atomicWrite.ts';
import type { DetectorVerdict } from '../core/trial.ts';
import type { TrialLayout } from '../core/trialLayout.ts';

/**
 * The reference's two one-line verdict files, written into the trial directory so upstream
 * aggregation scripts read ptb trials unchanged. Upstream compares the stripped content exactly;
 * anything else (here: `unverified`) is an error there, which upstream aggregation treats like a
 * flag — the same as ptb's default policy for unverified audits.
 */
export const JUDGEMENT_LINES = {
  contamination: { detected: 'contamination detected', clean: 'no contamination detected' },
  disallowedModel: { detected: 'disallowed use detected', clean: 'only allowed use detected' },
} as const;
export const UNVERIFIED_LINE = 'unverified';

type Category = keyof typeof JUDGEMENT_LINES;

/** Detectors that decide each question (the judges decide both). */
const DECIDERS: Record<Category, ReadonlySet<string>> = {
  contamination: new Set(['contamination', 'llm-judge', 'agent-judge', 'reference-judgement']),
  disallowedModel: new Set(['provenance', 'llm-judge', 'agent-judge', 'reference-judgement']),
};

function inCategory(v: DetectorVerdict, category: Category): boolean {
  const rule = v.rule ?? '';
  if (category === 'contamination') return v.detector === 'contamination' || /contamination/i.test(rule);
  return v.detector === 'provenance' || /disallowed[- _]model/i.test(rule);
}

/** The line for one file, or null when no detector that decides it ran (the file is left alone). */
export function judgementLine(verdicts: readonly DetectorVerdict[], category: Category): string | null {
  if (verdicts.some((v) => v.verdict === 'flagged' && inCategory(v, category)))
    return JUDGEMENT_LINES[category].detected;
  const deciders = verdicts.filter((v) => DECIDERS[category].has(v.detector));
  if (deciders.length === 0) return null;
  if (deciders.some((v) => v.verdict === 'unverified')) return UNVERIFIED_LINE;
  return JUDGEMENT_LINES[category].clean;
}

export interface JudgementFiles {
  contamination: string | null;
  disallowedModel: string | null;
}

export function writeJudgementFiles(
  layout: TrialLayout,
  verdicts: readonly DetectorVerdict[],
): JudgementFiles {
  const files: JudgementFiles = {
    contamination: judgementLine(verdicts, 'contamination'),
    disallowedModel: judgementLine(verdicts, 'disallowedModel'),
  };
  if (files.contamination !== null)
    writeFileAtomic(layout.contaminationJudgement, `${files.contamination}\n`);
  if (files.disallowedModel !== null)
    writeFileAtomic(layout.disallowedModelJudgement, `${files.disallowedModel}\n`);
  return files;
}
