import { type FileHandle, open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { UserError } from '../../core/errors.ts';
import {
  ABSENT,
  DTYPE_CODE,
  decodeBlock,
  halfTable,
  MOMENT_B,
  MOMENT_D,
  MOMENT_DB,
  MOMENT_FIELDS,
  OPAQUE,
  type RankEstimate,
  REF_DE,
  REF_EE,
  REF_FF,
  REF_FIELDS,
  REF_MR_MISMATCH,
  REF_RB_MISMATCH,
  REF_RR,
  type RowSampleJob,
  type SampledRow,
  type SegmentJob,
  type SketchJob,
  SUM_BB,
  SUM_DD,
  SUM_MB_MISMATCH,
  SUM_REF0,
} from './kernel.ts';
import type { Checkpoint, TensorEntry } from './safetensors.ts';
import { createKernelPool, type KernelPool } from './workerPool.ts';

/**
 * The streaming comparison: every tensor of the model against its counterpart in the base and in
 * each reference, read in bounded chunks (never a whole checkpoint in memory), summed on worker
 * threads, each reading its own segments. Memory ≈ threads × participants × chunkBytes (plus one
 * chunk set in this thread when threads is 0), whatever the model size.
 */

export interface ScanOptions {
  /** Worker threads for the arithmetic (0 = this thread). Default: available cores, at most 8; none under 64 MiB. */
  threads?: number;
  /** Bytes read per participant per segment. Default 8 MiB. */
  chunkBytes?: number;
  /**
   * Low-rank (LoRA-merge) estimate: evenly spaced rows sampled per 2-D tensor (0 = none). Default 64.
   * Sampling rows and striding columns keeps a rank-r delta at rank r, so the cost is fixed per
   * tensor (64² × 1024 per Gram matrix) whatever its size; ranks above half the sample (32) read as
   * full rank. Tensors whose single row exceeds a chunk are not estimated. The estimate is made
   * against the participant nearest to the model on that tensor only (its likely parent).
   */
  rankRows?: number;
  /** Columns kept per sampled row (strided). Default 1024. */
  rankCols?: number;
  /**
   * Buckets of the CountSketch kept per tensor of the model's delta, the base and each reference's
   * delta (a power of two; 0 = none). Default SKETCH_WIDTH. Tensors with at most this many elements
   * are kept exactly.
   */
  sketchWidth?: number;
  signal?: AbortSignal;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
}

/** How a model tensor found its counterpart in another checkpoint. */
export type MatchKind = 'name' | 'content' | 'rows';

export interface Counterpart {
  entry: TensorEntry;
  matchedBy: MatchKind;
  /** Leading elements compared (fewer than the model's when the row counts differ). */
  compared: number;
}

/** Sums of model vs one other participant over one tensor. */
export interface PairSums {
  counterpart: Counterpart;
  /** Σo² over the compared elements. */
  otherSquares: number;
  /** Σ(m − o)². */
  distanceSquares: number;
  /** Elements outside the dtype tolerance. */
  mismatched: number;
  /** Low-rank estimate of (m − o) on sampled rows (null when not estimated or o is not the nearest participant). */
  rank: number | null;
}

export interface RefSums extends PairSums {
  /** Σ(r − b)² and Σ(m − b)(r − b), over elements all three hold. */
  refDeltaSquares: number;
  deltaDot: number;
  /** Elements where the reference differs from the base. */
  refBaseMismatched: number;
}

/** CountSketches of one tensor: d = m − b, b, and e_j = r_j − b, over the elements all share. */
export interface TensorSketch {
  width: number;
  exact: boolean;
  /** Runs of 64 elements kept: one in 2^keepShift. */
  keepShift: number;
  salt: number;
  d: Float64Array;
  b: Float64Array;
  refs: (Float64Array | null)[];
}

export interface TensorSums {
  entry: TensorEntry;
  base: PairSums | null;
  references: (RefSums | null)[];
  /** Σm², Σm, Σb over the elements the model and the base share (null without a base counterpart). */
  moments: { mm: number; m: number; b: number } | null;
  sketch: TensorSketch | null;
  /** Rows × columns the rank estimate sampled, or null. */
  rankSample: { rows: number; cols: number } | null;
}

export interface ScanResult {
  tensors: TensorSums[];
  /** Other participants' tensors no model tensor was compared with (e.g. an untied lm_head). */
  unmatchedOther: string[][];
  bytesRead: number;
  seconds: number;
  threads: number;
}

const FINGERPRINT = 1024;

/** Default CountSketch width per tensor: 4096 buckets (32 KiB in float64, 16 KiB stored as float32). */
export const SKETCH_WIDTH = 4096;
/** Seed of the sketch hashes: part of every signature, so signatures made by another seed are refused. */
export const SKETCH_SEED = 0x5eed_1e55;

/**
 * Runs kept per tensor: all up to 256 × width elements, then one in 2^k so that about 256 × width
 * elements are sketched (≈ 1M for width 4096). Subsampling adds about κ·width/kept (κ the deltas'
 * kurtosis, ≈ 3 for dense ones: ≈ 1%) to the sketch's own relative variance, and the nulls scale
 * with it, while a 4M-element matrix costs a quarter and the embeddings a few hundredths.
 */
export function sketchKeepShift(elements: number, width: number): number {
  let shift = 0;
  while (elements / 2 ** (shift + 1) >= 256 * width) shift++;
  return shift;
}

/** The per-tensor salt: FNV-1a of the base tensor's name, mixed with the seed. */
export function sketchSalt(baseTensorName: string, seed = SKETCH_SEED): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < baseTensorName.length; i++) {
    h ^= baseTensorName.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h ^ seed) | 0;
}

/** Open shard files once and read from them with positioned reads. */
class Files {
  private readonly handles = new Map<string, Promise<FileHandle>>();
  handle(file: string): Promise<FileHandle> {
    let h = this.handles.get(file);
    if (!h) {
      h = open(file, 'r');
      this.handles.set(file, h);
    }
    return h;
  }
  async readFully(file: string, target: Uint8Array, length: number, position: number): Promise<void> {
    const h = await this.handle(file);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await h.read(target, done, length - done, position + done);
      if (bytesRead === 0) {
        throw new UserError(
          `${file}: unexpected end of file at byte ${position + done} (the file shrank while being read?)`,
          're-copy the checkpoint and try again',
        );
      }
      done += bytesRead;
    }
  }
  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(all.map((p) => p.then((h) => h.close()).catch(() => {})));
  }
}

function dtypeCode(dtype: string): number {
  return DTYPE_CODE[dtype] ?? OPAQUE;
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A few thousand decoded values from the start and the middle of a tensor: enough to recognise a renamed copy. */
async function fingerprint(files: Files, t: TensorEntry): Promise<Float64Array | null> {
  const code = dtypeCode(t.dtype);
  if (code === OPAQUE) return null;
  const width = t.byteLength / Math.max(1, t.numel);
  const take = Math.min(FINGERPRINT, t.numel);
  const starts = t.numel > 2 * FINGERPRINT ? [0, Math.floor(t.numel / 2)] : [0];
  const out = new Float64Array(take * starts.length);
  const scratch = new Float32Array(take);
  const bits = new Uint32Array(scratch.buffer);
  for (const [k, start] of starts.entries()) {
    const bytes = new Uint8Array(take * width);
    await files.readFully(t.file, bytes, bytes.length, t.offset + start * width);
    const v = decodeBlock(code, bytes.buffer, 0, take, scratch, bits, halfTable());
    for (let i = 0; i < take; i++) out[k * take + i] = v[i]!;
  }
  return out;
}

function relativeDistance(a: Float64Array, b: Float64Array): number {
  let dd = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    dd += d * d;
    bb += b[i]! * b[i]!;
  }
  return bb > 0 ? Math.sqrt(dd / bb) : dd > 0 ? Number.POSITIVE_INFINITY : 0;
}

/** A renamed copy lies this close (relative distance of fingerprints) at most; unrelated tensors sit near √2. */
const CONTENT_MATCH_MAX = 1;

/**
 * Counterpart in `other` of every model tensor: by name (same shape, or same trailing dims with
 * another row count, e.g. a resized vocabulary), else by content among tensors of the same shape
 * (renamed keys, an untied lm_head that copies the embeddings). Unmatched tensors get null.
 */
async function matchTensors(
  files: Files,
  model: Checkpoint,
  other: Checkpoint,
): Promise<{ matches: (Counterpart | null)[]; unmatchedOther: string[] }> {
  const modelTensors = [...model.tensors.values()];
  const matches: (Counterpart | null)[] = [];
  const used = new Set<string>();
  const pending: number[] = [];
  for (const [i, t] of modelTensors.entries()) {
    const o = other.tensors.get(t.name);
    if (o && sameShape(o.shape, t.shape)) {
      matches.push({ entry: o, matchedBy: 'name', compared: t.numel });
      used.add(o.name);
    } else if (o && t.shape.length >= 2 && sameShape(o.shape.slice(1), t.shape.slice(1))) {
      const rowSize = t.numel / t.shape[0]!;
      matches.push({ entry: o, matchedBy: 'rows', compared: Math.min(t.shape[0]!, o.shape[0]!) * rowSize });
      used.add(o.name);
    } else {
      matches.push(null);
      pending.push(i);
    }
  }
  if (pending.length > 0) {
    const byShape = new Map<string, TensorEntry[]>();
    for (const o of other.tensors.values()) {
      const key = o.shape.join('x');
      byShape.set(key, [...(byShape.get(key) ?? []), o]);
    }
    const prints = new Map<TensorEntry, Float64Array | null>();
    const printOf = async (t: TensorEntry) => {
      if (!prints.has(t)) prints.set(t, await fingerprint(files, t));
      return prints.get(t) ?? null;
    };
    for (const i of pending) {
      const t = modelTensors[i]!;
      const candidates = byShape.get(t.shape.join('x')) ?? [];
      const mine = await printOf(t);
      if (!mine) continue;
      let best: TensorEntry | null = null;
      let bestDistance = Number.POSITIVE_INFINITY;
      for (const c of candidates) {
        const theirs = await printOf(c);
        if (!theirs || theirs.length !== mine.length) continue;
        const distance = relativeDistance(mine, theirs);
        // Prefer a tensor no other model tensor took, when equally close.
        if (distance < bestDistance || (distance === bestDistance && !used.has(c.name))) {
          best = c;
          bestDistance = distance;
        }
      }
      if (best && bestDistance < CONTENT_MATCH_MAX) {
        matches[i] = { entry: best, matchedBy: 'content', compared: t.numel };
        used.add(best.name);
      }
    }
  }
  const unmatchedOther = [...other.tensors.keys()].filter((n) => !used.has(n));
  return { matches, unmatchedOther };
}

interface Segment {
  tensor: number;
  index: number;
  /** First model element of the segment. */
  start: number;
  count: number;
  rows: RowSampleJob | null;
}

interface TensorState {
  partials: (Float64Array | null)[];
  moments: Float64Array;
  sketches: Float64Array | null;
  remaining: number;
  rows: SampledRow[];
}

/** Worker threads for a scan of `bytes`: none for small checkpoints (starting threads costs more), else up to 8. */
export function defaultThreads(bytes: number): number {
  if (bytes < 64 * 1024 * 1024) return 0;
  return Math.max(1, Math.min(8, availableParallelism(), Math.ceil(bytes / (64 * 1024 * 1024))));
}

/** Compare `model` with `others` (index 0 the base or null, then the references). */
export async function scanCheckpoints(
  model: Checkpoint,
  base: Checkpoint | null,
  references: Checkpoint[],
  opts: ScanOptions = {},
): Promise<ScanResult> {
  const started = performance.now();
  const chunkBytes = Math.max(4096, opts.chunkBytes ?? 8 * 1024 * 1024);
  const rankRows = opts.rankRows ?? 64;
  const rankCols = opts.rankCols ?? 1024;
  const sketchWidth = opts.sketchWidth ?? SKETCH_WIDTH;
  if (sketchWidth & (sketchWidth - 1))
    throw new UserError(`sketch width ${sketchWidth} is not a power of two`);
  const others = [base, ...references];
  const participants = others.length + 1;
  const files = new Files();
  let pool: KernelPool | null = null;
  try {
    const matched = await Promise.all(others.map((o) => (o ? matchTensors(files, model, o) : null)));
    const modelTensors = [...model.tensors.values()];
    const plan = modelTensors.map((t, i) => ({
      entry: t,
      counterparts: matched.map((m) => m?.matches[i] ?? null),
    }));

    /** The sketch of tensor ti from element `start`, when the tensor has a float base counterpart. */
    const sketchJobOf = (ti: number, start: number): SketchJob | null => {
      const p = plan[ti]!;
      const b = p.counterparts[0];
      if (
        sketchWidth <= 0 ||
        !b ||
        dtypeCode(p.entry.dtype) === OPAQUE ||
        dtypeCode(b.entry.dtype) === OPAQUE
      )
        return null;
      const exact = b.compared <= sketchWidth;
      return {
        width: exact ? Math.max(1, b.compared) : sketchWidth,
        salt: sketchSalt(b.entry.name),
        start,
        exact,
        keepShift: exact ? 0 : sketchKeepShift(b.compared, sketchWidth),
      };
    };

    // Segments: row-aligned for matrices whose rows fit a chunk, so sampled rows are whole.
    const segments: Segment[] = [];
    const segmentCounts: number[] = [];
    const rankSamples: ({ rows: number; cols: number } | null)[] = [];
    let bytesTotal = 0;
    for (const [ti, p] of plan.entries()) {
      const t = p.entry;
      const widths = [t, ...p.counterparts.map((c) => c?.entry)].map((e) =>
        e ? e.byteLength / Math.max(1, e.numel) : 1,
      );
      const perSegment = Math.max(1, Math.floor(chunkBytes / Math.max(...widths)));
      const rows = t.shape.length >= 2 ? t.shape[0]! : 1;
      const cols = t.shape.length >= 2 ? t.numel / Math.max(1, rows) : t.numel;
      const rowAligned = t.shape.length >= 2 && cols > 0 && cols <= perSegment;
      const ranked =
        rankRows > 0 &&
        t.shape.length === 2 &&
        rowAligned &&
        rows >= 2 &&
        cols >= 2 &&
        dtypeCode(t.dtype) !== OPAQUE;
      const colStep = Math.max(1, Math.ceil(cols / rankCols));
      const colCount = Math.floor((cols - 1) / colStep) + 1;
      const sampleCount = Math.min(rows, rankRows);
      const sampled = ranked
        ? [
            ...new Set(
              Array.from({ length: sampleCount }, (_, k) => Math.floor(((k + 0.5) * rows) / sampleCount)),
            ),
          ]
        : [];
      rankSamples.push(ranked ? { rows: sampled.length, cols: colCount } : null);
      const step = rowAligned ? Math.floor(perSegment / cols) * cols : perSegment;
      let index = 0;
      for (let start = 0; start < t.numel || (start === 0 && t.numel === 0); start += Math.max(1, step)) {
        const count = Math.min(step, t.numel - start);
        const firstRow = rowAligned ? start / cols : 0;
        const lastRow = rowAligned ? (start + count) / cols : 0;
        const inside = sampled.filter((r) => r >= firstRow && r < lastRow);
        segments.push({
          tensor: ti,
          index: index++,
          start,
          count,
          rows: inside.length > 0 ? { cols, firstRow, sampled: inside, colStep, colCount } : null,
        });
        if (t.numel === 0) break;
      }
      segmentCounts.push(index);
      bytesTotal += t.byteLength;
      for (const c of p.counterparts)
        if (c) bytesTotal += (c.compared * c.entry.byteLength) / Math.max(1, c.entry.numel);
    }

    const threads = opts.threads ?? defaultThreads(bytesTotal);
    pool = createKernelPool(threads);
    const kernel = pool;
    // Two segments queued per thread keep every thread busy while the main thread collects results.
    const inflight = Math.max(1, 2 * threads);
    const waiters: (() => void)[] = [];
    let active = 0;
    const acquire = async (): Promise<void> => {
      while (active >= inflight) await new Promise<void>((resolve) => waiters.push(resolve));
      active++;
    };
    const release = () => {
      active--;
      waiters.shift()?.();
    };

    const states: (TensorState | null)[] = plan.map(() => null);
    const results: TensorSums[] = new Array(plan.length);
    const rankJobs: Promise<void>[] = [];
    let bytesDone = 0;
    let failure: unknown = null;
    const running = new Set<Promise<void>>();

    const finishTensor = (ti: number, state: TensorState) => {
      const p = plan[ti]!;
      const sums = new Float64Array(SUM_REF0 + REF_FIELDS * references.length);
      for (const partial of state.partials)
        for (let k = 0; k < sums.length; k++) sums[k] = sums[k]! + partial![k]!;
      const pair = (
        c: Counterpart | null,
        squares: number,
        dist: number,
        mismatched: number,
      ): PairSums | null =>
        c ? { counterpart: c, otherSquares: squares, distanceSquares: dist, mismatched, rank: null } : null;
      const baseCounterpart = p.counterparts[0] ?? null;
      const sketchOf = (): TensorSketch | null => {
        const job = sketchJobOf(ti, 0);
        if (!job || !state.sketches) return null;
        const w = job.width;
        const part = (k: number) => state.sketches!.slice(k * w, (k + 1) * w);
        return {
          width: w,
          exact: job.exact,
          keepShift: job.keepShift,
          salt: job.salt,
          d: part(0),
          b: part(1),
          refs: references.map((_, j) => (p.counterparts[1 + j] ? part(2 + j) : null)),
        };
      };
      const result: TensorSums = {
        moments: baseCounterpart
          ? {
              // Σm² = Σb² + 2Σdb + Σd², Σm = Σd + Σb.
              mm: sums[SUM_BB]! + 2 * state.moments[MOMENT_DB]! + sums[SUM_DD]!,
              m: state.moments[MOMENT_D]! + state.moments[MOMENT_B]!,
              b: state.moments[MOMENT_B]!,
            }
          : null,
        sketch: sketchOf(),
        entry: p.entry,
        base: pair(p.counterparts[0] ?? null, sums[SUM_BB]!, sums[SUM_DD]!, sums[SUM_MB_MISMATCH]!),
        references: references.map((_, j) => {
          const c = p.counterparts[1 + j] ?? null;
          if (!c) return null;
          const at = SUM_REF0 + j * REF_FIELDS;
          return {
            ...pair(c, sums[at + REF_RR]!, sums[at + REF_FF]!, sums[at + REF_MR_MISMATCH]!)!,
            refDeltaSquares: sums[at + REF_EE]!,
            deltaDot: sums[at + REF_DE]!,
            refBaseMismatched: sums[at + REF_RB_MISMATCH]!,
          };
        }),
        rankSample: rankSamples[ti] ?? null,
      };
      results[ti] = result;
      // Rank of the delta from the nearest participant only (the parent, when there is one).
      const pairs: (PairSums | null)[] = [result.base, ...result.references];
      let nearest = -1;
      let nearestDistance = Number.POSITIVE_INFINITY;
      for (const [q, pairSums] of pairs.entries()) {
        if (!pairSums || !(pairSums.otherSquares > 0)) continue;
        const distance = pairSums.distanceSquares / pairSums.otherSquares;
        if (distance < nearestDistance) {
          nearest = q;
          nearestDistance = distance;
        }
      }
      if (state.rows.length >= 2 && nearest >= 0) {
        const target = pairs[nearest]!;
        const rows = state.rows.sort((a, b) => a.row - b.row);
        result.rankSample = { rows: rows.length, cols: rows[0]!.values[0]!.length };
        if (target.mismatched === 0 && nearestDistance === 0) {
          target.rank = 0;
        } else if (rows.every((r) => r.values[nearest + 1])) {
          const job = {
            rows: [rows.map((r) => r.values[0]!), rows.map((r) => r.values[nearest + 1]!)],
            noise: rows.map((r) => r.noise),
          };
          rankJobs.push(
            kernel.ranks(job).then((ranks: RankEstimate[]) => {
              target.rank = ranks[1]?.rank ?? null;
            }),
          );
        }
      }
    };

    const compareSegment = async (seg: Segment) => {
      const p = plan[seg.tensor]!;
      const entries = [p.entry, ...p.counterparts.map((c) => c?.entry ?? null)];
      const limits = [p.entry.numel, ...p.counterparts.map((c) => c?.compared ?? 0)];
      const job: SegmentJob = {
        dtypes: [],
        counts: [],
        widths: [],
        reads: [],
        rows: seg.rows,
        sketch: sketchJobOf(seg.tensor, seg.start),
      };
      for (let q = 0; q < participants; q++) {
        const e = entries[q];
        const count = e ? Math.max(0, Math.min(seg.count, limits[q]! - seg.start)) : 0;
        const width = e ? e.byteLength / Math.max(1, e.numel) : 1;
        job.dtypes.push(e && count > 0 ? dtypeCode(e.dtype) : ABSENT);
        job.counts.push(count);
        job.widths.push(width);
        job.reads.push(
          e && count > 0
            ? { file: e.file, offset: e.offset + seg.start * width, bytes: count * width }
            : null,
        );
        if (e && count > 0) bytesDone += count * width;
      }
      const out = await kernel.segment(job);
      let state = states[seg.tensor];
      if (!state) {
        state = {
          partials: new Array(segmentCounts[seg.tensor]!).fill(null),
          moments: new Float64Array(MOMENT_FIELDS),
          sketches: null,
          remaining: segmentCounts[seg.tensor]!,
          rows: [],
        };
        states[seg.tensor] = state;
      }
      state.partials[seg.index] = out.sums;
      for (let k = 0; k < MOMENT_FIELDS; k++) state.moments[k] = state.moments[k]! + out.moments[k]!;
      if (out.sketches) {
        if (!state.sketches) state.sketches = out.sketches;
        else
          for (let k = 0; k < out.sketches.length; k++)
            state.sketches[k] = state.sketches[k]! + out.sketches[k]!;
      }
      state.rows.push(...out.rows);
      state.remaining--;
      if (state.remaining === 0) {
        states[seg.tensor] = null;
        finishTensor(seg.tensor, state);
      }
      opts.onProgress?.(bytesDone, bytesTotal);
    };

    for (const seg of segments) {
      if (failure) break;
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
      await acquire();
      if (failure) {
        release();
        break;
      }
      const task: Promise<void> = compareSegment(seg)
        .catch((err) => {
          failure ??= err;
        })
        .finally(() => {
          release();
          running.delete(task);
        });
      running.add(task);
    }
    await Promise.all(running);
    await Promise.all(rankJobs);
    if (failure) throw failure;
    if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
    return {
      tensors: results,
      unmatchedOther: matched.map((m) => m?.unmatchedOther ?? []),
      bytesRead: bytesDone,
      seconds: (performance.now() - started) / 1000,
      threads: kernel.threads,
    };
  } finally {
    await pool?.close();
    await files.close();
  }
}
