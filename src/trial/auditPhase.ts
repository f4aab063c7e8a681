import type { HomeLayout } from '../core/paths.ts';
import type { TrialSpec } from '../core/trial.ts';
import type { TrialLayout } from '../core/trialLayout.ts';
import type { TrialRepo } from '../store/trialRepo.ts';

/** Placeholder until the audit lands: records that the trial was not audited. */
export async function runAuditPhase(o: {
  trialId: string;
  spec: TrialSpec;
  layout: TrialLayout;
  repo: TrialRepo;
  prepared: { baseModelPath: string | null };
  home: HomeLayout;
  env: NodeJS.ProcessEnv;
}): Promise<{ auditId: string; combined: string }> {
  const audit = o.repo.recordAudit(o.trialId, 'not_audited', 'none', 'not audited', []);
  return { auditId: audit.id, combined: audit.combined };
}
