/**
 * Evaluation wall time at the reference's concurrency (GSM8K 2 requests at a time, HumanEval 1)
 * versus ptb's default (64), same engine and model, in one run: `ptb eval` through the hf engine on
 * the tiny test model (CPU) or any model given, over synthetic GSM8K-schema items.
 *
 *   npx tsx bench/referenceConcurrency.ts [items=64] [maxTokens=48] [model=<tiny test model>]
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluate } from '../src/eval/evaluate.ts';
import { AssetCache } from '../src/hub/assetCache.ts';
import { openDb } from '../src/store/db.ts';
import { EvalRepo } from '../src/store/evalRepo.ts';
import { ensureTinyModel, testPython, tinyChatTemplate } from '../test/helpers/tinyModel.ts';

const items = Number(process.argv[2] ?? 64);
const maxTokens = Number(process.argv[3] ?? 48);
const model = process.argv[4] ?? (await ensureTinyModel());
const python = process.env.PTB_PYTHON ?? (await testPython());
const dir = mkdtempSync(join(tmpdir(), 'ptb-bench-conc-'));
const rows = Array.from({ length: items }, (_, i) => ({
  question: `Kim has ${i + 3} cards and ${i + 5} pens. How many pens?`,
  answer: `${i + 5} pens.\n#### ${i + 5}`,
}));
writeFileSync(join(dir, 'test.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
writeFileSync(join(dir, 'gsm8k.py'), 'MATH_PROMPT_TEMPLATE = """\n{prompt}\n\nReasoning:\n""".strip()\n');
writeFileSync(join(dir, 'tiny.jinja'), tinyChatTemplate);
const repo = new EvalRepo(openDb(join(dir, 'ptb.db')));
const cache = new AssetCache(join(dir, 'cache'));

async function timed(concurrency: number): Promise<number> {
  const t0 = performance.now();
  await evaluate(repo, cache, {
    model,
    benchmark: 'gsm8k',
    engine: { id: 'hf' },
    limit: null,
    concurrency,
    maxTokens,
    template: join(dir, 'tiny.jinja'),
    data: {
      test: join(dir, 'test.jsonl'),
      train: join(dir, 'test.jsonl'),
      'prompt-source': join(dir, 'gsm8k.py'),
    },
    seed: 0,
    resume: 'fresh',
    offline: true,
    env: { ...process.env, PTB_PYTHON: python },
    evalsDir: join(dir, 'evals'),
    venvHome: dir,
  });
  return (performance.now() - t0) / 1000;
}

const results: Array<[string, number, number]> = [];
for (const [label, c] of [
  ['reference HumanEval (1)', 1],
  ['reference GSM8K (2)', 2],
  ['ptb default (64)', 64],
] as const) {
  results.push([label, c, await timed(c)]);
}
const ptb = results.at(-1)![2];
console.log(`items=${items} max_tokens=${maxTokens} model=${model}`);
for (const [label, c, s] of results) {
  console.log(
    `${label.padEnd(26)} concurrency ${String(c).padStart(2)}  ${s.toFixed(1)} s  (${(s / ptb).toFixed(2)}× ptb's default)`,
  );
}
