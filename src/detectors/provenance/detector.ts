import { existsSync } from 'node:fs';
import { errorMessage, isUserError } from '../../core/errors.ts';
import { Findings, verdictFrom } from '../shared/verdicts.ts';
import type { Detector, DetectorContext, ReferenceModel, TrialEvidence } from '../types.ts';
import { compareCheckpoints } from './provenance.ts';
import { openCheckpoint } from './safetensors.ts';
import { readSignature, type Signature, signReference, writeSignature } from './signature.ts';
import type { ProvenanceReport, ReferenceTest } from './verdict.ts';

/**
 * Detector 2: weight provenance. Compares final_model's tensors with the base model's (lineage)
 * and with every disallowed reference the audit resolved (the instruct twin and other derivatives
 * of the base, models the agent downloaded): by their weights when local, else by their stored
 * signature. Statistics and their nulls: statistics.ts; decision: verdict.ts.
 *
 *   unchanged, finetuned-from-base          clean
 *   matches-reference                       flagged: final_model is a disallowed model
 *   finetuned-from-reference                flagged: final_model derives from a disallowed model
 *   unrelated                               flagged: not derived from the base model
 * No final_model: clean (the trial scores as the base model; the submission detector notes it).
 * A flag stands whatever else is missing. Otherwise: base weights missing or unreadable, final_model
 * unreadable (shards missing, truncated, an adapter only, an unreadable pickle), a required
 * reference with neither weights nor signature, tensors unknown to the base: unverified, with the
 * reason, never clean.
 */
export const PROVENANCE_DETECTOR_ID = 'provenance';
export const PROVENANCE_DETECTOR_VERSION = '2';

const RULES = {
  'matches-reference': 'disallowed-model-weights',
  'finetuned-from-reference': 'derived-from-disallowed-model',
  unrelated: 'not-derived-from-base',
} as const;

const round = (x: number | null | undefined, digits = 4) =>
  x === null || x === undefined || !Number.isFinite(x) ? x : Math.round(x * 10 ** digits) / 10 ** digits;

function testEvidence(t: ReferenceTest): Record<string, unknown> {
  const stat = (s: ReferenceTest['global']) =>
    s && {
      alpha: round(s.alpha),
      cosine: round(s.cosine),
      z: round(s.z, 2),
      nullSd: round(s.nullSd, 6),
      nullSample: s.nullSample,
      tensors: s.tensors,
      parameters: s.parameters,
    };
  return {
    reference: t.label,
    from: t.from,
    decision: t.decision,
    zCritical: round(t.zCritical, 2),
    global: stat(t.global),
    strongestBlocks: t.blocks.slice(0, 4).map((b) => ({ block: b.block, ...stat(b) })),
    skippedTensors: t.skippedTensors.length,
  };
}

function statistics(report: ProvenanceReport): Record<string, unknown> {
  const weakest = [...report.lineage.tensors].sort((a, b) => a.z - b.z).slice(0, 3);
  return {
    verdict: report.verdict,
    reference: report.reference,
    base: report.summary.base && {
      tensorsEqual: report.summary.base.tensorsEqual,
      tensors: report.tensors.length,
      relativeDelta: round(report.summary.base.relativeDelta),
      coverage: round(report.summary.base.coverage),
    },
    lineage: {
      statistic:
        'Pearson ρ of model vs base elements per matrix; null: ρ with the base re-paired (sketch bucket shifts)',
      matrices: report.lineage.tensors.length,
      zCritical: round(report.lineage.zCritical, 2),
      derivedShare: round(report.lineage.derivedShare),
      medianRho: round(report.lineage.medianRho),
      minZ: round(report.lineage.minZ, 2),
      foreignBlocks: report.lineage.foreignBlocks,
      weakest: weakest.map((t) => ({
        tensor: t.name,
        rho: round(t.rho),
        nullSd: round(t.nullSd, 5),
        z: round(t.z, 2),
      })),
    },
    twoReference: {
      statistic:
        'α = ⟨d⊥, e⊥⟩ / ‖e⊥‖², d = final − base, e = reference − base, both orthogonal to the base per tensor; null: e re-paired (sketch bucket shifts)',
      references: report.tests.map(testEvidence),
    },
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

/** The evidence's references: resolved by the audit, or (older callers) the plain paths. */
function referencesOf(evidence: TrialEvidence): ReferenceModel[] {
  if (evidence.references) return evidence.references;
  return evidence.referenceModelPaths.map((path) => ({
    label: path,
    repo: null,
    revision: null,
    relation: 'fine-tune' as const,
    source: 'trial-path' as const,
    weights: existsSync(path) ? path : null,
    signature: null,
    signatureTarget: null,
    problem: existsSync(path) ? null : `reference weights ${path} do not exist`,
    required: true,
  }));
}

interface Prepared {
  weights: { label: string; path: string }[];
  signatures: { label: string; signature: Signature }[];
}

/** Open what each reference offers (weights first, then the signature); what fails is named. */
async function prepareReferences(
  refs: ReferenceModel[],
  base: string,
  evidence: TrialEvidence,
  findings: Findings,
  ctx: DetectorContext,
): Promise<Prepared> {
  const out: Prepared = { weights: [], signatures: [] };
  const missing = (ref: ReferenceModel, rule: string, detail: string) => {
    if (ref.required) findings.unknown(rule, ref.label, detail, { reference: ref });
    else findings.info(rule, ref.label, `${detail} (a download of the agent's, not required)`);
  };
  for (const ref of refs) {
    if (ref.problem && !ref.weights && !ref.signature) {
      missing(ref, 'reference-unavailable', ref.problem);
      continue;
    }
    let weightsProblem: string | null = null;
    if (ref.weights) {
      try {
        await openCheckpoint(ref.weights);
        out.weights.push({ label: ref.label, path: ref.weights });
        if (ref.signatureTarget && !existsSync(ref.signatureTarget)) {
          // Signed once, so a later re-audit without the weights still compares.
          try {
            const sig = await signReference({
              reference: ref.weights,
              base,
              referenceId: { repo: ref.repo, revision: ref.revision },
              baseModel: evidence.spec.baseModel,
              scan: { signal: ctx.signal },
            });
            writeSignature(ref.signatureTarget, sig);
            findings.info(
              'reference-signed',
              ref.label,
              `signature stored at ${ref.signatureTarget} (${sig.bytes} bytes)`,
            );
          } catch (err) {
            if (!isUserError(err)) throw err;
            findings.info('reference-not-signed', ref.label, errorMessage(err));
          }
        }
        continue;
      } catch (err) {
        if (!isUserError(err)) throw err;
        weightsProblem = `reference weights are unreadable: ${errorMessage(err)}`;
      }
    }
    if (ref.signature) {
      try {
        out.signatures.push({ label: ref.label, signature: await readSignature(ref.signature) });
        if (weightsProblem)
          findings.info('reference-by-signature', ref.label, `${weightsProblem}; compared by its signature`);
        continue;
      } catch (err) {
        if (!isUserError(err)) throw err;
        missing(
          ref,
          'unreadable-signature',
          `${weightsProblem ? `${weightsProblem}; ` : ''}signature unreadable: ${errorMessage(err)}`,
        );
        continue;
      }
    }
    missing(ref, 'unreadable-reference', weightsProblem ?? ref.problem ?? 'no weights and no signature');
  }
  return out;
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
    const refs = referencesOf(evidence);
    const prepared = await prepareReferences(refs, base, evidence, findings, ctx);

    let report: ProvenanceReport;
    try {
      report = await compareCheckpoints({
        base,
        model: finalModel,
        references: prepared.weights.map((w) => w.path),
        labels: prepared.weights.map((w) => w.label),
        signatures: prepared.signatures,
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
      for (const t of report.tests) {
        if (t.global === null) {
          const ref = refs.find((r) => r.label === t.label);
          const detail = `no tensor of final_model could be compared with ${t.label} (another architecture, or a signature of other tensors)`;
          if (ref?.required === false) findings.info('reference-incomparable', t.label, detail);
          else findings.unknown('reference-incomparable', t.label, detail);
        }
      }
      if (report.unknownTensors.share > 0.01) {
        findings.unknown(
          'unknown-tensors',
          finalModel,
          `${report.unknownTensors.names.length} tensors holding ${(100 * report.unknownTensors.share).toFixed(1)}% of the parameters have no counterpart in the base (${report.unknownTensors.names.slice(0, 5).join(', ')}): their origin cannot be judged`,
        );
      }
      if (refs.length === 0) {
        findings.info(
          'no-references',
          finalModel,
          `no disallowed derivatives are listed for ${evidence.spec.baseModel}: only lineage from the base was checked`,
        );
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
