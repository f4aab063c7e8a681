import { UserError } from '../core/errors.ts';
import type { DetectorContext } from '../detectors/types.ts';
import type { Db } from '../store/db.ts';
import { type AuditWithVerdicts, TrialRepo } from '../store/trialRepo.ts';
import type { UnverifiedPolicy } from './combine.ts';
import { type DetectorOptions, selectDetectors, UPSTREAM_DETECTOR_FACTORIES } from './detectorRegistry.ts';
import { type AuditResult, runAudit } from './runAudit.ts';
import { trialEvidence } from './trialEvidence.ts';
import { upstreamAuditsDir, upstreamRunEvidence } from './upstreamRunDir.ts';

export interface AuditRequest extends DetectorOptions {
  /** Detector ids to run (default: all). */
  detectors?: string[];
  policy?: UnverifiedPolicy;
  ctx: Omit<DetectorContext, 'env'>;
}

/** `ptb audit TRIAL`: audit again, keeping every earlier audit; returns this audit and the earlier ones. */
export async function auditTrial(
  db: Db,
  idOrPrefix: string,
  req: AuditRequest,
): Promise<{ result: AuditResult; earlier: AuditWithVerdicts[] }> {
  const repo = new TrialRepo(db);
  const trial = repo.find(idOrPrefix);
  if (!trial) {
    throw new UserError(`no trial ${idOrPrefix}`, 'Check the trial id; a unique prefix of it is enough.');
  }
  const earlier = repo.audits(trial.id);
  const detectors = selectDetectors(req, req.detectors);
  const result = await runAudit(trial, trialEvidence(trial), {
    detectors,
    policy: req.policy,
    repo,
    ctx: { ...req.ctx, env: req.env },
  });
  return { result, earlier };
}

/** Earlier audits of a trial without running a new one. */
export function auditHistory(db: Db, idOrPrefix: string): { trialId: string; audits: AuditWithVerdicts[] } {
  const repo = new TrialRepo(db);
  const trial = repo.find(idOrPrefix);
  if (!trial) {
    throw new UserError(`no trial ${idOrPrefix}`, 'Check the trial id; a unique prefix of it is enough.');
  }
  return { trialId: trial.id, audits: repo.audits(trial.id) };
}

/**
 * `ptb audit --dir RUN_DIR`: audit an upstream run directory. Results go to RUN_DIR/ptb_audit/
 * (or `outDir`); upstream's own judgement files are read, never overwritten.
 */
export async function auditRunDir(
  dir: string,
  req: AuditRequest & { baseModelPath?: string; outDir?: string },
): Promise<AuditResult> {
  const evidence = upstreamRunEvidence(dir, { baseModelPath: req.baseModelPath });
  const detectors = selectDetectors(req, req.detectors, UPSTREAM_DETECTOR_FACTORIES);
  return runAudit(null, evidence, {
    detectors,
    policy: req.policy,
    ctx: { ...req.ctx, env: req.env },
    auditsDir: req.outDir ?? upstreamAuditsDir(dir),
    writeJudgements: false,
  });
}
