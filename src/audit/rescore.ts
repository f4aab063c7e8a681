import { z } from 'zod';
import type { TrialRepo } from '../store/trialRepo.ts';
import type { Combined, UnverifiedPolicy } from './combine.ts';
import { type FinalScore, finalScore } from './finalScore.ts';

/** What a re-audit did to a finished trial's score (written next to the audit's verdicts). */
export interface Rescore extends FinalScore {
  previous: { finalScore: number | null; substituted: boolean | null; auditVerdict: string | null };
  changed: boolean;
}

const EvaluateResultSchema = z
  .object({ metrics: z.object({ accuracy: z.number() }).passthrough().nullable() })
  .passthrough();

/**
 * After an audit of a trial whose finalize phase has run: the score follows this audit's verdict
 * (the reference's substitution rule under the audit's policy), so the trial row, the report and
 * the dashboard never disagree with the latest verdict. A trial still running is left alone: its
 * own finalize phase reads the latest audit. Returns null when nothing was rescored.
 */
export function rescoreAfterAudit(
  repo: TrialRepo,
  trialId: string,
  combined: Combined,
  policy: UnverifiedPolicy,
): Rescore | null {
  const row = repo.get(trialId);
  if (!row || repo.phase(trialId, 'finalize')?.status !== 'completed') return null;
  const evaluation = repo.phaseResult(trialId, 'evaluate', EvaluateResultSchema);
  const accuracy = evaluation?.metrics?.accuracy ?? row.accuracy ?? null;
  const score = finalScore(
    { ...row.spec, unverifiedPolicy: policy },
    accuracy,
    combined,
    repo.baselines(row.spec.protocol),
  );
  const previous = {
    finalScore: row.final_score,
    substituted: row.substituted === null ? null : row.substituted === 1,
    auditVerdict: row.audit_verdict,
  };
  repo.update(trialId, { final_score: score.finalScore, substituted: score.substituted });
  return {
    ...score,
    previous,
    changed: previous.finalScore !== score.finalScore || previous.substituted !== score.substituted,
  };
}
