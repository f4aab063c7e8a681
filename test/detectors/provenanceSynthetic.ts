import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Safetensors checkpoints written in TypeScript (no torch needed), for the provenance tests'
 * memory runs, splices and bench/provenance.ts. Imports nothing from the rest of the test tree, so
 * the bench bundles without it.
 */

export type FloatDtype = 'BF16' | 'F16' | 'F32';

export interface SyntheticTensor {
  name: string;
  shape: number[];
  dtype: FloatDtype;
  /** Fill `out` with the values of elements [start, start + out.length). */
  fill: (out: Float32Array, start: number) => void;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> bf16 bits, round to nearest even. */
export function toBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if ((bits & 0x7f800000) === 0x7f800000) return bits >>> 16;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 -> fp16 bits, round to nearest even (overflow to infinity). */
export function toF16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let m = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

const WIDTH: Record<FloatDtype, number> = { BF16: 2, F16: 2, F32: 4 };

/** Write a safetensors file tensor by tensor in 4 MiB pieces (memory independent of size). */
export function writeSafetensors(file: string, tensors: SyntheticTensor[]): void {
  mkdirSync(dirname(file), { recursive: true });
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * WIDTH[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const fd = openSync(file, 'w');
  try {
    const lead = Buffer.alloc(8);
    lead.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    writeSync(fd, lead);
    writeSync(fd, json);
    const piece = 1 << 20;
    const values = new Float32Array(piece);
    const out = Buffer.alloc(piece * 4);
    for (const t of tensors) {
      const numel = t.shape.reduce((a, b) => a * b, 1);
      for (let start = 0; start < numel; start += piece) {
        const n = Math.min(piece, numel - start);
        const view = values.subarray(0, n);
        t.fill(view, start);
        if (t.dtype === 'F32') {
          Buffer.from(view.buffer, 0, n * 4).copy(out);
          writeSync(fd, out, 0, n * 4);
        } else {
          const conv = t.dtype === 'BF16' ? toBf16 : toF16;
          for (let i = 0; i < n; i++) out.writeUInt16LE(conv(view[i]!), i * 2);
          writeSync(fd, out, 0, n * 2);
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** Deterministic noise of mean 0 and variance 1 for element `i` of stream `seed` (a hash, so any range is cheap). */
export function noise(seed: number, i: number): number {
  let x = Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(seed + 1, 0x85ebca77);
  x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d);
  x = Math.imul(x ^ (x >>> 12), 0x297a2d39);
  x ^= x >>> 15;
  return ((x >>> 0) / 4294967296 - 0.5) * 3.4641016151377544; // uniform, variance 1
}

/** A matrix-only "model" of `layers` square matrices: base weights (std 0.02) plus optional deltas. */
export function syntheticModel(
  layers: number,
  size: number,
  dtype: FloatDtype,
  parts: { seed: number; scale: number }[],
): SyntheticTensor[] {
  return Array.from({ length: layers }, (_, l) => ({
    name: `model.layers.${l}.mlp.up_proj.weight`,
    shape: [size, size],
    dtype,
    fill: (out: Float32Array, start: number) => {
      for (let i = 0; i < out.length; i++) {
        let v = 0;
        for (const p of parts) v += p.scale * noise(p.seed * 1000 + l, start + i);
        out[i] = v;
      }
    },
  }));
}

/**
 * Three related bf16 checkpoints written fast (random bytes, no per-element arithmetic in JS beyond a
 * mask): `base`, `finetune` (a quarter of the elements moved by one ulp) and `twin` (every element
 * moved by 1/8 of its magnitude), each `layers` square matrices of `size`² in one model.safetensors.
 */
export function writeRelatedBf16(
  dir: string,
  layers: number,
  size: number,
): Record<'base' | 'finetune' | 'twin', string> {
  const names = ['base', 'finetune', 'twin'] as const;
  const header: Record<string, unknown> = {};
  const bytes = size * size * 2;
  for (let l = 0; l < layers; l++) {
    header[`model.layers.${l}.mlp.up_proj.weight`] = {
      dtype: 'BF16',
      shape: [size, size],
      data_offsets: [l * bytes, (l + 1) * bytes],
    };
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const lead = Buffer.alloc(8);
  lead.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fds = names.map((n) => {
    mkdirSync(join(dir, n), { recursive: true });
    const fd = openSync(join(dir, n, 'model.safetensors'), 'w');
    writeSync(fd, lead);
    writeSync(fd, json);
    return fd;
  });
  const piece = 1 << 21; // elements per write
  const base = new Uint16Array(piece);
  const other = new Uint16Array(piece);
  try {
    for (let done = 0; done < (layers * bytes) / 2; done += piece) {
      randomFillSync(base);
      // Keep sign and 7 mantissa bits; exponent fixed near 2^-6: values of magnitude 0.016–0.031, no NaN/inf.
      for (let i = 0; i < piece; i++) base[i] = (base[i]! & 0x807f) | 0x3c00;
      writeSync(fds[0]!, base);
      for (let i = 0; i < piece; i++) other[i] = (i * 2654435761) >>> 30 === 0 ? base[i]! ^ 1 : base[i]!;
      writeSync(fds[1]!, other);
      for (let i = 0; i < piece; i++) other[i] = base[i]! ^ 0x10;
      writeSync(fds[2]!, other);
    }
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  return { base: join(dir, 'base'), finetune: join(dir, 'finetune'), twin: join(dir, 'twin') };
}

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

/** The stored bytes of one tensor of a checkpoint. */
export function tensorBytes(entry: { file: string; offset: number; byteLength: number }): Buffer {
  const buf = Buffer.alloc(entry.byteLength);
  const fd = openSync(entry.file, 'r');
  try {
    readSync(fd, buf, 0, entry.byteLength, entry.offset);
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** Write a safetensors file from raw tensor bytes (for splicing checkpoints together). */
export function writeRawSafetensors(file: string, tensors: RawTensor[]): void {
  mkdirSync(dirname(file), { recursive: true });
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const lead = Buffer.alloc(8);
  lead.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeFileSync(file, Buffer.concat([lead, Buffer.from(json), ...tensors.map((t) => t.bytes)]));
}
