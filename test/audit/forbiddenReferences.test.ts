import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { referenceCaches, resolveReferences } from '../../src/audit/forbiddenReferences.ts';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { forbiddenModelsFor } from '../../src/detectors/forbiddenModels.ts';
import { provenanceDetector } from '../../src/detectors/provenance/detector.ts';
import type { TrialEvidence } from '../../src/detectors/types.ts';
import { type StandInHub, startStandInHub } from '../../src/trial/selftest/standInHub.ts';
import { ensureProvenanceFixtures } from '../detectors/provenanceHelpers.ts';
import { tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/**
 * Every trial's disallowed references, resolved as the audit does: fetched by the harness from a
 * Hub (a stand-in on loopback speaking the Hub's protocol) into the snapshot cache, signed on
 * first use, compared by signature once the weights are gone, unverified when neither is there.
 */

let fixtures = '';
let hub: StandInHub;
const files = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f !== 'ptb-build.json')
    .map((f) => ({ path: f, content: readFileSync(join(dir, f)) }));

beforeAll(async () => {
  ({ dir: fixtures } = await ensureProvenanceFixtures());
  const otherArch = JSON.parse(readFileSync(join(fixtures, 'twin', 'config.json'), 'utf8'));
  hub = await startStandInHub([
    { kind: 'model', id: 'org/twin', files: files(join(fixtures, 'twin')) },
    {
      kind: 'model',
      id: 'org/wide',
      files: [
        { path: 'config.json', content: Buffer.from(JSON.stringify({ ...otherArch, hidden_size: 128 })) },
        { path: 'model.safetensors', content: Buffer.from('never fetched') },
      ],
    },
  ]);
}, tinyModelTimeoutMs);
afterAll(async () => {
  await hub?.close();
});

function trial(finalModel: string, spec: Record<string, unknown> = {}) {
  const root = mkdtempSync(join(tmpdir(), 'ptb-refs-'));
  const layout = trialLayout(join(root, 'trial'));
  cpSync(join(fixtures, finalModel), layout.finalModel, { recursive: true });
  return {
    home: join(root, 'home'),
    layout,
    spec: TrialSpecSchema.parse({
      agent: 'command',
      baseModel: 'org/base',
      benchmark: 'gsm8k',
      hours: 1,
      forbiddenModels: ['org/twin'],
      ...spec,
    }),
  };
}

const env = () => ({ PTB_HF_UPSTREAM: hub.url });
const ctx = (home: string) => ({ home, env: {} });

async function audit(t: ReturnType<typeof trial>, offline = false, extraEnv: NodeJS.ProcessEnv = env()) {
  const references = await resolveReferences({
    spec: t.spec,
    layout: t.layout,
    baseModelPath: join(fixtures, 'base'),
    homeRoot: t.home,
    env: extraEnv,
    offline,
  });
  const evidence: TrialEvidence = {
    trialId: 't',
    spec: t.spec,
    layout: t.layout,
    workspaceDir: null,
    baseModelPath: join(fixtures, 'base'),
    referenceModelPaths: [],
    references,
    pristineManifestPath: null,
  };
  return { references, verdict: await provenanceDetector.inspect(evidence, ctx(t.home)) };
}

describe('forbidden references of a trial', () => {
  it('lists the instruct twin first, then the user’s and the trial’s additions, each once', () => {
    expect(forbiddenModelsFor('qwen/qwen3-1.7b-base')[0]).toMatchObject({
      repo: 'Qwen/Qwen3-1.7B',
      relation: 'instruct-twin',
      revision: '70d244cc86ccca08cf5af4e1e306ecf908b1ad5e',
    });
    const list = forbiddenModelsFor('Qwen/Qwen3-4B-Base', {
      user: { 'Qwen/Qwen3-4B-Base': [{ repo: 'lab/qwen3-4b-sft', relation: 'fine-tune' }] },
      extra: ['Qwen/Qwen3-4B', 'other/model@abc'],
    });
    expect(list.map((m) => m.repo)).toEqual([
      'Qwen/Qwen3-4B',
      'Qwen/Qwen3-4B-Instruct-2507',
      'Qwen/Qwen3-4B-Thinking-2507',
      'lab/qwen3-4b-sft',
      'other/model',
    ]);
    expect(list.at(-1)).toMatchObject({ revision: 'abc' });
  });

  it('fetches the twin outside the sandbox, pins its commit, signs it, and flags a fine-tune of it', async () => {
    const t = trial('twin-finetune');
    const { references, verdict } = await audit(t);
    expect(references).toHaveLength(1);
    const ref = references[0]!;
    expect(ref).toMatchObject({ repo: 'org/twin', source: 'forbidden-list', problem: null });
    expect(ref.revision).toMatch(/^[0-9a-f]{40}$/);
    const manifest = JSON.parse(readFileSync(join(ref.weights!, 'ptb-snapshot.json'), 'utf8'));
    expect(manifest.files.map((f: { path: string }) => f.path)).toEqual(
      expect.arrayContaining(['config.json', 'model.safetensors.index.json']),
    );
    expect(manifest.files.every((f: { sha256: string }) => /^[0-9a-f]{64}$/.test(f.sha256))).toBe(true);
    expect(verdict).toMatchObject({ verdict: 'flagged', rule: 'derived-from-disallowed-model' });
    expect(existsSync(ref.signatureTarget!)).toBe(true);
    expect(hub.requests.some((r) => r.includes('/resolve/'))).toBe(true);
  });

  it('re-audits by the stored signature once the weights are gone, offline, with the same verdict', async () => {
    const t = trial('twin-finetune');
    await audit(t);
    rmSync(referenceCaches(t.home).models, { recursive: true, force: true });
    const before = hub.requests.length;
    const { references, verdict } = await audit(t, true, {});
    expect(references[0]).toMatchObject({ weights: null, problem: null });
    expect(references[0]!.signature).toMatch(/provenance-signatures/);
    expect(hub.requests.length).toBe(before);
    expect(verdict).toMatchObject({ verdict: 'flagged', rule: 'derived-from-disallowed-model' });
    const stats = verdict.evidence[0] as unknown as { twoReference: { references: Array<{ from: string }> } };
    expect(stats.twoReference.references[0]!.from).toBe('signature');
    // The honest fine-tune stays clean by signature too.
    const honest = trial('finetune');
    cpSync(referenceCaches(t.home).signatures, referenceCaches(honest.home).signatures, { recursive: true });
    expect((await audit(honest, true, {})).verdict.verdict).toBe('clean');
  });

  it('is unverified, never clean, when a listed reference has neither weights nor signature', async () => {
    const offline = await audit(trial('finetune'), true, {});
    expect(offline.verdict).toMatchObject({ verdict: 'unverified', rule: 'reference-unavailable' });
    expect(offline.verdict.evidence[0]!.detail).toMatch(/fetching from the Hub is off/);
    const missing = await audit(trial('finetune', { forbiddenModels: ['org/nowhere'] }));
    expect(missing.verdict).toMatchObject({ verdict: 'unverified', rule: 'reference-unavailable' });
    expect(missing.verdict.evidence[0]!.detail).toMatch(/could not fetch org\/nowhere/);
    // A flag stands even when another reference is missing.
    const both = await audit(trial('twin', { forbiddenModels: ['org/twin', 'org/nowhere'] }));
    expect(both.verdict).toMatchObject({ verdict: 'flagged', rule: 'disallowed-model-weights' });
  });

  it('a listed reference of another architecture is unverified; a downloaded one is skipped, unfetched', async () => {
    const listed = await audit(trial('finetune', { forbiddenModels: ['org/wide'] }));
    expect(listed.verdict).toMatchObject({ verdict: 'unverified', rule: 'reference-unavailable' });
    expect(listed.verdict.evidence[0]!.detail).toMatch(
      /another architecture than the base \(hidden_size 128 vs 64\)/,
    );
    expect(hub.requests.some((r) => r.includes('org/wide/resolve') && r.endsWith('model.safetensors'))).toBe(
      false,
    );

    const t = trial('finetune', { forbiddenModels: [] });
    mkdirSync(t.layout.ledgers.dir, { recursive: true });
    const event = (repo: string, file: string) =>
      JSON.stringify({
        ts: '2026-01-01T00:00:00Z',
        kind: 'model',
        repo,
        revision: 'main',
        file,
        method: 'GET',
        url: `x/${file}`,
        status: 200,
        bytes: 10,
      });
    writeFileSync(
      t.layout.ledgers.downloads,
      `${event('org/wide', 'model.safetensors')}\n${event('org/twin', 'model.safetensors')}\n`,
    );
    const { references, verdict } = await audit(t);
    expect(references.map((r) => [r.repo, r.source])).toEqual([['org/twin', 'downloaded']]);
    expect(verdict.verdict).toBe('clean');
  });

  it('names a broken user list instead of ignoring it', async () => {
    const t = trial('finetune', { forbiddenModels: [] });
    mkdirSync(t.home, { recursive: true });
    writeFileSync(join(t.home, 'forbidden-models.json'), '{"org/base": [{"repo": "not a repo id"}]}');
    const { verdict } = await audit(t);
    expect(verdict).toMatchObject({ verdict: 'unverified', rule: 'reference-unavailable' });
    expect(verdict.evidence[0]!.detail).toMatch(/forbidden-models\.json: org\/base\.0\.repo/);
  });
});
