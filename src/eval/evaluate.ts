import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { getBenchmark } from '../benchmarks/registry.ts';
import { UserError } from '../core/errors.ts';
import { ptbHome } from '../core/paths.ts';
import { DEFAULT_PROTOCOL, getProtocol } from '../core/protocols.ts';
import type { Sampling } from '../core/schemas.ts';
import { type EngineChoice, engineFor } from '../engines/registry.ts';
import { ENGINE_CACHE_DIR } from '../engines/serverLaunch.ts';
import type { EngineIsolation } from '../engines/types.ts';
import type { AssetCache, AssetCacheOptions } from '../hub/assetCache.ts';
import { isBwrapAvailable } from '../sandbox/bwrap.ts';
import { visibleGpuIndices } from '../sandbox/gpuGate.ts';
import { defaultImage } from '../sandbox/imageBuild.ts';
import type { EvalRepo } from '../store/evalRepo.ts';
import { resolveTemplate, SERVER_SIDE_TEMPLATE } from './chatTemplates.ts';
import { prepareBenchmark } from './prepareBenchmark.ts';
import { type EvalEvent, type EvalResult, normaliseModelRef } from './runEval.ts';
import { scoringDeps } from './scoringDeps.ts';
import { greedyDecoding, runFinalEval } from './seededEval.ts';

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
  /** Evaluation protocol (default: DEFAULT_PROTOCOL). */
  protocol?: string;
  /** Cap of one attempt instead of the protocol's (tests). */
  attemptTimeoutMs?: number;
  grader?: { baseUrl?: string; model?: string };
  resume: 'auto' | 'fresh' | { runId: string };
  /** Run HumanEval code without bubblewrap (explicit opt-out). */
  unsafeNoSandbox?: boolean;
  /** Where the engine that loads the model runs (default: see engineIsolation). */
  engineSandbox?: EngineSandboxChoice;
  /** Why the engine runs where it does, recorded with the run (default: derived from the choice). */
  engineSandboxReason?: string;
  /** GPUs of a sandboxed engine (default: every GPU CUDA would show). */
  engineGpus?: number[];
  /** podman image of a podman engine sandbox (default: the one `ptb image build` makes). */
  engineImage?: string;
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

export type EngineSandboxChoice = 'bwrap' | 'podman' | 'none';

/**
 * Where a local engine runs. A local checkpoint is untrusted (an agent may have written it, custom
 * modelling code included): by default its engine runs in the bwrap model sandbox. A Hugging Face id
 * is a published model: by default on the host (the sandbox has no network to fetch it). `none` is the
 * explicit opt-out for trusted models and machines without bwrap; the choice and its reason are
 * recorded with the run.
 */
export function engineIsolation(
  model: string,
  opts: Pick<
    EvaluateOptions,
    'engineSandbox' | 'engineSandboxReason' | 'engineGpus' | 'engineImage' | 'env'
  > & {
    venvHome?: string;
  },
): EngineIsolation {
  const local = existsSync(model);
  const choice = opts.engineSandbox ?? (local ? 'bwrap' : 'none');
  if (choice === 'none') {
    const reason =
      opts.engineSandboxReason ??
      (opts.engineSandbox === 'none'
        ? 'explicit opt-out (--engine-sandbox none): the model is trusted'
        : 'a Hugging Face hub model: published weights, fetched by the engine on the host');
    return { sandbox: 'none', reason };
  }
  if (choice === 'bwrap') {
    if (!isBwrapAvailable()) {
      throw new UserError(
        'The engine that loads the model runs in the bwrap sandbox, and bwrap is not available here.',
        'install bubblewrap (apt-get install bubblewrap), or pass --engine-sandbox none for a model you trust',
      );
    }
  }
  const gpuIndices = opts.engineGpus ?? visibleGpuIndices({ env: opts.env });
  const reason =
    opts.engineSandboxReason ??
    (opts.engineSandbox
      ? `--engine-sandbox ${choice}`
      : 'a local checkpoint is untrusted: its engine runs in the sandbox');
  return choice === 'podman'
    ? {
        sandbox: 'podman',
        gpuIndices,
        image: opts.engineImage ?? defaultImage('podman', { root: opts.venvHome ?? ptbHome(opts.env) }),
        reason,
      }
    : { sandbox: 'bwrap', gpuIndices, reason };
}

/** `ptb eval`: resolve everything an evaluation needs, then run it under its protocol (seeds, retry ladder). */
export async function evaluate(
  repo: EvalRepo,
  cache: AssetCache,
  opts: EvaluateOptions,
  onEvent?: (e: EvalEvent) => void,
  signal?: AbortSignal,
): Promise<EvalResult & { isolation?: EngineIsolation }> {
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
  const { grader, codeRunner } = await scoringDeps(benchmark, opts);
  const engine = engineFor(opts.engine, {
    venvHome: opts.venvHome,
    env: opts.env,
    isolation: opts.engine.id === 'openai' ? undefined : engineIsolation(model, opts),
  });
  if (opts.limit !== null && (!Number.isInteger(opts.limit) || opts.limit === 0 || opts.limit < -1)) {
    throw new UserError(`--limit must be a positive integer or -1 (all), got ${opts.limit}`);
  }
  const protocol = getProtocol(opts.protocol ?? DEFAULT_PROTOCOL);
  const sampling = opts.sampling ?? {};
  const decoding = { greedy: opts.engine.id === 'openai' ? null : greedyDecoding(model, sampling) };
  const result = await runFinalEval(
    repo,
    {
      benchmark,
      protocol,
      attemptTimeoutMs: opts.attemptTimeoutMs,
      prepared,
      provenance,
      model,
      engine,
      template,
      limit: opts.limit === -1 ? null : opts.limit,
      concurrency: opts.concurrency ?? benchmark.defaults.concurrency,
      maxTokensLadder: ladderFor(benchmark.defaults.maxTokensLadder, opts.maxTokens),
      sampling,
      seed: opts.seed,
      grader,
      codeRunner,
      evalsDir: opts.evalsDir,
      resume: opts.resume,
      healthTimeoutMs: opts.healthTimeoutMs,
    },
    decoding,
    onEvent,
    signal,
  );
  // The engine's compile caches serve retries and seeds of this run only; a finished run needs none.
  rmSync(join(result.outDir, ENGINE_CACHE_DIR), { recursive: true, force: true });
  return { ...result, isolation: engine.isolation };
}
