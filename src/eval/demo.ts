import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gsm8kBenchmark } from '../benchmarks/gsm8k/index.ts';
import { PythonRandom } from '../benchmarks/shared/pythonRandom.ts';
import { ensureDir, type HomeLayout } from '../core/paths.ts';
import type { Metrics } from '../core/schemas.ts';
import type { AssetCache } from '../hub/assetCache.ts';
import { ensurePythonEnv } from '../runtime/pythonEnv.ts';
import { ensureTinyModelBuilt, tinyChatTemplatePath } from '../runtime/tinyModel.ts';
import type { EvalRepo } from '../store/evalRepo.ts';
import { evaluate } from './evaluate.ts';
import { prepareBenchmark } from './prepareBenchmark.ts';
import type { EvalEvent } from './runEval.ts';

/**
 * `ptb demo`: a complete offline evaluation on CPU. It writes a small benchmark in GSM8K's exact
 * schema (synthetic one-step word problems; no real benchmark data), builds a tiny Qwen3-style
 * model with a real tokenizer, fine-tunes a copy of it on problems phrased the way the GSM8K
 * benchmark prompts (10-shot system message, step-by-step template), and evaluates both the
 * untrained and the fine-tuned model with the `hf` engine through the normal `ptb eval` path.
 */

const NAMES = ['Ada', 'Bo', 'Cy', 'Dee', 'Eve', 'Finn', 'Gia', 'Hal', 'Ivy', 'Jo', 'Kim', 'Lou'];
const THINGS = ['apples', 'pens', 'coins', 'cards', 'books', 'shells', 'stamps', 'beads'];

/**
 * One word problem in GSM8K's schema (reasoning, then `#### n`). Two counts are given and the
 * second is asked for: a model must find and copy the right number, which a tiny model learns on a
 * CPU in a couple of minutes and an untrained one cannot do. Short, so the 10-shot prompt stays small.
 */
export function demoProblem(rng: PythonRandom): { question: string; answer: string; value: number } {
  const name = NAMES[rng.randbelow(NAMES.length)]!;
  const first = THINGS[rng.randbelow(THINGS.length)]!;
  let second = THINGS[rng.randbelow(THINGS.length)]!;
  while (second === first) second = THINGS[rng.randbelow(THINGS.length)]!;
  const a = 2 + rng.randbelow(60);
  const b = 2 + rng.randbelow(60);
  return {
    question: `${name} has ${a} ${first} and ${b} ${second}. How many ${second}?`,
    answer: `${b} ${second}.\n#### ${b}`,
    value: b,
  };
}

/** Our own prompt source in the shape of inspect_evals' gsm8k.py (the real one is fetched, never shipped). */
export const DEMO_PROMPT_SOURCE = `# ptb demo prompt (not the reference text)
MATH_PROMPT_TEMPLATE = """
Solve this problem. End with a line "ANSWER: n".

{prompt}

Reasoning:
""".strip()
`;

export interface DemoOptions {
  home: HomeLayout;
  env: NodeJS.ProcessEnv;
  testItems?: number;
  trainSteps?: number;
  onLine?: (line: string) => void;
  onEvent?: (label: string, e: EvalEvent) => void;
  signal?: AbortSignal;
}

export interface DemoRow {
  model: string;
  accuracy: number;
  stderr: number | undefined;
  samples: number;
  /** Share of replies that end in the format the benchmark asks for (`ANSWER: <number>`). */
  formatted: number;
  runId: string;
}

function writeJsonl(path: string, rows: readonly object[]): string {
  writeFileSync(path, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return path;
}

export async function runDemo(
  repo: EvalRepo,
  cache: AssetCache,
  opts: DemoOptions,
): Promise<{ rows: DemoRow[]; metrics: Metrics[] }> {
  const say = opts.onLine ?? (() => {});
  const dir = ensureDir(join(opts.home.root, 'demo'));
  const rng = new PythonRandom(2025);
  const train = Array.from({ length: 400 }, () => demoProblem(rng));
  const test = Array.from({ length: opts.testItems ?? 40 }, () => demoProblem(rng));
  const data = {
    test: writeJsonl(
      join(dir, 'test.jsonl'),
      test.map(({ question, answer }) => ({ question, answer })),
    ),
    train: writeJsonl(
      join(dir, 'train.jsonl'),
      train.map(({ question, answer }) => ({ question, answer })),
    ),
    'prompt-source': join(dir, 'gsm8k_prompt.py'),
  };
  writeFileSync(data['prompt-source'], DEMO_PROMPT_SOURCE);

  // Training pairs: the exact conversations the benchmark sends, answered in the few-shot format.
  const { prepared } = await prepareBenchmark(gsm8kBenchmark, cache, {
    offline: true,
    overrides: { test: data.train, train: data.train, 'prompt-source': data['prompt-source'] },
  });
  const pairs = prepared.samples.map((sample) => {
    const record = sample.record as { answer: string };
    const [reasoning = '', target = ''] = record.answer.split('####').map((s) => s.trim());
    const request = prepared.request(sample, { seed: 0 });
    return {
      messages: [...request.messages, { role: 'assistant', content: `${reasoning}\n\nANSWER: ${target}` }],
    };
  });
  const pairsFile = writeJsonl(join(dir, 'sft-pairs.jsonl'), pairs);

  say('preparing the Python environment (first run only)');
  const python = await ensurePythonEnv({
    home: opts.home.root,
    env: opts.env,
    onProgress: say,
    signal: opts.signal,
  });
  say('building the tiny base model');
  const base = await ensureTinyModelBuilt({
    python,
    outDir: join(opts.home.models, 'demo-qwen3-base'),
    args: ['--seed', '0', '--max-position-embeddings', '4096'],
    onLine: say,
    signal: opts.signal,
  });
  say('fine-tuning a copy on synthetic problems (supervised, CPU)');
  const tuned = await ensureTinyModelBuilt({
    python,
    outDir: join(opts.home.models, 'demo-qwen3-sft'),
    args: [
      '--seed',
      '0',
      '--max-position-embeddings',
      '4096',
      '--train-data',
      pairsFile,
      '--train-steps',
      String(opts.trainSteps ?? 120),
      '--batch-size',
      '16',
    ],
    inputs: [pairsFile],
    onLine: say,
    signal: opts.signal,
  });

  const rows: DemoRow[] = [];
  const metrics: Metrics[] = [];
  for (const [label, model] of [
    ['tiny base model', base.dir],
    ['after fine-tuning', tuned.dir],
  ] as const) {
    say(`evaluating the ${label} on ${test.length} problems (engine hf)`);
    const result = await evaluate(
      repo,
      cache,
      {
        model,
        benchmark: 'gsm8k',
        engine: { id: 'hf' },
        limit: null,
        maxTokens: 32,
        template: tinyChatTemplatePath,
        data,
        seed: 0,
        resume: 'auto',
        offline: true,
        env: opts.env,
        evalsDir: opts.home.evals,
        venvHome: opts.home.root,
      },
      (e) => opts.onEvent?.(label, e),
      opts.signal,
    );
    const replies = repo.samples(result.runId, result.maxTokens).map((r) => r.reply_text ?? '');
    rows.push({
      model: label,
      accuracy: result.metrics.accuracy,
      stderr: result.metrics.stderr,
      samples: test.length,
      formatted: replies.filter((t) => /ANSWER:\s*-?\d+\s*$/.test(t)).length / Math.max(1, replies.length),
      runId: result.runId,
    });
    metrics.push(result.metrics);
  }
  return { rows, metrics };
}
