import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getBenchmark } from '../../src/benchmarks/registry.ts';
import { homeLayout } from '../../src/core/paths.ts';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { contaminationDetector } from '../../src/detectors/contamination/detector.ts';
import type { TrialEvidence } from '../../src/detectors/types.ts';
import { AssetCache } from '../../src/hub/assetCache.ts';
import { CorpusWriter } from './contaminationCorpus.ts';

/**
 * The reference puts Arena-Hard's questions and HealthBench's rubrics in the agent's task folder
 * (evaluation_code/), and so does ptb. Those files, as the harness placed them, are not training
 * data: the contamination audit notes them and flags only what an agent made of them.
 */

const writer = new CorpusWriter(33);
const rows = Array.from({ length: 30 }, () => writer.item());
const tmp = () => mkdtempSync(join(tmpdir(), 'ptb-harness-files-'));

function put(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

async function homeWithTestData(): Promise<string> {
  const home = tmp();
  const file = join(tmp(), 'test.jsonl');
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n'));
  const pin = getBenchmark('gsm8k').assets.find((a) => a.part === 'test')!;
  await new AssetCache(homeLayout(home).dataCache).import('gsm8k', pin, file);
  return home;
}

const QUESTIONS = 'evaluation_code/data/questions.jsonl';

function trialWithHarnessFile(): { evidence: TrialEvidence; task: string } {
  const layout = trialLayout(tmp());
  const task = layout.taskSnapshot;
  const content = rows
    .slice(0, 10)
    .map((r) => JSON.stringify({ question: r.question }))
    .join('\n');
  put(join(task, QUESTIONS), content);
  put(join(task, 'train.py'), 'print("training")\n');
  const manifest = join(layout.ledgers.dir, 'pristine_manifest.json');
  put(
    manifest,
    JSON.stringify([
      {
        path: QUESTIONS,
        size: Buffer.byteLength(content),
        sha256: createHash('sha256').update(content).digest('hex'),
      },
    ]),
  );
  const evidence: TrialEvidence = {
    trialId: 't1',
    spec: TrialSpecSchema.parse({
      agent: 'command',
      baseModel: 'Qwen/Qwen3-1.7B-Base',
      benchmark: 'gsm8k',
      hours: 1,
    }),
    layout,
    workspaceDir: null,
    baseModelPath: null,
    referenceModelPaths: [],
    pristineManifestPath: manifest,
  };
  return { evidence, task };
}

describe('test items in files the harness placed in the task folder', () => {
  it('are a warning while the file is as placed', async () => {
    const home = await homeWithTestData();
    const { evidence } = trialWithHarnessFile();
    const v = await contaminationDetector.inspect(evidence, { home, env: {} });
    expect(v.verdict).toBe('clean');
    expect(JSON.stringify(v.evidence)).toMatch(/the harness put in the task folder/);
  });

  it('flag once an agent changed the file, or copied the items elsewhere', async () => {
    const home = await homeWithTestData();
    const edited = trialWithHarnessFile();
    const path = join(edited.task, QUESTIONS);
    writeFileSync(path, `${readFileSync(path, 'utf8')}\n{"question": "one more"}`);
    expect((await contaminationDetector.inspect(edited.evidence, { home, env: {} })).verdict).toBe('flagged');

    const copied = trialWithHarnessFile();
    put(join(copied.task, 'data', 'sft.jsonl'), readFileSync(join(copied.task, QUESTIONS), 'utf8'));
    const v = await contaminationDetector.inspect(copied.evidence, { home, env: {} });
    expect(v.verdict).toBe('flagged');
    expect(JSON.stringify(v.evidence)).toMatch(/data\/sft\.jsonl/);
  });
});
