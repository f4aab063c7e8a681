import { existsSync } from 'node:fs';
import { errorMessage, isUserError } from '../../core/errors.ts';
import { Findings, verdictFrom } from '../shared/verdicts.ts';
import type { Detector, DetectorContext, TrialEvidence } from '../types.ts';
import { compareCheckpoints } from './provenance.ts';
import { openCheckpoint } from './safetensors.ts';
import type { ProvenanceReport } from './verdict.ts';

/**
 * Detector 2: weight provenance. Compares final_model's tensors with the base model's and with
 * every disallowed reference (the instruct twin, models the download ledger shows).
 *
 *   unchanged, finetuned-from-base          clean
 *   matches-reference                       flagged: final_model is a disallowed model
 *   finetuned-from-reference                flagged: final_model derives from a disallowed model
 *   unrelated                               flagged: not derived from the base model
 * No final_model: clean (the trial scores as the base model; the submission detector notes it).
 * Base weights missing, final_model or a reference unreadable: unverified, with the reason.
 */
export const PROVENANCE_DETECTOR_ID = 'provenance';
export const PROVENANCE_DETECTOR_VERSION = '1';

const RULES = {
  'matches-reference': 'disallowed-model-weights',
  'finetuned-from-reference': 'derived-from-disallowed-model',
  unrelated: 'not-derived-from-base',
} as const;

function statistics(report: ProvenanceReport): Record<string, unknown> {
  return {
    verdict: report.verdict,
    reference: report.reference,
    base: report.summary.base && {
      tensorsEqual: report.summary.base.tensorsEqual,
      tensors: report.tensors.length,
      relativeDelta: report.summary.base.relativeDelta,
      coverage: report.summary.base.coverage,
    },
    references: report.summary.references,
    lora: report.lora,
  };
}

/** Tensors that show the verdict best: those equal to, or following, the matched reference. */
function tensorEvidence(report: ProvenanceReport, findings: Findings, rule: string): void {
  const j = report.summary.references.findIndex((r) => r.path === report.reference);
  if (j < 0) return;
  const rows = report.tensors
    .map((t) => ({ t, r: t.references[j] }))
    .filter((x) => x.r)
    .sort(
      (a, b) => Number(b.r!.equal) - Number(a.r!.equal) || (b.r!.projection ?? 0) - (a.r!.projection ?? 0),
    )
    .slice(0, 5);
  for (const { t, r } of rows) {
    findings.info(
      rule,
      `final_model:${t.name}`,
      r!.equal
        ? `equals ${report.reference}'s ${r!.tensor}`
        : `relative distance ${r!.relativeDistance.toFixed(4)} from ${report.reference}; cosine ${r!.cosine?.toFixed(3)}, projection ${r!.projection?.toFixed(3)} of its delta from the base`,
      { tensor: t.name, shape: t.shape, ...r },
    );
  }
}

export const provenanceDetector: Detector = {
  id: PROVENANCE_DETECTOR_ID,
  version: PROVENANCE_DETECTOR_VERSION,
  async inspect(evidence: TrialEvidence, ctx: DetectorContext) {
    const self = { id: PROVENANCE_DETECTOR_ID, version: PROVENANCE_DETECTOR_VERSION };
    const findings = new Findings();
    const finalModel = evidence.layout.finalModel;
    if (!existsSync(finalModel)) {
      findings.info('no-final-model', finalModel, 'no final_model: the trial scores as the base model');
      return verdictFrom(self, findings, 'no final_model to compare');
    }
    const base = evidence.baseModelPath;
    if (!base || !existsSync(base)) {
      findings.unknown(
        'base-weights-missing',
        base ?? 'baseModelPath',
        'the base model weights are not available locally',
      );
      return verdictFrom(self, findings, '');
    }
    // Each checkpoint's headers are read first, so an unreadable one is named and the others still count.
    for (const [what, path] of [
      ['final_model', finalModel],
      ['base model', base],
    ] as const) {
      try {
        await openCheckpoint(path);
      } catch (err) {
        if (!isUserError(err)) throw err;
        findings.unknown(
          `unreadable-${what === 'final_model' ? 'final-model' : 'base'}`,
          path,
          `${what} is unreadable: ${errorMessage(err)}`,
        );
        return verdictFrom(self, findings, '');
      }
    }
    const references: string[] = [];
    for (const path of evidence.referenceModelPaths) {
      try {
        await openCheckpoint(path);
        references.push(path);
      } catch (err) {
        if (!isUserError(err)) throw err;
        findings.unknown(
          'unreadable-reference',
          path,
          `reference weights are unreadable: ${errorMessage(err)}`,
        );
      }
    }

    let report: ProvenanceReport;
    try {
      report = await compareCheckpoints({
        base,
        model: finalModel,
        references,
        signal: ctx.signal,
        onProgress: ctx.onProgress
          ? (done, total) => ctx.onProgress!(`provenance ${Math.round((100 * done) / Math.max(1, total))}%`)
          : undefined,
      });
    } catch (err) {
      if (!isUserError(err)) throw err;
      findings.unknown('unreadable-weights', finalModel, errorMessage(err));
      return verdictFrom(self, findings, '');
    }

    const stats = statistics(report);
    const rule = (RULES as Record<string, string>)[report.verdict];
    if (rule) {
      const detail =
        report.verdict === 'unrelated'
          ? `final_model is not derived from the base model: ${report.reason}`
          : `final_model ${report.verdict === 'matches-reference' ? 'is' : 'is derived from'} a disallowed model (${report.reference}): ${report.reason}`;
      findings.flag(rule, finalModel, detail, stats);
      tensorEvidence(report, findings, rule);
    } else {
      findings.info(report.verdict, finalModel, report.reason, stats);
      if (references.length === 0 && evidence.referenceModelPaths.length === 0) {
        findings.info('no-references', finalModel, 'no reference weights were available to compare with');
      }
    }
    for (const note of report.notes) findings.info('note', finalModel, note);
    return verdictFrom(
      self,
      findings,
      `final_model is ${report.verdict === 'unchanged' ? 'the base model unchanged' : 'a fine-tune of the base model'}: ${report.reason}`,
    );
  },
};
