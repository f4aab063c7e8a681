import { join } from 'node:path';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import { errorMessage } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { ensureDir } from '../core/paths.ts';
import { type DetectorVerdict, DetectorVerdictSchema } from '../core/trial.ts';
import type { AuditDetector, AuditDetectorContext } from '../detectors/shared/auditContext.ts';
import type { Detector, DetectorContext, TrialEvidence } from '../detectors/types.ts';
import type { TrialRepo } from '../store/trialRepo.ts';
import { auditSummary, type Combined, combineVerdicts, scoreAs, type UnverifiedPolicy } from './combine.ts';
import { type JudgementFiles, writeJudgementFiles } from './judgementFiles.ts';
import { type Rescore, rescoreAfterAudit } from './rescore.ts';

export interface AuditOptions {
  detectors: readonly Detector[];
  /** How an unverified audit scores; default: the trial spec's `unverifiedPolicy`. */
  policy?: UnverifiedPolicy;
  /** When given (and the trial exists there), the audit is recorded and the trial row updated. */
  repo?: TrialRepo;
  ctx: DetectorContext;
  /** Folder for audit/<audit-id>/ (default: the trial's `audit/`). */
  auditsDir?: string;
  /** Write contamination_judgement.txt / disallowed_model_judgement.txt into the trial dir (default true). */
  writeJudgements?: boolean;
  auditId?: string;
  /**
   * Verdicts kept from an earlier audit (a judges-only re-audit keeps the detectors' verdicts): they
   * count in the combination and the judges read them, as if they had run in this audit.
   */
  carried?: DetectorVerdict[];
}

export interface AuditResult {
  auditId: string;
  trialId: string;
  createdAt: string;
  combined: Combined;
  policy: UnverifiedPolicy;
  /** Which score the trial gets under this audit and policy. */
  scoreAs: 'own' | 'base';
  summary: string;
  verdicts: DetectorVerdict[];
  /** Lines written to the two upstream judgement files (null: not written). */
  judgementFiles: JudgementFiles;
  /** audit/<audit-id>/ of this audit. */
  dir: string;
  /** A finished trial's score under this audit (null: not rescored, e.g. during the trial's own audit phase). */
  rescore: Rescore | null;
}

function unverifiedFor(detector: Detector, summary: string): DetectorVerdict {
  return {
    detector: detector.id,
    version: detector.version,
    verdict: 'unverified',
    rule: 'detector-error',
    summary,
    evidence: [],
  };
}

/** Run one detector; whatever goes wrong comes back as unverified, never as clean. */
async function inspectIsolated(
  detector: Detector,
  evidence: TrialEvidence,
  ctx: AuditDetectorContext,
): Promise<DetectorVerdict> {
  let raw: unknown;
  try {
    raw = await detector.inspect(evidence, ctx);
  } catch (err) {
    if (ctx.signal?.aborted) throw err;
    return unverifiedFor(detector, `the detector failed: ${errorMessage(err)}`);
  }
  const parsed = DetectorVerdictSchema.safeParse(raw);
  if (!parsed.success) {
    return unverifiedFor(
      detector,
      `the detector returned no valid verdict (${parsed.error.issues[0]?.message ?? 'bad shape'})`,
    );
  }
  // The registry's id is the one recorded, whatever the detector wrote.
  return { ...parsed.data, detector: detector.id };
}

/**
 * Audit one trial: run the detectors (those marked `runsLast`, the judges, after the others so
 * they read their findings), combine, write `audit/<audit-id>/verdicts.json` and the upstream
 * judgement files, and append the audit to the database. Earlier audits are never touched.
 */
export async function runAudit(
  trial: { id: string } | null,
  evidence: TrialEvidence,
  opts: AuditOptions,
): Promise<AuditResult> {
  const auditId = opts.auditId ?? newId('audit');
  const createdAt = new Date().toISOString();
  const dir = ensureDir(join(opts.auditsDir ?? evidence.layout.audits, auditId));
  const policy = opts.policy ?? evidence.spec.unverifiedPolicy;
  const ordered = [
    ...opts.detectors.filter((d) => !(d as AuditDetector).runsLast),
    ...opts.detectors.filter((d) => (d as AuditDetector).runsLast),
  ];
  const verdicts: DetectorVerdict[] = [...(opts.carried ?? [])];
  for (const detector of ordered) {
    opts.ctx.onProgress?.(`audit: ${detector.id}`);
    const ctx: AuditDetectorContext = { ...opts.ctx, findings: [...verdicts], auditDir: dir };
    verdicts.push(await inspectIsolated(detector, evidence, ctx));
  }
  const combined = combineVerdicts(verdicts);
  const summary = auditSummary(verdicts, combined);
  const judgementFiles =
    opts.writeJudgements === false
      ? { contamination: null, disallowedModel: null }
      : writeJudgementFiles(evidence.layout, verdicts);
  const trialId = trial?.id ?? evidence.trialId;
  const result: AuditResult = {
    auditId,
    trialId,
    createdAt,
    combined,
    policy,
    scoreAs: scoreAs(combined, policy),
    summary,
    verdicts,
    judgementFiles,
    dir,
    rescore: null,
  };
  if (opts.repo && trial && opts.repo.get(trial.id)) {
    opts.repo.recordAudit(trial.id, combined, policy, summary, verdicts, auditId);
    result.rescore = rescoreAfterAudit(opts.repo, trial.id, combined, policy);
    opts.repo.update(trial.id, { audit_verdict: combined });
  }
  // Written last: the audit folder is the durable record of this audit and of what it did to the score.
  writeJsonAtomic(join(dir, 'verdicts.json'), result);
  return result;
}
