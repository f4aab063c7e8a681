import type { TensorSketch, TensorSums } from './scan.ts';

/**
 * The statistics that decide provenance, each with its null distribution.
 *
 * Lineage (is `final_model` derived from the base?): per matrix, the Pearson correlation ρ of the
 * model's and the base's elements. Fine-tuning adds a delta to the base, so ρ stays far above zero
 * even when the delta is as large as the weights themselves (ρ ≈ 1/√(1 + ‖d‖²/‖b‖²) for an
 * unaligned delta); a model with another origin has ρ ≈ 0. The null (no relation) is the same
 * correlation with the base's elements re-paired at random: the CountSketch buckets of the base,
 * cyclically shifted, give J such re-pairings, whose spread (≥ the exact statistic's, so the test
 * is conservative) scales ρ into a z-score.
 *
 * Two-reference test (how much of the reference's change does the model carry?): with d = m − b and
 * e = r − b, both made orthogonal to b per tensor (so a shared shrinkage or growth of the weights,
 * like weight decay, is no evidence), α = ⟨d⊥, e⊥⟩ / ‖e⊥‖² is the share of the reference's delta
 * the model carries: 1 for the reference itself, λ for an interpolation b + λ(r − b), the energy
 * share of the kept directions for a low-rank merge of e, ≈ 0 for an honest fine-tune. Aggregated
 * over all tensors and per block (a layer, the embeddings), each tensor normalised by its own
 * scale. Null: ⟨d⊥, e⊥⟩ with e's sketch buckets cyclically shifted (J re-pairings); z = α / its
 * spread under the null.
 */

/** Re-pairings for the null distributions. */
export const NULL_SHIFTS = 64;

/** The j-th cyclic shift of a sketch of width w (distinct, non-zero, spread over the width). */
function shiftOf(j: number, w: number): number {
  return 1 + (((j * 2654435761) >>> 0) % Math.max(1, w - 1));
}

function dotShifted(x: ArrayLike<number>, y: ArrayLike<number>, shift: number): number {
  const w = x.length;
  let acc = 0;
  for (let i = 0; i < w; i++) acc += x[i]! * y[(i + shift) % w]!;
  return acc;
}

function dot(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let acc = 0;
  for (let i = 0; i < x.length; i++) acc += x[i]! * y[i]!;
  return acc;
}

/** x − βy, elementwise. */
function minus(x: ArrayLike<number>, beta: number, y: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! - beta * y[i]!;
  return out;
}

function rms(xs: readonly number[]): number {
  return xs.length > 0 ? Math.sqrt(xs.reduce((a, x) => a + x * x, 0) / xs.length) : 0;
}

/** Upper tail of the standard normal. */
export function normalTail(z: number): number {
  // Abramowitz–Stegun 7.1.26 on erfc(z/√2); |error| < 1.5e-7, plenty for a p-value.
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erfc =
    t *
    (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) *
    Math.exp(-x * x);
  return z >= 0 ? erfc / 2 : 1 - erfc / 2;
}

/** z with upper-tail probability p (p in (0, 0.5)), by bisection on normalTail. */
export function normalQuantile(p: number): number {
  let lo = 0;
  let hi = 40;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (normalTail(mid) > p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The block a tensor belongs to: a transformer layer, the embeddings, the head, or the rest. */
export function blockOf(name: string): string {
  const layer = /(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\./.exec(name);
  if (layer) return `layer ${layer[1]}`;
  if (/embed|wte|tok_embeddings/.test(name)) return 'embeddings';
  if (/lm_head|output\.weight$/.test(name)) return 'lm_head';
  return 'other';
}

// ---------------------------------------------------------------- lineage

export interface LineageTensor {
  name: string;
  block: string;
  parameters: number;
  /** Pearson correlation of the model's and the base's elements. */
  rho: number;
  /** Spread of ρ under the null (re-paired elements). */
  nullSd: number;
  z: number;
}

export interface LineageSummary {
  /** Matrices tested (1-D tensors hold too few elements to tell). */
  tensors: LineageTensor[];
  /** z a matrix must reach to count as derived (Bonferroni over the matrices at family-wise 0.001). */
  zCritical: number;
  /** Share of the tested parameters in matrices that are derived from the base. */
  derivedShare: number;
  /** Blocks none of whose matrices is derived from the base. */
  foreignBlocks: string[];
  /** Matrices not derived from the base (below zCritical), wherever they are. */
  foreignTensors: string[];
  /** Parameter-weighted median ρ. */
  medianRho: number;
  minZ: number;
}

export const LINEAGE_FAMILY_ALPHA = 0.001;
/** Matrices smaller than this are not tested (too few elements for a stable correlation). */
const MIN_LINEAGE_ELEMENTS = 256;

export function lineageOf(t: TensorSums): LineageTensor | null {
  if (!t.base || !t.moments || !t.sketch || t.entry.shape.length < 2) return null;
  const n = t.base.counterpart.compared;
  if (n < MIN_LINEAGE_ELEMENTS) return null;
  const { mm, m, b } = t.moments;
  const bb = t.base.otherSquares;
  const mb = (mm + bb - t.base.distanceSquares) / 2;
  const cov = mb / n - (m / n) * (b / n);
  const vm = mm / n - (m / n) ** 2;
  const vb = bb / n - (b / n) ** 2;
  const rho = vm > 0 && vb > 0 ? cov / Math.sqrt(vm * vb) : 0;
  const sk = t.sketch;
  const sm = new Float64Array(sk.width);
  for (let i = 0; i < sk.width; i++) sm[i] = sk.d[i]! + sk.b[i]!;
  const norm = Math.sqrt(dot(sm, sm) * dot(sk.b, sk.b));
  const nulls: number[] = [];
  if (norm > 0)
    for (let j = 0; j < NULL_SHIFTS; j++) nulls.push(dotShifted(sm, sk.b, shiftOf(j, sk.width)) / norm);
  // A floor of 1/√n: the spread of an exact correlation of n independent pairs.
  const nullSd = Math.max(rms(nulls), 1 / Math.sqrt(n));
  return { name: t.entry.name, block: blockOf(t.entry.name), parameters: n, rho, nullSd, z: rho / nullSd };
}

export function summariseLineage(tensors: readonly TensorSums[]): LineageSummary {
  const rows = tensors.map(lineageOf).filter((x): x is LineageTensor => x !== null);
  const zCritical = Math.max(3, normalQuantile(LINEAGE_FAMILY_ALPHA / Math.max(1, rows.length)));
  const total = rows.reduce((a, r) => a + r.parameters, 0);
  const derived = rows.filter((r) => r.z >= zCritical);
  const blocks = new Map<string, boolean>();
  for (const r of rows) blocks.set(r.block, (blocks.get(r.block) ?? false) || r.z >= zCritical);
  const sorted = [...rows].sort((a, b) => a.rho - b.rho);
  let acc = 0;
  let median: LineageTensor | undefined;
  for (const r of sorted) {
    acc += r.parameters;
    if (acc >= total / 2) {
      median = r;
      break;
    }
  }
  return {
    tensors: rows,
    zCritical,
    derivedShare: total > 0 ? derived.reduce((a, r) => a + r.parameters, 0) / total : 0,
    foreignBlocks: [...blocks].filter(([, ok]) => !ok).map(([b]) => b),
    foreignTensors: rows.filter((r) => r.z < zCritical).map((r) => r.name),
    medianRho: median?.rho ?? 0,
    minZ: rows.length > 0 ? Math.min(...rows.map((r) => r.z)) : 0,
  };
}

// ---------------------------------------------------------------- two-reference test

/** One tensor of a reference's delta from the base, from a full scan or from a stored signature. */
export interface ReferenceTensor {
  /** ‖e‖², ⟨e, b⟩, ‖b‖² over the compared elements. */
  ee: number;
  eb: number;
  bb: number;
  /** ⟨d, e⟩ exactly, when the reference's weights were read (else the sketch estimates it). */
  de: number | null;
  /** CountSketch of e (same hash as the model's). */
  sketch: ArrayLike<number>;
}

export interface ProjectionPart {
  /** Σ w⟨d⊥, e⊥⟩, Σ w‖e⊥‖², Σ w‖d⊥‖² and the null numerators (one per shift). */
  num: number;
  ee: number;
  dd: number;
  nulls: number[];
  parameters: number;
}

/** The two-reference sums of one tensor (weights w = n/‖b‖² normalise each tensor's scale). */
export function projectionPart(
  t: TensorSums,
  ref: ReferenceTensor,
  sketch: TensorSketch,
): ProjectionPart | null {
  if (!t.base || !t.moments) return null;
  const n = t.base.counterpart.compared;
  const bb = t.base.otherSquares;
  if (!(bb > 0) || !(ref.bb > 0)) return null;
  const w = n / bb;
  const dd = t.base.distanceSquares;
  const mb = (t.moments.mm + bb - dd) / 2;
  const db = mb - bb;
  const betaD = db / bb;
  const betaE = ref.eb / ref.bb;
  const ePerp = Math.max(0, ref.ee - (ref.eb * ref.eb) / ref.bb);
  const dPerp = Math.max(0, dd - (db * db) / bb);
  const sd = minus(sketch.d, betaD, sketch.b);
  const se = minus(ref.sketch, betaE, sketch.b);
  const nulls: number[] = [];
  // The sketch holds one in 2^keepShift runs: its products are that much smaller than exact ones.
  const scale = ref.de !== null ? 2 ** sketch.keepShift : 1;
  for (let j = 0; j < NULL_SHIFTS; j++) nulls.push(scale * w * dotShifted(sd, se, shiftOf(j, sketch.width)));
  if (ref.de !== null) {
    return { num: w * (ref.de - (db * ref.eb) / bb), ee: w * ePerp, dd: w * dPerp, nulls, parameters: n };
  }
  // Signature only: every term from the sketches (a ratio estimator, exact when d = λe), so the
  // sketch's distortion of norms cancels.
  return { num: w * dot(sd, se), ee: w * dot(se, se), dd: w * dot(sd, sd), nulls, parameters: n };
}

export interface ProjectionStat {
  /** Share of the reference's delta the model carries. */
  alpha: number;
  /** cos(d⊥, e⊥). */
  cosine: number;
  /** α / (spread of α under the null). */
  z: number;
  /** Spread of α under the null, and a few null draws for the evidence. */
  nullSd: number;
  nullSample: number[];
  parameters: number;
  tensors: number;
}

export function combineParts(parts: readonly ProjectionPart[]): ProjectionStat | null {
  if (parts.length === 0) return null;
  const ee = parts.reduce((a, p) => a + p.ee, 0);
  const num = parts.reduce((a, p) => a + p.num, 0);
  const dd = parts.reduce((a, p) => a + p.dd, 0);
  if (!(ee > 0)) return null;
  const nulls = Array.from(
    { length: NULL_SHIFTS },
    (_, j) => parts.reduce((a, p) => a + p.nulls[j]!, 0) / ee,
  );
  const alpha = num / ee;
  const nullSd = rms(nulls);
  return {
    alpha,
    cosine: dd > 0 ? num / Math.sqrt(dd * ee) : 0,
    z: nullSd > 0 ? alpha / nullSd : alpha > 0 ? Number.POSITIVE_INFINITY : 0,
    nullSd,
    nullSample: nulls.slice(0, 8).map((x) => Math.round(x * 1e5) / 1e5),
    parameters: parts.reduce((a, p) => a + p.parameters, 0),
    tensors: parts.length,
  };
}
