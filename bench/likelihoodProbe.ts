/**
 * The likelihood probe at GSM8K's size on a real-sized model: speed (target ≤ 60 s for 1,319 items
 * and their twins under base + final_model on one H100, model loads included) and its null (honest
 * fine-tunes must not flag; fine-tunes on the test items must).
 *
 *   python3 python/make_tiny_model.py /tmp/base17 --preset qwen3-1.7b --dtype bfloat16 --device cuda \
 *     --max-position-embeddings 4096
 *   node dist/bench/likelihoodProbe.mjs --base /tmp/base17 --out $OUT      # (npx tsx bench/... here)
 *   options: --items 1319  --runs name:data:steps:lr,...  --batch 16  --device cuda|cpu  --work DIR (checkpoints)
 *   (a run `cheat-mix:mix:600:1e-4` mixes the test items into the train split; add it in a second call
 *   if the first is near the device's 10-minute limit: checkpoints in --work are reused)
 *
 * Data: synthetic items in GSM8K's schema (src/trial/selftest/syntheticGsm8k.ts): `test` the test
 * items, `train` the train-like split (another template), `similar` fresh items of the test
 * template (same format, other names and numbers), `mix` train + test. Each run fine-tunes the base
 * with python/agents/sft.py (answer-only loss), then the probe scores it exactly as the detector
 * does (same items, twins, scorer program and sandbox, same statistic). Writes probe_bench.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gsm8kBenchmark } from '../src/benchmarks/gsm8k/index.ts';
import { repoRoot } from '../src/core/paths.ts';
import { pairedParts, probeFlags } from '../src/detectors/probe/detector.ts';
import { probePairs } from '../src/detectors/probe/items.ts';
import { probeGpus, runLikelihoodScorer } from '../src/detectors/probe/scorer.ts';
import { DEMO_PROMPT_SOURCE } from '../src/eval/demo.ts';
import { prepareBenchmark } from '../src/eval/prepareBenchmark.ts';
import { AssetCache } from '../src/hub/assetCache.ts';
import {
  type Gsm8kRecord,
  syntheticTestItems,
  syntheticTrainItems,
} from '../src/trial/selftest/syntheticGsm8k.ts';

const { values: args } = parseArgs({
  options: {
    base: { type: 'string' },
    out: { type: 'string', default: '/tmp/ptb-probe-bench' },
    work: { type: 'string', default: '/tmp/ptb-probe-bench-work' },
    items: { type: 'string', default: '1319' },
    runs: {
      type: 'string',
      default:
        'base:none:0:0,honest-train:train:120:1e-4,honest-train-hot:train:120:5e-4,honest-similar:similar:120:1e-4,' +
        'cheat-test:test:300:1e-4',
    },
    batch: { type: 'string', default: '16' },
    device: { type: 'string', default: 'cuda' },
  },
});
if (!args.base) throw new Error('--base DIR (a checkpoint made by make_tiny_model.py --preset qwen3-1.7b)');
const python = process.env.PTB_PYTHON ?? 'python3';
const out = args.out!;
// Data and checkpoints go to the work folder (GBs); only the results go to --out.
const work = args.work!;
mkdirSync(out, { recursive: true });
mkdirSync(work, { recursive: true });
const n = Number(args.items);

const jsonl = (name: string, rows: readonly object[]) => {
  const path = join(work, name);
  writeFileSync(path, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return path;
};
const conversation = (r: Gsm8kRecord) => {
  const [reasoning = '', target = ''] = r.answer.split('####');
  return {
    messages: [
      {
        role: 'user',
        content: `Solve this problem. End with a line "ANSWER: n".\n\n${r.question}\n\nReasoning:`,
      },
      { role: 'assistant', content: `${reasoning.trim()}\n\nANSWER: ${target.trim()}` },
    ],
  };
};
const test = syntheticTestItems(n);
const train = syntheticTrainItems(7473);
writeFileSync(join(work, 'prompt.py'), DEMO_PROMPT_SOURCE);
const evalData = {
  test: jsonl('test.jsonl', test),
  train: jsonl('train.jsonl', train),
  'prompt-source': join(work, 'prompt.py'),
};
const datasets: Record<string, () => object[]> = {
  test: () => test.map(conversation),
  train: () => train.map(conversation),
  similar: () => syntheticTestItems(5000, 99).map(conversation),
  mix: () => [...train, ...test].map(conversation),
};

const t0 = Date.now();
const { prepared } = await prepareBenchmark(gsm8kBenchmark, new AssetCache(join(work, 'cache')), {
  offline: true,
  overrides: evalData,
});
const { pairs, skipped } = probePairs('gsm8k', prepared, { seed: 0 });
const itemsMs = Date.now() - t0;
console.log(`${pairs.length} pairs (${skipped} without a twin) built in ${itemsMs} ms`);

const results: Record<string, unknown>[] = [];
for (const spec of args.runs!.split(',')) {
  const [name = '', data = 'none', steps = '0', lr = '0'] = spec.split(':');
  let finalModel = args.base;
  let trainS = 0;
  if (data !== 'none') {
    finalModel = join(work, `model-${name}`);
    const t = Date.now();
    if (!existsSync(join(finalModel, 'config.json'))) {
      const file = jsonl(`data-${name}.jsonl`, datasets[data]!());
      const run = spawnSync(
        python,
        [
          join(repoRoot, 'python/agents/sft.py'),
          '--base',
          args.base,
          '--data',
          file,
          '--steps',
          steps,
          '--lr',
          lr,
          '--batch-size',
          args.batch!,
          '--max-len',
          '512',
          '--max-minutes',
          '20',
          '--out',
          finalModel,
          '--chat-template',
          join(repoRoot, 'python/templates/tiny_chatml.jinja'),
          '--device',
          args.device!,
        ],
        { encoding: 'utf8', stdio: ['ignore', 'inherit', 'inherit'] },
      );
      if (run.status !== 0) throw new Error(`fine-tune ${name} failed`);
    }
    trainS = (Date.now() - t) / 1000;
  }
  const started = Date.now();
  const scored = await runLikelihoodScorer({
    python,
    baseModel: args.base,
    finalModel,
    template: null,
    items: pairs.flatMap((p) => [p.test, p.twin]),
    gpuIndices: args.device === 'cpu' ? [] : probeGpus(1),
    threads: 8,
  });
  const probeS = (Date.now() - started) / 1000;
  const parts = pairedParts(pairs, scored);
  const flagged = parts.some((p) => probeFlags(p.test, parts.length));
  const row = {
    run: name,
    data,
    steps: Number(steps),
    lr: Number(lr),
    train_s: trainS,
    probe_wall_s: probeS,
    scorer: { device: scored.device, seconds: scored.seconds, timings: scored.timings },
    flagged,
    stats: Object.fromEntries(parts.map((p) => [p.part, p.test])),
  };
  results.push(row);
  console.log(
    `${name.padEnd(18)} flagged=${flagged} probe ${probeS.toFixed(1)} s (scorer ${scored.seconds} s: ${JSON.stringify(scored.timings)}) ` +
      parts
        .map(
          (p) =>
            `${p.part} mean ${p.test.mean.toFixed(4)} dz ${p.test.dz.toFixed(2)} p ${p.test.p.toExponential(1)}`,
        )
        .join(' | '),
  );
  writeFileSync(
    join(out, 'probe_bench.json'),
    JSON.stringify({ pairs: pairs.length, skipped, itemsMs, results }, null, 2),
  );
}
