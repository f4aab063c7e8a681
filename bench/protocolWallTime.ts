/**
 * What protocol v1.1 costs against v1.0 (issue 10, "report a v1.1 GSM8K evaluation's wall time on one
 * H100 next to v1.0's"): the same `ptb eval` — hf engine, GSM8K-format synthetic items, the model's
 * own sampling settings (its generation_config.json), the default engine sandbox — once under each
 * protocol, alternating which goes first per round. v1.0 is one unseeded evaluation; v1.1 evaluates
 * each of its five fixed seeds (one engine start each, as the reference starts vLLM once per seed)
 * with a seed per request, unless the model decodes greedily. Each run is timed from `evaluate()` to
 * its result. Prints every run, the medians and the ratio v1.1 / v1.0.
 *
 *   npx tsx bench/protocolWallTime.ts [--model DIR] [--samples 256] [--max-tokens 256] [--rounds 1]
 *       [--concurrency 64] [--json FILE]
 *
 * --model defaults to the tiny test model (.ptb-test/tiny-qwen3). PTB_PYTHON picks the interpreter
 * (default: .ptb-test/home's venv). On the GPU machine: bench/protocolWallTimeDevice.sh.
 */

import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { PythonRandom } from '../src/benchmarks/shared/pythonRandom.ts';
import { homeLayout, repoRoot } from '../src/core/paths.ts';
import type { ProtocolId } from '../src/core/protocols.ts';
import { DEMO_PROMPT_SOURCE, demoProblem } from '../src/eval/demo.ts';
import { evaluate } from '../src/eval/evaluate.ts';
import { AssetCache } from '../src/hub/assetCache.ts';
import { tinyChatTemplatePath } from '../src/runtime/tinyModel.ts';
import { openDb } from '../src/store/db.ts';
import { EvalRepo } from '../src/store/evalRepo.ts';

function flag(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1]! : fallback;
}

const model = flag('model', join(repoRoot, '.ptb-test', 'tiny-qwen3'));
const samples = Number(flag('samples', '256'));
const maxTokens = Number(flag('max-tokens', '256'));
const rounds = Number(flag('rounds', '1'));
const concurrency = Number(flag('concurrency', '64'));
const jsonOut = flag('json', '');
if (!existsSync(join(model, 'config.json'))) {
  throw new Error(
    `no model at ${model}: build one (python python/make_tiny_model.py DIR) and pass --model DIR`,
  );
}

const work = mkdtempSync(join(tmpdir(), 'ptb-bench-protocol-'));
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
  protocol: ProtocolId;
  round: number;
  wallS: number;
  seeds: number;
  engineStarts: number;
  engineStartS: number;
  completionTokens: number;
  accuracy: number;
}

async function once(protocol: ProtocolId, round: number): Promise<Run> {
  let engineStarts = 0;
  let engineStartMs = 0;
  let completionTokens = 0;
  const started = performance.now();
  const result = await evaluate(
    repo,
    cache,
    {
      model,
      benchmark: 'gsm8k',
      engine: { id: 'hf' },
      limit: samples,
      concurrency,
      maxTokens,
      template: tinyChatTemplatePath,
      data: {
        test: join(dataDir, 'test.jsonl'),
        train: join(dataDir, 'train.jsonl'),
        'prompt-source': join(dataDir, 'gsm8k_prompt.py'),
      },
      seed: 0,
      protocol,
      resume: 'fresh',
      offline: true,
      env,
      evalsDir: home.evals,
      venvHome: home.root,
    },
    (e) => {
      if (e.type === 'engine-ready') {
        engineStarts++;
        engineStartMs += e.ms;
        // progress, so that a run cut short still tells what each engine start cost
        console.log(
          `  ${protocol}: engine ${engineStarts} ready in ${(e.ms / 1000).toFixed(1)} s, ${((performance.now() - started) / 1000).toFixed(1)} s into the run`,
        );
      }
    },
  );
  const wallS = (performance.now() - started) / 1000;
  for (const run of db
    .prepare(
      `SELECT SUM(completion_tokens) AS n FROM eval_samples WHERE run_id = ? OR run_id IN
        (SELECT id FROM eval_runs WHERE json_extract(config_json, '$.parent') = ?)`,
    )
    .all(result.runId, result.runId) as { n: number | null }[]) {
    completionTokens += run.n ?? 0;
  }
  const out: Run = {
    protocol,
    round,
    wallS,
    seeds: Math.max(1, result.seeds.length),
    engineStarts,
    engineStartS: engineStartMs / 1000,
    completionTokens,
    accuracy: result.metrics.accuracy,
  };
  console.log(
    `${protocol} round ${round}  wall ${wallS.toFixed(1)} s  seeds ${out.seeds}  engine starts ${engineStarts} (${out.engineStartS.toFixed(1)} s)  ` +
      `${completionTokens} tokens (${(completionTokens / wallS).toFixed(0)} tok/s)  accuracy ${out.accuracy.toFixed(3)}`,
  );
  return out;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

console.log(
  `machine: ${hostname()}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
    `model ${model}; GSM8K-format, ${samples} samples × ≤ ${maxTokens} new tokens, concurrency ${concurrency}, ${rounds} round(s)`,
);
const runs: Run[] = [];
try {
  for (let round = 1; round <= rounds; round++) {
    const order: ProtocolId[] = round % 2 ? ['v1.0', 'v1.1'] : ['v1.1', 'v1.0'];
    for (const protocol of order) runs.push(await once(protocol, round));
  }
} finally {
  db.close();
}
const of = (p: ProtocolId) => runs.filter((r) => r.protocol === p);
const v10 = median(of('v1.0').map((r) => r.wallS));
const v11 = median(of('v1.1').map((r) => r.wallS));
console.log(
  `median wall: v1.0 ${v10.toFixed(1)} s, v1.1 ${v11.toFixed(1)} s; ratio v1.1 / v1.0 = ${(v11 / v10).toFixed(2)}`,
);
const perSeed = of('v1.1').map((r) => r.wallS / r.seeds);
console.log(`v1.1 per seed: ${median(perSeed).toFixed(1)} s (v1.0 run: ${v10.toFixed(1)} s)`);
if (jsonOut) {
  writeFileSync(
    jsonOut,
    JSON.stringify(
      { model, samples, maxTokens, concurrency, rounds, runs, medianWallS: { 'v1.0': v10, 'v1.1': v11 } },
      null,
      2,
    ),
  );
}
