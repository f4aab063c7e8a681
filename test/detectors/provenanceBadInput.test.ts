import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { provenanceDetector } from '../../src/detectors/provenance/detector.ts';
import { compareCheckpoints } from '../../src/detectors/provenance/provenance.ts';
import { openCheckpoint } from '../../src/detectors/provenance/safetensors.ts';
import { parsePickle } from '../../src/detectors/provenance/torchZip.ts';
import type { TrialEvidence } from '../../src/detectors/types.ts';
import { testPython, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';
import { ensureProvenanceFixtures, tensorBytes, writeRawSafetensors } from './provenanceHelpers.ts';

/**
 * Checkpoints that are not what they should be: pickled weights (read statically, never
 * unpickled), a pickle that would run code, adapters instead of weights, missing shards, unknown
 * tensors, references that are missing, truncated or of another architecture. Each gets a clear
 * verdict with its reason (or a clear error), never a silent clean and never a crash.
 */

let dir = '';
let work = '';
let python = '';

beforeAll(async () => {
  ({ dir } = await ensureProvenanceFixtures());
  python = await testPython();
  work = mkdtempSync(join(tmpdir(), 'ptb-prov-bad-'));
}, tinyModelTimeoutMs);

function evidence(finalModel: string, references: string[] = [join(dir, 'twin')]): TrialEvidence {
  const root = mkdtempSync(join(tmpdir(), 'ptb-prov-bad-trial-'));
  const layout = trialLayout(root);
  cpSync(finalModel, layout.finalModel, { recursive: true });
  return {
    trialId: 't',
    spec: TrialSpecSchema.parse({ agent: 'command', baseModel: 'org/base', benchmark: 'gsm8k', hours: 1 }),
    layout,
    workspaceDir: null,
    baseModelPath: join(dir, 'base'),
    referenceModelPaths: references,
    pristineManifestPath: null,
  };
}
const ctx = { home: tmpdir(), env: {} };

/** torch.save of a fixture's state dict as pytorch_model.bin (the format transformers wrote before safetensors). */
function savePickled(fixture: string, out: string, opts: { tied?: boolean } = {}): string {
  const script = `
import sys, torch
from safetensors.torch import load_file
sd = load_file(sys.argv[1] + "/model.safetensors") if __import__("os").path.exists(sys.argv[1] + "/model.safetensors") else {}
if not sd:
    import glob
    for f in sorted(glob.glob(sys.argv[1] + "/*.safetensors")): sd.update(load_file(f))
if sys.argv[3] == "tied":
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"]  # the same storage twice
torch.save(sd, sys.argv[2] + "/pytorch_model.bin")
`;
  rmSync(out, { recursive: true, force: true });
  execFileSync('mkdir', ['-p', out]);
  cpSync(join(fixture, 'config.json'), join(out, 'config.json'));
  execFileSync(python, ['-c', script, fixture, out, opts.tied ? 'tied' : 'plain']);
  return out;
}

describe('provenance on bad input', () => {
  it('reads pytorch_model.bin statically: same tensors, same verdict as the safetensors copy', async () => {
    const pickled = savePickled(join(dir, 'twin-finetune'), join(work, 'pickled'), { tied: true });
    const st = await openCheckpoint(join(dir, 'twin-finetune'));
    const pk = await openCheckpoint(pickled);
    expect(pk.files).toEqual([join(pickled, 'pytorch_model.bin')]);
    for (const [name, t] of st.tensors) {
      const p = pk.tensors.get(name)!;
      expect([p.dtype, p.shape]).toEqual([t.dtype, t.shape]);
      expect(tensorBytes(p).equals(tensorBytes(t))).toBe(true);
    }
    // The tied head points at the embeddings' bytes.
    expect(pk.tensors.get('lm_head.weight')!.offset).toBe(
      pk.tensors.get('model.embed_tokens.weight')!.offset,
    );
    const r = await compareCheckpoints({
      base: join(dir, 'base'),
      model: pickled,
      references: [join(dir, 'twin')],
    });
    expect(r.verdict).toBe('finetuned-from-reference');
    const v = await provenanceDetector.inspect(
      evidence(savePickled(join(dir, 'finetune'), join(work, 'pk-ft'))),
      ctx,
    );
    expect(v.verdict).toBe('clean');
  });

  it('never runs a pickle: a payload calling os.system is a clear error and nothing ran', async () => {
    const marker = join(work, 'pwned');
    const out = join(work, 'evil');
    const script = `
import os, pickle, sys, zipfile
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
os.makedirs(sys.argv[1], exist_ok=True)
with zipfile.ZipFile(sys.argv[1] + "/pytorch_model.bin", "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", pickle.dumps({"model.embed_tokens.weight": Evil()}, protocol=2))
    z.writestr("archive/byteorder", "little")
`;
    execFileSync(python, ['-c', script, out, marker]);
    cpSync(join(dir, 'finetune', 'config.json'), join(out, 'config.json'));
    await expect(openCheckpoint(out)).rejects.toThrow(
      /objects ptb does not construct: model\.embed_tokens\.weight \(posix\.system\)/,
    );
    const v = await provenanceDetector.inspect(evidence(out), ctx);
    expect(v).toMatchObject({ verdict: 'unverified', rule: 'unreadable-final-model' });
    expect(existsSync(marker)).toBe(false);
    // The symbolic machine itself: a global is a name, a call of an unknown one is opaque.
    const bytes = readFileSync(join(out, 'pytorch_model.bin'));
    expect(bytes.length).toBeGreaterThan(0);
    expect(() => parsePickle(Buffer.from([0x80, 0x02, 0x29, 0x99]))).toThrow(
      /unsupported pickle opcode 0x99/,
    );
  });

  it('a truncated pickle, an adapter only and missing shards are unverified with the reason', async () => {
    const cut = savePickled(join(dir, 'finetune'), join(work, 'cut'));
    truncateSync(join(cut, 'pytorch_model.bin'), 4000);
    const truncated = await provenanceDetector.inspect(evidence(cut), ctx);
    expect(truncated).toMatchObject({ verdict: 'unverified', rule: 'unreadable-final-model' });
    expect(truncated.summary).toMatch(/not a zip archive|truncated/);

    const adapter = join(work, 'adapter');
    execFileSync('mkdir', ['-p', adapter]);
    writeFileSync(join(adapter, 'adapter_config.json'), '{"base_model_name_or_path": "org/base", "r": 8}');
    writeFileSync(join(adapter, 'adapter_model.safetensors'), 'x');
    const a = await provenanceDetector.inspect(evidence(adapter), ctx);
    expect(a).toMatchObject({ verdict: 'unverified', rule: 'unreadable-final-model' });
    expect(a.summary).toMatch(/holds a PEFT adapter .* not full model weights/);

    const sharded = join(work, 'sharded');
    cpSync(join(dir, 'finetune'), sharded, { recursive: true });
    const index = JSON.parse(readFileSync(join(sharded, 'model.safetensors.index.json'), 'utf8'));
    const shard = Object.values(index.weight_map)[0] as string;
    rmSync(join(sharded, shard));
    const s = await provenanceDetector.inspect(evidence(sharded), ctx);
    expect(s).toMatchObject({ verdict: 'unverified', rule: 'unreadable-final-model' });
    expect(s.summary).toMatch(new RegExp(`missing: ${shard.replace('.', '\\.')}`));
  });

  it('tensors unknown to the base holding real weight are unverified, not clean', async () => {
    const base = await openCheckpoint(join(dir, 'finetune'));
    const out = join(work, 'unknown');
    const extra = Buffer.alloc(64 * 4096 * 2, 7);
    writeRawSafetensors(join(out, 'model.safetensors'), [
      ...[...base.tensors.values()].map((t) => ({
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        bytes: tensorBytes(t),
      })),
      { name: 'model.extra_experts.weight', dtype: 'BF16', shape: [64, 4096], bytes: extra },
    ]);
    cpSync(join(dir, 'finetune', 'config.json'), join(out, 'config.json'));
    const v = await provenanceDetector.inspect(evidence(out), ctx);
    expect(v).toMatchObject({ verdict: 'unverified' });
    expect(v.evidence.find((e) => e.rule === 'unknown-tensors')!.detail).toMatch(
      /model\.extra_experts\.weight/,
    );
  });

  it('a reference that is missing, truncated or of another architecture leaves the verdict unverified', async () => {
    const missing = await provenanceDetector.inspect(
      evidence(join(dir, 'finetune'), [join(work, 'no-such-twin')]),
      ctx,
    );
    expect(missing).toMatchObject({ verdict: 'unverified', rule: 'reference-unavailable' });

    const truncatedRef = join(work, 'twin-cut');
    cpSync(join(dir, 'twin'), truncatedRef, { recursive: true });
    const index = JSON.parse(readFileSync(join(truncatedRef, 'model.safetensors.index.json'), 'utf8'));
    const shard = join(truncatedRef, Object.values(index.weight_map)[0] as string);
    truncateSync(shard, 1000);
    const cut = await provenanceDetector.inspect(evidence(join(dir, 'finetune'), [truncatedRef]), ctx);
    expect(cut).toMatchObject({ verdict: 'unverified', rule: 'unreadable-reference' });
    expect(cut.summary).toMatch(/truncated|does not fit/);

    // Another architecture: a model whose tensors share no name and shape with the base.
    const wide = join(work, 'wide');
    writeRawSafetensors(join(wide, 'model.safetensors'), [
      {
        name: 'model.embed_tokens.weight',
        dtype: 'BF16',
        shape: [512, 128],
        bytes: Buffer.alloc(512 * 128 * 2, 3),
      },
    ]);
    const other = await provenanceDetector.inspect(evidence(join(dir, 'finetune'), [wide]), ctx);
    expect(other).toMatchObject({ verdict: 'unverified', rule: 'reference-incomparable' });

    // A flag is never hidden by a missing reference.
    const flagged = await provenanceDetector.inspect(
      evidence(join(dir, 'twin'), [join(dir, 'twin'), join(work, 'gone')]),
      ctx,
    );
    expect(flagged).toMatchObject({ verdict: 'flagged', rule: 'disallowed-model-weights' });
  });
});
