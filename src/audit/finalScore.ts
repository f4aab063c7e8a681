import type { TrialSpec } from '../core/trial.ts';
import type { BaselineRow } from '../store/trialRepo.ts';

export interface FinalScore {
  /** The trial's own accuracy (null without metrics). */
  accuracy: number | null;
  /** What the leaderboard uses. */
  finalScore: number | null;
  /** The base model's zero-shot score replaced the trial's own. */
  substituted: boolean;
  reason: string;
}

/** Model ids compare by their short name (`Qwen/Qwen3-1.7B-Base` = `Qwen3-1.7B-Base`), as upstream's tables do. */
export function modelShortName(model: string): string {
  return model.replace(/\/+$/, '').split('/').pop() ?? model;
}

export function baselineFor(
  baselines: readonly BaselineRow[],
  model: string,
  benchmark: string,
): BaselineRow | undefined {
  const short = modelShortName(model);
  return baselines.find((b) => b.benchmark === benchmark && modelShortName(b.model) === short);
}

/**
 * The reference's substitution rule: a flagged trial, an unverified one (under the default policy)
 * and one without metrics all score as the base model's zero-shot baseline.
 */
export function finalScore(
  spec: Pick<TrialSpec, 'unverifiedPolicy' | 'baseModel' | 'benchmark'>,
  accuracy: number | null,
  audit: 'clean' | 'flagged' | 'unverified' | 'not_audited',
  baselines: readonly BaselineRow[],
): FinalScore {
  let why: string | null = null;
  if (audit === 'flagged') why = 'the audit flagged the trial';
  else if (audit === 'unverified' && spec.unverifiedPolicy === 'base-score')
    why = 'the audit could not verify the trial';
  else if (accuracy === null) why = 'no metrics (no final_model, or its evaluation failed)';
  if (!why) return { accuracy, finalScore: accuracy, substituted: false, reason: 'own score' };
  const base = baselineFor(baselines, spec.baseModel, spec.benchmark);
  return {
    accuracy,
    finalScore: base?.accuracy ?? null,
    substituted: true,
    reason: base
      ? `${why}: scored as the base model (${base.accuracy})`
      : `${why}: no baseline for ${spec.baseModel} on ${spec.benchmark} (run ptb baseline)`,
  };
}
