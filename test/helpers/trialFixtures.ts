/**
 * A cheap trial for tests: the tiny Qwen3 model as base, a handful of synthetic problems in GSM8K's
 * exact schema (written by the test, as the demo trial does), ptb's tiny ChatML template for the
 * evaluations, a 2-sample evaluation of at most 8 new tokens, no GPU, the bwrap sandbox.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PythonRandom } from '../../src/benchmarks/shared/pythonRandom.ts';
import { ensureDir, type HomeLayout, homeLayout } from '../../src/core/paths.ts';
import type { TrialSpecInput } from '../../src/core/trial.ts';
import { DEMO_PROMPT_SOURCE, demoProblem } from '../../src/eval/demo.ts';
import { AssetCache } from '../../src/hub/assetCache.ts';
import { tinyChatTemplatePath } from '../../src/runtime/tinyModel.ts';
import { type Db, openDb } from '../../src/store/db.ts';
import { EvalRepo } from '../../src/store/evalRepo.ts';
import { TrialRepo } from '../../src/store/trialRepo.ts';
import type { TrialEnv } from '../../src/trial/runTrial.ts';
import { tempHome } from './runCli.ts';
import { ensureTinyModel, testPython } from './tinyModel.ts';

/** Display id of the cheap trials' base model (the tiny model built by ensureTinyModel). */
export const CHEAP_BASE_MODEL = 'ptb-test/tiny-qwen3-base';

export interface TrialFixture {
  /** PTB_HOME of the fixture (a fresh temporary directory unless given). */
  home: HomeLayout;
  /** Environment for in-process runs and for `ptb` child processes: PTB_HOME and PTB_PYTHON set. */
  env: NodeJS.ProcessEnv;
  python: string;
  baseModelPath: string;
  /** The benchmark parts as `ptb eval --data` takes them: test, train, prompt-source. */
  evalData: Record<string, string>;
  db: Db;
  trials: TrialRepo;
  /** A TrialEnv over the fixture's home (offline); `extra` overrides fields (signal, hooks). */
  trialEnv(extra?: Partial<TrialEnv>): TrialEnv;
  /** The cheap spec, with `overrides` on top (agent, agentCommand, network, limits...). */
  spec(overrides?: Partial<TrialSpecInput>): TrialSpecInput;
  close(): void;
}

function writeJsonl(path: string, rows: readonly object[]): string {
  writeFileSync(path, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return path;
}

/** Write the synthetic GSM8K-format parts into `dir` (deterministic for a seed). */
export function writeSyntheticGsm8k(dir: string, opts: { testItems?: number; seed?: number } = {}) {
  ensureDir(dir);
  const rng = new PythonRandom(opts.seed ?? 7);
  const rows = (n: number) =>
    Array.from({ length: n }, () => demoProblem(rng)).map(({ question, answer }) => ({ question, answer }));
  const promptSource = join(dir, 'gsm8k_prompt.py');
  writeFileSync(promptSource, DEMO_PROMPT_SOURCE);
  return {
    test: writeJsonl(join(dir, 'test.jsonl'), rows(opts.testItems ?? 4)),
    train: writeJsonl(join(dir, 'train.jsonl'), rows(12)),
    'prompt-source': promptSource,
  };
}

/**
 * `greedy`: the base model is a copy of the tiny model whose generation_config asks for greedy decoding
 * (temperature 0), so two evaluations of the same weights give the same replies, sample by sample.
 * By default the tiny model samples (temperature 0.6), as Qwen3's published generation_config does.
 */
export async function trialFixture(
  opts: { home?: string; env?: NodeJS.ProcessEnv; greedy?: boolean } = {},
): Promise<TrialFixture> {
  const [python, tinyModel] = await Promise.all([testPython(), ensureTinyModel()]);
  const home = homeLayout(opts.home ?? tempHome());
  let baseModelPath = tinyModel;
  if (opts.greedy) {
    baseModelPath = join(home.root, 'greedy-base');
    cpSync(tinyModel, baseModelPath, { recursive: true });
    const configPath = join(baseModelPath, 'generation_config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(configPath, JSON.stringify({ ...config, do_sample: false, temperature: 0 }, null, 2));
  }
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, PTB_HOME: home.root, PTB_PYTHON: python };
  const evalData = writeSyntheticGsm8k(join(home.root, 'fixture-data'));
  const db = openDb(home.db);
  const trials = new TrialRepo(db);
  return {
    home,
    env,
    python,
    baseModelPath,
    evalData,
    db,
    trials,
    trialEnv: (extra = {}) => ({
      trials,
      evals: new EvalRepo(db),
      cache: new AssetCache(home.dataCache),
      home,
      env,
      offline: true,
      ...extra,
    }),
    spec: (overrides = {}) => ({
      experiment: 'fixture',
      agent: 'noop',
      baseModel: CHEAP_BASE_MODEL,
      baseModelPath,
      benchmark: 'gsm8k',
      hours: 0.05,
      gpus: 0,
      sandbox: 'bwrap',
      engine: 'hf',
      // One evaluation per trial keeps the fixtures quick; test/eval covers the seeded v1.1.
      protocol: 'v1.0',
      evalLimit: 2,
      evalMaxTokens: 8,
      evalData,
      evalTemplate: tinyChatTemplatePath,
      network: 'none',
      ...overrides,
    }),
    close: () => db.close(),
  };
}

/** The base model's baseline on the cheap benchmark (what finalize substitutes when it must). */
export function addCheapBaseline(trials: TrialRepo, accuracy = 0.25): void {
  trials.addBaseline({
    model: CHEAP_BASE_MODEL,
    benchmark: 'gsm8k',
    kind: 'base',
    accuracy,
    source: 'test fixture',
  });
}
