import { closeSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { UserError } from '../../core/errors.ts';
import { ensureDir } from '../../core/paths.ts';
import { openCheckpoint, readSafetensorsHeader } from './safetensors.ts';
import { type ScanOptions, SKETCH_SEED, SKETCH_WIDTH, scanCheckpoints } from './scan.ts';
import type { ReferenceTensor } from './statistics.ts';

/**
 * A reference model's compact signature: for every tensor of the base, the CountSketch of the
 * reference's delta e = r − b (SKETCH_WIDTH float32 buckets, the same seeded hash as the audit's
 * sketch of the model's delta) and three exact scalars (‖e‖², ⟨e, b⟩, ‖b‖²). Made once from the
 * reference's weights; every later audit runs the two-reference test from it without them.
 *
 * Size: 4 bytes × 4096 buckets per tensor (≈ 5 MB for Qwen3-1.7B's 311 tensors), whatever the model
 * size. Power: the sketch estimates ⟨d, e⟩ per tensor with a spread of about ‖d‖·‖e‖/√4096, so the
 * share α of e a model carries is known to ±(‖d‖/‖e‖)/64 per tensor and to that over √(tensors)
 * for the whole model; the audit's null distribution (shifted buckets) measures this spread on
 * every audit, so the z-scores already account for it.
 *
 * Stored as a safetensors file: one F32 tensor per base tensor (the sketch), the scalars and the
 * identity (reference repo and revision, base tensors, seed) in the metadata.
 */
export const SIGNATURE_FORMAT = 'ptb-provenance-signature';
export const SIGNATURE_VERSION = 2;

export interface SignatureTensor {
  /** Base tensor name. */
  name: string;
  n: number;
  ee: number;
  eb: number;
  bb: number;
  width: number;
  exact: boolean;
  keepShift: number;
  sketch: Float32Array;
}

export interface SignatureIdentity {
  format: typeof SIGNATURE_FORMAT;
  version: number;
  seed: number;
  width: number;
  reference: { repo: string | null; revision: string | null; path: string | null };
  base: { model: string | null; tensors: number; parameters: number };
  createdAt: string;
}

export interface Signature {
  identity: SignatureIdentity;
  tensors: Map<string, SignatureTensor>;
  bytes: number;
}

/** Sign a reference against a base: one streaming scan of both. */
export async function signReference(o: {
  reference: string;
  base: string;
  referenceId?: { repo: string | null; revision: string | null };
  baseModel?: string | null;
  scan?: ScanOptions;
}): Promise<Signature> {
  const ref = await openCheckpoint(o.reference);
  const base = await openCheckpoint(o.base);
  const width = o.scan?.sketchWidth ?? SKETCH_WIDTH;
  const scan = await scanCheckpoints(ref, base, [], { rankRows: 0, ...o.scan, sketchWidth: width });
  const tensors = new Map<string, SignatureTensor>();
  for (const t of scan.tensors) {
    if (!t.base || !t.moments || !t.sketch) continue;
    const bb = t.base.otherSquares;
    const ee = t.base.distanceSquares;
    const rb = (t.moments.mm + bb - ee) / 2;
    const name = t.base.counterpart.entry.name;
    tensors.set(name, {
      name,
      n: t.base.counterpart.compared,
      ee,
      eb: rb - bb,
      bb,
      width: t.sketch.width,
      exact: t.sketch.exact,
      keepShift: t.sketch.keepShift,
      sketch: Float32Array.from(t.sketch.d),
    });
  }
  if (tensors.size === 0) {
    throw new UserError(
      `${o.reference} shares no float tensor with the base ${o.base}`,
      'the reference is not of the base model’s architecture',
    );
  }
  return {
    identity: {
      format: SIGNATURE_FORMAT,
      version: SIGNATURE_VERSION,
      seed: SKETCH_SEED,
      width,
      reference: {
        repo: o.referenceId?.repo ?? null,
        revision: o.referenceId?.revision ?? null,
        path: o.reference,
      },
      base: { model: o.baseModel ?? null, tensors: base.tensors.size, parameters: base.parameters },
      createdAt: new Date().toISOString(),
    },
    tensors,
    bytes: [...tensors.values()].reduce((a, t) => a + 4 * t.width, 0),
  };
}

/** Write a signature atomically (temp file + rename). */
export function writeSignature(path: string, sig: Signature): void {
  const entries = [...sig.tensors.values()];
  const header: Record<string, unknown> = {
    __metadata__: {
      identity: JSON.stringify(sig.identity),
      scalars: JSON.stringify(
        Object.fromEntries(
          entries.map((t) => [
            t.name,
            { n: t.n, ee: t.ee, eb: t.eb, bb: t.bb, exact: t.exact, keepShift: t.keepShift },
          ]),
        ),
      ),
    },
  };
  let offset = 0;
  for (const t of entries) {
    header[t.name] = { dtype: 'F32', shape: [t.width], data_offsets: [offset, offset + 4 * t.width] };
    offset += 4 * t.width;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const body = Buffer.alloc(offset);
  let at = 0;
  for (const t of entries) {
    Buffer.from(t.sketch.buffer, t.sketch.byteOffset, t.sketch.byteLength).copy(body, at);
    at += 4 * t.width;
  }
  ensureDir(dirname(path));
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    for (const buf of [head, Buffer.from(json), body]) {
      let done = 0;
      while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

const IdentitySchemaKeys = ['format', 'version', 'seed', 'width', 'reference', 'base'] as const;

/** Read a signature; a UserError names what is wrong with a broken or foreign file. */
export async function readSignature(path: string): Promise<Signature> {
  const header = await readSafetensorsHeader(path);
  let identity: SignatureIdentity;
  let scalars: Record<
    string,
    { n: number; ee: number; eb: number; bb: number; exact: boolean; keepShift: number }
  >;
  try {
    identity = JSON.parse(header.metadata.identity ?? 'null');
    scalars = JSON.parse(header.metadata.scalars ?? 'null');
  } catch {
    throw new UserError(
      `${path}: not a ptb provenance signature (bad metadata)`,
      'delete it; it is made again',
    );
  }
  if (
    !identity ||
    identity.format !== SIGNATURE_FORMAT ||
    !IdentitySchemaKeys.every((k) => k in identity) ||
    !scalars
  ) {
    throw new UserError(`${path}: not a ptb provenance signature`, 'delete it; it is made again');
  }
  if (identity.version !== SIGNATURE_VERSION || identity.seed !== SKETCH_SEED) {
    throw new UserError(
      `${path}: signature version ${identity.version} / seed ${identity.seed}, this ptb needs ${SIGNATURE_VERSION} / ${SKETCH_SEED}`,
      'sign the reference again: ptb provenance --base B --reference R --write-signature FILE (an audit with the weights does it too)',
    );
  }
  const fd = openSync(path, 'r');
  const tensors = new Map<string, SignatureTensor>();
  let bytes = 0;
  try {
    for (const e of header.tensors) {
      const s = scalars[e.name];
      if (!s || e.dtype !== 'F32')
        throw new UserError(`${path}: tensor ${e.name} has no scalars`, 'delete it');
      const buf = Buffer.alloc(e.byteLength);
      readSync(fd, buf, 0, e.byteLength, e.offset);
      const sketch = new Float32Array(buf.buffer, buf.byteOffset, e.numel);
      tensors.set(e.name, { name: e.name, ...s, width: e.numel, sketch });
      bytes += e.byteLength;
    }
  } finally {
    closeSync(fd);
  }
  return { identity, tensors, bytes };
}

/**
 * The reference as the two-reference test reads it, for one model tensor whose base counterpart is
 * `baseName` with ‖b‖² = `bb`: null when the signature lacks the tensor; a UserError when the
 * signature was made against another base (its ‖b‖² differs).
 */
export function signatureTensor(
  sig: Signature,
  baseName: string,
  bb: number,
  sketch: { width: number; keepShift: number },
): ReferenceTensor | null {
  const t = sig.tensors.get(baseName);
  if (!t) return null;
  if (t.width !== sketch.width || t.keepShift !== sketch.keepShift) return null;
  if (Math.abs(t.bb - bb) > 1e-6 * Math.max(1, Math.abs(bb))) {
    throw new UserError(
      `the signature of ${sig.identity.reference.repo ?? sig.identity.reference.path} was made against another base model (${baseName} differs)`,
      'sign the reference against this base again',
    );
  }
  return { ee: t.ee, eb: t.eb, bb: t.bb, de: null, sketch: t.sketch };
}
