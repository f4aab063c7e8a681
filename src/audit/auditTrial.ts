import { UserError } from '../core/errors.ts';
import type { DetectorVerdict } from '../core/trial.ts';
import type { Detector, DetectorContext } from '../detectors/types.ts';
import type { Db } from '../store/db.ts';
import type { Trial } from '../store/trialRepo.ts';
import { type AuditWithVerdicts, TrialRepo } from '../store/trialRepo.ts';
import type { UnverifiedPolicy } from './combine.ts';
import {
  type DetectorOptions,
  selectDetectors,
  selectJudges,
  UPSTREAM_DETECTOR_FACTORIES,
} from './detectorRegistry.ts';
import { type AuditResult, runAudit } from './runAudit.ts';
import { auditEvidence } from './trialEvidence.ts';
import { upstreamAuditsDir, upstreamRunEvidence } from './upstreamRunDir.ts';

export interface AuditRequest extends DetectorOptions {
  /** Detector ids to run (default: all). */
  detectors?: string[];
  policy?: UnverifiedPolicy;
  ctx: Omit<DetectorContext, 'env'>;
  /** Do not fetch disallowed references from the public Hub (their stored signatures still count). */
  offline?: boolean;
}

/** A trial's evidence for a re-audit (references resolved when the provenance detector runs). */
function evidenceFor(repo: TrialRepo, trial: Trial, req: AuditRequest, detectors: readonly Detector[]) {
  return auditEvidence(trial, {
    repo,
    withReferences: detectors.some((d) => d.id === 'provenance'),
    homeRoot: req.ctx.home,
    env: req.env,
    offline: req.offline,
    onLine: req.ctx.onProgress,
    signal: req.ctx.signal,
  });
}

/**
 * What one audit of a trial runs. With judges and no detector list, only the judges run and the
 * latest audit's other verdicts are carried over (a judge re-run must not drop the detectors'
 * verdicts); otherwise the detectors asked for (default all) and then the judges.
 */
function auditPlan(
  repo: TrialRepo,
  trial: Trial,
  req: AuditRequest,
): { detectors: Detector[]; carried?: DetectorVerdict[] } {
  // Judge ids alone follow the trial's own protocol unless --judge-protocol says otherwise.
  const judges = selectJudges({ ...req, judgeProtocol: req.judgeProtocol ?? trial.spec.protocol });
  if (judges.length > 0 && !req.detectors?.length) {
    const rerun = new Set(judges.map((j) => j.id));
    const carried = (repo.latestAudit(trial.id)?.verdicts ?? []).filter((v) => !rerun.has(v.detector));
    return { detectors: judges, carried };
  }
  return { detectors: [...selectDetectors(req, req.detectors), ...judges] };
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
    throw new UserError(
      `no trial or experiment named ${idOrPrefix}`,
      'Check the trial id (a unique prefix is enough) or the experiment name (`ptb trials` lists both).',
    );
  }
  const earlier = repo.audits(trial.id);
  const plan = auditPlan(repo, trial, req);
  const result = await runAudit(trial, await evidenceFor(repo, trial, req, plan.detectors), {
    detectors: plan.detectors,
    carried: plan.carried,
    policy: req.policy,
    repo,
    ctx: { ...req.ctx, env: req.env },
  });
  return { result, earlier };
}

export interface ExperimentAuditRow {
  trialId: string;
  status: 'audited' | 'skipped' | 'failed';
  combined?: string;
  summary?: string;
  error?: string;
}

/** Whether the trial's latest audit already holds a usable verdict of every detector/judge planned (same version). */
function alreadyJudged(repo: TrialRepo, trial: Trial, detectors: readonly Detector[]): boolean {
  const verdicts = repo.latestAudit(trial.id)?.verdicts ?? [];
  return detectors.every((d) =>
    verdicts.some((v) => v.detector === d.id && v.version === d.version && v.verdict !== 'unverified'),
  );
}

/**
 * `ptb audit EXPERIMENT`: audit (or re-judge) every trial of an experiment, at most `concurrency`
 * at a time; `skipExisting` leaves trials whose latest audit already has a usable verdict from each
 * detector and judge asked for (same version). A trial that fails is reported, the others go on.
 */
export async function auditExperiment(
  db: Db,
  experiment: string,
  req: AuditRequest & {
    skipExisting?: boolean;
    concurrency?: number;
    onTrial?: (row: ExperimentAuditRow) => void;
  },
): Promise<ExperimentAuditRow[]> {
  const repo = new TrialRepo(db);
  const trials = repo.list({ experiment });
  if (trials.length === 0) {
    throw new UserError(`no trial or experiment named ${experiment}`, 'List experiments with `ptb trials`.');
  }
  selectJudges(req); // unknown judges or providers are a usage error, before any trial is touched
  const rows: ExperimentAuditRow[] = [];
  let next = 0;
  const work = async () => {
    while (next < trials.length) {
      const trial = trials[next++]!;
      let row: ExperimentAuditRow;
      try {
        const plan = auditPlan(repo, trial, req);
        if (req.skipExisting && alreadyJudged(repo, trial, plan.detectors)) {
          row = { trialId: trial.id, status: 'skipped', summary: 'already judged (same versions)' };
        } else {
          const result = await runAudit(trial, await evidenceFor(repo, trial, req, plan.detectors), {
            detectors: plan.detectors,
            carried: plan.carried,
            policy: req.policy,
            repo,
            ctx: { ...req.ctx, env: req.env },
          });
          row = { trialId: trial.id, status: 'audited', combined: result.combined, summary: result.summary };
        }
      } catch (err) {
        if (req.ctx.signal?.aborted) throw err;
        row = { trialId: trial.id, status: 'failed', error: (err as Error).message };
      }
      rows.push(row);
      req.onTrial?.(row);
    }
  };
  const limit = Math.max(1, Math.min(req.concurrency ?? 4, trials.length));
  await Promise.all(Array.from({ length: limit }, work));
  return rows.sort((a, b) => a.trialId.localeCompare(b.trialId));
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
