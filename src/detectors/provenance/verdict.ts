import type { Checkpoint } from './safetensors.ts';
import type { PairSums, RefSums, ScanResult, TensorSums } from './scan.ts';

/** What `final_model` is, as far as its weights tell. */
export const PROVENANCE_VERDICTS = [
  'unchanged',
  'finetuned-from-base',
  'matches-reference',
  'finetuned-from-reference',
  'unrelated',
] as const;
export type ProvenanceVerdict = (typeof PROVENANCE_VERDICTS)[number];

/**
 * Decision thresholds. Relative distances are ‖x − y‖ / ‖y‖ over all compared elements: a fine-tune
 * (even the long post-training of an instruct twin) stays well under 0.5 of its parent, two
 * independently trained or initialised checkpoints sit near √2.
 */
export const THRESHOLDS = {
  /** Below this relative distance, two checkpoints are one lineage. */
  related: 0.5,
  /**
   * A model this far from the base (or farther) is not a fine-tune of it: independently initialised
   * checkpoints sit near √2. Between `related` and this, a long fine-tune of a small or freshly
   * initialised model (the demo's tiny one moves ≈ 1.0) still counts as the base's own lineage.
   */
  unrelated: 1.2,
  /** Share of the model's parameters that must have a counterpart for a lineage claim. */
  coverage: 0.9,
  /** The model contains at least half of the reference's delta from the base... */
  projection: 0.5,
  /** ...and its own delta points along the reference's. */
  cosine: 0.5,
  /** Share of the reference's changed parameters the model carries over (per-tensor test). */
  derivedFraction: 0.25,
  /** A 2-D delta whose sampled rank is at most this share of the sample is low rank. */
  lowRankShare: 0.5,
} as const;

export interface CheckpointInfo {
  path: string;
  files: number;
  tensors: number;
  parameters: number;
  bytes: number;
  dtypes: Record<string, number>;
}

export interface PairReport {
  /** The counterpart's tensor name. */
  tensor: string;
  matchedBy: 'name' | 'content' | 'rows';
  dtype: string;
  /** Every element equal within the coarser dtype's rounding (exact when the dtypes agree), same shape. */
  equal: boolean;
  mismatched: number;
  /** Low-rank estimate of the delta (model − counterpart) on sampled rows; null when not estimated. */
  loraRankEstimate: number | null;
}

export interface TensorReport {
  name: string;
  shape: number[];
  dtype: string;
  parameters: number;
  base: (PairReport & { relativeDelta: number }) | null;
  references: (
    | (PairReport & {
        relativeDistance: number;
        /** ‖r − b‖ / ‖b‖ on this tensor. */
        referenceDelta: number | null;
        /** cos(m − b, r − b). */
        cosine: number | null;
        /** (m − b)·(r − b) / ‖r − b‖²: how much of the reference's change the model carries. */
        projection: number | null;
      })
    | null
  )[];
  /** Rows × columns sampled for the rank estimate. */
  rankSample: { rows: number; cols: number } | null;
}

export interface BaseSummary {
  tensorsCompared: number;
  tensorsEqual: number;
  /** Share of the model's parameters compared with a base tensor. */
  coverage: number;
  /** ‖m − b‖ / ‖b‖ over all compared elements. */
  relativeDelta: number;
  modelTensorsWithoutCounterpart: string[];
  baseTensorsNotInModel: string[];
}

export interface ReferenceSummary {
  path: string;
  tensorsCompared: number;
  tensorsEqual: number;
  coverage: number;
  /** ‖m − r‖ / ‖r‖. */
  relativeDistance: number;
  /** ‖r − b‖ / ‖b‖ (null without a base counterpart). */
  referenceDelta: number | null;
  cosine: number | null;
  projection: number | null;
  /** Share of the parameters where the reference differs from the base that the model took over. */
  derivedFraction: number | null;
  /** Matrices equal to the reference's where the reference differs from the base. */
  copiedTensors: number;
}

export interface LoraSummary {
  /** Whose delta: 'base' or the reference path. */
  parent: string;
  matricesEstimated: number;
  lowRankMatrices: number;
  medianRank: number | null;
  lowRank: boolean;
}

export interface ProvenanceReport {
  verdict: ProvenanceVerdict;
  /** The reference the model matches or derives from. */
  reference: string | null;
  reason: string;
  notes: string[];
  model: CheckpointInfo;
  base: CheckpointInfo | null;
  references: CheckpointInfo[];
  summary: { base: BaseSummary | null; references: ReferenceSummary[] };
  lora: LoraSummary | null;
  tensors: TensorReport[];
  scan: { bytesRead: number; seconds: number; mbPerSecond: number; threads: number };
}

export function checkpointInfo(c: Checkpoint): CheckpointInfo {
  return {
    path: c.path,
    files: c.files.length,
    tensors: c.tensors.size,
    parameters: c.parameters,
    bytes: c.dataBytes,
    dtypes: c.dtypes,
  };
}

const ratio = (num: number, den: number): number => Math.sqrt(scaled(num, den));

function isEqual(t: TensorSums, p: PairSums): boolean {
  const o = p.counterpart.entry;
  return p.mismatched === 0 && o.numel === t.entry.numel && p.counterpart.compared === t.entry.numel;
}

function tensorCosine(r: RefSums, base: PairSums): number | null {
  const den = Math.sqrt(base.distanceSquares * r.refDeltaSquares);
  return den > 0 ? r.deltaDot / den : null;
}

function tensorProjection(r: RefSums): number | null {
  return r.refDeltaSquares > 0 ? r.deltaDot / r.refDeltaSquares : null;
}

function isLowRank(t: TensorSums, p: PairSums): boolean | null {
  if (p.rank === null || p.rank === 0 || !t.rankSample) return null;
  const side = Math.min(t.rankSample.rows, t.rankSample.cols);
  if (side < 8) return null;
  return p.rank <= side * THRESHOLDS.lowRankShare;
}

/**
 * Aggregates weight each tensor by its parameter count after normalising it by its own scale, so
 * that the many near-1 norm vectors (alike in any two models) do not outweigh the matrices.
 */
const MAX_SQUARED_RATIO = 4;
function scaled(num: number, den: number): number {
  if (den > 0) return Math.min(num / den, MAX_SQUARED_RATIO);
  return num > 0 ? MAX_SQUARED_RATIO : 0;
}

function summariseBase(scan: ScanResult, model: Checkpoint): BaseSummary {
  let compared = 0;
  let equal = 0;
  let params = 0;
  let weighted = 0;
  const without: string[] = [];
  for (const t of scan.tensors) {
    if (!t.base) {
      without.push(t.entry.name);
      continue;
    }
    compared++;
    if (isEqual(t, t.base)) equal++;
    const n = t.base.counterpart.compared;
    params += n;
    weighted += n * scaled(t.base.distanceSquares, t.base.otherSquares);
  }
  return {
    tensorsCompared: compared,
    tensorsEqual: equal,
    coverage: model.parameters > 0 ? params / model.parameters : 0,
    relativeDelta: params > 0 ? Math.sqrt(weighted / params) : 0,
    modelTensorsWithoutCounterpart: without,
    baseTensorsNotInModel: scan.unmatchedOther[0] ?? [],
  };
}

function summariseReference(scan: ScanResult, model: Checkpoint, j: number, path: string): ReferenceSummary {
  let compared = 0;
  let equal = 0;
  let params = 0;
  let distance = 0;
  // Deltas from the base, each tensor scaled by 1/‖b‖ and weighted by its parameter count.
  let ee = 0;
  let de = 0;
  let dd = 0;
  let bothParams = 0;
  let changed = 0;
  let derived = 0;
  let copied = 0;
  for (const t of scan.tensors) {
    const r = t.references[j];
    if (!r) continue;
    compared++;
    const same = isEqual(t, r);
    if (same) equal++;
    const n = r.counterpart.compared;
    params += n;
    distance += n * scaled(r.distanceSquares, r.otherSquares);
    if (!t.base || !(t.base.otherSquares > 0)) continue;
    const w = t.entry.numel / t.base.otherSquares;
    bothParams += t.entry.numel;
    ee += w * r.refDeltaSquares;
    de += w * r.deltaDot;
    dd += w * t.base.distanceSquares;
    if (r.refBaseMismatched > 0) {
      changed += t.entry.numel;
      const cos = tensorCosine(r, t.base);
      const proj = tensorProjection(r);
      const follows =
        cos !== null && proj !== null && cos >= THRESHOLDS.cosine && proj >= THRESHOLDS.projection;
      if (same || follows) derived += t.entry.numel;
      if (same && t.entry.shape.length >= 2) copied++;
    }
  }
  const cosDen = Math.sqrt(dd * ee);
  return {
    path,
    tensorsCompared: compared,
    tensorsEqual: equal,
    coverage: model.parameters > 0 ? params / model.parameters : 0,
    relativeDistance: params > 0 ? Math.sqrt(distance / params) : 0,
    referenceDelta: bothParams > 0 ? Math.sqrt(Math.min(ee / bothParams, MAX_SQUARED_RATIO)) : null,
    cosine: cosDen > 0 ? de / cosDen : null,
    projection: ee > 0 ? de / ee : null,
    derivedFraction: changed > 0 ? derived / changed : null,
    copiedTensors: copied,
  };
}

function summariseLora(scan: ScanResult, parentIndex: number, parent: string): LoraSummary | null {
  const ranks: number[] = [];
  let low = 0;
  for (const t of scan.tensors) {
    const p = parentIndex === 0 ? t.base : t.references[parentIndex - 1];
    if (!p) continue;
    const lowRank = isLowRank(t, p);
    if (lowRank === null) continue;
    ranks.push(p.rank!);
    if (lowRank) low++;
  }
  if (ranks.length === 0) return null;
  ranks.sort((a, b) => a - b);
  return {
    parent,
    matricesEstimated: ranks.length,
    lowRankMatrices: low,
    medianRank: ranks[Math.floor(ranks.length / 2)]!,
    lowRank: low * 2 >= ranks.length,
  };
}

function fmt(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return String(x);
  return Math.abs(x) >= 0.01 || x === 0 ? x.toFixed(3) : x.toExponential(2);
}

function tensorReport(t: TensorSums): TensorReport {
  const pair = (p: PairSums): PairReport => ({
    tensor: p.counterpart.entry.name,
    matchedBy: p.counterpart.matchedBy,
    dtype: p.counterpart.entry.dtype,
    equal: isEqual(t, p),
    mismatched: p.mismatched,
    loraRankEstimate: p.rank,
  });
  return {
    name: t.entry.name,
    shape: t.entry.shape,
    dtype: t.entry.dtype,
    parameters: t.entry.numel,
    base: t.base
      ? { ...pair(t.base), relativeDelta: ratio(t.base.distanceSquares, t.base.otherSquares) }
      : null,
    references: t.references.map((r) =>
      r
        ? {
            ...pair(r),
            relativeDistance: ratio(r.distanceSquares, r.otherSquares),
            referenceDelta: t.base ? ratio(r.refDeltaSquares, t.base.otherSquares) : null,
            cosine: t.base ? tensorCosine(r, t.base) : null,
            projection: t.base ? tensorProjection(r) : null,
          }
        : null,
    ),
    rankSample: t.rankSample,
  };
}

function notesFor(scan: ScanResult, base: Checkpoint | null, refs: Checkpoint[]): string[] {
  const notes: string[] = [];
  const others = [base, ...refs];
  others.forEach((o, k) => {
    if (!o) return;
    const label = k === 0 ? 'the base' : `reference ${o.path}`;
    const pairs = scan.tensors.map((t) => (k === 0 ? t.base : t.references[k - 1]) ?? null);
    const byContent = scan.tensors.filter((_, i) => pairs[i]?.counterpart.matchedBy === 'content');
    for (const t of byContent.slice(0, 3)) {
      const other = pairs[scan.tensors.indexOf(t)]!.counterpart.entry.name;
      const tied =
        /lm_head/.test(t.entry.name) && /embed/.test(other) ? ' (tied embeddings stored twice)' : '';
      notes.push(
        `${t.entry.name} has no same-named tensor in ${label}; matched by content to ${other}${tied}`,
      );
    }
    if (byContent.length > 3)
      notes.push(`${byContent.length - 3} more tensors matched ${label} by content (renamed keys)`);
    for (const [i, t] of scan.tensors.entries()) {
      const p = pairs[i];
      if (p?.counterpart.matchedBy === 'rows') {
        notes.push(
          `${t.entry.name}: shape ${JSON.stringify(t.entry.shape)} vs ${JSON.stringify(p.counterpart.entry.shape)} in ${label}; compared the shared leading rows (resized vocabulary?)`,
        );
      }
    }
    const dtypes = new Set(
      scan.tensors.flatMap((t, i) =>
        pairs[i] ? [`${t.entry.dtype}→${pairs[i]!.counterpart.entry.dtype}`] : [],
      ),
    );
    const mixed = [...dtypes].filter((d) => d.split('→')[0] !== d.split('→')[1]);
    if (mixed.length > 0) {
      notes.push(
        `dtypes differ from ${label} (${mixed.join(', ')}): values within the coarser dtype's rounding count as equal`,
      );
    }
  });
  const missingInBase = scan.tensors.filter((t) => base && !t.base).map((t) => t.entry.name);
  if (missingInBase.length > 0) {
    notes.push(
      `${missingInBase.length} model tensors have no counterpart in the base: ${missingInBase.slice(0, 5).join(', ')}`,
    );
  }
  const notInModel = scan.unmatchedOther[0] ?? [];
  if (base && notInModel.length > 0) {
    notes.push(`the model lacks ${notInModel.length} base tensors: ${notInModel.slice(0, 5).join(', ')}`);
  }
  return notes;
}

/** Aggregate the scan and decide the verdict. */
export function buildReport(
  scan: ScanResult,
  model: Checkpoint,
  base: Checkpoint | null,
  references: Checkpoint[],
): ProvenanceReport {
  const baseSummary = base ? summariseBase(scan, model) : null;
  const refSummaries = references.map((r, j) => summariseReference(scan, model, j, r.path));
  const tensorCount = scan.tensors.length;
  const notes = notesFor(scan, base, references);

  let verdict: ProvenanceVerdict;
  let reference: string | null = null;
  let reason: string;
  let parentIndex = 0;

  const refEqual = refSummaries.findIndex((r) => r.tensorsEqual === tensorCount);
  const baseRelated =
    baseSummary !== null &&
    baseSummary.coverage >= THRESHOLDS.coverage &&
    baseSummary.relativeDelta < THRESHOLDS.unrelated;
  const baseDistance =
    baseSummary && baseSummary.coverage >= THRESHOLDS.coverage
      ? baseSummary.relativeDelta
      : Number.POSITIVE_INFINITY;
  const derivedFrom = (r: ReferenceSummary): string | null => {
    if (
      r.cosine !== null &&
      r.projection !== null &&
      r.cosine >= THRESHOLDS.cosine &&
      r.projection >= THRESHOLDS.projection
    ) {
      return `its delta from the base follows ${r.path}'s (cosine ${fmt(r.cosine)}, projection ${fmt(r.projection)})`;
    }
    if (r.copiedTensors > 0)
      return `${r.copiedTensors} of its matrices equal ${r.path}'s where that differs from the base`;
    if (r.derivedFraction !== null && r.derivedFraction >= THRESHOLDS.derivedFraction) {
      return `it carries ${fmt(r.derivedFraction)} of the parameters ${r.path} changed from the base`;
    }
    if (
      r.coverage >= THRESHOLDS.coverage &&
      r.relativeDistance < THRESHOLDS.related &&
      r.relativeDistance <= baseDistance / 2
    ) {
      return `it lies at relative distance ${fmt(r.relativeDistance)} from ${r.path}, under half its distance from the base (${fmt(baseDistance)})`;
    }
    return null;
  };

  if (baseSummary && baseSummary.tensorsEqual === tensorCount) {
    verdict = 'unchanged';
    reason = `all ${tensorCount} tensors equal the base model's`;
  } else if (refEqual >= 0) {
    verdict = 'matches-reference';
    reference = references[refEqual]!.path;
    parentIndex = -1;
    reason = `all ${tensorCount} tensors equal those of ${reference}`;
  } else {
    const derived = refSummaries
      .map((r, j) => ({ r, j, why: derivedFrom(r) }))
      .filter((x) => x.why !== null)
      .sort((a, b) => a.r.relativeDistance - b.r.relativeDistance)[0];
    if (derived) {
      verdict = 'finetuned-from-reference';
      reference = derived.r.path;
      parentIndex = derived.j + 1;
      reason = `derived from ${reference}: ${derived.why}`;
    } else if (baseRelated) {
      verdict = 'finetuned-from-base';
      const best = refSummaries.filter((r) => r.cosine !== null).sort((a, b) => b.cosine! - a.cosine!)[0];
      reason =
        `changed from the base by relative delta ${fmt(baseSummary!.relativeDelta)} (${baseSummary!.tensorsEqual}/${tensorCount} tensors unchanged)` +
        (best ? `; not aligned with any reference (highest cosine ${fmt(best.cosine)})` : '');
    } else {
      verdict = 'unrelated';
      const nearest = [...refSummaries].sort((a, b) => a.relativeDistance - b.relativeDistance)[0];
      reason = baseSummary
        ? `not derived from the base model: relative distance ${fmt(baseSummary.relativeDelta)} over ${fmt(baseSummary.coverage)} of the parameters` +
          (nearest ? `; nearest reference at ${fmt(nearest.relativeDistance)}` : '')
        : 'no base model to compare with and no reference matches';
    }
  }

  let lora: LoraSummary | null = null;
  if (verdict === 'finetuned-from-base' || verdict === 'finetuned-from-reference') {
    lora = summariseLora(scan, parentIndex, parentIndex === 0 ? 'base' : references[parentIndex - 1]!.path);
    if (lora?.lowRank) {
      const from = parentIndex === 0 ? 'the base' : lora.parent;
      notes.push(
        `delta from ${from} is low-rank (LoRA merge): median rank ${lora.medianRank} over ${lora.matricesEstimated} matrices (${lora.lowRankMatrices} low-rank)`,
      );
    }
  }

  return {
    verdict,
    reference,
    reason,
    notes,
    model: checkpointInfo(model),
    base: base ? checkpointInfo(base) : null,
    references: references.map(checkpointInfo),
    summary: { base: baseSummary, references: refSummaries },
    lora,
    tensors: scan.tensors.map(tensorReport),
    scan: {
      bytesRead: scan.bytesRead,
      seconds: Math.round(scan.seconds * 1000) / 1000,
      mbPerSecond: scan.seconds > 0 ? Math.round(scan.bytesRead / 1e6 / scan.seconds) : 0,
      threads: scan.threads,
    },
  };
}
