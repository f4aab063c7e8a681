import type { Checkpoint } from './safetensors.ts';
import type { PairSums, RefSums, ScanResult, TensorSums } from './scan.ts';
import { type Signature, signatureTensor } from './signature.ts';
import {
  blockOf,
  combineParts,
  type LineageSummary,
  normalQuantile,
  type ProjectionPart,
  type ProjectionStat,
  projectionPart,
  type ReferenceTensor,
  summariseLineage,
} from './statistics.ts';

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
 * How the statistics decide (statistics.ts explains each statistic and its null; docs/audit.md the
 * calibration on generated populations of honest fine-tunes, unrelated models and cheats).
 */
export const DECISION = {
  /** Family-wise false-positive rate of each significance test in one audit (Bonferroni over its parts). */
  familyAlpha: 0.001,
  /**
   * Smallest share of a reference's delta (α) that counts as carried, over the whole model and per
   * block. The null only says whether α is above chance; fine-tunes of one base on related data
   * share some direction for real, so α must also exceed what honest fine-tunes reach (the
   * calibration's largest honest α, with a margin).
   */
  alphaGlobal: 0.2,
  alphaBlock: 0.35,
  /** A signature-only comparison calls the model the reference itself when α and cos(d, e) are this close to 1. */
  matchAlpha: 0.05,
  matchCosine: 0.999,
  /** A 2-D delta whose sampled rank is at most this share of the sample is low rank (LoRA note only). */
  lowRankShare: 0.5,
  /** Share of the model's parameters in tensors unknown to the base above which lineage cannot be judged. */
  unknownShare: 0.01,
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
  /** Share of the parameters in tensors where the reference differs from the base that the model holds exactly as the reference does. */
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
  /** Lineage test: every matrix of the model against its base counterpart. */
  lineage: LineageSummary;
  /** Two-reference test per reference (weights read in the scan first, then signatures). */
  tests: ReferenceTest[];
  /** Model tensors without any counterpart in the base (renamed beyond recognition, new modules). */
  unknownTensors: { names: string[]; parameters: number; share: number };
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
  return p.rank <= side * DECISION.lowRankShare;
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
      if (same) derived += t.entry.numel;
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

/** A reference as the verdict reads it: its weights were part of the scan, or only its signature is. */
export interface ReferenceInput {
  label: string;
  /** Index among the scan's references when its weights were read. */
  scanIndex: number | null;
  signature: Signature | null;
}

export interface BlockStat extends ProjectionStat {
  block: string;
}

export interface ReferenceTest {
  label: string;
  from: 'weights' | 'signature';
  /** The two-reference statistic over the whole model, and per block (strongest first). */
  global: ProjectionStat | null;
  blocks: BlockStat[];
  /** z a statistic must reach (Bonferroni over the whole model and the blocks at DECISION.familyAlpha). */
  zCritical: number;
  decision: 'matches' | 'derived' | 'none';
  why: string;
  /** Tensors the comparison could not use (not in the signature, resized rows). */
  skippedTensors: string[];
}

function referenceTensorOf(t: TensorSums, ref: ReferenceInput): ReferenceTensor | null {
  if (!t.base || !t.sketch) return null;
  const bb = t.base.otherSquares;
  if (ref.scanIndex !== null) {
    const r = t.references[ref.scanIndex];
    const sketch = t.sketch.refs[ref.scanIndex];
    if (!r || !sketch) return null;
    const ee = r.refDeltaSquares;
    return { ee, eb: (r.otherSquares - bb - ee) / 2, bb, de: r.deltaDot, sketch };
  }
  if (!ref.signature || t.base.counterpart.compared !== t.base.counterpart.entry.numel) return null;
  return signatureTensor(ref.signature, t.base.counterpart.entry.name, bb, t.sketch);
}

/** The two-reference test of one reference: statistics, then the decision. */
export function testReference(
  scan: ScanResult,
  ref: ReferenceInput,
  exact: ReferenceSummary | null,
  tensorCount: number,
): ReferenceTest {
  const all: ProjectionPart[] = [];
  const byBlock = new Map<string, ProjectionPart[]>();
  // A block is judged on its own only when it holds a matrix: a block of norm vectors alone (the
  // final norm) has a few thousand elements whose shared drift says nothing about origin.
  const withMatrix = new Set(
    scan.tensors.filter((t) => t.entry.shape.length >= 2).map((t) => blockOf(t.entry.name)),
  );
  const skipped: string[] = [];
  for (const t of scan.tensors) {
    const rt = referenceTensorOf(t, ref);
    const part = rt && t.sketch ? projectionPart(t, rt, t.sketch) : null;
    if (!part) {
      if (t.base) skipped.push(t.entry.name);
      continue;
    }
    all.push(part);
    const block = blockOf(t.entry.name);
    byBlock.set(block, [...(byBlock.get(block) ?? []), part]);
  }
  const global = combineParts(all);
  const blocks = [...byBlock]
    .filter(([block]) => withMatrix.has(block))
    .map(([block, parts]) => {
      const stat = combineParts(parts);
      return stat ? { block, ...stat } : null;
    })
    .filter((b): b is BlockStat => b !== null)
    .sort((a, b) => b.alpha - a.alpha);
  const zCritical = normalQuantile(DECISION.familyAlpha / (1 + blocks.length));
  const test: ReferenceTest = {
    label: ref.label,
    from: ref.scanIndex !== null ? 'weights' : 'signature',
    global,
    blocks,
    zCritical,
    decision: 'none',
    why: '',
    skippedTensors: skipped,
  };
  const carried = (s: ProjectionStat, floor: number) => s.alpha >= floor && s.z >= zCritical;
  const block = blocks.find((b) => carried(b, DECISION.alphaBlock));
  if (exact && exact.tensorsEqual === tensorCount) {
    test.decision = 'matches';
    test.why = `all ${tensorCount} tensors equal those of ${ref.label}`;
  } else if (
    ref.scanIndex === null &&
    global &&
    Math.abs(global.alpha - 1) <= DECISION.matchAlpha &&
    global.cosine >= DECISION.matchCosine
  ) {
    test.decision = 'matches';
    test.why = `its delta from the base is ${ref.label}'s (α ${fmt(global.alpha)}, cos ${fmt(global.cosine)}, by signature)`;
  } else if (exact && exact.copiedTensors > 0) {
    test.decision = 'derived';
    test.why = `${exact.copiedTensors} of its matrices equal ${ref.label}'s where that differs from the base`;
  } else if (global && carried(global, DECISION.alphaGlobal)) {
    test.decision = 'derived';
    test.why = `it carries α = ${fmt(global.alpha)} of ${ref.label}'s delta from the base (z ${fmt(global.z)} ≥ ${fmt(zCritical)}, over the floor ${DECISION.alphaGlobal} set from honest fine-tunes)`;
  } else if (block) {
    test.decision = 'derived';
    test.why = `its ${block.block} carries α = ${fmt(block.alpha)} of ${ref.label}'s delta there (z ${fmt(block.z)} ≥ ${fmt(zCritical)}, over the block floor ${DECISION.alphaBlock})`;
  } else if (global) {
    test.why = `α = ${fmt(global.alpha)} of ${ref.label}'s delta (z ${fmt(global.z)}), strongest block ${blocks[0]?.block ?? '-'} α = ${fmt(blocks[0]?.alpha ?? null)}`;
  } else {
    test.why = `no tensor could be compared with ${ref.label}`;
  }
  return test;
}

/** Aggregate the scan and decide the verdict. */
export function buildReport(
  scan: ScanResult,
  model: Checkpoint,
  base: Checkpoint | null,
  references: Checkpoint[],
  extra: { signatures?: { label: string; signature: Signature }[]; labels?: string[] } = {},
): ProvenanceReport {
  const baseSummary = base ? summariseBase(scan, model) : null;
  const refSummaries = references.map((r, j) => summariseReference(scan, model, j, r.path));
  const tensorCount = scan.tensors.length;
  const notes = notesFor(scan, base, references);
  const lineage = summariseLineage(scan.tensors);
  const inputs: ReferenceInput[] = [
    ...references.map((r, j) => ({ label: extra.labels?.[j] ?? r.path, scanIndex: j, signature: null })),
    ...(extra.signatures ?? []).map((s) => ({ label: s.label, scanIndex: null, signature: s.signature })),
  ];
  const tests = inputs.map((ref) =>
    testReference(scan, ref, ref.scanIndex !== null ? refSummaries[ref.scanIndex]! : null, tensorCount),
  );
  const unknown = scan.tensors.filter((t) => base && !t.base);
  const unknownParams = unknown.reduce((a, t) => a + t.entry.numel, 0);

  let verdict: ProvenanceVerdict;
  let reference: string | null = null;
  let reason: string;
  let parentIndex = 0;
  const matched = tests.findIndex((t) => t.decision === 'matches');
  const derived = tests
    .map((t, i) => ({ t, i }))
    .filter((x) => x.t.decision === 'derived')
    .sort((a, b) => (b.t.global?.alpha ?? 0) - (a.t.global?.alpha ?? 0))[0];

  if (baseSummary && baseSummary.tensorsEqual === tensorCount) {
    verdict = 'unchanged';
    reason = `all ${tensorCount} tensors equal the base model's`;
  } else if (matched >= 0) {
    verdict = 'matches-reference';
    reference = tests[matched]!.label;
    parentIndex = -1;
    reason = tests[matched]!.why;
  } else if (derived) {
    verdict = 'finetuned-from-reference';
    reference = derived.t.label;
    const j = inputs[derived.i]!.scanIndex;
    parentIndex = j === null ? -1 : j + 1;
    reason = `derived from ${reference}: ${derived.t.why}`;
  } else if (!baseSummary) {
    verdict = 'unrelated';
    reason = 'no base model to compare with and no reference matches';
  } else if (lineage.tensors.length === 0) {
    verdict = 'unrelated';
    reason = 'no matrix of the model has a counterpart in the base';
  } else if (lineage.foreignBlocks.length > 0) {
    verdict = 'unrelated';
    const all = lineage.derivedShare === 0;
    reason =
      (all
        ? 'not derived from the base model: no matrix correlates with its base counterpart'
        : `not derived from the base model in ${lineage.foreignBlocks.join(', ')}: no matrix there correlates with its base counterpart`) +
      ` (z < ${fmt(lineage.zCritical)}; a fine-tune keeps every matrix correlated, median ρ here ${fmt(lineage.medianRho)})`;
  } else {
    verdict = 'finetuned-from-base';
    const best = tests.filter((t) => t.global).sort((a, b) => b.global!.alpha - a.global!.alpha)[0];
    reason =
      `every matrix stays correlated with the base (median ρ ${fmt(lineage.medianRho)}, lowest z ${fmt(lineage.minZ)} ≥ ${fmt(lineage.zCritical)}; relative delta ${fmt(baseSummary.relativeDelta)})` +
      (best
        ? `; carries α = ${fmt(best.global!.alpha)} of ${best.label}'s delta (z ${fmt(best.global!.z)})`
        : '');
  }
  if (unknownParams > 0) {
    notes.push(
      `${unknown.length} tensors (${unknownParams} parameters) have no counterpart in the base: ${unknown
        .slice(0, 5)
        .map((t) => t.entry.name)
        .join(', ')}`,
    );
  }

  let lora: LoraSummary | null = null;
  if (verdict === 'finetuned-from-base' || (verdict === 'finetuned-from-reference' && parentIndex > 0)) {
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
    lineage,
    tests,
    unknownTensors: {
      names: unknown.map((t) => t.entry.name),
      parameters: unknownParams,
      share: model.parameters > 0 ? unknownParams / model.parameters : 0,
    },
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
