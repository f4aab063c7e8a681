import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { errorMessage } from '../core/errors.ts';
import { type EvaluateOptions, evaluate } from '../eval/evaluate.ts';
import type { EvalEvent } from '../eval/runEval.ts';
import type { AssetCache } from '../hub/assetCache.ts';
import type { EvalRepo } from '../store/evalRepo.ts';
import type { TrialRepo } from '../store/trialRepo.ts';
import { type ModelKind, modelKind } from './models.ts';

/**
 * `ptb baseline`: evaluate models directly, zero-shot with their chat template and the benchmark's
 * defaults (the reference's run_baseline.sh), and record each score as a baseline. Base-model
 * baselines are what a flagged or failed cell is scored as; base and instruct means give the
 * weights of `--weights from-baselines`.
 */

export interface BaselineOptions extends Omit<EvaluateOptions, 'model' | 'benchmark' | 'data'> {
  models: readonly string[];
  benchmarks: readonly string[];
  /** Overrides the kind guessed from the model name (`*-Base`/`*-pt` base, the four twins instruct). */
  kind?: ModelKind;
  /** Local data per benchmark (`{gsm8k: {test: file}}`); `*` applies to every benchmark. */
  data?: Record<string, Record<string, string>>;
}

export interface BaselineOutcome {
  model: string;
  benchmark: string;
  kind: ModelKind;
  accuracy: number | null;
  runId?: string;
  error?: string;
}

export type BaselineEvent =
  | { type: 'start'; model: string; benchmark: string; index: number; total: number }
  | { type: 'eval'; model: string; benchmark: string; event: EvalEvent }
  | { type: 'done'; outcome: BaselineOutcome };

/** A local checkpoint is recorded by its absolute path, a Hugging Face id as it is. */
function storedModelId(model: string): string {
  const abs = resolve(model);
  return existsSync(abs) ? abs : model;
}

export async function runBaselines(
  trials: TrialRepo,
  evals: EvalRepo,
  cache: AssetCache,
  opts: BaselineOptions,
  onEvent?: (e: BaselineEvent) => void,
  signal?: AbortSignal,
): Promise<BaselineOutcome[]> {
  const { models, benchmarks, kind: kindOverride, data, ...evalOpts } = opts;
  const outcomes: BaselineOutcome[] = [];
  const total = models.length * benchmarks.length;
  let index = 0;
  for (const model of models) {
    const id = storedModelId(model);
    const kind = kindOverride ?? modelKind(id);
    for (const benchmark of benchmarks) {
      signal?.throwIfAborted();
      onEvent?.({ type: 'start', model: id, benchmark, index: index++, total });
      let outcome: BaselineOutcome;
      try {
        const result = await evaluate(
          evals,
          cache,
          { ...evalOpts, model, benchmark, data: { ...data?.['*'], ...data?.[benchmark] } },
          (event) => onEvent?.({ type: 'eval', model: id, benchmark, event }),
          signal,
        );
        trials.addBaseline({
          model: id,
          benchmark,
          kind,
          accuracy: result.metrics.accuracy,
          source: 'ptb baseline',
          evalRunId: result.runId,
          protocol: result.protocol,
        });
        outcome = { model: id, benchmark, kind, accuracy: result.metrics.accuracy, runId: result.runId };
      } catch (err) {
        if (signal?.aborted) throw err;
        outcome = { model: id, benchmark, kind, accuracy: null, error: errorMessage(err) };
      }
      outcomes.push(outcome);
      onEvent?.({ type: 'done', outcome });
    }
  }
  return outcomes;
}
