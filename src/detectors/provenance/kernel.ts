/**
 * The arithmetic of the provenance scan: per-segment sums over decoded tensor elements and the
 * low-rank estimate of a weight delta. Worker threads run these same functions: `kernelSource()`
 * serialises them with Function.prototype.toString, so each function below must be self-contained
 * (no imports, no module-level values; they may call one another by name).
 *
 * Participants of a segment: 0 = the model, 1 = the base, 2.. = references. Sums come back in
 * float64 in a fixed layout (see SUM_*), added block by block in element order, so a segment's
 * result does not depend on which thread computed it.
 */

/** Dtype codes the kernel understands; anything else is compared byte for byte (OPAQUE). */
export const DTYPE_CODE: Readonly<Record<string, number>> = { BF16: 0, F16: 1, F32: 2, F64: 3 };
export const OPAQUE = 4;
export const ABSENT = -1;

/** Layout of a segment's sums. */
export const SUM_BB = 0;
export const SUM_DD = 1;
export const SUM_MB_MISMATCH = 2;
/** Per reference j, at SUM_REF0 + j * REF_FIELDS + field. */
export const SUM_REF0 = 3;
export const REF_FIELDS = 6;
export const REF_RR = 0;
export const REF_FF = 1;
export const REF_MR_MISMATCH = 2;
export const REF_EE = 3;
export const REF_DE = 4;
export const REF_RB_MISMATCH = 5;

export interface RowSampleJob {
  cols: number;
  /** Row index (in the tensor) of the segment's first element. */
  firstRow: number;
  /** Tensor rows to copy out that fall inside this segment. */
  sampled: number[];
  colStep: number;
  colCount: number;
}

/** Where a participant's bytes of a segment are. */
export interface SegmentRead {
  file: string;
  offset: number;
  bytes: number;
}

/**
 * CountSketch of a segment: element i of the tensor goes to bucket h(i) with sign s(i), both from a
 * seeded hash of (salt, i); `width` buckets (a power of two), or the identity when the tensor has at
 * most `width` elements (`exact`). Sketches of the deltas d = m − b, of b and of each e = r − b
 * share h and s, so ⟨Sd, Se⟩ estimates ⟨d, e⟩ without either vector in memory.
 */
export interface SketchJob {
  width: number;
  salt: number;
  /** Tensor element index of the segment's first element. */
  start: number;
  exact: boolean;
  /** Runs of 64 elements kept: one in 2^keepShift (hash-chosen), so big tensors cost a fraction. */
  keepShift: number;
}

/**
 * Layout of a segment's moments (beside the sums), over the elements model and base share:
 * Σ(m − b)·b, Σ(m − b), Σb — accumulated in the same passes as the sums (Σm² = Σb² + 2Σdb + Σd²).
 */
export const MOMENT_DB = 0;
export const MOMENT_D = 1;
export const MOMENT_B = 2;
export const MOMENT_FIELDS = 3;

/** One segment: the same element range of the model tensor and of its counterparts. */
export interface SegmentJob {
  /** Per participant: DTYPE_CODE value, OPAQUE, or ABSENT. */
  dtypes: number[];
  /** Elements each participant holds in this segment (0 when absent); counts[0] is the segment length. */
  counts: number[];
  /** Byte width per participant's element. */
  widths: number[];
  /** Per participant: where to read its bytes, or null. */
  reads: (SegmentRead | null)[];
  rows: RowSampleJob | null;
  sketch: SketchJob | null;
}

/** A segment with its bytes in memory (offset 0 of each buffer). */
export interface LoadedSegment {
  dtypes: number[];
  counts: number[];
  widths: number[];
  buffers: (ArrayBufferLike | null)[];
  rows: RowSampleJob | null;
  sketch: SketchJob | null;
}

export interface SampledRow {
  row: number;
  /** Decoded (column-subsampled) row per participant; null where absent. */
  values: (Float32Array | null)[];
  /** Expected squared rounding error of the model's row in its storage dtype. */
  noise: number;
}

export interface SegmentResult {
  sums: Float64Array;
  /** MOMENT_* fields. */
  moments: Float64Array;
  /** Sketches [Sd, Sb, Se_0, Se_1, ...], `width` each; null when not sketched. */
  sketches: Float64Array | null;
  rows: SampledRow[];
}

export interface RankJob {
  /** rows[p][i]: participant p's sampled row i (p = 0 model); null where p lacks the tensor. */
  rows: (Float32Array[] | null)[];
  noise: number[];
}

export interface RankEstimate {
  /** Numerical rank of (model - participant) over the sampled rows and columns; null when absent. */
  rank: number | null;
}

/**
 * Tolerance for "the same value" between two dtypes, squared: [rel², abs²]. Exact when the dtypes
 * agree; else the coarser dtype's rounding: two values are equal when (a − b)² ≤ rel²·max(a², b²) + abs²
 * (round-to-nearest moves a normal value by at most half an ulp, a subnormal fp16 one by at most 2^-25).
 */
export function pairTolerance(a: number, b: number): [number, number] {
  if (a === b) return [0, 0];
  // Half an ulp relative to the larger magnitude: 2^-8 bf16, 2^-11 fp16, 2^-24 fp32, 2^-53 fp64.
  const rel = [2 ** -8, 2 ** -11, 2 ** -24, 2 ** -53];
  const abs = [0, 2 ** -25, 0, 0];
  const slack = 1 + 1 / 1048576;
  const r = Math.max(rel[a] ?? 0, rel[b] ?? 0) * slack;
  const t = Math.max(abs[a] ?? 0, abs[b] ?? 0) * slack;
  return [r * r, t * t];
}

/** fp16 bit pattern -> float value, for all 65536 patterns. */
export function halfTable(): Float32Array {
  const cache = globalThis as unknown as { __ptbHalfTable?: Float32Array };
  if (cache.__ptbHalfTable) return cache.__ptbHalfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * frac * 2 ** -24;
    else if (exp === 31) table[h] = frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  cache.__ptbHalfTable = table;
  return table;
}

/** Decode `n` elements from element `start` of `buf` into a float32 view (a view of `buf` itself for F32). */
export function decodeBlock(
  code: number,
  buf: ArrayBufferLike,
  start: number,
  n: number,
  out: Float32Array,
  outBits: Uint32Array,
  half: Float32Array,
): Float32Array {
  if (code === 0) {
    const src = new Uint16Array(buf, start * 2, n);
    for (let i = 0; i < n; i++) outBits[i] = src[i]! << 16;
    return out;
  }
  if (code === 1) {
    const src = new Uint16Array(buf, start * 2, n);
    for (let i = 0; i < n; i++) out[i] = half[src[i]!]!;
    return out;
  }
  if (code === 2) return new Float32Array(buf, start * 4, n);
  const src = new Float64Array(buf, start * 8, n);
  for (let i = 0; i < n; i++) out[i] = src[i]!;
  return out;
}

/** Σb² over [s, e). */
export function sumSquares(m: Float32Array, s: number, e: number): number {
  let acc = 0;
  for (let i = s; i < e; i++) {
    const v = m[i]!;
    acc += v * v;
  }
  return acc;
}

/** Model vs base over [s, e): adds Σb², Σ(m−b)², mismatches at acc[0..2]. Exact comparison when tol is [0, 0]. */
export function pairModelBase(
  m: Float32Array,
  b: Float32Array,
  s: number,
  e: number,
  tol: [number, number],
  acc: Float64Array,
  mom: Float64Array,
): void {
  const [rel2, abs2] = tol;
  let bb = 0;
  let dd = 0;
  let mis = 0;
  let db = 0;
  let ds = 0;
  let bs = 0;
  if (rel2 === 0 && abs2 === 0) {
    for (let i = s; i < e; i++) {
      const bv = b[i]!;
      const d = m[i]! - bv;
      bb += bv * bv;
      dd += d * d;
      db += d * bv;
      ds += d;
      bs += bv;
      if (d !== 0) mis++;
    }
  } else {
    for (let i = s; i < e; i++) {
      const mv = m[i]!;
      const bv = b[i]!;
      const d = mv - bv;
      const b2 = bv * bv;
      const d2 = d * d;
      bb += b2;
      dd += d2;
      db += d * bv;
      ds += d;
      bs += bv;
      if (!(d2 <= rel2 * Math.max(mv * mv, b2) + abs2)) mis++;
    }
  }
  acc[0] = acc[0]! + bb;
  acc[1] = acc[1]! + dd;
  acc[2] = acc[2]! + mis;
  mom[0] = mom[0]! + db;
  mom[1] = mom[1]! + ds;
  mom[2] = mom[2]! + bs;
}

/**
 * Model, base and one reference over [s, e): the reference's sums at acc[at..at+5] (Σ(m−r)² follows
 * from the others: ‖d − e‖² = ‖d‖² − 2d·e + ‖e‖²), and, when `withBase`, the model-vs-base sums at
 * acc[0..2] in the same pass. With all three dtypes equal, "equal" is exact and cheap.
 */
export function tripleModelBaseRef(
  m: Float32Array,
  b: Float32Array,
  r: Float32Array,
  s: number,
  e: number,
  tolMB: [number, number],
  tolMR: [number, number],
  tolRB: [number, number],
  acc: Float64Array,
  at: number,
  withBase: boolean,
  mom: Float64Array,
): void {
  let bb = 0;
  let dd = 0;
  let misMB = 0;
  let db = 0;
  let ds = 0;
  let bs = 0;
  let rr = 0;
  let misMR = 0;
  let ee = 0;
  let de = 0;
  let misRB = 0;
  const exact =
    tolMB[0] === 0 && tolMB[1] === 0 && tolMR[0] === 0 && tolMR[1] === 0 && tolRB[0] === 0 && tolRB[1] === 0;
  if (exact) {
    for (let i = s; i < e; i++) {
      const mv = m[i]!;
      const bv = b[i]!;
      const rv = r[i]!;
      const d = mv - bv;
      const ev = rv - bv;
      bb += bv * bv;
      dd += d * d;
      db += d * bv;
      ds += d;
      bs += bv;
      rr += rv * rv;
      ee += ev * ev;
      de += d * ev;
      if (d !== 0) misMB++;
      if (mv !== rv) misMR++;
      if (ev !== 0) misRB++;
    }
  } else {
    const [relMB, absMB] = tolMB;
    const [relMR, absMR] = tolMR;
    const [relRB, absRB] = tolRB;
    for (let i = s; i < e; i++) {
      const mv = m[i]!;
      const bv = b[i]!;
      const rv = r[i]!;
      const d = mv - bv;
      const ev = rv - bv;
      const f = mv - rv;
      const m2 = mv * mv;
      const b2 = bv * bv;
      const r2 = rv * rv;
      const d2 = d * d;
      const e2 = ev * ev;
      bb += b2;
      dd += d2;
      db += d * bv;
      ds += d;
      bs += bv;
      rr += r2;
      ee += e2;
      de += d * ev;
      if (!(d2 <= relMB * Math.max(m2, b2) + absMB)) misMB++;
      if (!(f * f <= relMR * Math.max(m2, r2) + absMR)) misMR++;
      if (!(e2 <= relRB * Math.max(r2, b2) + absRB)) misRB++;
    }
  }
  if (withBase) {
    mom[0] = mom[0]! + db;
    mom[1] = mom[1]! + ds;
    mom[2] = mom[2]! + bs;
    acc[0] = acc[0]! + bb;
    acc[1] = acc[1]! + dd;
    acc[2] = acc[2]! + misMB;
  }
  acc[at] = acc[at]! + rr;
  acc[at + 1] = acc[at + 1]! + Math.max(0, dd - 2 * de + ee);
  acc[at + 2] = acc[at + 2]! + misMR;
  acc[at + 3] = acc[at + 3]! + ee;
  acc[at + 4] = acc[at + 4]! + de;
  acc[at + 5] = acc[at + 5]! + misRB;
}

/** Model vs a reference where the base has no elements: Σr², Σ(m−r)², mismatches at acc[at..at+2]. */
export function pairModelRef(
  m: Float32Array,
  r: Float32Array,
  s: number,
  e: number,
  tol: [number, number],
  acc: Float64Array,
  at: number,
): void {
  const [rel2, abs2] = tol;
  let rr = 0;
  let ff = 0;
  let mis = 0;
  for (let i = s; i < e; i++) {
    const mv = m[i]!;
    const rv = r[i]!;
    const f = mv - rv;
    const r2 = rv * rv;
    const f2 = f * f;
    rr += r2;
    ff += f2;
    if (!(f2 <= rel2 * Math.max(mv * mv, r2) + abs2)) mis++;
  }
  acc[at] = acc[at]! + rr;
  acc[at + 1] = acc[at + 1]! + ff;
  acc[at + 2] = acc[at + 2]! + mis;
}

/**
 * Buckets and signs of elements [start, start + len) of a tensor (see SketchJob). Elements go in
 * runs of 64: the run's index is hashed once (murmur3's 32-bit finaliser over index XOR salt) to a
 * starting bucket and a sign, and the run's elements fill consecutive buckets from there. Two
 * elements of one run never share a bucket, elements of different runs meet in a bucket with
 * independent signs, so ⟨Sx, Sy⟩ is still an unbiased estimate of ⟨x, y⟩ with CountSketch's spread,
 * at one hash per 64 elements.
 */
export function sketchHashes(
  start: number,
  len: number,
  width: number,
  salt: number,
  exact: boolean,
  keepShift: number,
  positions: Int32Array,
  buckets: Int32Array,
  signs: Float32Array,
): number {
  if (exact) {
    for (let i = 0; i < len; i++) {
      positions[i] = i;
      buckets[i] = start + i;
      signs[i] = 1;
    }
    return len;
  }
  const mask = width - 1;
  const keepMask = (1 << keepShift) - 1;
  let kept = 0;
  let i = 0;
  while (i < len) {
    const idx = start + i;
    const run = Math.floor(idx / 64);
    const into = idx - run * 64;
    const end = Math.min(len, i + 64 - into);
    let h = (run ^ salt) | 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
    if ((h & keepMask) === 0) {
      const sign = h < 0 ? -1 : 1;
      const first = (h >>> 8) + into;
      for (let k = i; k < end; k++) {
        positions[kept] = k;
        buckets[kept] = (first + (k - i)) & mask;
        signs[kept] = sign;
        kept++;
      }
    }
    i = end;
  }
  return kept;
}

/** Adds s·(x[p] − y[p]) (or s·x[p] when y is null) into out[at + bucket] for the `count` kept elements. */
export function sketchAdd(
  x: Float32Array,
  y: Float32Array | null,
  count: number,
  positions: Int32Array,
  buckets: Int32Array,
  signs: Float32Array,
  out: Float64Array,
  at: number,
): void {
  if (y) {
    for (let k = 0; k < count; k++) {
      const p = positions[k]!;
      out[at + buckets[k]!] = out[at + buckets[k]!]! + signs[k]! * (x[p]! - y[p]!);
    }
  } else {
    for (let k = 0; k < count; k++)
      out[at + buckets[k]!] = out[at + buckets[k]!]! + signs[k]! * x[positions[k]!]!;
  }
}

/** Byte equality of the first `bytes` bytes of two buffers (memcmp through Buffer). */
export function bytesEqual(a: ArrayBufferLike, b: ArrayBufferLike, bytes: number): boolean {
  return Buffer.from(a, 0, bytes).equals(Buffer.from(b, 0, bytes));
}

/**
 * Copy strided elements [base, base + count·step) of a participant's buffer into `out`; returns the
 * summed squared storage rounding (ulp²/12 per element) of those values.
 */
export function readStrided(
  code: number,
  buf: ArrayBufferLike,
  base: number,
  step: number,
  out: Float32Array,
  withNoise: boolean,
): number {
  const count = out.length;
  let noise = 0;
  if (code === 0 || code === 1) {
    const src = new Uint16Array(buf);
    const half = code === 1 ? halfTable() : null;
    const one = new Float32Array(1);
    const bits = new Uint32Array(one.buffer);
    for (let c = 0; c < count; c++) {
      const h = src[base + c * step]!;
      if (half) out[c] = half[h]!;
      else {
        bits[0] = h << 16;
        out[c] = one[0]!;
      }
      if (!withNoise) continue;
      const exp = half ? (h >> 10) & 0x1f : (h >> 7) & 0xff;
      const ulp = 2 ** ((exp === 0 ? 1 : exp) - (half ? 25 : 134));
      noise += (ulp * ulp) / 12;
    }
    return noise;
  }
  if (code === 2) {
    const src = new Float32Array(buf);
    const raw = new Uint32Array(buf);
    for (let c = 0; c < count; c++) {
      out[c] = src[base + c * step]!;
      if (!withNoise) continue;
      const exp = (raw[base + c * step]! >>> 23) & 0xff;
      const ulp = 2 ** ((exp === 0 ? 1 : exp) - 150);
      noise += (ulp * ulp) / 12;
    }
    return noise;
  }
  const src = new Float64Array(buf);
  for (let c = 0; c < count; c++) {
    const v = src[base + c * step]!;
    out[c] = v;
    if (!withNoise) continue;
    const ulp = Math.abs(v) * 2.220446049250313e-16;
    noise += (ulp * ulp) / 12;
  }
  return noise;
}

/**
 * Read a segment's bytes with blocking positioned reads into buffers reused across calls
 * (`state` lives as long as the thread). `io` is node:fs, passed in so that this function
 * serialises. A short read means the file changed since its header was checked.
 */
export function readSegment(
  job: SegmentJob,
  io: {
    openSync: (path: string, flags: string) => number;
    readSync: (fd: number, buf: Uint8Array, off: number, len: number, pos: number) => number;
  },
  state: { fds: Map<string, number>; buffers: ArrayBuffer[] },
): LoadedSegment {
  const buffers: (ArrayBufferLike | null)[] = [];
  for (let p = 0; p < job.reads.length; p++) {
    const read = job.reads[p];
    if (!read) {
      buffers.push(null);
      continue;
    }
    let buf = state.buffers[p];
    if (!buf || buf.byteLength < read.bytes) {
      buf = new ArrayBuffer(Math.max(read.bytes, 1 << 20));
      state.buffers[p] = buf;
    }
    let fd = state.fds.get(read.file);
    if (fd === undefined) {
      fd = io.openSync(read.file, 'r');
      state.fds.set(read.file, fd);
    }
    const target = new Uint8Array(buf, 0, read.bytes);
    let done = 0;
    while (done < read.bytes) {
      const n = io.readSync(fd, target, done, read.bytes - done, read.offset + done);
      if (n === 0) {
        const err = new Error(
          `${read.file}: unexpected end of file at byte ${read.offset + done} (the file changed while being read?)`,
        ) as Error & { ptbUserError?: boolean };
        err.ptbUserError = true;
        throw err;
      }
      done += n;
    }
    buffers.push(buf);
  }
  return {
    dtypes: job.dtypes,
    counts: job.counts,
    widths: job.widths,
    buffers,
    rows: job.rows,
    sketch: job.sketch,
  };
}

/** Sums (and sampled rows) of one segment whose bytes are in memory. */
export function runSegment(job: LoadedSegment): SegmentResult {
  const BLOCK = 4096; // three decoded blocks stay in the L1 cache
  const { dtypes, counts, buffers, widths } = job;
  const participants = dtypes.length;
  const refCount = participants - 2;
  const sums = new Float64Array(3 + 6 * refCount);
  const moments = new Float64Array(3);
  const n = counts[0]!;
  const mCode = dtypes[0]!;
  const hasBase = dtypes[1] !== -1 && counts[1]! > 0;
  const sk = job.sketch;
  const sketches = sk && hasBase ? new Float64Array(sk.width * (2 + refCount)) : null;

  const sameBytes = (p: number, q: number) =>
    dtypes[p] === dtypes[q] &&
    counts[p] === n &&
    counts[q] === n &&
    bytesEqual(buffers[p]!, buffers[q]!, n * widths[p]!);

  if (mCode === -1) return { sums, moments, sketches: null, rows: [] };
  if (mCode === 4 || dtypes.some((c) => c === 4)) {
    // Integer / fp8 tensors: equality only, byte for byte.
    if (hasBase && !sameBytes(0, 1)) sums[2] = counts[1]!;
    for (let j = 0; j < refCount; j++) {
      const p = 2 + j;
      if (dtypes[p] === -1 || counts[p] === 0) continue;
      if (!sameBytes(0, p)) sums[3 + 6 * j + 2] = counts[p]!;
      if (hasBase && !sameBytes(p, 1)) sums[3 + 6 * j + 5] = Math.min(counts[p]!, counts[1]!);
    }
    return { sums, moments, sketches: null, rows: [] };
  }

  const eqMB = hasBase && sameBytes(0, 1);
  // Per reference: 0 = compute, 1 = byte-identical to the model, 2 = byte-identical to the base.
  const refMode: number[] = [];
  for (let j = 0; j < refCount; j++) {
    const p = 2 + j;
    if (dtypes[p] === -1 || counts[p] === 0) refMode.push(-1);
    else if (sameBytes(0, p)) refMode.push(1);
    else if (hasBase && sameBytes(p, 1)) refMode.push(2);
    else refMode.push(0);
  }

  const scratchKey = globalThis as unknown as { __ptbScratch?: Float32Array[] };
  let scratch = scratchKey.__ptbScratch;
  if (!scratch || scratch.length < participants || scratch[0]!.length < BLOCK) {
    scratch = [];
    for (let p = 0; p < participants; p++) scratch.push(new Float32Array(BLOCK));
    scratchKey.__ptbScratch = scratch;
  }
  const half = halfTable();
  const tolMB: [number, number] = hasBase ? pairTolerance(mCode, dtypes[1]!) : [0, 0];
  const tolMR = refMode.map((_, j) => pairTolerance(mCode, dtypes[2 + j]!));
  const tolRB = refMode.map((_, j) =>
    hasBase ? pairTolerance(dtypes[2 + j]!, dtypes[1]!) : ([0, 0] as [number, number]),
  );
  const nB = hasBase ? counts[1]! : 0;
  const view = (p: number, s: number, len: number) => {
    const out = scratch![p]!;
    return decodeBlock(dtypes[p]!, buffers[p]!, s, len, out, new Uint32Array(out.buffer), half);
  };

  const hashKey = globalThis as unknown as {
    __ptbHash?: { positions: Int32Array; buckets: Int32Array; signs: Float32Array };
  };
  if (!hashKey.__ptbHash) {
    hashKey.__ptbHash = {
      positions: new Int32Array(BLOCK),
      buckets: new Int32Array(BLOCK),
      signs: new Float32Array(BLOCK),
    };
  }
  const { positions, buckets, signs } = hashKey.__ptbHash;
  let kept = 0;
  for (let s = 0; s < n; s += BLOCK) {
    const len = Math.min(BLOCK, n - s);
    const m = view(0, s, len);
    const baseEnd = hasBase ? Math.max(0, Math.min(len, nB - s)) : 0;
    const b = hasBase && !eqMB && baseEnd > 0 ? view(1, s, baseEnd) : m;
    if (sketches && baseEnd > 0) {
      kept = sketchHashes(
        sk!.start + s,
        baseEnd,
        sk!.width,
        sk!.salt,
        sk!.exact,
        sk!.keepShift,
        positions,
        buckets,
        signs,
      );
      if (!eqMB) sketchAdd(m, b, kept, positions, buckets, signs, sketches, 0);
      sketchAdd(b, null, kept, positions, buckets, signs, sketches, sk!.width);
    }
    // The model-vs-base sums ride along with the first reference that spans the same elements.
    let baseDone = !hasBase || eqMB;
    for (let j = 0; j < refCount; j++) {
      if (refMode[j] !== 0) continue;
      const p = 2 + j;
      const refEnd = Math.max(0, Math.min(len, counts[p]! - s));
      if (refEnd === 0) continue;
      const r = view(p, s, refEnd);
      const both = Math.min(refEnd, baseEnd);
      const at = 3 + 6 * j;
      if (sketches && both > 0) {
        // The kept positions were chosen over the base's span; a reference shorter than that keeps fewer.
        let n = kept;
        while (n > 0 && positions[n - 1]! >= both) n--;
        sketchAdd(r, b, n, positions, buckets, signs, sketches, (2 + j) * sk!.width);
      }
      const fuse = !baseDone && both === baseEnd;
      if (both > 0)
        tripleModelBaseRef(m, b, r, 0, both, tolMB, tolMR[j]!, tolRB[j]!, sums, at, fuse, moments);
      if (fuse) baseDone = true;
      if (refEnd > both) pairModelRef(m, r, both, refEnd, tolMR[j]!, sums, at);
    }
    if (!baseDone && baseEnd > 0) pairModelBase(m, b, 0, baseEnd, tolMB, sums, moments);
    if (eqMB) {
      sums[0] = sums[0]! + sumSquares(m, 0, baseEnd);
      let bs = 0;
      for (let i = 0; i < baseEnd; i++) bs += m[i]!;
      moments[2] = moments[2]! + bs;
    }
  }
  for (let j = 0; j < refCount; j++) {
    const at = 3 + 6 * j;
    if (refMode[j] === 1) {
      // r ≡ m: ‖r‖² = ‖b + d‖², its delta is the model's.
      sums[at + 3] = sums[1]!;
      sums[at + 4] = sums[1]!;
      sums[at + 5] = sums[2]!;
    } else if (refMode[j] === 2) {
      sums[at] = sums[0]!;
      sums[at + 1] = sums[1]!;
      sums[at + 2] = sums[2]!;
    }
  }
  if (sketches) {
    // A reference byte-identical to the model has the model's delta; one identical to the base, none.
    const w = sk!.width;
    for (let j = 0; j < refCount; j++)
      if (refMode[j] === 1) for (let k = 0; k < w; k++) sketches[(2 + j) * w + k] = sketches[k]!;
  }
  if (refMode.some((mode) => mode === 1)) {
    // Σm² for the references identical to the model (only they need it).
    let mm = 0;
    for (let s = 0; s < n; s += BLOCK) {
      const len = Math.min(BLOCK, n - s);
      mm += sumSquares(view(0, s, len), 0, len);
    }
    for (let j = 0; j < refCount; j++) if (refMode[j] === 1) sums[3 + 6 * j] = mm;
  }

  const rows: SampledRow[] = [];
  const sample = job.rows;
  if (sample) {
    for (const row of sample.sampled) {
      const base = (row - sample.firstRow) * sample.cols;
      const values: (Float32Array | null)[] = [];
      let noise = 0;
      for (let p = 0; p < participants; p++) {
        if (dtypes[p] === -1 || counts[p]! < base + sample.cols) {
          values.push(null);
          continue;
        }
        const out = new Float32Array(sample.colCount);
        const rounding = readStrided(dtypes[p]!, buffers[p]!, base, sample.colStep, out, p === 0);
        if (p === 0) noise = rounding;
        values.push(out);
      }
      rows.push({ row, values, noise });
    }
  }
  return { sums, moments, sketches, rows };
}

/**
 * How many eigenvalues of a symmetric n×n matrix (row-major, destroyed) exceed `threshold`:
 * Householder reduction to tridiagonal form (4n³/3 flops), then one Sturm-sequence count, which
 * is exact by Sylvester's law of inertia — no eigenvalue needs computing.
 */
export function eigenvaluesAbove(a: Float64Array, n: number, threshold: number): number {
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    let norm = 0;
    for (let i = k + 1; i < n; i++) norm += a[i * n + k]! * a[i * n + k]!;
    norm = Math.sqrt(norm);
    if (norm === 0) continue;
    const x0 = a[(k + 1) * n + k]!;
    const alpha = x0 > 0 ? -norm : norm;
    let vnorm = 0;
    for (let i = k + 1; i < n; i++) {
      v[i] = a[i * n + k]! - (i === k + 1 ? alpha : 0);
      vnorm += v[i]! * v[i]!;
    }
    vnorm = Math.sqrt(vnorm);
    if (vnorm === 0) continue;
    for (let i = k + 1; i < n; i++) v[i] = v[i]! / vnorm;
    // H A H with H = I − 2vvᵀ on the trailing block: A −= 2(v qᵀ + q vᵀ), p = A v, q = p − (v·p) v.
    let vp = 0;
    for (let i = k + 1; i < n; i++) {
      let acc = 0;
      for (let j = k + 1; j < n; j++) acc += a[i * n + j]! * v[j]!;
      p[i] = acc;
      vp += v[i]! * acc;
    }
    for (let i = k + 1; i < n; i++) p[i] = p[i]! - vp * v[i]!;
    for (let i = k + 1; i < n; i++) {
      for (let j = k + 1; j < n; j++) a[i * n + j] = a[i * n + j]! - 2 * (v[i]! * p[j]! + p[i]! * v[j]!);
    }
    a[(k + 1) * n + k] = alpha;
    a[k * n + k + 1] = alpha;
  }
  // Sturm count: eigenvalues below the threshold = negative pivots of T − threshold·I.
  let below = 0;
  let q = 1;
  for (let i = 0; i < n; i++) {
    const off = i > 0 ? a[i * n + i - 1]! : 0;
    q = a[i * n + i]! - threshold - (i > 0 ? (off * off) / q : 0);
    if (q === 0) q = -Number.EPSILON * (Math.abs(threshold) + 1e-300);
    if (q < 0) below++;
  }
  return n - below;
}

/**
 * Rank of (model − participant) on the sampled rows: how many directions of their Gram matrix stand
 * above what storage rounding of the model's dtype alone gives (a LoRA merge saved in bf16 is low
 * rank plus rounding noise; a full fine-tune is not low rank).
 */
export function estimateRanks(job: RankJob): RankEstimate[] {
  const model = job.rows[0]!;
  const s = model.length;
  const cols = s > 0 ? model[0]!.length : 0;
  const meanNoise = job.noise.reduce((x, y) => x + y, 0) / Math.max(1, job.noise.length);
  const spread = (1 + Math.sqrt(Math.min(s, cols) / Math.max(1, s, cols))) ** 2;
  const out: RankEstimate[] = [{ rank: null }];
  for (let p = 1; p < job.rows.length; p++) {
    const other = job.rows[p];
    if (!other || other.length !== s || s === 0) {
      out.push({ rank: null });
      continue;
    }
    const delta: Float64Array[] = [];
    for (let i = 0; i < s; i++) {
      const d = new Float64Array(cols);
      const mi = model[i]!;
      const oi = other[i]!;
      for (let c = 0; c < cols; c++) d[c] = mi[c]! - oi[c]!;
      delta.push(d);
    }
    // Gram matrix on the smaller side.
    const n = Math.min(s, cols);
    const gram = new Float64Array(n * n);
    let top = 0;
    if (s <= cols) {
      for (let i = 0; i < s; i++) {
        const di = delta[i]!;
        for (let j = i; j < s; j++) {
          const dj = delta[j]!;
          let acc = 0;
          for (let c = 0; c < cols; c++) acc += di[c]! * dj[c]!;
          gram[i * n + j] = acc;
          gram[j * n + i] = acc;
        }
      }
    } else {
      for (let i = 0; i < cols; i++) {
        for (let j = i; j < cols; j++) {
          let acc = 0;
          for (let r = 0; r < s; r++) acc += delta[r]![i]! * delta[r]![j]!;
          gram[i * n + j] = acc;
          gram[j * n + i] = acc;
        }
      }
    }
    for (let i = 0; i < n; i++) top = Math.max(top, gram[i * n + i]!);
    if (!(top > 0)) {
      out.push({ rank: 0 });
      continue;
    }
    // Largest eigenvalue that independent rounding errors alone give (row energy × Marchenko–Pastur
    // edge), with a safety factor of 2.
    const noiseLevel = (s <= cols ? meanNoise : (meanNoise * s) / cols) * spread * 2;
    out.push({ rank: eigenvaluesAbove(gram, n, Math.max(noiseLevel, top * 1e-10)) });
  }
  return out;
}

/** Source of the kernel for a worker thread. */
export function kernelSource(): string {
  const fns = [
    pairTolerance,
    halfTable,
    decodeBlock,
    sumSquares,
    pairModelBase,
    tripleModelBaseRef,
    pairModelRef,
    bytesEqual,
    sketchHashes,
    sketchAdd,
    readStrided,
    readSegment,
    runSegment,
    eigenvaluesAbove,
    estimateRanks,
  ];
  return fns.map((f) => f.toString()).join('\n');
}
