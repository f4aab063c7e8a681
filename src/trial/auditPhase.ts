import { selectDetectors } from '../audit/detectorRegistry.ts';
import { runAudit } from '../audit/runAudit.ts';
import { trialEvidence } from '../audit/trialEvidence.ts';
import type { HomeLayout } from '../core/paths.ts';
import type { TrialSpec } from '../core/trial.ts';
import type { TrialLayout } from '../core/trialLayout.ts';
import type { TrialRepo } from '../store/trialRepo.ts';

/**
 * The audit phase: every registered detector over the trial's ledgers, files and weights, combined
 * (any flag flags; otherwise any unverified is unverified), recorded append-only. `ptb audit` re-runs
 * the same thing later and keeps this verdict.
 */
export async function runAuditPhase(o: {
  trialId: string;
  spec: TrialSpec;
  layout: TrialLayout;
  repo: TrialRepo;
  prepared: { baseModelPath: string | null };
  home: HomeLayout;
  env: NodeJS.ProcessEnv;
  onLine?: (line: string) => void;
}): Promise<{ auditId: string; combined: string; scoreAs: string }> {
  const trial = o.repo.get(o.trialId)!;
  const evidence = trialEvidence(trial, {
    baseModelPath: o.prepared.baseModelPath,
    referenceModelPaths: o.spec.referenceModels,
  });
  const result = await runAudit(trial, evidence, {
    detectors: selectDetectors({ env: o.env }),
    repo: o.repo,
    ctx: { home: o.home.root, env: o.env, onProgress: o.onLine },
  });
  return { auditId: result.auditId, combined: result.combined, scoreAs: result.scoreAs };
}
