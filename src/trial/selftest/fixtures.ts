import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gsm8kBenchmark } from '../../benchmarks/gsm8k/index.ts';
import { writeJsonAtomic } from '../../core/atomicWrite.ts';
import { UserError } from '../../core/errors.ts';
import { ensureDir, repoRoot } from '../../core/paths.ts';
import { DEMO_PROMPT_SOURCE } from '../../eval/demo.ts';
import { prepareBenchmark } from '../../eval/prepareBenchmark.ts';
import type { AssetCache } from '../../hub/assetCache.ts';
import { ensurePythonEnv, runLines, withDirLock } from '../../runtime/pythonEnv.ts';
import { ensureTinyModelBuilt } from '../../runtime/tinyModel.ts';
import type { HubRepo } from './standInHub.ts';
import { type Gsm8kRecord, syntheticTestItems, syntheticTrainItems } from './syntheticGsm8k.ts';

/** The base model as the selftest's trials name it (a tiny Qwen3-architecture model built locally). */
export const SELFTEST_BASE_MODEL = 'ptb-selftest/tiny-qwen3-base';
/** Its "instruct twin", served by the stand-in Hub: a disallowed model. */
export const SELFTEST_TWIN_REPO = 'ptb-selftest/tiny-qwen3';
/** Where the stand-in Hub serves the benchmark's test split (GSM8K's real repo id and split layout). */
export const SELFTEST_DATASET_REPO = 'openai/gsm8k';
export const SELFTEST_TEST_SPLIT_FILE = 'main/test-00000-of-00001.jsonl';

export const SELFTEST_TEST_ITEMS = 20;
const TRAIN_ITEMS = 200;

const TWIN_SCRIPT = join(repoRoot, 'python', 'redteam', 'make_twin.py');

export interface SelftestFixtures {
  python: string;
  baseModel: string;
  twin: string;
  /** Benchmark parts for the trials' evaluations (`ptb eval --data`). */
  evalData: { test: string; train: string; 'prompt-source': string };
  /** Allowed training conversations, handed to every agent as task/train_data.jsonl. */
  trainData: string;
  hubRepos: HubRepo[];
}

function writeJsonl(path: string, rows: readonly object[]): string {
  writeFileSync(path, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return path;
}

function filesOf(dir: string): Array<{ path: string; content: Buffer }> {
  return readdirSync(dir)
    .filter((name) => statSync(join(dir, name)).isFile() && name !== 'ptb-build.json')
    .sort()
    .map((name) => ({ path: name, content: readFileSync(join(dir, name)) }));
}

/** The twin, rebuilt only when the base model or the twin script changed. */
async function ensureTwin(python: string, base: string, out: string, onLine: (l: string) => void) {
  const key = createHash('sha256')
    .update(readFileSync(join(base, 'ptb-build.json')))
    .update(readFileSync(TWIN_SCRIPT))
    .digest('hex');
  const stampFile = join(out, 'ptb-build.json');
  const stamped = () => {
    try {
      return (JSON.parse(readFileSync(stampFile, 'utf8')) as { key?: string }).key === key;
    } catch {
      return false;
    }
  };
  if (stamped()) return;
  await withDirLock(`${out}.lock`, async () => {
    if (stamped()) return;
    const tmp = `${out}.tmp-${process.pid}`;
    const run = await runLines(python, [TWIN_SCRIPT, base, tmp, '--name', SELFTEST_TWIN_REPO], { onLine });
    if (run.code !== 0) {
      rmSync(tmp, { recursive: true, force: true });
      throw new UserError(`building the selftest's instruct twin failed (exit ${run.code}):\n${run.tail}`);
    }
    writeJsonAtomic(join(tmp, 'ptb-build.json'), { key });
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
  });
}

/**
 * Everything the selftest's trials share, under PTB_HOME/selftest/: the tiny base model, its
 * instruct twin, a synthetic GSM8K-format benchmark (test and train splits, prompt source), the
 * allowed training conversations, and the repos the stand-in Hub serves. Built once; later runs
 * reuse what is there.
 */
export async function buildSelftestFixtures(o: {
  root: string;
  homeRoot: string;
  cache: AssetCache;
  env: NodeJS.ProcessEnv;
  onLine?: (line: string) => void;
  signal?: AbortSignal;
}): Promise<SelftestFixtures> {
  const say = o.onLine ?? (() => {});
  const root = ensureDir(o.root);
  const dataDir = ensureDir(join(root, 'data'));
  const test: Gsm8kRecord[] = syntheticTestItems(SELFTEST_TEST_ITEMS);
  const train: Gsm8kRecord[] = syntheticTrainItems(TRAIN_ITEMS);
  const promptSource = join(dataDir, 'gsm8k_prompt.py');
  writeFileSync(promptSource, DEMO_PROMPT_SOURCE);
  const evalData = {
    test: writeJsonl(join(dataDir, 'test.jsonl'), test),
    train: writeJsonl(join(dataDir, 'train.jsonl'), train),
    'prompt-source': promptSource,
  };
  // Allowed training data: the train split as the benchmark asks it (user turn only, no few-shot system
  // message, so that conversations stay short), answered in the benchmark's format.
  const { prepared } = await prepareBenchmark(gsm8kBenchmark, o.cache, {
    offline: true,
    overrides: { test: evalData.train, train: evalData.train, 'prompt-source': promptSource },
  });
  const conversations = prepared.samples.map((sample) => {
    const record = sample.record as { answer: string };
    const [reasoning = '', target = ''] = record.answer.split('####').map((s) => s.trim());
    const request = prepared.request(sample, { seed: 0 });
    return {
      messages: [
        ...request.messages.filter((m) => m.role !== 'system'),
        { role: 'assistant', content: `${reasoning}\n\nANSWER: ${target}` },
      ],
    };
  });
  const trainData = writeJsonl(join(dataDir, 'train_data.jsonl'), conversations);

  say('selftest: preparing the Python environment (first run only)');
  const python = await ensurePythonEnv({ home: o.homeRoot, env: o.env, onProgress: say, signal: o.signal });
  say('selftest: building the tiny base model (first run only)');
  const base = await ensureTinyModelBuilt({
    python,
    outDir: join(root, 'base-model'),
    args: ['--seed', '0', '--max-position-embeddings', '4096'],
    onLine: say,
    signal: o.signal,
  });
  const twin = join(root, 'twin');
  await ensureTwin(python, base.dir, twin, say);

  const jsonl = (rows: readonly object[]) =>
    Buffer.from(`${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  const hubRepos: HubRepo[] = [
    {
      kind: 'dataset',
      id: SELFTEST_DATASET_REPO,
      files: [
        { path: 'README.md', content: Buffer.from('# gsm8k (selftest stand-in: synthetic items)\n') },
        { path: 'main/train-00000-of-00001.jsonl', content: jsonl(train) },
        { path: SELFTEST_TEST_SPLIT_FILE, content: jsonl(test) },
      ],
    },
    { kind: 'model', id: SELFTEST_TWIN_REPO, files: filesOf(twin) },
  ];
  return { python, baseModel: base.dir, twin, evalData, trainData, hubRepos };
}
