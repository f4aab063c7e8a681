import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROVENANCE_VERDICTS } from '../../src/detectors/provenance/verdict.ts';
import { ensureProvenanceFixtures } from '../detectors/provenanceHelpers.ts';
import { runCli } from '../helpers/runCli.ts';
import { tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

let dir = '';

beforeAll(async () => {
  ({ dir } = await ensureProvenanceFixtures());
}, tinyModelTimeoutMs);

describe('ptb provenance', () => {
  it('--json prints one object: verdict, reference, summaries and per-tensor statistics', async () => {
    const run = await runCli([
      'provenance',
      '--base',
      join(dir, 'base'),
      '--model',
      join(dir, 'twin-finetune'),
      '--reference',
      join(dir, 'unrelated'),
      '--reference',
      join(dir, 'twin'),
      '--json',
    ]);
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const report = JSON.parse(lines[0]!);
    expect(PROVENANCE_VERDICTS).toContain(report.verdict);
    expect(report).toMatchObject({ verdict: 'finetuned-from-reference', reference: join(dir, 'twin') });
    expect(report.reason).toEqual(expect.any(String));
    expect(report.summary.references.map((r: { path: string }) => r.path)).toEqual([
      join(dir, 'unrelated'),
      join(dir, 'twin'),
    ]);
    expect(report.model).toMatchObject({ path: join(dir, 'twin-finetune'), files: 1, tensors: 24 });
    expect(report.base).toMatchObject({ files: 2, dtypes: { BF16: expect.any(Number) } });
    const q = report.tensors.find(
      (t: { name: string }) => t.name === 'model.layers.0.self_attn.q_proj.weight',
    );
    expect(q).toMatchObject({
      shape: [64, 64],
      dtype: 'BF16',
      base: { tensor: 'model.layers.0.self_attn.q_proj.weight', matchedBy: 'name', equal: false },
      rankSample: { rows: 64, cols: 64 },
    });
    expect(q.base.relativeDelta).toBeGreaterThan(0);
    expect(q.base.loraRankEstimate).toBeNull(); // ranked against the nearest participant only: the twin
    expect(q.references[1].loraRankEstimate).toBeGreaterThan(32);
    expect(q.references[1].cosine).toBeGreaterThan(0.8);
    expect(q.references[1].projection).toBeGreaterThan(0.8);
    expect(q.references[0].cosine).toBeLessThan(0.3);
    expect(report.scan.bytesRead).toBeGreaterThan(0);
    expect(run.stderr).toMatch(/provenance/); // progress goes to stderr, never into the JSON
  });

  it('prints a readable summary, with every tensor on request', async () => {
    const run = await runCli([
      'provenance',
      '--base',
      join(dir, 'base'),
      '--model',
      join(dir, 'lora'),
      '--tensors',
      '--threads',
      '0',
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^verdict: finetuned-from-base\n/);
    expect(run.stdout).toMatch(/note: delta from the base is low-rank \(LoRA merge\)/);
    expect(run.stdout).toMatch(/model\.layers\.1\.mlp\.down_proj\.weight BF16\[64,192\] base:[0-9.]+ rank=8/);
    expect(run.stdout).toMatch(/model\.embed_tokens\.weight BF16\[512,64\] base:equal/);
    expect(run.stdout).toMatch(/read .* in .* s \(\d+ MB\/s, 0 threads\)/);
  });

  it('fails with the file named and a next step for a corrupt checkpoint, and on bad flags', async () => {
    const bad = mkdtempSync(join(tmpdir(), 'ptb-prov-cli-'));
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(1n << 33n);
    writeFileSync(join(bad, 'model.safetensors'), Buffer.concat([header, Buffer.from('{}')]));
    const run = await runCli(['provenance', '--base', join(dir, 'base'), '--model', bad]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `ptb: ${join(bad, 'model.safetensors')}: header length 8589934592 does not fit`,
    );
    expect(run.stderr).toMatch(/→ the file is not a valid safetensors file/);
    expect(run.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace for a user error

    const missing = await runCli(['provenance', '--model', join(dir, 'base')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--base <path>/);

    const threads = await runCli([
      'provenance',
      '--base',
      join(dir, 'base'),
      '--model',
      join(dir, 'base'),
      '--threads',
      '-1',
    ]);
    expect(threads.code).toBe(1);
    expect(threads.stderr).toMatch(/--threads must be an integer ≥ 0/);
  });
});
