import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gsm8kBenchmark } from '../benchmarks/gsm8k/index.ts';
import { PythonRandom } from '../benchmarks/shared/pythonRandom.ts';
import { DEMO_BASE_MODEL, DEMO_BASELINE_SOURCE, DEMO_EXPERIMENT } from '../core/demoNamespace.ts';
import { ensureDir } from '../core/paths.ts';
import { DEMO_PROMPT_SOURCE, demoProblem } from '../eval/demo.ts';
import { evaluate } from '../eval/evaluate.ts';
import { prepareBenchmark } from '../eval/prepareBenchmark.ts';
import { ensurePythonEnv } from '../runtime/pythonEnv.ts';
import { ensureTinyModelBuilt, tinyChatTemplatePath } from '../runtime/tinyModel.ts';
import type { Trial } from '../store/trialRepo.ts';
import { createTrial, runTrial, type TrialEnv } from './runTrial.ts';

/** The demo's evaluations: one per model, so it stays a few minutes on a CPU. */
const DEMO_PROTOCOL = 'v1.0';

export interface DemoTrialResult {
  trial: Trial;
  baseline: { accuracy: number; runId: string };
  testItems: number;
}

function writeJsonl(path: string, rows: readonly object[]): string {
  writeFileSync(path, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  return path;
}

/** The sft agent's own progress lines (steps, loss, rate, ETA, errors) while it trains; the rest stays in solve_out.txt. */
function agentProgress(say: (line: string) => void): (line: string) => void {
  return (line) => {
    if (line.startsWith('[sft]')) say(`agent ${line}`);
  };
}

/**
 * `ptb demo`: a complete trial offline on a CPU. A tiny Qwen3-architecture base model with a real
 * tokenizer, a small benchmark in GSM8K's exact format generated locally, the `sft` agent training
 * inside the bwrap sandbox on allowed (training-split) problems, the final evaluation by the hf
 * engine, and the base model's zero-shot score as the baseline the leaderboard substitutes.
 */
export async function runDemoTrial(
  t: TrialEnv,
  opts: {
    testItems?: number;
    trainSteps?: number;
    hours?: number;
    /** Use this checkpoint as the base model instead of building the tiny one (GPU runs). */
    baseModelPath?: string;
    gpus?: number;
    batchSize?: number;
    maxTokens?: number;
    /** Training processes of the sft agent under torchrun (default: one per GPU when several). */
    processes?: number;
  } = {},
): Promise<DemoTrialResult> {
  const say = t.onLine ?? (() => {});
  const dir = ensureDir(join(t.home.root, 'demo'));
  const rng = new PythonRandom(2025);
  const train = Array.from({ length: 400 }, () => demoProblem(rng, 'train'));
  const test = Array.from({ length: opts.testItems ?? 40 }, () => demoProblem(rng));
  const promptSource = join(dir, 'gsm8k_prompt.py');
  writeFileSync(promptSource, DEMO_PROMPT_SOURCE);
  const data = {
    test: writeJsonl(
      join(dir, 'test.jsonl'),
      test.map(({ question, answer }) => ({ question, answer })),
    ),
    train: writeJsonl(
      join(dir, 'train.jsonl'),
      train.map(({ question, answer }) => ({ question, answer })),
    ),
    'prompt-source': promptSource,
  };
  // Allowed training data: the training split, phrased the way the benchmark asks (as an agent would).
  const { prepared } = await prepareBenchmark(gsm8kBenchmark, t.cache, {
    offline: true,
    overrides: { test: data.train, train: data.train, 'prompt-source': promptSource },
  });
  const conversations = prepared.samples.map((sample) => {
    const record = sample.record as { answer: string };
    const [reasoning = '', target = ''] = record.answer.split('####').map((s) => s.trim());
    const request = prepared.request(sample, { seed: 0 });
    return {
      messages: [...request.messages, { role: 'assistant', content: `${reasoning}\n\nANSWER: ${target}` }],
    };
  });
  const trainData = writeJsonl(join(dir, 'train_data.jsonl'), conversations);

  say('preparing the Python environment (first run only)');
  const python = await ensurePythonEnv({ home: t.home.root, env: t.env, onProgress: say, signal: t.signal });
  const base = opts.baseModelPath
    ? { dir: opts.baseModelPath }
    : await (async () => {
        say('building the tiny base model');
        return ensureTinyModelBuilt({
          python,
          outDir: join(t.home.models, 'demo-qwen3-base'),
          args: ['--seed', '0', '--max-position-embeddings', '4096'],
          onLine: say,
          signal: t.signal,
        });
      })();
  const maxTokens = opts.maxTokens ?? 32;

  say(`zero-shot baseline: evaluating the base model on ${test.length} problems (engine hf)`);
  const evalOptions = {
    benchmark: 'gsm8k',
    engine: { id: 'hf' as const },
    limit: null,
    maxTokens,
    template: tinyChatTemplatePath,
    data,
    seed: 0,
    protocol: DEMO_PROTOCOL,
    resume: 'auto' as const,
    offline: true,
    env: t.env,
    evalsDir: t.home.evals,
    venvHome: t.home.root,
  };
  const baseline = await evaluate(
    t.evals,
    t.cache,
    { ...evalOptions, model: base.dir },
    t.onEvalEvent,
    t.signal,
  );
  t.trials.addBaseline({
    model: DEMO_BASE_MODEL,
    benchmark: 'gsm8k',
    kind: 'base',
    accuracy: baseline.metrics.accuracy,
    source: DEMO_BASELINE_SOURCE,
    evalRunId: baseline.runId,
    protocol: DEMO_PROTOCOL,
  });

  const trial = createTrial(t, {
    experiment: DEMO_EXPERIMENT,
    agent: 'sft',
    agentConfig: `${opts.processes ? `--nproc-per-node ${opts.processes} ` : ''}--steps ${opts.trainSteps ?? 120} --batch-size ${opts.batchSize ?? 16} --lr ${opts.baseModelPath ? '1e-5' : '3e-3'} --threads 2 --chat-template templates/tiny_chatml.jinja`,
    baseModel: DEMO_BASE_MODEL,
    baseModelPath: base.dir,
    benchmark: 'gsm8k',
    hours: opts.hours ?? 0.5,
    gpus: opts.gpus ?? 0,
    sandbox: 'bwrap',
    engine: 'hf',
    // The demo stays quick: one evaluation per model (v1.1 would run five seeds of a sampling model).
    protocol: DEMO_PROTOCOL,
    evalLimit: -1,
    evalData: data,
    evalTemplate: tinyChatTemplatePath,
    evalMaxTokens: maxTokens,
    taskFiles: { 'train_data.jsonl': trainData },
    network: 'none',
  });
  say(
    `trial ${trial.id}: agent sft, ${trial.spec.hours} h budget, sandbox bwrap; its training lines follow (all its output: solve_out.txt)`,
  );
  const finished = await runTrial({ ...t, onAgentLine: t.onAgentLine ?? agentProgress(say) }, trial.id);
  return {
    trial: finished,
    baseline: { accuracy: baseline.metrics.accuracy, runId: baseline.runId },
    testItems: test.length,
  };
}
