import { copyFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import type { Metrics } from '../core/schemas.ts';
import type { TrialSpec } from '../core/trial.ts';
import type { TrialLayout } from '../core/trialLayout.ts';
import { evaluate } from '../eval/evaluate.ts';
import { ENGINE_SANDBOX_LEDGER, type EvalEvent } from '../eval/runEval.ts';
import type { AssetCache } from '../hub/assetCache.ts';
import { visibleGpuIndices } from '../sandbox/gpuGate.ts';
import { defaultImage } from '../sandbox/imageBuild.ts';
import type { EvalRepo } from '../store/evalRepo.ts';

export interface EvaluatePhaseResult {
  metrics: Metrics | null;
  runId: string | null;
  maxTokens: number | null;
  attempts: number;
  error: string | null;
}

/**
 * The final evaluation: the copied final_model, ptb's own pristine evaluation code and templates
 * (nothing from the workspace), the retry ladder, resumable. Outputs keep upstream's names in the
 * trial directory (metrics.json, final_eval_<n>.txt).
 */
export async function runEvaluatePhase(o: {
  spec: TrialSpec;
  layout: TrialLayout;
  evalRepo: EvalRepo;
  cache: AssetCache;
  env: NodeJS.ProcessEnv;
  venvHome: string;
  offline: boolean;
  /** GPUs the scheduler gave the trial (default: the first spec.gpus CUDA would show). */
  gpuIndices?: number[];
  onEvent?: (e: EvalEvent) => void;
  signal?: AbortSignal;
}): Promise<EvaluatePhaseResult> {
  const { spec, layout } = o;
  let outDir: string | null = null;
  const onEvent = (e: EvalEvent) => {
    if (e.type === 'run') outDir = e.outDir;
    o.onEvent?.(e);
  };
  if (!existsSync(join(layout.finalModel, 'config.json'))) {
    return {
      metrics: null,
      runId: null,
      maxTokens: null,
      attempts: 0,
      error: 'no final_model was submitted',
    };
  }
  try {
    const result = await evaluate(
      o.evalRepo,
      o.cache,
      {
        model: layout.finalModel,
        benchmark: spec.benchmark,
        engine: { id: spec.engine === 'openai' ? 'hf' : spec.engine },
        limit: spec.evalLimit,
        maxTokens: spec.evalMaxTokens,
        template: spec.evalTemplate,
        data: spec.evalData,
        seed: spec.seed,
        protocol: spec.protocol,
        resume: 'auto',
        offline: o.offline,
        hfToken: o.env.HF_TOKEN,
        env: o.env,
        evalsDir: layout.evalDir,
        venvHome: o.venvHome,
        // final_model is the agent's: its engine runs in the trial's own kind of sandbox, on its GPUs.
        engineSandbox: spec.sandbox === 'podman' ? 'podman' : 'bwrap',
        engineSandboxReason: `final evaluation of the agent's final_model, in the trial's ${spec.sandbox === 'podman' ? 'podman' : 'bwrap'} sandbox`,
        engineGpus: o.gpuIndices ?? visibleGpuIndices({ env: o.env }).slice(0, spec.gpus),
        ...(spec.sandbox === 'podman'
          ? { engineImage: spec.image ?? defaultImage('podman', { root: o.venvHome }) }
          : {}),
      },
      onEvent,
      o.signal,
    );
    writeJsonAtomic(layout.metrics, result.metrics);
    // The reference's per-attempt logs and, under a seeded protocol, per-seed metrics.
    for (const name of readdirSync(result.outDir)) {
      if (/^(final_eval_(seed\d+_)?\d+\.txt|metrics_seed\d+\.json)$/.test(name))
        copyFileSync(join(result.outDir, name), join(layout.root, name));
    }
    return {
      metrics: result.metrics,
      runId: result.runId,
      maxTokens: result.maxTokens,
      attempts: result.attempts,
      error: null,
    };
  } catch (err) {
    if (o.signal?.aborted) throw err;
    return { metrics: null, runId: null, maxTokens: null, attempts: 0, error: (err as Error).message };
  } finally {
    copySandboxLedger(outDir, layout);
  }
}

/** The run's engine sandbox records become the trial's ledger (the run's file holds every attempt). */
function copySandboxLedger(outDir: string | null, layout: TrialLayout): void {
  if (outDir === null) return;
  const source = join(outDir, ENGINE_SANDBOX_LEDGER);
  if (existsSync(source)) copyFileSync(source, layout.ledgers.evalSandbox);
}
