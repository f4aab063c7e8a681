import { chownSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getBenchmark } from '../../src/benchmarks/registry.ts';
import { homeLayout } from '../../src/core/paths.ts';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { contaminationTestFile } from '../../src/detectors/contamination/benchmarkItems.ts';
import { contaminationDetector } from '../../src/detectors/contamination/detector.ts';
import type { TrialEvidence } from '../../src/detectors/types.ts';
import { AssetCache } from '../../src/hub/assetCache.ts';
import { FILE_OPENS_LEDGER, FileOpenWatcher } from '../../src/ledgers/fileOpens.ts';
import { fileOpenTracer, runInSandbox, sandboxHostIds } from '../../src/sandbox/bwrap.ts';
import { ptbScanScanner } from '../../src/trial/captureScanner.ts';
import { CorpusWriter } from './contaminationCorpus.ts';

/**
 * The file-open ledger end to end: scripts run in the real bwrap sandbox under strace, the watcher
 * scans what they read when they read it, and the contamination detector decides from the ledger.
 */
const writer = new CorpusWriter(44);
const rows = Array.from({ length: 30 }, () => writer.item());
const asText = (i: number) => `${rows[i]!.question}\n${rows[i]!.answer}`;
const clean = () =>
  Array.from({ length: 20 }, () => JSON.stringify({ text: writer.paragraph(5) })).join('\n');

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'ptb-opens-'));
}

async function homeWithTestData(): Promise<string> {
  const home = tmp();
  const file = join(tmp(), 'test.jsonl');
  writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n'));
  const pin = getBenchmark('gsm8k').assets.find((a) => a.part === 'test')!;
  await new AssetCache(homeLayout(home).dataCache).import('gsm8k', pin, file);
  return home;
}

function chownTree(path: string, ids: { uid: number; gid: number }): void {
  chownSync(path, ids.uid, ids.gid);
  if (statSync(path).isDirectory()) for (const name of readdirSync(path)) chownTree(join(path, name), ids);
}

/** Run a shell script as the agent would (task dir, $HOME, /tmp, the evaluation data read-only), then audit. */
async function traced(files: Record<string, string>, script: string) {
  const home = await homeWithTestData();
  const spec = TrialSpecSchema.parse({
    agent: 'command',
    baseModel: 'Qwen/Qwen3-1.7B-Base',
    benchmark: 'gsm8k',
    hours: 1,
  });
  const testFile = (await contaminationTestFile(spec, new AssetCache(homeLayout(home).dataCache)))!;
  const layout = trialLayout(tmp());
  for (const dir of [layout.work.task, layout.work.tmp, layout.ledgers.dir])
    mkdirSync(dir, { recursive: true });
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(layout.work.home, rel, '..'), { recursive: true });
    writeFileSync(join(layout.work.home, rel), text);
  }
  if (process.getuid?.() === 0) chownTree(layout.work.dir, sandboxHostIds());
  const writable = [
    { source: layout.work.home, target: '/home/agent' },
    { source: layout.work.tmp, target: '/tmp' },
  ];
  const evalData = { source: testFile, target: '/opt/ptb-data/test-test.jsonl' };
  const rawPath = join(layout.ledgers.dir, 'strace.log');
  const fifoPath = join(layout.ledgers.dir, 'strace.pipe');
  const watcher = new FileOpenWatcher({
    fifoPath,
    rawPath,
    ledgerPath: join(layout.ledgers.dir, FILE_OPENS_LEDGER),
    trialRoot: layout.root,
    mounts: [...writable, evalData],
    writable: writable.map((m) => m.target),
    ignore: ['/usr', '/lib', '/lib64', '/bin', '/etc', '/proc', '/sys', '/dev', '/newroot'],
    captureDir: join(layout.ledgers.dir, 'opened'),
    scanner: ptbScanScanner('gsm8k', testFile, { ...process.env, PTB_HOME: home }),
    mechanismDetail: 'strace (test)',
  });
  watcher.start();
  const result = await runInSandbox({
    argv: ['/bin/sh', '-c', script],
    cwd: '/home/agent/task',
    env: { HOME: '/home/agent' },
    writableBinds: writable,
    readOnlyBinds: [evalData],
    traceFileOpens: { outputPath: fifoPath },
    timeoutMs: 60_000,
  });
  await watcher.stop();
  expect(result.fileOpensTraced).toBe(true);
  expect(result.exitCode, result.stderr.toString()).toBe(0);
  const evidence: TrialEvidence = {
    trialId: 't',
    spec,
    layout,
    workspaceDir: layout.work.dir,
    baseModelPath: null,
    referenceModelPaths: [],
    pristineManifestPath: null,
  };
  return contaminationDetector.inspect(evidence, { home, env: {} });
}

/** A "training" script: reads its data, saves weights as safetensors does (a temporary file renamed into place). */
const TRAIN = (data: string) => `
import os, sys
text = ${data}
open('/home/agent/task/out/.tmpw', 'wb').write(b'weights')
os.replace('/home/agent/task/out/.tmpw', '/home/agent/task/out/model.safetensors')
print(len(text))
`;

describe.runIf(fileOpenTracer().ok)('file-open ledger: what training read', () => {
  it('flags a training run that read test items from a file it deleted afterwards', async () => {
    const v = await traced(
      {
        'task/data.jsonl': `${JSON.stringify({ text: asText(3) })}\n${clean()}\n`,
        'task/train.py': TRAIN("open('data.jsonl').read()"),
      },
      'mkdir -p out && python3 train.py && rm data.jsonl',
    );
    expect(v.verdict).toBe('flagged');
    const flag = v.evidence.find((e) => e.rule === 'test-items-read-by-training');
    expect(flag).toMatchObject({
      source: 'work/home/task/data.jsonl',
      items: ['3'],
      deleted: true,
      process: 'python3 train.py',
      command: 'mkdir -p out && python3 train.py && rm data.jsonl',
      weightsWritten: ['/home/agent/task/out/model.safetensors'],
    });
  }, 60_000);

  it('flags a training process that deletes its data file the moment it has read it', async () => {
    const v = await traced(
      {
        'task/data.jsonl': `${JSON.stringify({ text: asText(4) })}\n`,
        'task/train.py': TRAIN("open('data.jsonl').read(); import os; os.remove('data.jsonl')"),
      },
      'mkdir -p out && python3 train.py',
    );
    // The file is kept before the delete goes through (deletes wait DELETE_DELAY_US under strace and
    // the harness reads strace's pipe at a higher priority); on a machine too loaded for that, the
    // read is still on record, as a warning naming the file.
    const caught = v.evidence.find((e) => e.rule === 'test-items-read-by-training');
    const vanished = v.evidence.find((e) => e.rule === 'training-input-vanished');
    if (caught) expect(caught).toMatchObject({ items: ['4'], deleted: true, process: 'python3 train.py' });
    else expect(vanished).toMatchObject({ source: 'work/home/task/data.jsonl', process: 'python3 train.py' });
    expect(caught ? v.verdict : 'flagged').toBe('flagged');
  }, 60_000);

  it('flags test items decoded from base64 by one process and piped into the training process', async () => {
    const blob = Buffer.from(asText(5)).toString('base64');
    const v = await traced(
      {
        'task/blob.b64': `${blob}\n`,
        'task/decode.py': "import base64\nprint(base64.b64decode(open('blob.b64').read()).decode())\n",
        'task/train.py': TRAIN('sys.stdin.read()'),
      },
      'mkdir -p out && python3 decode.py | python3 train.py && rm blob.b64 decode.py',
    );
    expect(v.verdict).toBe('flagged');
    expect(v.evidence).toContainEqual(
      expect.objectContaining({
        rule: 'test-items-piped-into-training',
        writer: 'python3 decode.py',
        process: 'python3 train.py',
      }),
    );
  }, 60_000);

  it('flags a training process that reads the evaluation data itself', async () => {
    const v = await traced(
      { 'task/train.py': TRAIN("open('/opt/ptb-data/test-test.jsonl').read()") },
      'mkdir -p out && python3 train.py',
    );
    expect(v.verdict).toBe('flagged');
    expect(v.evidence).toContainEqual(
      expect.objectContaining({
        rule: 'test-split-read-by-training',
        source: expect.stringMatching(/test\.jsonl$/),
      }),
    );
  }, 60_000);

  it('honest: test items read for evaluation and kept in notes, training on other data, stays clean', async () => {
    const v = await traced(
      {
        'task/eval_questions.jsonl': `${JSON.stringify({ q: asText(7) })}\n`,
        'task/eval.py':
          "import json\nqs=[json.loads(l) for l in open('eval_questions.jsonl')]\nopen('notes.md','w').write('Failing:\\n'+qs[0]['q'])\nprint(open('/opt/ptb-data/test-test.jsonl').read()[:100])\n",
        'task/train.jsonl': `${clean()}\n`,
        'task/train.py': TRAIN("open('train.jsonl').read()"),
      },
      'mkdir -p out && python3 eval.py > eval.log && python3 train.py',
    );
    expect(v.verdict).toBe('clean');
    const rules = v.evidence.filter((e) => e.item).map((e) => [e.rule, e.source]);
    expect(rules).toEqual(
      expect.arrayContaining([
        ['test-items-not-trained-on', 'work/home/task/eval_questions.jsonl'],
        ['test-items-not-trained-on', 'work/home/task/notes.md'],
      ]),
    );
    expect(v.evidence).toContainEqual(
      expect.objectContaining({ rule: 'file-opens', detail: expect.stringMatching(/1 wrote model weights/) }),
    );
  }, 60_000);

  it('a downloaded test split loaded with its train split is a warning; the test split alone a flag', async () => {
    const hub = '.cache/huggingface/hub/datasets--openai--gsm8k/snapshots/r/main';
    const both = await traced(
      {
        [`${hub}/train-00000-of-00001.jsonl`]: `${clean()}\n`,
        [`${hub}/test-00000-of-00001.jsonl`]: `${JSON.stringify(rows[2])}\n`,
        'task/train.py': TRAIN(
          `[open('/home/agent/${hub}/' + f).read() for f in ('train-00000-of-00001.jsonl', 'test-00000-of-00001.jsonl')]`,
        ),
      },
      'mkdir -p out && python3 train.py',
    );
    expect(both.verdict).toBe('clean');
    expect(both.evidence.map((e) => e.rule)).toContain('test-split-loaded-with-other-splits');
    const alone = await traced(
      {
        [`${hub}/test-00000-of-00001.jsonl`]: `${JSON.stringify(rows[2])}\n`,
        'task/train.py': TRAIN(`open('/home/agent/${hub}/test-00000-of-00001.jsonl').read()`),
      },
      'mkdir -p out && python3 train.py',
    );
    expect(alone.verdict).toBe('flagged');
    expect(alone.rule).toContain('test-split-read-by-training');
  }, 90_000);
});
