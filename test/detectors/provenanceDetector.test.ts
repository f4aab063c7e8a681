import { cpSync, mkdirSync, mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DetectorVerdictSchema, TrialSpecSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { provenanceDetector } from '../../src/detectors/provenance/detector.ts';
import type { TrialEvidence } from '../../src/detectors/types.ts';
import { tinyModelTimeoutMs } from '../helpers/tinyModel.ts';
import { ensureProvenanceFixtures } from './provenanceHelpers.ts';

let dir = '';

beforeAll(async () => {
  ({ dir } = await ensureProvenanceFixtures());
}, tinyModelTimeoutMs);

/** A trial directory whose final_model is a copy of fixture `finalModel` (or absent). */
function evidence(
  finalModel: string | null,
  opts: { base?: string | null; references?: string[] } = {},
): TrialEvidence {
  const root = mkdtempSync(join(tmpdir(), 'ptb-prov-trial-'));
  const layout = trialLayout(root);
  if (finalModel) cpSync(join(dir, finalModel), layout.finalModel, { recursive: true });
  return {
    trialId: 'trial-1',
    spec: TrialSpecSchema.parse({
      agent: 'command',
      baseModel: 'Qwen/Qwen3-1.7B-Base',
      benchmark: 'gsm8k',
      hours: 1,
    }),
    layout,
    workspaceDir: null,
    baseModelPath: opts.base === undefined ? join(dir, 'base') : opts.base,
    referenceModelPaths: opts.references ?? [join(dir, 'twin')],
    pristineManifestPath: null,
  };
}

const ctx = { home: tmpdir(), env: {} };

describe('provenance detector', () => {
  it('is clean for the base unchanged and for the agent’s own fine-tune', async () => {
    for (const [name, word] of [
      ['base', 'unchanged'],
      ['finetune', 'finetuned-from-base'],
      ['lora', 'finetuned-from-base'],
    ] as const) {
      const v = DetectorVerdictSchema.parse(await provenanceDetector.inspect(evidence(name), ctx));
      expect(v).toMatchObject({ detector: 'provenance', verdict: 'clean' });
      expect(v.evidence[0]).toMatchObject({ rule: word, verdict: word });
    }
  });

  it('flags the instruct twin, renamed or fine-tuned, and a model not derived from the base', async () => {
    const twin = await provenanceDetector.inspect(evidence('twin-renamed'), ctx);
    expect(twin).toMatchObject({ verdict: 'flagged', rule: 'disallowed-model-weights' });
    expect(twin.summary).toMatch(/is a disallowed model \(.*twin\)/);
    expect(twin.evidence[0]).toMatchObject({ verdict: 'matches-reference', reference: join(dir, 'twin') });
    expect(twin.evidence.some((e) => /equals .*twin's/.test(e.detail))).toBe(true);

    const tuned = await provenanceDetector.inspect(evidence('twin-finetune'), ctx);
    expect(tuned).toMatchObject({ verdict: 'flagged', rule: 'derived-from-disallowed-model' });
    expect(tuned.summary).toMatch(/is derived from a disallowed model/);

    const unrelated = await provenanceDetector.inspect(evidence('unrelated'), ctx);
    expect(unrelated).toMatchObject({ verdict: 'flagged', rule: 'not-derived-from-base' });
    expect(unrelated.summary).toMatch(/not derived from the base model/);
  });

  it('is unverified, with the reason, when the weights to compare are missing or unreadable', async () => {
    const noBase = await provenanceDetector.inspect(evidence('finetune', { base: null }), ctx);
    expect(noBase).toMatchObject({ verdict: 'unverified', rule: 'base-weights-missing' });
    expect(noBase.summary).toMatch(/base model weights are not available/);

    const broken = evidence('finetune');
    truncateSync(join(broken.layout.finalModel, 'model-00002-of-00003.safetensors'), 100);
    const unreadable = await provenanceDetector.inspect(broken, ctx);
    expect(unreadable).toMatchObject({ verdict: 'unverified', rule: 'unreadable-final-model' });
    expect(unreadable.summary).toMatch(/final_model is unreadable: .*model-00002-of-00003\.safetensors/);

    const badRef = mkdtempSync(join(tmpdir(), 'ptb-prov-ref-'));
    writeFileSync(join(badRef, 'model.safetensors'), 'garbage!garbage!');
    const refUnreadable = await provenanceDetector.inspect(
      evidence('finetune', { references: [badRef] }),
      ctx,
    );
    expect(refUnreadable).toMatchObject({ verdict: 'unverified', rule: 'unreadable-reference' });

    // A readable reference still flags even when another one is unreadable.
    const flagged = await provenanceDetector.inspect(
      evidence('twin', { references: [badRef, join(dir, 'twin')] }),
      ctx,
    );
    expect(flagged.verdict).toBe('flagged');
  });

  it('is clean without a final_model (the trial scores as the base model)', async () => {
    const v = await provenanceDetector.inspect(evidence(null), ctx);
    expect(v).toMatchObject({ verdict: 'clean' });
    expect(v.evidence[0]).toMatchObject({ rule: 'no-final-model' });
    const empty = evidence(null);
    mkdirSync(empty.layout.finalModel, { recursive: true });
    writeFileSync(join(empty.layout.finalModel, 'config.json'), '{}');
    const noWeights = await provenanceDetector.inspect(empty, ctx);
    expect(noWeights).toMatchObject({ verdict: 'unverified', rule: 'unreadable-final-model' });
    expect(noWeights.summary).toMatch(/no \.safetensors or pytorch_model\*\.bin files/);
  });
});
