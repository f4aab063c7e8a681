import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { DTYPE_CODE, decodeBlock, halfTable, OPAQUE } from './kernel.ts';
import type { Checkpoint, TensorEntry } from './safetensors.ts';

/**
 * Permutation-invariant matching. A transformer computes the same function when the units of an
 * MLP, the key/value head groups of an attention layer, or the dimensions of the residual stream
 * are relabelled consistently, so a model can carry another's weights with no tensor equal and no
 * element where it was. Where the lineage test finds blocks that do not correlate with the base,
 * this finds, against the base, the relabelling that makes them correlate again (units matched by
 * the correlation of their weight vectors, mutual nearest neighbours first), and writes a
 * canonical copy of the affected tensors in the base's order. The scan then compares that copy:
 * a relabelled disallowed model is recognised as what it is, a relabelled honest fine-tune as a
 * fine-tune. Architectures named like Llama/Qwen (q/k/v/o_proj, gate/up/down_proj) are handled;
 * others keep the identity order. Rotations of the residual stream are not undone.
 */

export interface Permutation {
  /** What was relabelled. */
  what: string;
  /** Units matched, and those whose partner differs from the identity. */
  units: number;
  moved: number;
  /** Median correlation of matched pairs, and the same under the identity order. */
  matchedCorrelation: number;
  identityCorrelation: number;
  /** Most matches lie above the 99th percentile of matching against a shuffled base (no correspondence). */
  significant: boolean;
}

export interface AlignmentResult {
  /** A checkpoint view: relabelled tensors from a temporary file, the rest from the model. */
  checkpoint: Checkpoint;
  permutations: Permutation[];
  dispose(): void;
}

// ---------------------------------------------------------------- reading

function decodeTensor(t: TensorEntry, rows?: number[]): Float32Array {
  const code = DTYPE_CODE[t.dtype] ?? OPAQUE;
  if (code === OPAQUE) throw new Error(`cannot align ${t.name} (${t.dtype})`);
  const width = t.byteLength / Math.max(1, t.numel);
  const cols = t.shape.length >= 2 ? t.numel / t.shape[0]! : t.numel;
  const wanted = rows ?? Array.from({ length: t.shape.length >= 2 ? t.shape[0]! : 1 }, (_, i) => i);
  const out = new Float32Array(wanted.length * cols);
  const fd = openSync(t.file, 'r');
  try {
    const buf = Buffer.alloc(cols * width);
    const scratch = new Float32Array(cols);
    const bits = new Uint32Array(scratch.buffer);
    for (const [k, r] of wanted.entries()) {
      readSync(fd, buf, 0, buf.length, t.offset + r * cols * width);
      const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
      const v = decodeBlock(code, ab, 0, cols, scratch, bits, halfTable());
      out.set(v.subarray(0, cols), k * cols);
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** Row vectors (n × f) standardised to zero mean and unit norm, for correlations by dot product. */
function standardise(x: Float32Array, n: number, f: number): Float32Array {
  const out = new Float32Array(n * f);
  for (let i = 0; i < n; i++) {
    let mean = 0;
    for (let j = 0; j < f; j++) mean += x[i * f + j]!;
    mean /= f;
    let ss = 0;
    for (let j = 0; j < f; j++) {
      const v = x[i * f + j]! - mean;
      out[i * f + j] = v;
      ss += v * v;
    }
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let j = 0; j < f; j++) out[i * f + j] = out[i * f + j]! * inv;
  }
  return out;
}

/**
 * c[i·n + j] = Σ_k a[i·f + k]·b[j·f + k] for rows [from, to) of a. Self-contained: worker threads
 * run it from its source text.
 */
export function corrRows(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  n: number,
  f: number,
  from: number,
  to: number,
): void {
  for (let i = from; i < to; i++) {
    const ai = i * f;
    for (let j = 0; j < n; j++) {
      const bj = j * f;
      let acc = 0;
      for (let k = 0; k < f; k++) acc += a[ai + k]! * b[bj + k]!;
      c[i * n + j] = acc;
    }
  }
}

/** Correlation matrix of standardised rows; split over worker threads when it is large. */
async function correlations(a: Float32Array, b: Float32Array, n: number, f: number): Promise<Float32Array> {
  const threads = Math.min(availableParallelism(), 16, Math.ceil((n * n * f) / 2e8));
  if (threads <= 1) {
    const c = new Float32Array(n * n);
    corrRows(a, b, c, n, f, 0, n);
    return c;
  }
  const shared = (x: Float32Array) => {
    const s = new Float32Array(new SharedArrayBuffer(x.byteLength));
    s.set(x);
    return s;
  };
  const sa = shared(a);
  const sb = shared(b);
  const c = new Float32Array(new SharedArrayBuffer(n * n * 4));
  const source = `const { workerData, parentPort } = require('node:worker_threads');
var __name = (t) => t;
${corrRows.toString()}
const { a, b, c, n, f, from, to } = workerData;
corrRows(a, b, c, n, f, from, to);
parentPort.postMessage('done');`;
  const step = Math.ceil(n / threads);
  await Promise.all(
    Array.from({ length: threads }, (_, t) => {
      const from = t * step;
      const to = Math.min(n, from + step);
      return new Promise<void>((resolve, reject) => {
        const w = new Worker(source, { eval: true, workerData: { a: sa, b: sb, c, n, f, from, to } });
        w.once('message', () => {
          void w.terminate();
          resolve();
        });
        w.once('error', reject);
      });
    }),
  );
  return c;
}

/** Each model unit's best correlation with any base unit. */
function rowMax(c: Float32Array, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let m = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < n; j++) m = Math.max(m, c[i * n + j]!);
    out.push(m);
  }
  return out;
}

/**
 * For every base unit j, the model unit matched to it: correlations of feature vectors, mutual
 * nearest neighbours accepted first, the rest greedily. Significant when most units' best match
 * beats the 99th percentile of best matches against the base with its feature coordinates
 * shuffled (one fixed shuffle for all units: no unit corresponds to any, every unit keeps its
 * values) — picking the best of n partners inflates correlations, so only this null says whether
 * a correspondence exists.
 */
export async function matchUnits(
  model: Float32Array,
  base: Float32Array,
  n: number,
  f: number,
): Promise<{ perm: number[]; corr: number[]; significant: boolean; nullLevel: number }> {
  const a = standardise(model, n, f);
  const c = await correlations(a, standardise(base, n, f), n, f);
  const shuffled = new Float32Array(n * f);
  const order = shuffle(f);
  for (let i = 0; i < n; i++) for (let k = 0; k < f; k++) shuffled[i * f + k] = base[i * f + order[k]!]!;
  const nullBest = rowMax(await correlations(a, standardise(shuffled, n, f), n, f), n).sort((x, y) => x - y);
  const nullLevel = nullBest[Math.min(n - 1, Math.floor(0.99 * n))] ?? 0;
  const above = rowMax(c, n).filter((x) => x > nullLevel).length;
  return { ...assign(c, n), significant: above * 2 > n, nullLevel };
}

/** A fixed pseudo-random permutation of 0..n-1 (deterministic: the audit must be repeatable). */
function shuffle(n: number): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  let state = 0x9e3779b9;
  for (let i = n - 1; i > 0; i--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Mutual nearest neighbours first (a few rounds), then each remaining base unit its best free model unit. */
function assign(c: Float32Array, n: number): { perm: number[]; corr: number[] } {
  const perm = new Array<number>(n).fill(-1);
  const corr = new Array<number>(n).fill(0);
  const freeModel = new Set(Array.from({ length: n }, (_, i) => i));
  const freeBase = new Set(Array.from({ length: n }, (_, j) => j));
  for (let round = 0; round < 4 && freeBase.size > 0; round++) {
    const bestOfModel = new Map<number, number>();
    for (const i of freeModel) {
      let best = -1;
      for (const j of freeBase) if (best < 0 || c[i * n + j]! > c[i * n + best]!) best = j;
      bestOfModel.set(i, best);
    }
    let accepted = 0;
    for (const j of [...freeBase]) {
      let best = -1;
      for (const i of freeModel) if (best < 0 || c[i * n + j]! > c[best * n + j]!) best = i;
      if (best >= 0 && bestOfModel.get(best) === j) {
        perm[j] = best;
        corr[j] = c[best * n + j]!;
        freeBase.delete(j);
        freeModel.delete(best);
        accepted++;
      }
    }
    if (accepted === 0) break;
  }
  for (const j of [...freeBase].sort((x, y) => x - y)) {
    let best = -1;
    for (const i of freeModel) if (best < 0 || c[i * n + j]! > c[best * n + j]!) best = i;
    perm[j] = best;
    corr[j] = c[best * n + j]!;
    freeModel.delete(best);
  }
  return { perm, corr };
}

function median(xs: number[]): number {
  const s = [...xs].sort((p, q) => p - q);
  return s.length ? s[Math.floor(s.length / 2)]! : 0;
}

/** Evenly spaced indices, at most `count` of `n`. */
function spread(n: number, count: number): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: count }, (_, k) => Math.floor(((k + 0.5) * n) / count));
}

/** Columns `cols` of rows of an n × w row-major matrix, as n × cols.length. */
function pickCols(x: Float32Array, n: number, w: number, cols: number[]): Float32Array {
  const out = new Float32Array(n * cols.length);
  for (let i = 0; i < n; i++) for (const [k, c] of cols.entries()) out[i * cols.length + k] = x[i * w + c]!;
  return out;
}

/** The transpose of an r × c row-major matrix. */
function transpose(x: Float32Array, r: number, c: number): Float32Array {
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = x[i * c + j]!;
  return out;
}

/** Concatenate per-unit feature blocks (each n × f_k) into n × Σf_k. */
function concatFeatures(blocks: { x: Float32Array; f: number }[], n: number): { x: Float32Array; f: number } {
  const f = blocks.reduce((a, b) => a + b.f, 0);
  const out = new Float32Array(n * f);
  for (let i = 0; i < n; i++) {
    let at = 0;
    for (const b of blocks) {
      out.set(b.x.subarray(i * b.f, (i + 1) * b.f), i * f + at);
      at += b.f;
    }
  }
  return { x: out, f };
}

// ---------------------------------------------------------------- plan

/** Row and column relabelling of one tensor: output[r][c] = input[rows[r]][cols[c]]. */
interface TensorPerm {
  rows: number[] | null;
  cols: number[] | null;
}

function compose(map: Map<string, TensorPerm>, name: string, axis: 'rows' | 'cols', perm: number[]): void {
  const p = map.get(name) ?? { rows: null, cols: null };
  const prev = p[axis];
  p[axis] = prev ? perm.map((k) => prev[k]!) : perm;
  map.set(name, p);
}

const FEATURES = 192;

interface Names {
  layers: number[];
  t: (layer: number, part: string) => string;
}

function layerNames(model: Checkpoint): Names {
  const layers = [
    ...new Set(
      [...model.tensors.keys()]
        .map((k) => /^model\.layers\.(\d+)\./.exec(k)?.[1])
        .filter((x): x is string => !!x),
    ),
  ]
    .map(Number)
    .sort((a, b) => a - b);
  return { layers, t: (i, part) => `model.layers.${i}.${part}` };
}

function headDims(base: Checkpoint): { headDim: number; heads: number; kvHeads: number } | null {
  const dir = existsSync(join(base.path, 'config.json')) ? base.path : dirname(base.path);
  try {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, number>;
    const heads = c.num_attention_heads;
    const kvHeads = c.num_key_value_heads ?? heads;
    const headDim = c.head_dim ?? (c.hidden_size && heads ? c.hidden_size / heads : undefined);
    return heads && kvHeads && headDim ? { headDim, heads, kvHeads } : null;
  } catch {
    return null;
  }
}

/**
 * Align `model` to `base` in the blocks listed (`'embeddings'` for the residual stream, `layer N`).
 * Returns null when nothing could be relabelled (names or shapes not of the supported family).
 */
export async function alignToBase(
  model: Checkpoint,
  base: Checkpoint,
  blocks: readonly string[],
): Promise<AlignmentResult | null> {
  const get = (c: Checkpoint, name: string) => {
    const t = c.tensors.get(name);
    return t && (DTYPE_CODE[t.dtype] ?? OPAQUE) !== OPAQUE ? t : null;
  };
  const perms = new Map<string, TensorPerm>();
  const report: Permutation[] = [];
  const names = layerNames(model);
  const embed = 'model.embed_tokens.weight';

  // The residual stream: columns of the embeddings, matched over a sample of token rows.
  let hidden: number[] | null = null;
  const me = get(model, embed);
  const be = get(base, embed);
  if (blocks.includes('embeddings') && me && be && me.shape[1] === be.shape[1] && me.shape.length === 2) {
    const h = me.shape[1]!;
    const rows = spread(Math.min(me.shape[0]!, be.shape[0]!), 2048);
    const mx = transpose(decodeTensor(me, rows), rows.length, h);
    const bx = transpose(decodeTensor(be, rows), rows.length, h);
    const { perm, corr, significant } = await matchUnits(mx, bx, h, rows.length);
    const identity = Array.from({ length: h }, (_, j) => corrOf(mx, bx, j, j, rows.length));
    const moved = perm.filter((p, j) => p !== j).length;
    report.push({
      what: 'residual stream',
      units: h,
      moved,
      matchedCorrelation: median(corr),
      identityCorrelation: median(identity),
      significant,
    });
    if (significant && moved > 0 && median(corr) > median(identity)) {
      hidden = perm;
      for (const [name, t] of model.tensors) {
        if (t.shape.length === 1 && t.shape[0] === h && /norm\.weight$/.test(name) && !/[qk]_norm/.test(name))
          compose(perms, name, 'rows', perm);
        else if (
          t.shape.length === 2 &&
          /(embed_tokens|lm_head|q_proj|k_proj|v_proj|gate_proj|up_proj)\.weight$/.test(name) &&
          t.shape[1] === h
        )
          compose(perms, name, 'cols', perm);
        else if (t.shape.length === 2 && /(o_proj|down_proj)\.weight$/.test(name) && t.shape[0] === h)
          compose(perms, name, 'rows', perm);
        else if (t.shape.length === 1 && /(o_proj|down_proj)\.bias$/.test(name) && t.shape[0] === h)
          compose(perms, name, 'rows', perm);
      }
    }
  }
  // Hidden-side features of a matrix, in the base's residual order.
  const hiddenCols = (x: Float32Array, n: number, w: number) => (hidden ? pickCols(x, n, w, hidden) : x);

  const dims = headDims(base);
  for (const i of names.layers) {
    if (!blocks.includes(`layer ${i}`)) continue;
    // MLP units: rows of gate/up, columns of down.
    const g = names.t(i, 'mlp.gate_proj.weight');
    const u = names.t(i, 'mlp.up_proj.weight');
    const d = names.t(i, 'mlp.down_proj.weight');
    const parts = [g, u, d].map((n) => [get(model, n), get(base, n)] as const);
    if (parts.every(([m, b]) => m && b && m.shape.join() === b.shape.join())) {
      const units = parts[0]![0]!.shape[0]!;
      const h = parts[0]![0]!.shape[1]!;
      const cols = spread(h, Math.floor(FEATURES / 3));
      const feats = (c: Checkpoint, k: number) => {
        const t = get(c, [g, u, d][k]!)!;
        let x = decodeTensor(t);
        if (k === 2) x = transpose(x, h, units);
        if (c === model) x = hiddenCols(x, units, h);
        return { x: pickCols(x, units, h, cols), f: cols.length };
      };
      const mf = concatFeatures(
        [0, 1, 2].map((k) => feats(model, k)),
        units,
      );
      const bf = concatFeatures(
        [0, 1, 2].map((k) => feats(base, k)),
        units,
      );
      const { perm, corr, significant } = await matchUnits(mf.x, bf.x, units, mf.f);
      const identity = Array.from({ length: units }, (_, j) => corrOf(mf.x, bf.x, j, j, mf.f));
      const moved = perm.filter((p, j) => p !== j).length;
      report.push({
        what: `layer ${i} MLP units`,
        units,
        moved,
        matchedCorrelation: median(corr),
        identityCorrelation: median(identity),
        significant,
      });
      if (significant && moved > 0 && median(corr) > median(identity)) {
        compose(perms, g, 'rows', perm);
        compose(perms, u, 'rows', perm);
        compose(perms, d, 'cols', perm);
      }
    }
    // Attention: key/value head groups (with their query heads), then query heads within a group.
    const q = names.t(i, 'self_attn.q_proj.weight');
    const k = names.t(i, 'self_attn.k_proj.weight');
    const v = names.t(i, 'self_attn.v_proj.weight');
    const o = names.t(i, 'self_attn.o_proj.weight');
    const mq = get(model, q);
    const bq = get(base, q);
    const mk = get(model, k);
    const bk = get(base, k);
    const mv = get(model, v);
    const bv = get(base, v);
    if (dims && mq && bq && mk && bk && mv && bv && mq.shape.join() === bq.shape.join()) {
      const { headDim, heads, kvHeads } = dims;
      const h = mq.shape[1]!;
      const per = heads / kvHeads;
      const cols = spread(h, 32);
      const headFeats = (t: TensorEntry, fromModel: boolean, count: number) => {
        let x = decodeTensor(t);
        if (fromModel) x = hiddenCols(x, t.shape[0]!, h);
        const flat = pickCols(x, t.shape[0]!, h, cols); // rows × 32
        return { x: flat, f: headDim * cols.length, count };
      };
      const group = (c: Checkpoint, fromModel: boolean) => {
        const qx = headFeats(get(c, q)!, fromModel, heads);
        const kx = headFeats(get(c, k)!, fromModel, kvHeads);
        const vx = headFeats(get(c, v)!, fromModel, kvHeads);
        const f = per * qx.f + kx.f + vx.f;
        const out = new Float32Array(kvHeads * f);
        for (let gi = 0; gi < kvHeads; gi++) {
          out.set(qx.x.subarray(gi * per * qx.f, (gi + 1) * per * qx.f), gi * f);
          out.set(kx.x.subarray(gi * kx.f, (gi + 1) * kx.f), gi * f + per * qx.f);
          out.set(vx.x.subarray(gi * vx.f, (gi + 1) * vx.f), gi * f + per * qx.f + kx.f);
        }
        return { x: out, f };
      };
      const mg = group(model, true);
      const bg = group(base, false);
      const { perm, corr, significant } = await matchUnits(mg.x, bg.x, kvHeads, mg.f);
      const identity = Array.from({ length: kvHeads }, (_, j) => corrOf(mg.x, bg.x, j, j, mg.f));
      const moved = perm.filter((p, j) => p !== j).length;
      report.push({
        what: `layer ${i} attention head groups`,
        units: kvHeads,
        moved,
        matchedCorrelation: median(corr),
        identityCorrelation: median(identity),
        significant,
      });
      if (significant && moved > 0 && median(corr) > median(identity)) {
        const rowsOf = (order: number[]) =>
          order.flatMap((hh) => Array.from({ length: headDim }, (_, r) => hh * headDim + r));
        const qOrder = perm.flatMap((gi) => Array.from({ length: per }, (_, r) => gi * per + r));
        compose(perms, q, 'rows', rowsOf(qOrder));
        compose(perms, k, 'rows', rowsOf(perm));
        compose(perms, v, 'rows', rowsOf(perm));
        if (get(model, o)) compose(perms, o, 'cols', rowsOf(qOrder));
        for (const [bias, order] of [
          [names.t(i, 'self_attn.q_proj.bias'), qOrder],
          [names.t(i, 'self_attn.k_proj.bias'), perm],
          [names.t(i, 'self_attn.v_proj.bias'), perm],
        ] as const)
          if (get(model, bias)) compose(perms, bias, 'rows', rowsOf(order));
      }
    }
  }
  if (perms.size === 0) return null;
  return { ...writeCanonical(model, perms), permutations: report };
}

function corrOf(a: Float32Array, b: Float32Array, i: number, j: number, f: number): number {
  const x = standardise(a.subarray(i * f, (i + 1) * f), 1, f);
  const y = standardise(b.subarray(j * f, (j + 1) * f), 1, f);
  let acc = 0;
  for (let k = 0; k < f; k++) acc += x[k]! * y[k]!;
  return acc;
}

/** Write the relabelled tensors (raw bytes, the model's dtype) to a temporary safetensors file. */
function writeCanonical(
  model: Checkpoint,
  perms: Map<string, TensorPerm>,
): Omit<AlignmentResult, 'permutations'> {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-aligned-'));
  const file = join(dir, 'aligned.safetensors');
  const entries = [...perms.keys()].map((name) => model.tensors.get(name)!);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of entries) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.byteLength] };
    offset += t.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const dataStart = 8 + Buffer.byteLength(json);
  const out = openSync(file, 'w');
  const tensors = new Map(model.tensors);
  try {
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    writeSync(out, head);
    writeSync(out, Buffer.from(json));
    let at = 0;
    for (const t of entries) {
      const p = perms.get(t.name)!;
      const width = t.byteLength / Math.max(1, t.numel);
      const nRows = t.shape.length >= 2 ? t.shape[0]! : t.numel;
      const cols = t.shape.length >= 2 ? t.numel / nRows : 1;
      const rowBytes = cols * width;
      const src = openSync(t.file, 'r');
      try {
        const row = Buffer.alloc(rowBytes);
        const dst = Buffer.alloc(rowBytes);
        for (let r = 0; r < nRows; r++) {
          const from = p.rows ? p.rows[r]! : r;
          readSync(src, row, 0, rowBytes, t.offset + from * rowBytes);
          if (p.cols) {
            for (let c = 0; c < cols; c++)
              row.copy(dst, c * width, p.cols[c]! * width, (p.cols[c]! + 1) * width);
            writeSync(out, dst);
          } else writeSync(out, row);
        }
      } finally {
        closeSync(src);
      }
      tensors.set(t.name, { ...t, file, offset: dataStart + at });
      at += t.byteLength;
    }
  } finally {
    closeSync(out);
  }
  return {
    checkpoint: {
      ...model,
      path: `${model.path} (relabelled to the base's order)`,
      files: [...model.files, file],
      tensors,
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
