import type { DetectorVerdict, VerdictValue } from '../core/trial.ts';

export type UnverifiedPolicy = 'base-score' | 'keep-score';
export type Combined = VerdictValue | 'not_audited';

/** Any flagged → flagged; else any unverified → unverified; else clean (no detectors: not_audited). */
export function combineVerdicts(verdicts: readonly DetectorVerdict[]): Combined {
  if (verdicts.length === 0) return 'not_audited';
  if (verdicts.some((v) => v.verdict === 'flagged')) return 'flagged';
  if (verdicts.some((v) => v.verdict === 'unverified')) return 'unverified';
  return 'clean';
}

/**
 * Which score the trial gets: a flag always means the base model's score (the reference); an
 * unverified audit follows the policy (default `base-score`, like the reference treating a missing
 * or garbled judgement as a flag); a trial never audited is not scored by this rule.
 */
export function scoreAs(combined: Combined, policy: UnverifiedPolicy): 'own' | 'base' {
  if (combined === 'flagged') return 'base';
  if (combined === 'unverified') return policy === 'base-score' ? 'base' : 'own';
  return combined === 'not_audited' ? (policy === 'base-score' ? 'base' : 'own') : 'own';
}

/** One line for the audit row and the CLI. */
export function auditSummary(verdicts: readonly DetectorVerdict[], combined: Combined): string {
  if (verdicts.length === 0) return 'no detector ran';
  const flagged = verdicts
    .filter((v) => v.verdict === 'flagged')
    .map((v) => `${v.detector} (${v.rule ?? 'flagged'})`);
  const unverified = verdicts
    .filter((v) => v.verdict === 'unverified')
    .map((v) => `${v.detector} (${v.rule ?? 'unverified'})`);
  if (combined === 'flagged')
    return `flagged by ${flagged.join(', ')}${unverified.length ? `; unverified: ${unverified.join(', ')}` : ''}`;
  if (combined === 'unverified') return `unverified: ${unverified.join(', ')}`;
  return `clean (${verdicts.map((v) => v.detector).join(', ')})`;
}
