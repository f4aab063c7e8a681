import { getBenchmark } from '../benchmarks/registry.ts';
import { UserError } from '../core/errors.ts';
import type { Sampling } from '../core/schemas.ts';
import { type EngineChoice, engineFor } from '../engines/registry.ts';
import type { AssetCache, AssetCacheOptions } from '../hub/assetCache.ts';
import type { EvalRepo } from '../store/evalRepo.ts';
import { resolveTemplate, SERVER_SIDE_TEMPLATE } from './chatTemplates.ts';
import { prepareBenchmark } from './prepareBenchmark.ts';
import { type EvalEvent, type EvalResult, normaliseModelRef, runEval } from './runEval.ts';
import { scoringDeps } from './scoringDeps.ts';

export interface EvaluateOptions extends AssetCacheOptions {
  model: string;
  benchmark: string;
  engine: EngineChoice;
  limit: number | null;
  concurrency?: number;
  /** Replace the first rung of the ladder (the reference's `--max-tokens`); lower rungs scale with it. */
  maxTokens?: number;
  template?: string;
  data?: Record<string, string>;
  sampling?: Sampling;
  seed: number | null;
  grader?: { baseUrl?: string; model?: string };
  resume: 'auto' | 'fresh' | { runId: string };
  /** Run HumanEval code without bubblewrap (explicit opt-out). */
  unsafeNoSandbox?: boolean;
  healthTimeoutMs?: number;
  env: NodeJS.ProcessEnv;
  evalsDir: string;
  venvHome: string;
}

function ladderFor(
  defaults: readonly [number, number, number],
  override?: number,
): readonly [number, number, number] {
  if (override === undefined) return defaults;
  const [a, b, c] = defaults;
  return [override, Math.round((override * b) / a), Math.round((override * c) / a)];
}

/** `ptb eval`: resolve everything an evaluation needs, then run it with the retry ladder. */
export async function evaluate(
  repo: EvalRepo,
  cache: AssetCache,
  opts: EvaluateOptions,
  onEvent?: (e: EvalEvent) => void,
  signal?: AbortSignal,
): Promise<EvalResult> {
  const benchmark = getBenchmark(opts.benchmark);
  const model = opts.engine.id === 'openai' ? opts.model : normaliseModelRef(opts.model);
  const { prepared, provenance } = await prepareBenchmark(benchmark, cache, {
    ...opts,
    overrides: opts.data,
  });
  const template =
    opts.engine.id === 'openai' && !opts.template
      ? SERVER_SIDE_TEMPLATE
      : await resolveTemplate(model, benchmark.usesTools, opts.template, cache, opts);
  const { grader, codeRunner } = scoringDeps(benchmark, opts);
  const engine = engineFor(opts.engine, { venvHome: opts.venvHome, env: opts.env });
  if (opts.limit !== null && (!Number.isInteger(opts.limit) || opts.limit === 0 || opts.limit < -1)) {
    throw new UserError(`--limit must be a positive integer or -1 (all), got ${opts.limit}`);
  }
  return runEval(
    repo,
    {
      benchmark,
      prepared,
      provenance,
      model,
      engine,
      template,
      limit: opts.limit === -1 ? null : opts.limit,
      concurrency: opts.concurrency ?? benchmark.defaults.concurrency,
      maxTokensLadder: ladderFor(benchmark.defaults.maxTokensLadder, opts.maxTokens),
      sampling: opts.sampling ?? {},
      seed: opts.seed,
      grader,
      codeRunner,
      evalsDir: opts.evalsDir,
      resume: opts.resume,
      healthTimeoutMs: opts.healthTimeoutMs,
    },
    onEvent,
    signal,
  );
}
