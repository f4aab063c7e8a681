import { mkdirSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import {
  DTYPE_CODE,
  eigenvaluesAbove,
  estimateRanks,
  halfTable,
  pairTolerance,
  runSegment,
  SUM_BB,
  SUM_DD,
  SUM_MB_MISMATCH,
  SUM_REF0,
} from '../../src/detectors/provenance/kernel.ts';
import { openCheckpoint, readSafetensorsHeader } from '../../src/detectors/provenance/safetensors.ts';
import { scanCheckpoints } from '../../src/detectors/provenance/scan.ts';
import { noise, type SyntheticTensor, toBf16, toF16, writeSafetensors } from './provenanceSynthetic.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'ptb-prov-'));

function tensor(
  name: string,
  shape: number[],
  dtype: SyntheticTensor['dtype'],
  seed: number,
  scale = 0.02,
): SyntheticTensor {
  return {
    name,
    shape,
    dtype,
    fill: (out, start) => {
      for (let i = 0; i < out.length; i++) out[i] = scale * noise(seed, start + i);
    },
  };
}

/** A raw safetensors file from a header object and a data length. */
function rawFile(path: string, header: unknown, dataBytes: number, lengthOverride?: bigint): void {
  const json = Buffer.from(JSON.stringify(header));
  const lead = Buffer.alloc(8);
  lead.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  writeFileSync(path, Buffer.concat([lead, json, Buffer.alloc(dataBytes)]));
}

async function userError(p: Promise<unknown>): Promise<UserError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return err as UserError;
  }
  throw new Error('expected a UserError');
}

describe('safetensors reader', () => {
  it('reads headers: dtype, shape, absolute offsets; index files map shards', async () => {
    const dir = tmp();
    writeSafetensors(join(dir, 'a.safetensors'), [
      tensor('x', [4, 8], 'BF16', 1),
      tensor('y', [3], 'F32', 2),
    ]);
    writeSafetensors(join(dir, 'b.safetensors'), [tensor('z', [2, 2], 'F16', 3)]);
    writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({
        metadata: {},
        weight_map: { x: 'a.safetensors', y: 'a.safetensors', z: 'b.safetensors' },
      }),
    );
    const header = await readSafetensorsHeader(join(dir, 'a.safetensors'));
    expect(header.metadata).toEqual({ format: 'pt' });
    const x = header.tensors.find((t) => t.name === 'x')!;
    expect(x).toMatchObject({
      dtype: 'BF16',
      shape: [4, 8],
      numel: 32,
      byteLength: 64,
      offset: header.dataStart,
    });
    expect(header.tensors.find((t) => t.name === 'y')!.offset).toBe(header.dataStart + 64);
    expect(header.dataStart % 8).toBe(0);

    const ckpt = await openCheckpoint(dir);
    expect([...ckpt.tensors.keys()]).toEqual(['x', 'y', 'z']);
    expect(ckpt.files).toHaveLength(2);
    expect(ckpt.parameters).toBe(32 + 3 + 4);
    expect(ckpt.dtypes).toEqual({ BF16: 32, F32: 3, F16: 4 });
  });

  it('names the file and the problem for corrupt or truncated files', async () => {
    const dir = tmp();
    const short = join(dir, 'short.safetensors');
    writeFileSync(short, Buffer.from([1, 2, 3]));
    expect((await userError(openCheckpoint(short))).message).toMatch(/short\.safetensors: only 3 bytes/);

    const huge = join(dir, 'huge.safetensors');
    rawFile(huge, { x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4, 1n << 40n);
    expect((await userError(openCheckpoint(huge))).message).toMatch(
      /huge\.safetensors: header length 1099511627776 does not fit/,
    );

    const badJson = join(dir, 'badjson.safetensors');
    const lead = Buffer.alloc(8);
    lead.writeBigUInt64LE(5n);
    writeFileSync(badJson, Buffer.concat([lead, Buffer.from('{"x":')]));
    expect((await userError(openCheckpoint(badJson))).message).toMatch(
      /badjson\.safetensors: header is not valid JSON/,
    );

    const truncated = join(dir, 'truncated.safetensors');
    writeSafetensors(truncated, [tensor('w', [64, 64], 'BF16', 1)]);
    truncateSync(truncated, readFileSync(truncated).length - 100);
    const err = await userError(openCheckpoint(truncated));
    expect(err.message).toMatch(/truncated\.safetensors: truncated: tensor w ends at data byte 8192/);
    expect(err.hint).toMatch(/re-save or re-download/);

    const wrongSize = join(dir, 'size.safetensors');
    rawFile(wrongSize, { w: { dtype: 'BF16', shape: [4, 4], data_offsets: [0, 30] } }, 32);
    expect((await userError(openCheckpoint(wrongSize))).message).toMatch(
      /should take 32 bytes but data_offsets span 30/,
    );

    const dtype = join(dir, 'dtype.safetensors');
    rawFile(dtype, { w: { dtype: 'Q4', shape: [4], data_offsets: [0, 4] } }, 4);
    expect((await userError(openCheckpoint(dtype))).message).toMatch(/unknown dtype "Q4"/);
  });

  it('rejects inconsistent shard sets', async () => {
    const dir = tmp();
    writeSafetensors(join(dir, 'a.safetensors'), [tensor('x', [2], 'F32', 1)]);
    writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { x: 'a.safetensors', y: 'gone.safetensors' } }),
    );
    expect((await userError(openCheckpoint(dir))).message).toMatch(
      /lists 2 shards; 1 missing: gone\.safetensors/,
    );
    writeFileSync(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { x: 'a.safetensors', y: 'a.safetensors' } }),
    );
    expect((await userError(openCheckpoint(dir))).message).toMatch(
      /maps y to a\.safetensors, but that shard does not contain it/,
    );

    const dup = tmp();
    writeSafetensors(join(dup, 'a.safetensors'), [tensor('x', [2], 'F32', 1)]);
    writeSafetensors(join(dup, 'b.safetensors'), [tensor('x', [2], 'F32', 1)]);
    expect((await userError(openCheckpoint(dup))).message).toMatch(
      /tensor x is in both .*a\.safetensors and .*b\.safetensors/,
    );

    const empty = tmp();
    writeFileSync(join(empty, 'pytorch_model.bin'), 'x');
    const err = await userError(openCheckpoint(empty));
    // A pickle is read statically; this one is no zip archive at all.
    expect(err.message).toMatch(/pytorch_model\.bin: not a zip archive/);
    expect(err.hint).toMatch(/safe_serialization/);
    expect((await userError(openCheckpoint(join(empty, 'nope')))).message).toMatch(/does not exist/);
  });
});

describe('provenance kernel', () => {
  it('decodes bf16 and fp16 exactly as the writers encode them', () => {
    const half = halfTable();
    for (const x of [0, 1, -2.5, 0.0123, 65504, 6.1e-5, 3e-7, -1e-8]) {
      expect(Math.abs(half[toF16(x)]! - x)).toBeLessThanOrEqual(Math.max(Math.abs(x) * 2 ** -11, 2 ** -25));
      const bits = new Uint32Array([toBf16(x) << 16]);
      expect(Math.abs(new Float32Array(bits.buffer)[0]! - x)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -8);
    }
    expect(half[toF16(1 / 3)]).toBe(0.333251953125); // round to nearest
    expect(half[toF16(1e6)]).toBe(Number.POSITIVE_INFINITY);
  });

  it('equal dtypes compare exactly; mixed dtypes within the coarser rounding', () => {
    expect(pairTolerance(DTYPE_CODE.BF16!, DTYPE_CODE.BF16!)).toEqual([0, 0]);
    const [rel2] = pairTolerance(DTYPE_CODE.BF16!, DTYPE_CODE.F32!);
    expect(Math.sqrt(rel2)).toBeCloseTo(2 ** -8, 6);
    const [rel16, abs16] = pairTolerance(DTYPE_CODE.F16!, DTYPE_CODE.F32!);
    expect(Math.sqrt(rel16)).toBeCloseTo(2 ** -11, 8);
    expect(Math.sqrt(abs16)).toBeCloseTo(2 ** -25, 12);

    // One tensor as fp32, its bf16 rounding, and a bf16 copy moved by one ulp in 10 places.
    const n = 5000;
    const values = Float32Array.from({ length: n }, (_, i) => 0.05 * noise(7, i));
    const f32 = new SharedArrayBuffer(n * 4);
    new Float32Array(f32).set(values);
    const bf = new SharedArrayBuffer(n * 2);
    const bfBits = new Uint16Array(bf);
    for (let i = 0; i < n; i++) bfBits[i] = toBf16(values[i]!);
    const moved = new SharedArrayBuffer(n * 2);
    const movedBits = new Uint16Array(moved);
    movedBits.set(bfBits);
    for (let k = 0; k < 10; k++) movedBits[k * 97] = movedBits[k * 97]! ^ 1;

    const run = (a: [number, SharedArrayBuffer, number], b: [number, SharedArrayBuffer, number]) =>
      runSegment({
        dtypes: [a[0], b[0]],
        counts: [n, n],
        widths: [a[2], b[2]],
        buffers: [a[1], b[1]],
        rows: null,
        sketch: null,
      }).sums;
    const BF = DTYPE_CODE.BF16!;
    const F32 = DTYPE_CODE.F32!;
    expect(run([BF, bf, 2], [F32, f32, 4])[SUM_MB_MISMATCH]).toBe(0); // bf16 rounding of fp32: equal
    expect(run([BF, moved, 2], [BF, bf, 2])[SUM_MB_MISMATCH]).toBe(10); // same dtype: exact
    const same = run([BF, bf, 2], [BF, bf, 2]);
    expect(same[SUM_DD]).toBe(0);
    expect(same[SUM_MB_MISMATCH]).toBe(0);
    expect(same[SUM_BB]).toBeCloseTo(
      values.reduce((acc, v) => acc + v * v, 0),
      3,
    );
  });

  it('sums model, base and reference deltas in one pass, also across block boundaries', () => {
    const n = 40_000; // more than one 16k block
    const make = (f: (i: number) => number) => {
      const buf = new SharedArrayBuffer(n * 4);
      const view = new Float32Array(buf);
      for (let i = 0; i < n; i++) view[i] = f(i);
      return buf;
    };
    const b = (i: number) => Math.fround(0.02 * noise(1, i));
    const e = (i: number) => Math.fround(0.01 * noise(2, i));
    const g = (i: number) => Math.fround(0.001 * noise(3, i));
    const base = make(b);
    const ref = make((i) => Math.fround(b(i) + e(i)));
    const model = make((i) => Math.fround(b(i) + e(i) + g(i)));
    const F32 = DTYPE_CODE.F32!;
    const { sums } = runSegment({
      dtypes: [F32, F32, F32],
      counts: [n, n, n],
      widths: [4, 4, 4],
      buffers: [model, base, ref],
      rows: null,
      sketch: null,
    });
    let dd = 0;
    let ee = 0;
    let de = 0;
    let ff = 0;
    const M = new Float32Array(model);
    const B = new Float32Array(base);
    const R = new Float32Array(ref);
    for (let i = 0; i < n; i++) {
      dd += (M[i]! - B[i]!) ** 2;
      ee += (R[i]! - B[i]!) ** 2;
      de += (M[i]! - B[i]!) * (R[i]! - B[i]!);
      ff += (M[i]! - R[i]!) ** 2;
    }
    expect(sums[SUM_DD]).toBeCloseTo(dd, 10);
    expect(sums[SUM_REF0 + 1]).toBeCloseTo(ff, 10);
    expect(sums[SUM_REF0 + 3]).toBeCloseTo(ee, 10);
    expect(sums[SUM_REF0 + 4]).toBeCloseTo(de, 10);
    expect(sums[SUM_REF0 + 2]).toBeGreaterThan(n * 0.9); // model differs from the reference nearly everywhere
  });

  it('counts eigenvalues above a threshold exactly (tridiagonalisation + Sturm count)', () => {
    const n = 40;
    // Q diag(λ) Qᵀ with Q from Gram–Schmidt on pseudo-random vectors.
    const q: Float64Array[] = [];
    for (let k = 0; k < n; k++) {
      const v = Float64Array.from({ length: n }, (_, i) => noise(100 + k, i));
      for (const u of q) {
        const dot = v.reduce((s, x, i) => s + x * u[i]!, 0);
        for (let i = 0; i < n; i++) v[i] = v[i]! - dot * u[i]!;
      }
      const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      q.push(v.map((x) => x / norm));
    }
    const lambda = Array.from({ length: n }, (_, k) => (k < 7 ? 100 / (k + 1) : 1e-6 * (k + 1)));
    const build = () => {
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++)
          a[i * n + j] = lambda.reduce((s, l, k) => s + l * q[k]![i]! * q[k]![j]!, 0);
      return a;
    };
    expect(eigenvaluesAbove(build(), n, 1e-3)).toBe(7);
    expect(eigenvaluesAbove(build(), n, 30)).toBe(3); // 100, 50, 33.3
    expect(eigenvaluesAbove(build(), n, 1e-9)).toBe(n);
    expect(eigenvaluesAbove(new Float64Array(n * n), n, 1e-12)).toBe(0);
  });

  it('estimates the rank of a low-rank delta under bf16 rounding noise, and full rank for a dense one', () => {
    const rows = 64;
    const cols = 512;
    const rank = 6;
    const a = Array.from({ length: rank }, (_, k) =>
      Float64Array.from({ length: cols }, (_, c) => noise(10 + k, c)),
    );
    const round = (x: number) => {
      const bits = new Uint32Array([toBf16(x) << 16]);
      return new Float32Array(bits.buffer)[0]!;
    };
    const base: Float32Array[] = [];
    const lowRank: Float32Array[] = [];
    const dense: Float32Array[] = [];
    const noiseEnergy: number[] = [];
    for (let r = 0; r < rows; r++) {
      const b = Float32Array.from({ length: cols }, (_, c) => round(0.02 * noise(1, r * cols + c)));
      const coef = Array.from({ length: rank }, (_, k) => noise(20 + k, r));
      base.push(b);
      lowRank.push(b.map((v, c) => round(v + 0.002 * coef.reduce((s, x, k) => s + x * a[k]![c]!, 0))));
      dense.push(b.map((v, c) => round(v + 0.002 * noise(3, r * cols + c))));
      // ulp of a bf16 value near 0.02 is 2^-13; noise = Σ ulp²/12
      noiseEnergy.push(
        lowRank[r]!.reduce(
          (s, v) => s + (2 ** (Math.floor(Math.log2(Math.abs(v) || 1e-30)) - 7)) ** 2 / 12,
          0,
        ),
      );
    }
    const [, fromBaseLow] = estimateRanks({ rows: [lowRank, base], noise: noiseEnergy });
    expect(fromBaseLow!.rank).toBe(rank);
    const [, fromBaseDense] = estimateRanks({ rows: [dense, base], noise: noiseEnergy });
    expect(fromBaseDense!.rank).toBeGreaterThan(rows / 2);
    const [, none] = estimateRanks({ rows: [base, base], noise: noiseEnergy });
    expect(none!.rank).toBe(0);
  });
});

describe('streaming scan', () => {
  it('names the file when it shrinks between reading its header and its data', async () => {
    const dir = tmp();
    const layers = [tensor('a', [64, 64], 'BF16', 1), tensor('b', [64, 64], 'BF16', 2)];
    writeSafetensors(join(dir, 'base', 'model.safetensors'), layers);
    writeSafetensors(join(dir, 'model', 'model.safetensors'), layers);
    for (const threads of [0, 1]) {
      const model = await openCheckpoint(join(dir, 'model'));
      const base = await openCheckpoint(join(dir, 'base'));
      truncateSync(join(dir, 'model', 'model.safetensors'), 4096);
      const err = await userError(scanCheckpoints(model, base, [], { threads }));
      expect(err.message).toMatch(/model\/model\.safetensors: unexpected end of file/);
      writeSafetensors(join(dir, 'model', 'model.safetensors'), layers);
    }
  });

  it('gives identical sums whatever the thread count, and the same verdict-relevant sums whatever the chunk size', async () => {
    const dir = tmp();
    const layers = [
      tensor('emb', [300, 48], 'BF16', 1),
      tensor('w', [96, 80], 'BF16', 2),
      tensor('norm', [48], 'BF16', 3, 1),
    ];
    const moved = (t: SyntheticTensor, seed: number): SyntheticTensor => ({
      ...t,
      fill: (out, start) => {
        t.fill(out, start);
        for (let i = 0; i < out.length; i++) out[i] = out[i]! + 0.002 * noise(seed, start + i);
      },
    });
    writeSafetensors(join(dir, 'base', 'model.safetensors'), layers);
    writeSafetensors(
      join(dir, 'model', 'model.safetensors'),
      layers.map((t) => moved(t, 9)),
    );
    mkdirSync(join(dir, 'ref'), { recursive: true });
    writeSafetensors(
      join(dir, 'ref', 'model.safetensors'),
      layers.map((t) => moved(t, 8)),
    );
    const [model, base, ref] = await Promise.all(
      ['model', 'base', 'ref'].map((d) => openCheckpoint(join(dir, d))),
    );
    const plain = await scanCheckpoints(model!, base!, [ref!], { threads: 0 });
    const workers = await scanCheckpoints(model!, base!, [ref!], { threads: 2 });
    const strip = (r: typeof plain) => JSON.stringify(r.tensors);
    expect(strip(workers)).toBe(strip(plain));
    // 4 KiB chunks: emb splits into many row-aligned segments.
    const small = await scanCheckpoints(model!, base!, [ref!], { threads: 2, chunkBytes: 4096 });
    for (const [i, t] of small.tensors.entries()) {
      const p = plain.tensors[i]!;
      expect(t.base!.mismatched).toBe(p.base!.mismatched);
      expect(t.base!.distanceSquares).toBeCloseTo(p.base!.distanceSquares, 12);
      expect(t.references[0]!.deltaDot).toBeCloseTo(p.references[0]!.deltaDot, 12);
      expect(t.base!.rank).toBe(p.base!.rank);
    }
    expect(plain.tensors[0]!.rankSample).toEqual({ rows: 64, cols: 48 });
    expect(plain.tensors[2]!.rankSample).toBeNull(); // 1-D
    expect(plain.bytesRead).toBe(3 * (300 * 48 + 96 * 80 + 48) * 2);
  });
});
