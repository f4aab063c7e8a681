/**
 * What isolating the final evaluation costs (issue 10 §2, target ≤ 5 % of evaluation wall time): the
 * same `ptb eval` — hf engine, GSM8K-format synthetic items, protocol v1.0, greedy — run with the
 * engine in the bwrap model sandbox and on the host, alternating (S H, H S, …) in one process. Each
 * run is timed from `evaluate()` to its result: engine start (model load), every sample generated
 * and scored, engine stop. Prints every run, the medians, and the ratio sandboxed / host.
 *
 *   npx tsx bench/evalIsolation.ts [--model DIR] [--samples 64] [--max-tokens 64] [--rounds 2]
 *       [--concurrency 64] [--host-cache fresh|warm] [--json FILE]
 *
 * --model defaults to the tiny test model (.ptb-test/tiny-qwen3). On a GPU machine the engine gets
 * every visible GPU in both modes. --host-cache: `fresh` (default) gives each host run an empty
 * torch-compile/Triton cache, as every sandboxed run has (its scratch is private), so the ratio is
 * the cost of the sandbox itself; `warm` leaves the host's shared caches as they are, the ratio then
 * also counts the compile work a private scratch has to redo (one untimed host run fills them first). PTB_PYTHON picks the interpreter
 * (default: the managed venv of PTB_HOME or .ptb-test/home).
 */

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { PythonRandom } from '../src/benchmarks/shared/pythonRandom.ts';
import { homeLayout, repoRoot } from '../src/core/paths.ts';
import { DEMO_PROMPT_SOURCE, demoProblem } from '../src/eval/demo.ts';
import { type EngineSandboxChoice, evaluate } from '../src/eval/evaluate.ts';
import { AssetCache } from '../src/hub/assetCache.ts';
import { tinyChatTemplatePath } from '../src/runtime/tinyModel.ts';
import { openDb } from '../src/store/db.ts';
import { EvalRepo } from '../src/store/evalRepo.ts';

function flag(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1]! : fallback;
}

const model = flag('model', join(repoRoot, '.ptb-test', 'tiny-qwen3'));
const samples = Number(flag('samples', '64'));
const maxTokens = Number(flag('max-tokens', '64'));
const rounds = Number(flag('rounds', '2'));
const concurrency = Number(flag('concurrency', '64'));
const hostCache = flag('host-cache', 'fresh');
const jsonOut = flag('json', '');
if (!existsSync(join(model, 'config.json'))) {
  throw new Error(
    `no model at ${model}: build one (python python/make_tiny_model.py DIR) and pass --model DIR`,
  );
}

const work = mkdtempSync(join(tmpdir(), 'ptb-bench-isolation-'));
const home = homeLayout(join(work, 'home'));
mkdirSync(home.root, { recursive: true });
const python =
  process.env.PTB_PYTHON ??
  [join(repoRoot, '.ptb-test', 'home', 'venv', 'bin', 'python')].find((p) => existsSync(p));
const env: NodeJS.ProcessEnv = {
  ...process.env,
  PTB_HOME: home.root,
  ...(python ? { PTB_PYTHON: python } : {}),
};

// GSM8K-format items; the training split is only there because the benchmark loads it.
const rng = new PythonRandom(11);
const dataDir = join(work, 'data');
mkdirSync(dataDir);
const rows = (n: number) =>
  Array.from({ length: n }, () => demoProblem(rng)).map(({ question, answer }) =>
    JSON.stringify({ question, answer }),
  );
writeFileSync(join(dataDir, 'test.jsonl'), `${rows(samples).join('\n')}\n`);
writeFileSync(join(dataDir, 'train.jsonl'), `${rows(12).join('\n')}\n`);
writeFileSync(join(dataDir, 'gsm8k_prompt.py'), DEMO_PROMPT_SOURCE);

const db = openDb(home.db);
const repo = new EvalRepo(db);
const cache = new AssetCache(home.dataCache);

interface Run {
  mode: 'sandbox' | 'host';
  round: number;
  wallS: number;
  engineStartS: number;
  accuracy: number;
  replies: string[];
}

async function once(mode: Run['mode'], round: number): Promise<Run> {
  const sandbox: EngineSandboxChoice = mode === 'sandbox' ? 'bwrap' : 'none';
  const runEnv = { ...env };
  if (mode === 'host' && hostCache === 'fresh') {
    const fresh = mkdtempSync(join(work, 'host-cache-'));
    Object.assign(runEnv, {
      TORCHINDUCTOR_CACHE_DIR: join(fresh, 'inductor'),
      TRITON_CACHE_DIR: join(fresh, 'triton'),
      VLLM_CACHE_ROOT: join(fresh, 'vllm'),
      XDG_CACHE_HOME: join(fresh, 'xdg'),
    });
  }
  let engineStartMs = 0;
  const started = performance.now();
  const result = await evaluate(
    repo,
    cache,
    {
      model,
      benchmark: 'gsm8k',
      engine: { id: 'hf' },
      engineSandbox: sandbox,
      limit: samples,
      concurrency,
      maxTokens,
      template: tinyChatTemplatePath,
      data: {
        test: join(dataDir, 'test.jsonl'),
        train: join(dataDir, 'train.jsonl'),
        'prompt-source': join(dataDir, 'gsm8k_prompt.py'),
      },
      sampling: { temperature: 0 },
      seed: 0,
      protocol: 'v1.0',
      resume: 'fresh',
      offline: true,
      env: runEnv,
      evalsDir: home.evals,
      venvHome: home.root,
    },
    (e) => {
      if (e.type === 'engine-ready') engineStartMs = e.ms;
    },
  );
  const wallS = (performance.now() - started) / 1000;
  const replies = readFileSync(join(result.outDir, 'samples.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line) as { response: string }).response);
  const run: Run = {
    mode,
    round,
    wallS,
    engineStartS: engineStartMs / 1000,
    accuracy: result.metrics.accuracy,
    replies,
  };
  console.log(
    `${mode.padEnd(7)} round ${round}  wall ${wallS.toFixed(2)} s  engine start ${run.engineStartS.toFixed(2)} s  accuracy ${run.accuracy.toFixed(3)}`,
  );
  return run;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

console.log(
  `machine: ${hostname()}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
    `model ${model}; ${samples} samples × ≤ ${maxTokens} new tokens, concurrency ${concurrency}, ${rounds} round(s), host cache ${hostCache}`,
);
const runs: Run[] = [];
try {
  // With shared host caches, one untimed host run first fills them, as earlier evaluations would have.
  if (hostCache === 'warm') {
    console.log('warm-up (untimed): one host run to fill the shared compile caches');
    await once('host', 0);
  }
  for (let round = 1; round <= rounds; round++) {
    // Alternate which mode goes first, so warm-up and drift fall on both sides.
    const order: Run['mode'][] = round % 2 ? ['sandbox', 'host'] : ['host', 'sandbox'];
    for (const mode of order) runs.push(await once(mode, round));
  }
} finally {
  db.close();
}
const of = (mode: Run['mode']) => runs.filter((r) => r.mode === mode);
const sandboxWall = median(of('sandbox').map((r) => r.wallS));
const hostWall = median(of('host').map((r) => r.wallS));
const sandboxStart = median(of('sandbox').map((r) => r.engineStartS));
const hostStart = median(of('host').map((r) => r.engineStartS));
const reference = of('host')[0]!.replies;
const sameReplies = runs.every(
  (r) => r.replies.length === reference.length && r.replies.every((t, i) => t === reference[i]),
);
const ratio = sandboxWall / hostWall;
console.log(
  `median wall: sandboxed ${sandboxWall.toFixed(2)} s, host ${hostWall.toFixed(2)} s; ` +
    `median engine start: sandboxed ${sandboxStart.toFixed(2)} s, host ${hostStart.toFixed(2)} s`,
);
console.log(
  `ratio sandboxed / host = ${ratio.toFixed(3)} (overhead ${((ratio - 1) * 100).toFixed(1)} %, target ≤ 5 %)`,
);
console.log(`identical replies in every run: ${sameReplies ? 'yes' : 'no'}`);
if (jsonOut) {
  writeFileSync(
    jsonOut,
    JSON.stringify(
      {
        model,
        samples,
        maxTokens,
        concurrency,
        rounds,
        hostCache,
        runs: runs.map(({ replies: _replies, ...rest }) => rest),
        medianWallS: { sandbox: sandboxWall, host: hostWall },
        medianEngineStartS: { sandbox: sandboxStart, host: hostStart },
        ratio,
        sameReplies,
      },
      null,
      2,
    ),
  );
}
rmSync(work, { recursive: true, force: true });
