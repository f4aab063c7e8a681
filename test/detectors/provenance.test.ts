import { randomFillSync } from 'node:crypto';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AlignedReport } from '../../src/detectors/provenance/provenance.ts';
import { compareCheckpoints } from '../../src/detectors/provenance/provenance.ts';
import { openCheckpoint } from '../../src/detectors/provenance/safetensors.ts';
import { tinyModelTimeoutMs } from '../helpers/tinyModel.ts';
import {
  ensureProvenanceFixtures,
  type FixtureCase,
  tensorBytes,
  writeRawSafetensors,
} from './provenanceHelpers.ts';

/**
 * Verdicts on tiny Qwen3-shaped checkpoints of known lineage (python/make_provenance_fixtures.py):
 * the base, its re-save, the agent's own fine-tune (real Adam steps), a merged LoRA, the instruct
 * twin as is / renamed / re-saved in fp32 and fp16, a fine-tune of the twin, an unrelated model.
 */

let dir = '';
let cases: Record<string, FixtureCase> = {};
const reports = new Map<string, AlignedReport>();

async function compare(model: string, references = [join(dir, 'twin')], base = join(dir, 'base')) {
  return compareCheckpoints({ base, model, references });
}

beforeAll(async () => {
  ({ dir, cases } = await ensureProvenanceFixtures());
  for (const name of Object.keys(cases)) reports.set(name, await compare(join(dir, name)));
}, tinyModelTimeoutMs);

describe('provenance verdicts on checkpoints of known lineage', () => {
  it('gives every fixture its expected verdict and reference', () => {
    const got = Object.fromEntries(
      [...reports].map(([name, r]) => [name, { verdict: r.verdict, reference: r.reference }]),
    );
    const want = Object.fromEntries(
      Object.entries(cases).map(([name, c]) => [
        name,
        { verdict: c.verdict, reference: c.reference && join(dir, c.reference) },
      ]),
    );
    expect(got).toEqual(want);
    expect(Object.keys(cases)).toEqual(
      expect.arrayContaining([
        'base',
        'finetune',
        'lora',
        'twin',
        'twin-renamed',
        'twin-fp32',
        'twin-fp16',
        'twin-finetune',
        'unrelated',
      ]),
    );
  });

  it('backs each verdict with statistics that separate the cases', () => {
    const ft = reports.get('finetune')!;
    expect(ft.summary.base!.relativeDelta).toBeGreaterThan(0.01);
    expect(ft.summary.base!.relativeDelta).toBeLessThan(0.3);
    expect(Math.abs(ft.summary.references[0]!.cosine!)).toBeLessThan(0.1);
    expect(ft.summary.references[0]!.derivedFraction).toBe(0);
    // Lineage: every matrix far above its null; the twin's delta: not carried.
    expect(ft.lineage.foreignBlocks).toEqual([]);
    expect(ft.lineage.minZ).toBeGreaterThan(ft.lineage.zCritical);
    expect(Math.abs(ft.tests[0]!.global!.alpha)).toBeLessThan(0.05);
    expect(ft.tests[0]!.decision).toBe('none');

    const tft = reports.get('twin-finetune')!;
    const ref = tft.summary.references[0]!;
    expect(ref.cosine).toBeGreaterThan(0.8);
    expect(ref.projection).toBeGreaterThan(0.8);
    expect(ref.relativeDistance).toBeLessThan(tft.summary.base!.relativeDelta / 2);
    expect(tft.reason).toMatch(/carries α = 0\.\d+ of .*twin's delta/);
    expect(tft.tests[0]!.global!.alpha).toBeGreaterThan(0.8);
    expect(tft.tests[0]!.global!.z).toBeGreaterThan(tft.tests[0]!.zCritical);

    const unrelated = reports.get('unrelated')!;
    expect(unrelated.summary.base!.relativeDelta).toBeGreaterThan(1);
    expect(unrelated.summary.base!.coverage).toBe(1);
    expect(unrelated.reason).toMatch(/not derived from the base model/);
    expect(unrelated.lineage.derivedShare).toBe(0);
    expect(Math.max(...unrelated.lineage.tensors.map((t) => Math.abs(t.z)))).toBeLessThan(
      unrelated.lineage.zCritical,
    );

    const unchanged = reports.get('base')!;
    expect(unchanged.summary.base!.tensorsEqual).toBe(unchanged.tensors.length);
    expect(unchanged.tensors.every((t) => t.base!.equal && t.base!.relativeDelta === 0)).toBe(true);
  });

  it('recognises the twin through a re-save in fp32 or fp16, renamed keys, an untied lm_head and an edited config', () => {
    for (const name of ['twin-fp32', 'twin-fp16']) {
      const r = reports.get(name)!;
      expect(r.summary.references[0]!.tensorsEqual).toBe(r.tensors.length);
      expect(r.notes.join('\n')).toMatch(/dtypes differ/);
      expect(r.tensors.every((t) => !t.base!.equal)).toBe(true);
    }
    const renamed = reports.get('twin-renamed')!;
    const byName = new Map(renamed.tensors.map((t) => [t.name, t]));
    expect(byName.get('model.final_norm.weight')!.references[0]).toMatchObject({
      tensor: 'model.norm.weight',
      matchedBy: 'content',
      equal: true,
    });
    expect(byName.get('lm_head.weight')!.references[0]).toMatchObject({
      tensor: 'model.embed_tokens.weight',
      matchedBy: 'content',
      equal: true,
    });
    expect(renamed.notes.join('\n')).toMatch(
      /lm_head\.weight .*matched by content to model\.embed_tokens\.weight \(tied/,
    );
  });

  it('reports the low-rank signature of a merged LoRA and not of a full fine-tune', () => {
    const lora = reports.get('lora')!;
    expect(lora.lora).toMatchObject({ parent: 'base', lowRank: true });
    expect(lora.notes.join('\n')).toMatch(/delta from the base is low-rank \(LoRA merge\)/);
    const projections = lora.tensors.filter((t) => /proj\.weight$/.test(t.name));
    expect(projections.length).toBe(14);
    for (const t of projections) {
      expect(t.base!.loraRankEstimate).toBe(8);
    }
    // Untouched tensors of the LoRA model are byte-identical to the base.
    expect(lora.tensors.find((t) => t.name === 'model.embed_tokens.weight')!.base!.equal).toBe(true);

    const ft = reports.get('finetune')!;
    expect(ft.lora!.lowRank).toBe(false);
    expect(ft.notes.join('\n')).not.toMatch(/low-rank/);
    expect(ft.lora!.medianRank).toBeGreaterThan(32);
  });

  it('picks the matching reference among several and ignores unrelated ones', async () => {
    const r = await compare(join(dir, 'twin-finetune'), [join(dir, 'unrelated'), join(dir, 'twin')]);
    expect(r.verdict).toBe('finetuned-from-reference');
    expect(r.reference).toBe(join(dir, 'twin'));
    expect(r.summary.references.map((x) => x.path)).toEqual([join(dir, 'unrelated'), join(dir, 'twin')]);
    const own = await compare(join(dir, 'finetune'), [join(dir, 'unrelated')]);
    expect(own.verdict).toBe('finetuned-from-base');
    const none = await compare(join(dir, 'finetune'), []);
    expect(none.verdict).toBe('finetuned-from-base');
    expect(none.summary.references).toEqual([]);
  });

  it('flags a model that splices one matrix of the twin into the base', async () => {
    const base = await openCheckpoint(join(dir, 'base'));
    const twin = await openCheckpoint(join(dir, 'twin'));
    const spliced = join(mkdtempSync(join(tmpdir(), 'ptb-prov-')), 'spliced');
    const stolen = 'model.layers.1.mlp.down_proj.weight';
    writeRawSafetensors(
      join(spliced, 'model.safetensors'),
      [...base.tensors.values()].map((t) => {
        const from = t.name === stolen ? twin.tensors.get(stolen)! : t;
        return { name: t.name, dtype: from.dtype, shape: from.shape, bytes: tensorBytes(from) };
      }),
    );
    const r = await compare(spliced);
    expect(r.verdict).toBe('finetuned-from-reference');
    expect(r.summary.references[0]!.copiedTensors).toBe(1);
    expect(r.reason).toMatch(/1 of its matrices equal/);
    expect(r.summary.base!.tensorsEqual).toBe(r.tensors.length - 1);
  });

  it('compares the shared rows of a resized embedding and stays finetuned-from-base', async () => {
    const base = await openCheckpoint(join(dir, 'base'));
    const resized = join(mkdtempSync(join(tmpdir(), 'ptb-prov-')), 'resized');
    writeRawSafetensors(
      join(resized, 'model.safetensors'),
      [...base.tensors.values()].map((t) => {
        if (t.name !== 'model.embed_tokens.weight')
          return { name: t.name, dtype: t.dtype, shape: t.shape, bytes: tensorBytes(t) };
        const extra = Buffer.alloc(8 * t.shape[1]! * 2);
        randomFillSync(extra);
        const bits = new Uint16Array(extra.buffer, extra.byteOffset, extra.length / 2);
        for (let i = 0; i < bits.length; i++) bits[i] = (bits[i]! & 0x807f) | 0x3c00;
        return {
          name: t.name,
          dtype: t.dtype,
          shape: [t.shape[0]! + 8, t.shape[1]!],
          bytes: Buffer.concat([tensorBytes(t), extra]),
        };
      }),
    );
    const r = await compare(resized);
    expect(r.verdict).toBe('finetuned-from-base');
    const emb = r.tensors.find((t) => t.name === 'model.embed_tokens.weight')!;
    expect(emb.base).toMatchObject({ matchedBy: 'rows', mismatched: 0, equal: false, relativeDelta: 0 });
    expect(r.summary.base!.coverage).toBeGreaterThan(0.95);
    expect(r.summary.base!.coverage).toBeLessThan(1);
    expect(r.notes.join('\n')).toMatch(/compared the shared leading rows/);
  });

  it('undoes relabelled MLP units, head groups and residual dimensions before comparing', async () => {
    const twin = await openCheckpoint(join(dir, 'twin'));
    // A function-preserving relabelling of the twin (config: hidden 64, MLP 192, 4 heads in 2 groups of 16 dims).
    const reversed = (n: number) => Array.from({ length: n }, (_, i) => n - 1 - i);
    const rotate = (n: number, k: number) => Array.from({ length: n }, (_, i) => (i + k) % n);
    const units = rotate(192, 17);
    const groups = [1, 0];
    const headRows = (order: number[], per: number) =>
      order.flatMap((g) => Array.from({ length: per * 16 }, (_, r) => g * per * 16 + r));
    const hidden = reversed(64);
    const permute = (
      bytes: Buffer,
      shape: number[],
      width: number,
      rows: number[] | null,
      cols: number[] | null,
    ) => {
      const [r, c] = shape.length === 2 ? [shape[0]!, shape[1]!] : [shape[0]!, 1];
      const out = Buffer.alloc(bytes.length);
      for (let i = 0; i < r; i++)
        for (let j = 0; j < c; j++) {
          const from = ((rows ? rows[i]! : i) * c + (cols ? cols[j]! : j)) * width;
          bytes.copy(out, (i * c + j) * width, from, from + width);
        }
      return out;
    };
    const relabel = (withHidden: boolean) => {
      const out = join(mkdtempSync(join(tmpdir(), 'ptb-prov-')), 'relabelled');
      writeRawSafetensors(
        join(out, 'model.safetensors'),
        [...twin.tensors.values()].map((t) => {
          const w = t.byteLength / t.numel;
          let rows: number[] | null = null;
          let cols: number[] | null = null;
          const h = withHidden ? hidden : null;
          if (/gate_proj|up_proj/.test(t.name)) [rows, cols] = [units, h];
          else if (/down_proj/.test(t.name)) [rows, cols] = [h, units];
          else if (/q_proj/.test(t.name)) [rows, cols] = [headRows(groups, 2), h];
          else if (/[kv]_proj/.test(t.name)) [rows, cols] = [headRows(groups, 1), h];
          else if (/o_proj/.test(t.name)) [rows, cols] = [h, headRows(groups, 2)];
          else if (/embed_tokens/.test(t.name)) cols = h;
          else if (/layernorm|model\.norm/.test(t.name)) rows = h;
          return {
            name: t.name,
            dtype: t.dtype,
            shape: t.shape,
            bytes: permute(tensorBytes(t), t.shape, w, rows, cols),
          };
        }),
      );
      cpSync(join(dir, 'twin', 'config.json'), join(out, 'config.json'));
      return out;
    };
    for (const withHidden of [false, true]) {
      const r = await compare(relabel(withHidden));
      expect(r.verdict).toBe('matches-reference');
      expect(r.alignment!.permutations.filter((p) => p.moved > 0).map((p) => p.what)).toEqual(
        expect.arrayContaining([
          'layer 0 MLP units',
          'layer 1 attention head groups',
          ...(withHidden ? ['residual stream'] : []),
        ]),
      );
      expect(r.reason).toMatch(/after relabelling .* to the base's order/);
    }
    // An unrelated model is not made to look related by trying relabellings: no match beats the null.
    const unrelated = reports.get('unrelated')!;
    expect(unrelated.verdict).toBe('unrelated');
    expect(unrelated.alignment).toBeNull();
  });
});
