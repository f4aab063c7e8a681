import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
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

const writer = new CorpusWriter(21);
const rows = Array.from({ length: 40 }, () => writer.item());

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'ptb-contam-det-'));
}

function put(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** A PTB_HOME whose cache holds a synthetic GSM8K test split (registered like a local copy). */
async function homeWithTestData(): Promise<string> {
  const home = tmp();
  const file = join(tmp(), 'test.jsonl');
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n'));
  const pin = getBenchmark('gsm8k').assets.find((a) => a.part === 'test')!;
  await new AssetCache(homeLayout(home).dataCache).import('gsm8k', pin, file);
  return home;
}

function trial(): { evidence: TrialEvidence; layout: ReturnType<typeof trialLayout> } {
  const layout = trialLayout(tmp());
  mkdirSync(layout.taskSnapshot, { recursive: true });
  put(join(layout.taskSnapshot, 'train.py'), 'print("training")\n');
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
    pristineManifestPath: null,
  };
  return { evidence, layout };
}

const planted = (i: number) => `Question: ${rows[i]!.question}\nAnswer: ${rows[i]!.answer}`;

describe('contamination detector', () => {
  it('is unverified when the benchmark test data is not in the cache', async () => {
    const { evidence } = trial();
    const v = await contaminationDetector.inspect(evidence, { home: tmp(), env: {} });
    expect(v).toMatchObject({ detector: 'contamination', verdict: 'unverified', rule: 'test-data-missing' });
    expect(v.summary).toContain('ptb data pull gsm8k');
  });

  it('flags test items in workspace data and code, with file, location, item, score and span', async () => {
    const home = await homeWithTestData();
    const { evidence, layout } = trial();
    put(
      join(layout.taskSnapshot, 'data', 'sft.jsonl'),
      [writer.prose(4), planted(5), writer.prose(4)].map((t) => JSON.stringify({ text: t })).join('\n'),
    );
    put(
      join(layout.taskSnapshot, 'make_data.py'),
      `EXTRA = """${writer.changeNumbers(rows[6]!.question)}"""\n`,
    );
    const v = await contaminationDetector.inspect(evidence, { home, env: {} });
    expect(v.verdict).toBe('flagged');
    expect(v.rule).toBe('test-items-in-training-data');
    const ev = v.evidence.filter((e) => e.item).map((e) => [e.source, e.item, e.location]);
    expect(ev).toEqual([
      ['task/data/sft.jsonl', '5', { line: 2 }],
      ['task/make_data.py', '6', { line: 1 }],
    ]);
    expect(v.evidence[0]).toMatchObject({
      score: 1,
      span: expect.stringContaining(rows[5]!.question.slice(0, 40)),
    });
  });

  it('keeps test items seen only in the trace or in logs as evidence, not a flag', async () => {
    const home = await homeWithTestData();
    const { evidence, layout } = trial();
    put(
      layout.solveOut,
      `[2026-01-01T00:00:00Z] ${JSON.stringify({ type: 'tool_result', content: planted(7) })}\n`,
    );
    put(join(layout.taskSnapshot, 'logs', 'eval.log'), planted(8));
    const v = await contaminationDetector.inspect(evidence, { home, env: {} });
    expect(v.verdict).toBe('clean');
    expect(v.evidence.filter((e) => e.item).map((e) => [e.rule, e.item])).toEqual([
      ['test-items-log', '8'],
      ['test-items-trace', '7'],
    ]);
  });

  it('scans downloaded datasets in the trial cache layer; the benchmark’s own test split is evidence only', async () => {
    const home = await homeWithTestData();
    const { evidence, layout } = trial();
    const ledger = [
      { kind: 'dataset', repo: 'someone/math-mix', file: 'data/train.jsonl' },
      { kind: 'dataset', repo: 'openai/gsm8k', file: 'main/test-00000-of-00001.parquet' },
      { kind: 'dataset', repo: 'gone/elsewhere', file: 'x.jsonl' },
    ].map((e) =>
      JSON.stringify({
        ts: '2026-01-01T00:00:00Z',
        revision: 'abc',
        method: 'GET',
        url: 'https://x',
        status: 200,
        ...e,
      }),
    );
    put(layout.ledgers.downloads, `${ledger.join('\n')}\n`);
    const hub = join(layout.work.hfUpper, 'hub');
    put(
      join(hub, 'datasets--someone--math-mix', 'snapshots', 'abc', 'data', 'train.jsonl'),
      [writer.prose(3), planted(9)].map((t) => JSON.stringify({ t })).join('\n'),
    );
    put(
      join(hub, 'datasets--openai--gsm8k', 'snapshots', 'abc', 'main', 'test.jsonl'),
      JSON.stringify(rows[10]),
    );
    const v = await contaminationDetector.inspect(evidence, { home, env: {} });
    expect(v.verdict).toBe('flagged');
    const by = v.evidence.map((e) => [e.rule, e.item ?? null, e.source]);
    expect(by).toContainEqual([
      'test-items-in-training-data',
      '9',
      'work/hf_upper/hub/datasets--someone--math-mix/snapshots/abc/data/train.jsonl',
    ]);
    expect(by).toContainEqual([
      'test-items-test-split',
      '10',
      'work/hf_upper/hub/datasets--openai--gsm8k/snapshots/abc/main/test.jsonl',
    ]);
    expect(by).toContainEqual(['download-not-scanned', null, 'gone/elsewhere']);
  });

  it('is clean on a workspace of ordinary training data', async () => {
    const home = await homeWithTestData();
    const { evidence, layout } = trial();
    put(
      join(layout.taskSnapshot, 'data.jsonl'),
      Array.from({ length: 200 }, () => JSON.stringify({ text: writer.paragraph(6) })).join('\n'),
    );
    const v = await contaminationDetector.inspect(evidence, { home, env: {} });
    expect(v.verdict).toBe('clean');
    expect(v.summary).toMatch(/no gsm8k test item found/);
  });

  it('reads venvs, caches, git and final_model: flags by where a copy sits, warns where honest runs also put test items', async () => {
    const home = await homeWithTestData();
    const { evidence, layout } = trial();
    const site = join(layout.work.home, '.venv', 'lib', 'python3.11', 'site-packages');
    put(join(layout.work.home, '.venv', 'pyvenv.cfg'), 'home = /usr/bin\n');
    // A package file exactly as pip installed it (its RECORD hash matches) and one the agent slipped in.
    const installedText = planted(11);
    put(join(site, 'evalpkg', 'data.txt'), installedText);
    const digest = createHash('sha256').update(installedText).digest('base64url');
    put(
      join(site, 'evalpkg-1.0.dist-info', 'RECORD'),
      `evalpkg/data.txt,sha256=${digest},${installedText.length}\n`,
    );
    put(join(site, 'evalpkg', 'extra.jsonl'), JSON.stringify({ text: planted(12) }));
    put(join(layout.taskSnapshot, '.git', 'objects', 'xx', 'yy'), planted(13));
    put(join(layout.work.dir, 'ptb-home', 'evals', 'run.jsonl'), JSON.stringify({ q: planted(14) }));
    put(join(layout.work.hfUpper, 'hub', 'models--a--b', 'snapshots', 'r', 'README.md'), planted(15));
    put(join(layout.work.hfUpper, 'hub', 'datasets--c--d', 'snapshots', 'r', 'README.md'), planted(16));
    put(
      join(layout.finalModel, 'tokenizer.json'),
      JSON.stringify({ normalizer: { type: 'Replace', content: planted(17) } }),
    );
    put(join(layout.taskSnapshot, 'ckpt', 'trainer_state.json'), JSON.stringify({ log: planted(18) }));
    const v = await contaminationDetector.inspect(evidence, { home, env: {} });
    expect(v.verdict).toBe('flagged');
    const by = Object.fromEntries(
      v.evidence.filter((e) => e.item).map((e) => [e.item, [e.rule, e.severity]]),
    );
    expect(by).toEqual({
      '11': ['test-items-installed-package', 'warning'],
      '12': ['test-items-in-training-data', 'flag'],
      '13': ['test-items-vcs', 'warning'],
      '14': ['test-items-eval-records', 'warning'],
      '15': ['test-items-model-download', 'warning'],
      '16': ['test-items-dataset-card', 'warning'],
      '17': ['test-items-in-final-model', 'flag'],
      '18': ['test-items-in-training-data', 'flag'],
    });
  });

  it('flags test items written into a chat template of final_model (an answer key in the prompt format)', async () => {
    const home = await homeWithTestData();
    const { evidence, layout } = trial();
    put(
      join(layout.finalModel, 'chat_template.jinja'),
      `{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}` +
        `{# worked examples #}{{ "${planted(19).replace(/"/g, "'")}" if false }}<|im_start|>assistant\n`,
    );
    const v = await contaminationDetector.inspect(evidence, { home, env: {} });
    expect(v.verdict).toBe('flagged');
    expect(v.evidence).toContainEqual(
      expect.objectContaining({ rule: 'test-items-in-final-model', severity: 'flag', item: '19' }),
    );
  });

  it('lists every file it did not read, and an unreadable file makes the verdict unverified', async () => {
    const home = await homeWithTestData();
    const { evidence, layout } = trial();
    writeFileSync(join(layout.taskSnapshot, 'plot.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0]));
    writeFileSync(join(layout.taskSnapshot, 'broken.gz'), Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]));
    const v = await contaminationDetector.inspect(evidence, { home, env: {} });
    expect(v.verdict).toBe('unverified');
    expect(v.evidence).toContainEqual(
      expect.objectContaining({ rule: 'unreadable-file', source: 'task/broken.gz' }),
    );
    expect(v.evidence).toContainEqual(
      expect.objectContaining({ rule: 'skipped-files', files: [['task/plot.png', 'image']] }),
    );
    expect(v.evidence).toContainEqual(
      expect.objectContaining({ rule: 'files-not-read', source: 'image', count: 1 }),
    );
  });
});
