import type { DetectorVerdict } from '../../core/trial.ts';
import type { Detector, DetectorContext } from '../types.ts';

/**
 * What runAudit gives a detector beyond DetectorContext: the verdicts of the detectors that ran
 * before it (the LLM judge reads them as evidence) and a folder of this audit for files a human
 * reviewer wants (the judge's prompt and raw answer).
 */
export interface AuditDetectorContext extends DetectorContext {
  findings?: DetectorVerdict[];
  auditDir?: string;
}

/** A detector that needs the other detectors' findings runs after them. */
export interface AuditDetector extends Detector {
  runsLast?: boolean;
}
