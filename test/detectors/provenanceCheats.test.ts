import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeJsonAtomic } from '../../src/core/atomicWrite.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { type AlignedReport, compareCheckpoints } from '../../src/detectors/provenance/provenance.ts';
import {
  readSignature,
  type Signature,
  signatureTensor,
  signReference,
  writeSignature,
} from '../../src/detectors/provenance/signature.ts';
import { DECISION } from '../../src/detectors/provenance/verdict.ts';
import { runLines, withDirLock } from '../../src/runtime/pythonEnv.ts';
import { testPython, testRoot, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/**
 * Every cheat class against one base and its twin, in Qwen3's tensor names and shapes (the GPU
 * bench's generator at its tiny preset: 4 layers, hidden 256): an aggressive honest fine-tune
 * that shares 4% of the twin's direction, an interpolation toward the twin with training on top,
 * a grafted layer, a rank-8 merge of the twin's delta, the twin with relabelled MLP units, an
 * unrelated model — compared with the twin's weights and with its signature alone.
 */
const generator = join(repoRoot, 'bench', 'provenanceCheckpoints.py');
const dir = join(testRoot, 'provenance-cheats');

async function ensureCases(): Promise<Record<string, string>> {
  const key = createHash('sha256').update(readFileSync(generator)).digest('hex');
  const stamp = join(dir, 'ptb-build.json');
  const read = () => {
    try {
      const s = JSON.parse(readFileSync(stamp, 'utf8'));
      return s.key === key ? (s.cases as Record<string, string>) : null;
    } catch {
      return null;
    }
  };
  const ready = read();
  if (ready) return ready;
  const python = await testPython();
  return withDirLock(`${dir}.lock`, async () => {
    const again = read();
    if (again) return again;
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    const run = await runLines(
      python,
      [generator, '--out', tmp, '--preset', 'tiny', '--device', 'cpu', '--shard-gb', '0.004'],
      { onLine: () => {} },
    );
    if (run.code !== 0) throw new Error(`provenanceCheckpoints.py failed:\n${run.tail}`);
    const cases = JSON.parse(readFileSync(join(tmp, 'expected.json'), 'utf8')).cases;
    writeJsonAtomic(join(tmp, 'ptb-build.json'), { key, cases });
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    return cases;
  });
}

let expected: Record<string, string> = {};
let signature: Signature;
const withWeights = new Map<string, AlignedReport>();
const bySignature = new Map<string, AlignedReport>();

beforeAll(async () => {
  expected = await ensureCases();
  signature = await signReference({ reference: join(dir, 'twin'), base: join(dir, 'base') });
  for (const name of Object.keys(expected)) {
    withWeights.set(
      name,
      await compareCheckpoints({
        base: join(dir, 'base'),
        model: join(dir, name),
        references: [join(dir, 'twin')],
      }),
    );
    bySignature.set(
      name,
      await compareCheckpoints({
        base: join(dir, 'base'),
        model: join(dir, name),
        signatures: [{ label: 'twin', signature }],
      }),
    );
  }
}, tinyModelTimeoutMs);

describe('provenance against every cheat class', () => {
  it('gives each case its verdict, with the twin’s weights and with its signature alone', () => {
    const verdicts = (m: Map<string, AlignedReport>) =>
      Object.fromEntries([...m].map(([k, r]) => [k, r.verdict]));
    expect(verdicts(withWeights)).toEqual(expected);
    expect(verdicts(bySignature)).toEqual(expected);
    expect(Object.keys(expected)).toEqual(
      expect.arrayContaining(['honest-highlr', 'interp-ft', 'graft', 'lowrank', 'permuted', 'unrelated']),
    );
  });

  it('measures what each cheat carries: α is the interpolation weight, 1 in a grafted layer, the kept energy of a low-rank merge', () => {
    const global = (name: string) => withWeights.get(name)!.tests[0]!.global!;
    // Honest: 4% of the twin's direction by construction, far under the floor, lineage intact.
    const honest = withWeights.get('honest-highlr')!;
    expect(global('honest-highlr').alpha).toBeGreaterThan(0.02);
    expect(global('honest-highlr').alpha).toBeLessThan(0.06);
    expect(honest.lineage.minZ).toBeGreaterThan(honest.lineage.zCritical);
    expect(honest.summary.base!.relativeDelta).toBeGreaterThan(0.25); // an aggressive fine-tune
    // Interpolation at 0.25 with the honest delta on top: 0.25 + 0.04.
    expect(global('interp-ft').alpha).toBeGreaterThan(0.26);
    expect(global('interp-ft').alpha).toBeLessThan(0.32);
    expect(global('interp-ft').z).toBeGreaterThan(withWeights.get('interp-ft')!.tests[0]!.zCritical);
    // Graft: the last layer is the twin's, the whole model carries about a layer's share.
    const graft = withWeights.get('graft')!.tests[0]!;
    expect(graft.blocks[0]).toMatchObject({ block: 'layer 3' });
    expect(graft.blocks[0]!.alpha).toBeCloseTo(1, 2);
    expect(graft.global!.alpha).toBeLessThan(DECISION.alphaGlobal + 0.1);
    // Low rank: cos ≫ any honest value, α = the share of the twin's energy in its top 8 directions.
    expect(global('lowrank').cosine).toBeGreaterThan(0.5);
    expect(global('lowrank').alpha).toBeGreaterThan(DECISION.alphaGlobal);
    // The null: honest's α is many null spreads away from 0 yet under the floor; unrelated sits in the null.
    expect(Math.abs(global('unrelated').z)).toBeLessThan(4);
  });

  it('undoes relabelled units before comparing, and says so', () => {
    const r = withWeights.get('permuted')!;
    expect(r.alignment!.permutations.filter((p) => p.moved > 0).length).toBe(4);
    expect(r.reason).toMatch(/after relabelling layer 0 MLP units/);
    expect(bySignature.get('permuted')!.alignment).not.toBeNull();
  });

  it('a signature is small, round-trips through its file, and refuses another base or another version', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ptb-sig-')), 'twin.safetensors');
    writeSignature(file, signature);
    const back = await readSignature(file);
    expect(back.tensors.size).toBe(signature.tensors.size);
    expect(back.bytes).toBeLessThanOrEqual(4 * 4096 * signature.tensors.size);
    const [name, t] = [...signature.tensors][5]!;
    expect(Array.from(back.tensors.get(name)!.sketch)).toEqual(Array.from(t.sketch));
    expect(() => signatureTensor(back, name, t.bb * 1.01, t)).toThrow(/made against another base/);
    const bumped = { ...signature, identity: { ...signature.identity, version: 99 } };
    writeSignature(file, bumped);
    await expect(readSignature(file)).rejects.toThrow(/signature version 99/);
  });

  it('keeps its verdicts when the sketches sample a fraction of each tensor (64 buckets: one run in 32 kept)', async () => {
    const scan = { sketchWidth: 64 };
    const small = await signReference({ reference: join(dir, 'twin'), base: join(dir, 'base'), scan });
    expect([...small.tensors.values()].some((t) => t.keepShift >= 4)).toBe(true);
    for (const name of ['honest-highlr', 'interp-ft', 'graft', 'twin']) {
      const model = join(dir, name);
      const weights = await compareCheckpoints({
        base: join(dir, 'base'),
        model,
        references: [join(dir, 'twin')],
        ...scan,
      });
      const sig = await compareCheckpoints({
        base: join(dir, 'base'),
        model,
        signatures: [{ label: 'twin', signature: small }],
        ...scan,
      });
      expect([name, weights.verdict, sig.verdict]).toEqual([name, expected[name], expected[name]]);
    }
  });
});
