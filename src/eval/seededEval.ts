import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import { UserError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { ensureDir } from '../core/paths.ts';
import { seedsFor } from '../core/protocols.ts';
import type { Metrics, Sampling } from '../core/schemas.ts';
import type { EvalRepo, EvalRunRow } from '../store/evalRepo.ts';
import { finishedRun, recordModel } from './finishedRun.ts';
import {
  configKey,
  type EvalEvent,
  type EvalResult,
  type EvalSettings,
  evalConfig,
  LadderExhausted,
  type RunFiles,
  runEval,
  type SeedOutcome,
} from './runEval.ts';
import { recordRunOwner } from './runOwner.ts';

/**
 * The final evaluation under a protocol. Without seeds (v1.0) it is one evaluation through the
 * retry ladder. With seeds (v1.1, upstream `src/eval/run_final_eval.sh` @ 214ccb4) every seed is
 * its own evaluation through the ladder, one after another: if the first seed fails at every rung
 * the others are skipped and there is no score (the trial scores as the base model); later seeds
 * start at the rung where the first one succeeded, and one that fails at every rung is left out of
 * the mean. `metrics.json` is the mean over the seeds that succeeded
 * (`src/utils/aggregate_seed_metrics.py` @ 8e0fa4c). Files use the reference's names:
 * `metrics_seed<S>.json` and `final_eval_seed<S>_<N>.txt` (N counts each seed's attempts).
 */
export async function runFinalEval(
  repo: EvalRepo,
  s: EvalSettings,
  decoding: { greedy: boolean | null },
  onEvent: (e: EvalEvent) => void = () => {},
  signal?: AbortSignal,
): Promise<EvalResult> {
  const seeds = seedsFor(s.protocol, s.benchmark.id, decoding.greedy === true);
  if (seeds.length === 0) return runEval(repo, s, onEvent, signal);
  const { run: parent, finished } = openParent(repo, s, seeds);
  if (finished) return finishedEarlier(repo, s, parent);
  recordRunOwner(parent.out_dir);
  recordModel(parent.out_dir, s.model);
  const outcomes: SeedOutcome[] = [];
  let startRung = 0;
  let attempts = 0;
  let resumed = false;
  for (const [index, seed] of seeds.entries()) {
    const first = index === 0;
    onEvent({ type: 'seed', seed, index, total: seeds.length, startRung });
    const child: EvalSettings = {
      ...s,
      seed,
      resume: 'auto',
      seedRun: { parentId: parent.id, outDir: parent.out_dir, files: seedRunFiles(seed), startRung },
    };
    const done = completedChild(repo, child);
    if (done) {
      outcomes.push(done);
      resumed = true;
    } else {
      try {
        const result = await runEval(repo, child, onEvent, signal);
        attempts += result.attempts;
        resumed ||= result.resumed;
        outcomes.push({
          seed,
          runId: result.runId,
          status: 'completed',
          rung: result.rung,
          maxTokens: result.maxTokens,
          metrics: result.metrics,
          error: null,
        });
      } catch (err) {
        if (!(err instanceof LadderExhausted)) throw err;
        outcomes.push({ ...skipped(seed), status: 'failed', error: err.message });
        onEvent({ type: 'seed-failed', seed, first, error: err.message });
        if (first) {
          for (const later of seeds.slice(1)) outcomes.push(skipped(later));
          const error = `seed ${seed}, the first of the final evaluation, failed at every rung, so the other seeds were skipped (the reference then scores the base model): ${err.message}`;
          repo.setStatus(parent.id, 'failed', { error });
          writeSeedSummary(parent, outcomes, seeds);
          throw new LadderExhausted(error, err.hint);
        }
        continue;
      }
    }
    if (first && s.protocol.finalEval.laterSeedsStartAtFirstSeedRung) startRung = outcomes[0]!.rung!;
  }
  const metrics = aggregateSeedMetrics(outcomes, seeds.length);
  writeJsonAtomic(join(parent.out_dir, 'metrics.json'), metrics);
  writeSeedSummary(parent, outcomes, seeds);
  const firstSeed = outcomes[0]!;
  repo.setStatus(parent.id, 'completed', { metrics, rung: firstSeed.rung! });
  onEvent({ type: 'completed', metrics });
  return {
    runId: parent.id,
    outDir: parent.out_dir,
    metrics,
    maxTokens: firstSeed.maxTokens!,
    rung: firstSeed.rung!,
    attempts,
    resumed,
    protocol: s.protocol.id,
    seeds: outcomes,
  };
}

/** A finished evaluation reported again, seeds as seeds.json recorded them: nothing is run. */
function finishedEarlier(repo: EvalRepo, s: EvalSettings, parent: EvalRunRow): EvalResult {
  const recorded = readJsonObject(join(parent.out_dir, 'seeds.json'));
  const entries = Array.isArray(recorded?.outcomes)
    ? (recorded.outcomes as Array<Record<string, unknown>>)
    : [];
  const seeds: SeedOutcome[] = entries.map((o) => {
    const runId = typeof o.run_id === 'string' ? o.run_id : null;
    const child = runId ? repo.getRun(runId) : undefined;
    return {
      seed: Number(o.seed),
      runId,
      status: o.status as SeedOutcome['status'],
      rung: typeof o.max_tokens_stage === 'number' ? o.max_tokens_stage : null,
      maxTokens: typeof o.max_tokens === 'number' ? o.max_tokens : null,
      metrics: child?.metrics_json ? (JSON.parse(child.metrics_json) as Metrics) : null,
      error: typeof o.error === 'string' ? o.error : null,
    };
  });
  return {
    runId: parent.id,
    outDir: parent.out_dir,
    metrics: JSON.parse(parent.metrics_json!) as Metrics,
    maxTokens: s.maxTokensLadder[parent.rung!]!,
    rung: parent.rung!,
    attempts: 0,
    resumed: true,
    reused: true,
    protocol: s.protocol.id,
    seeds,
  };
}

/** The per-seed file names of run_final_eval.sh (plus ptb's own records, named alike). */
export function seedRunFiles(seed: number): RunFiles {
  return {
    evalJson: `eval_seed${seed}.json`,
    metrics: `metrics_seed${seed}.json`,
    samples: `samples_seed${seed}.jsonl`,
    attemptLog: (n) => `final_eval_seed${seed}_${n}.txt`,
    engine: (n) => `engine_seed${seed}_${n}.json`,
  };
}

function skipped(seed: number): SeedOutcome {
  return { seed, runId: null, status: 'skipped', rung: null, maxTokens: null, metrics: null, error: null };
}

/** The seeded evaluation's own record: one row and folder that its seeds' runs belong to. */
function openParent(
  repo: EvalRepo,
  s: EvalSettings,
  seeds: number[],
): { run: EvalRunRow; finished: boolean } {
  const selected = s.benchmark.select(s.prepared.samples, { limit: s.limit });
  const config = {
    ...evalConfig(
      { ...s, seed: null },
      selected.map((x) => x.id),
    ),
    seeds,
  };
  const key = configKey(config);
  if (typeof s.resume === 'object') {
    const run = repo.getRun(s.resume.runId);
    if (!run)
      throw new UserError(`no evaluation with id ${s.resume.runId}`, 'List evaluations with `ptb evals`.');
    if (run.config_key !== key) {
      throw new UserError(
        `evaluation ${run.id} was started with different settings (protocol, benchmark, model, limit, template, data or sampling)`,
        'Resume it with the same flags, or start a new evaluation without --resume.',
      );
    }
    repo.setStatus(run.id, 'running');
    return { run, finished: false };
  }
  const finished = s.resume === 'auto' ? finishedRun(repo, key, s.model) : undefined;
  if (finished) return { run: finished, finished: true };
  const existing = s.resume === 'auto' ? repo.findResumable(key) : undefined;
  if (existing) {
    repo.setStatus(existing.id, 'running');
    return { run: existing, finished: false };
  }
  const id = newId(`eval-${s.benchmark.id}`);
  const outDir = ensureDir(join(s.evalsDir, id));
  const run = repo.createRun({
    id,
    benchmark: s.benchmark.id,
    model: s.model,
    engine: s.engine.id,
    configKey: key,
    config,
    outDir,
  });
  writeJsonAtomic(join(outDir, 'eval.json'), { id, ...config, isolation: s.engine.isolation });
  return { run, finished: false };
}

/** A seed that an earlier invocation already evaluated (same parent, seed and start rung). */
function completedChild(repo: EvalRepo, child: EvalSettings): SeedOutcome | null {
  const selected = child.benchmark.select(child.prepared.samples, { limit: child.limit });
  const key = configKey(
    evalConfig(
      child,
      selected.map((x) => x.id),
    ),
  );
  const run = repo.findCompleted(key);
  if (!run?.metrics_json || run.rung === null) return null;
  return {
    seed: child.seed!,
    runId: run.id,
    status: 'completed',
    rung: run.rung,
    maxTokens: child.maxTokensLadder[run.rung] ?? null,
    metrics: JSON.parse(run.metrics_json) as Metrics,
    error: null,
  };
}

const RESERVED_KEYS = ['num_seeds', 'num_seeds_succeeded', 'per_seed'];

/**
 * aggregate_seed_metrics.py: the mean of every top-level numeric metric over the seeds that
 * succeeded (non-numeric metrics only under per_seed), then num_seeds (the seeds attempted),
 * num_seeds_succeeded and per_seed {seed: {max_tokens_stage, metrics}}.
 */
export function aggregateSeedMetrics(outcomes: readonly SeedOutcome[], numSeeds: number): Metrics {
  const succeeded = outcomes.filter((o) => o.status === 'completed' && o.metrics !== null);
  if (succeeded.length === 0) throw new Error('internal: no seed succeeded');
  const keys = Object.keys(succeeded[0]!.metrics!);
  const aggregated: Record<string, unknown> = {};
  for (const key of keys) {
    if (RESERVED_KEYS.includes(key)) throw new Error(`metric key ${key} collides with an aggregation field`);
    const values = succeeded.map((o) => o.metrics![key]);
    const numeric = values.map((v) => typeof v === 'number');
    if (numeric.every(Boolean)) {
      aggregated[key] = (values as number[]).reduce((a, b) => a + b, 0) / values.length;
    } else if (numeric.some(Boolean)) {
      throw new Error(`metric ${key} is numeric for some seeds but not others`);
    }
  }
  aggregated.num_seeds = numSeeds;
  aggregated.num_seeds_succeeded = succeeded.length;
  aggregated.per_seed = Object.fromEntries(
    succeeded.map((o) => [String(o.seed), { max_tokens_stage: o.rung, metrics: o.metrics }]),
  );
  return aggregated as Metrics;
}

/** seeds.json: the plan and how each seed went (the reference prints this to its log). */
function writeSeedSummary(
  parent: EvalRunRow,
  outcomes: readonly SeedOutcome[],
  seeds: readonly number[],
): void {
  writeJsonAtomic(join(parent.out_dir, 'seeds.json'), {
    seeds,
    outcomes: outcomes.map(({ seed, runId, status, rung, maxTokens, error }) => ({
      seed,
      run_id: runId,
      status,
      max_tokens_stage: rung,
      max_tokens: maxTokens,
      error,
    })),
  });
}

// vLLM's _SAMPLING_EPS: below it a temperature decodes greedily.
const SAMPLING_EPS = 1e-5;

function readJsonObject(path: string): Record<string, unknown> | null {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/**
 * Whether vLLM decodes the model greedily when a request sets no temperature (upstream
 * `src/utils/default_temperature.py` @ 6f4fbbf): the temperature of generation_config.json, else
 * of config.json, else vLLM's 1.0; greedy below 1e-5. An explicit sampling override decides
 * instead. null when it cannot be read (a Hugging Face id, no config): every seed is used, as the
 * reference does when its probe fails.
 */
export function greedyDecoding(model: string, sampling: Sampling): boolean | null {
  if (sampling.temperature !== undefined) return sampling.temperature < SAMPLING_EPS;
  if (!existsSync(join(model, 'config.json'))) return null;
  const generation = readJsonObject(join(model, 'generation_config.json'));
  const source = generation ?? readJsonObject(join(model, 'config.json'));
  if (source === null) return null;
  const temperature = typeof source.temperature === 'number' ? source.temperature : 1.0;
  return temperature < SAMPLING_EPS;
}
