import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Grader } from '../benchmarks/shared/grader.ts';
import type { Benchmark, CodeRunner, PreparedBenchmark } from '../benchmarks/types.ts';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomicWrite.ts';
import { errorMessage, UserError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { ensureDir } from '../core/paths.ts';
import type { Protocol, ProtocolId } from '../core/protocols.ts';
import type { Metrics, Sample, Sampling, Score } from '../core/schemas.ts';
import { assertCheckpointDir } from '../core/userPaths.ts';
import { EngineRequestError, openAIChatClient } from '../engines/openaiClient.ts';
import { killStaleGroup, processStartTicks, ServerStartError } from '../engines/processes.ts';
import type { Engine, EngineHandle } from '../engines/types.ts';
import type { EvalRepo, EvalRunRow } from '../store/evalRepo.ts';
import type { ResolvedTemplate } from './chatTemplates.ts';
import { contextLengthReply } from './contextLengthReply.ts';
import { finishedRun, recordModel } from './finishedRun.ts';
import { runPool } from './pool.ts';
import type { DataProvenance } from './prepareBenchmark.ts';
import { requestSeed } from './requestSeed.ts';
import { recordRunOwner } from './runOwner.ts';

/** In a run's folder: one line per engine attempt that ran in the model sandbox (what it could see, how it ended). */
export const ENGINE_SANDBOX_LEDGER = 'engine_sandbox.jsonl';

/** The reference's retry ladder: attempts at the default, reduced and lowest max tokens (spec §1.11). */
export const LADDER_ATTEMPTS = [4, 3, 2] as const;

export interface EvalSettings {
  benchmark: Benchmark;
  prepared: PreparedBenchmark;
  provenance: DataProvenance[];
  /** Model path (absolute) or Hugging Face id. */
  model: string;
  engine: Engine;
  template: ResolvedTemplate;
  limit: number | null;
  concurrency: number;
  maxTokensLadder: readonly [number, number, number];
  sampling: Sampling;
  seed: number | null;
  grader?: Grader;
  codeRunner?: CodeRunner;
  /** Where per-run output folders go (`<evalsDir>/<run id>/`). */
  evalsDir: string;
  /** `auto` resumes an unfinished run with the same configuration; `fresh` never does. */
  resume: 'auto' | 'fresh' | { runId: string };
  /** Per-request timeout (the reference allows hours; default 1 h). */
  requestTimeoutMs?: number;
  /** Engine health timeout. */
  healthTimeoutMs?: number;
  /** First pause between retries of a transient request failure (default 1 s). */
  requestBackoffMs?: number;
  /** The evaluation protocol: scoring rules, seeds, attempt cap (recorded with the run). */
  protocol: Protocol;
  /** Wall-clock cap of one attempt, engine start included (default: the protocol's, 8 h). */
  attemptTimeoutMs?: number;
  /**
   * One seed of a seeded evaluation (see seededEval.ts): the evaluation it belongs to, the folder
   * and file names its files go to, and the rung its ladder starts at.
   */
  seedRun?: { parentId: string; outDir: string; files: RunFiles; startRung: number };
}

/** The names of a run's files inside its folder. */
export interface RunFiles {
  evalJson: string;
  metrics: string;
  samples: string;
  attemptLog(n: number): string;
  engine(n: number): string;
}

/** The reference's names for a single evaluation (metrics.json, final_eval_<n>.txt). */
export const SINGLE_RUN_FILES: RunFiles = {
  evalJson: 'eval.json',
  metrics: 'metrics.json',
  samples: 'samples.jsonl',
  attemptLog: (n) => `final_eval_${n}.txt`,
  engine: (n) => `engine_${n}.json`,
};

function filesOf(s: EvalSettings): RunFiles {
  return s.seedRun?.files ?? SINGLE_RUN_FILES;
}

export type EvalEvent =
  | { type: 'run'; runId: string; outDir: string; resumed: boolean; total: number }
  | { type: 'attempt'; n: number; rung: number; maxTokens: number; done: number; total: number }
  | { type: 'engine-ready'; n: number; ms: number }
  | { type: 'sample'; done: number; total: number; sampleId: string; value: number }
  | { type: 'attempt-failed'; n: number; rung: number; error: string; skipRung: boolean }
  | { type: 'completed'; metrics: Metrics }
  | { type: 'seed'; seed: number; index: number; total: number; startRung: number }
  | { type: 'seed-failed'; seed: number; first: boolean; error: string };

export interface EvalResult {
  runId: string;
  outDir: string;
  metrics: Metrics;
  maxTokens: number;
  rung: number;
  attempts: number;
  resumed: boolean;
  /** An earlier `ptb eval` with the same settings and checkpoint had finished: nothing was run. */
  reused?: boolean;
  protocol: ProtocolId;
  /** Seeded protocols: how each seed went (empty for a single unseeded evaluation). */
  seeds: SeedOutcome[];
}

export interface SeedOutcome {
  seed: number;
  runId: string | null;
  status: 'completed' | 'failed' | 'skipped';
  /** The ladder rung that produced the seed's metrics (the reference's max_tokens_stage). */
  rung: number | null;
  maxTokens: number | null;
  metrics: Metrics | null;
  error: string | null;
}

/** Everything that makes two evaluations the same evaluation (and so resumable into each other). */
export function evalConfig(s: EvalSettings, sampleIds: string[]) {
  return {
    benchmark: s.benchmark.id,
    protocol: s.protocol.id,
    model: s.model,
    engine: s.engine.id,
    limit: s.limit,
    maxTokensLadder: s.maxTokensLadder,
    sampling: s.sampling,
    seed: s.seed,
    requestSeed: s.seed === null ? 'none' : s.protocol.finalEval.requestSeed,
    ...(s.seedRun ? { parent: s.seedRun.parentId, startRung: s.seedRun.startRung } : {}),
    template: {
      name: s.template.name,
      sha256: s.template.sha256,
      source: s.template.source,
      reason: s.template.reason,
    },
    // Sorted: parts load concurrently, and the key must not depend on which finished first.
    data: [...s.provenance]
      .sort((a, b) => a.part.localeCompare(b.part))
      .map((p) => ({
        part: p.part,
        sha256: p.sha256,
        source: p.source,
        origin: p.origin,
        verified: p.verified,
      })),
    grader: s.grader ? { model: s.grader.model, baseUrl: s.grader.baseUrl } : null,
    samples: createHash('sha256').update(sampleIds.join('\n')).digest('hex'),
  };
}

export function configKey(config: object): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex');
}

function openRun(
  repo: EvalRepo,
  s: EvalSettings,
  config: ReturnType<typeof evalConfig>,
): { run: EvalRunRow; resumed: boolean; finished?: boolean } {
  const key = configKey(config);
  if (typeof s.resume === 'object') {
    const run = repo.getRun(s.resume.runId);
    if (!run)
      throw new UserError(`no evaluation with id ${s.resume.runId}`, 'List evaluations with `ptb evals`.');
    if (run.config_key !== key) {
      throw new UserError(
        `evaluation ${run.id} was started with different settings (benchmark, model, limit, template, data or sampling)`,
        'Resume it with the same flags, or start a new evaluation without --resume.',
      );
    }
    return { run, resumed: true };
  }
  if (s.resume === 'auto') {
    const finished = finishedRun(repo, key, s.model);
    if (finished) return { run: finished, resumed: true, finished: true };
    const run = repo.findResumable(key);
    if (run) return { run, resumed: true };
  }
  const id = newId(`eval-${s.benchmark.id}`);
  const outDir = ensureDir(s.seedRun?.outDir ?? join(s.evalsDir, id));
  const run = repo.createRun({
    id,
    benchmark: s.benchmark.id,
    model: s.model,
    engine: s.engine.id,
    configKey: key,
    config,
    outDir,
  });
  return { run, resumed: false };
}

/** Where the ladder stands: failed attempts per rung so far (interrupted ones do not count). */
function ladderPosition(
  repo: EvalRepo,
  runId: string,
  startRung: number,
): { rung: number; usedInRung: number } {
  const failedPerRung = [0, 0, 0];
  const skipped = new Set<number>(Array.from({ length: startRung }, (_, rung) => rung));
  for (const a of repo.attempts(runId)) {
    if (a.status === 'failed') failedPerRung[a.rung]! += 1;
    if (a.status === 'failed' && a.error?.startsWith('[context-length]')) skipped.add(a.rung);
  }
  for (let rung = 0; rung < 3; rung++) {
    if (skipped.has(rung) || failedPerRung[rung]! >= LADDER_ATTEMPTS[rung]!) continue;
    return { rung, usedInRung: failedPerRung[rung]! };
  }
  return { rung: 3, usedInRung: 0 };
}

/**
 * Evaluate a model on a benchmark with the reference's retry ladder. Every scored sample is in
 * the store before the next is counted, so a killed evaluation resumes where it stopped.
 */
export async function runEval(
  repo: EvalRepo,
  s: EvalSettings,
  onEvent: (e: EvalEvent) => void = () => {},
  signal?: AbortSignal,
): Promise<EvalResult> {
  const selected = s.benchmark.select(s.prepared.samples, { limit: s.limit });
  if (selected.length === 0)
    throw new UserError(`${s.benchmark.id}: no samples selected`, 'Check --limit and the data file.');
  const config = evalConfig(
    s,
    selected.map((x) => x.id),
  );
  const { run, resumed, finished } = openRun(repo, s, config);
  if (finished) {
    return {
      runId: run.id,
      outDir: run.out_dir,
      metrics: JSON.parse(run.metrics_json!) as Metrics,
      maxTokens: s.maxTokensLadder[run.rung!]!,
      rung: run.rung!,
      attempts: 0,
      resumed,
      reused: true,
      protocol: s.protocol.id,
      seeds: [],
    };
  }
  reapDanglingEngines(repo, run, filesOf(s));
  repo.closeDanglingAttempts(run.id);
  repo.setStatus(run.id, 'running');
  recordRunOwner(run.out_dir);
  if (!s.seedRun) recordModel(run.out_dir, s.model);
  // Where the engine ran is recorded with the run, outside its resume key (see src/sandbox/modelSandbox.ts).
  const files = filesOf(s);
  writeJsonAtomic(join(run.out_dir, files.evalJson), {
    id: run.id,
    ...config,
    isolation: s.engine.isolation,
  });
  onEvent({ type: 'run', runId: run.id, outDir: run.out_dir, resumed, total: selected.length });

  let attemptsMade = 0;
  for (;;) {
    const { rung } = ladderPosition(repo, run.id, s.seedRun?.startRung ?? 0);
    if (rung >= 3) {
      const attempts = repo.attempts(run.id);
      const last = attempts.at(-1);
      const error = `every attempt of the retry ladder failed; last error: ${last?.error ?? 'unknown'}`;
      repo.setStatus(run.id, 'failed', { error });
      const contextLength = attempts.some((a) => a.error?.startsWith('[context-length]'));
      throw new LadderExhausted(
        `${s.benchmark.id}: ${error}`,
        `${contextLength ? `Prompt and max tokens do not fit the model's context window: pass --max-tokens with less than the lowest rung (${s.maxTokensLadder.at(-1)}), or serve the model with a longer context. ` : ''}` +
          `Engine logs are in ${run.out_dir} (${files.attemptLog(1)} and the later attempts).`,
      );
    }
    const maxTokens = s.maxTokensLadder[rung]!;
    const logPathFor = (n: number) => join(run.out_dir, files.attemptLog(n));
    const n = repo.startAttempt(run.id, rung, maxTokens, logPathFor);
    attemptsMade++;
    const done = new Set(repo.samples(run.id, maxTokens).map((r) => r.sample_id));
    // Every attempt has its log, as the reference's stdout redirect makes one (engines append to it).
    appendFileSync(
      logPathFor(n),
      `[ptb] attempt ${n}${s.seed !== null && s.seedRun ? ` of seed ${s.seed}` : ''}: max tokens ${maxTokens}, ${done.size}/${selected.length} samples already recorded\n`,
    );
    onEvent({ type: 'attempt', n, rung, maxTokens, done: done.size, total: selected.length });
    const capMs = s.attemptTimeoutMs ?? s.protocol.finalEval.attemptTimeoutMs;
    const capped = attemptSignal(capMs, signal);
    try {
      await runAttempt(repo, s, run, n, maxTokens, selected, done, logPathFor(n), onEvent, capped.signal);
      repo.finishAttempt(run.id, n, 'completed');
      const metrics = finish(repo, s, run, selected, maxTokens, rung);
      onEvent({ type: 'completed', metrics });
      return {
        runId: run.id,
        outDir: run.out_dir,
        metrics,
        maxTokens,
        rung,
        attempts: attemptsMade,
        resumed,
        protocol: s.protocol.id,
        seeds: [],
      };
    } catch (err) {
      if (signal?.aborted) {
        repo.finishAttempt(run.id, n, 'interrupted', 'interrupted by the user');
        repo.setStatus(run.id, 'interrupted', { error: 'interrupted; run the same command again to resume' });
        throw new UserError(`evaluation ${run.id} interrupted`, 'Run the same command again to resume it.');
      }
      // A context-length rejection the reference does not score (see contextLengthReply) is
      // deterministic: retrying the same max tokens would fail the same way, so the ladder moves on
      // at once (the result equals the reference's).
      const contextLength = err instanceof EngineRequestError && err.kind === 'context_length';
      const reason = capped.timedOut()
        ? `the attempt ran past its ${formatCap(capMs)} cap (the reference's per-attempt timeout) and was stopped`
        : errorMessage(err);
      const message = `${contextLength && !capped.timedOut() ? '[context-length] ' : ''}${reason}`;
      repo.finishAttempt(run.id, n, 'failed', message);
      appendFileSync(logPathFor(n), `\n[ptb] attempt ${n} failed: ${message}\n`);
      onEvent({ type: 'attempt-failed', n, rung, error: message, skipRung: contextLength });
      if (err instanceof UserError && !(err instanceof EngineStartFailure) && !capped.timedOut()) {
        repo.setStatus(run.id, 'failed', { error: message });
        throw err;
      }
    } finally {
      capped.dispose();
    }
  }
}

/** The caller's signal, also aborted once the attempt has run for `capMs`. */
function attemptSignal(capMs: number, outer: AbortSignal | undefined) {
  const controller = new AbortController();
  let timedOut = false;
  const onOuter = () => controller.abort(outer?.reason);
  if (outer?.aborted) controller.abort(outer.reason);
  else outer?.addEventListener('abort', onOuter, { once: true });
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error('attempt time cap reached'));
  }, capMs);
  timer.unref?.();
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    dispose() {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

function formatCap(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** Every attempt of the ladder failed: a result (the reference scores the base model), not a bug. */
export class LadderExhausted extends UserError {}

function engineFile(run: EvalRunRow, n: number, files: RunFiles = SINGLE_RUN_FILES): string {
  return join(run.out_dir, files.engine(n));
}

/**
 * An attempt still marked running belongs to a ptb process that died (SIGKILL, OOM, node loss):
 * its engine server may still hold the GPU. Kill exactly that process group before going on.
 */
function reapDanglingEngines(repo: EvalRepo, run: EvalRunRow, files: RunFiles): void {
  for (const a of repo.attempts(run.id)) {
    if (a.status !== 'running' || !existsSync(engineFile(run, a.n, files))) continue;
    const { pid, startTicks } = JSON.parse(readFileSync(engineFile(run, a.n, files), 'utf8')) as {
      pid: number;
      startTicks: number | null;
    };
    if (startTicks !== null && killStaleGroup(pid, startTicks)) {
      appendFileSync(
        join(run.out_dir, files.attemptLog(a.n)),
        `\n[ptb] stopped engine process group ${pid} left by a killed ptb\n`,
      );
    }
  }
}

/** The engine did not come up: counts as a failed attempt of the ladder, like the reference. */
class EngineStartFailure extends UserError {}

async function runAttempt(
  repo: EvalRepo,
  s: EvalSettings,
  run: EvalRunRow,
  n: number,
  maxTokens: number,
  selected: Sample[],
  done: Set<string>,
  logFile: string,
  onEvent: (e: EvalEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const todo = selected
    .map((sample, position) => ({ sample, position }))
    .filter((x) => !done.has(x.sample.id));
  let count = done.size;
  if (todo.length === 0) return;
  const started = Date.now();
  let handle: EngineHandle;
  try {
    handle = await s.engine.start({
      model: s.model,
      chatTemplatePath: s.template.path || undefined,
      toolCallParser: s.benchmark.usesTools ? 'hermes' : undefined,
      gpuMemoryUtilization: s.benchmark.defaults.gpuMemoryUtilization,
      trustRemoteCode: s.benchmark.needsGrader,
      logFile,
      sandboxLedger: join(run.out_dir, ENGINE_SANDBOX_LEDGER),
      healthTimeoutMs: s.healthTimeoutMs,
      maxBatchSize: s.concurrency,
      // Recorded at spawn, not once healthy: a ptb killed while the server loads must find it on resume.
      onSpawn: (pid) =>
        writeJsonAtomic(engineFile(run, n, filesOf(s)), { pid, startTicks: processStartTicks(pid) }),
      signal,
    });
  } catch (err) {
    // A server that crashed or never became healthy is a failed attempt of the ladder, as in the
    // reference; anything else (no vllm executable, a bad model folder) fails at once.
    if (err instanceof ServerStartError) {
      throw new EngineStartFailure(`engine ${s.engine.id} did not start: ${errorMessage(err)}`, err.hint);
    }
    throw err;
  }
  if (handle.pid !== undefined) {
    writeJsonAtomic(engineFile(run, n, filesOf(s)), {
      pid: handle.pid,
      startTicks: processStartTicks(handle.pid),
    });
  }
  onEvent({ type: 'engine-ready', n, ms: Date.now() - started });
  const client = openAIChatClient(handle, {
    timeoutMs: s.requestTimeoutMs ?? 3_600_000,
    backoffMs: s.requestBackoffMs,
  });
  try {
    await runPool(
      todo,
      s.concurrency,
      async ({ sample, position }, poolSignal) => {
        const request = s.prepared.request(sample, { seed: s.seed });
        const sampling = withRequestSeed(s, sample, position);
        const sent = performance.now();
        const reply = await client
          .chat(request, { maxTokens, sampling, signal: poolSignal })
          .catch((err: unknown) => {
            const scored = contextLengthReply(err, performance.now() - sent);
            if (scored === null) throw err;
            return scored;
          });
        const score: Score = await s.prepared.score(sample, reply, {
          scoring: s.protocol.scoring,
          request,
          grader: s.grader,
          codeRunner: s.codeRunner,
          signal: poolSignal,
        });
        repo.recordSample({
          runId: run.id,
          sampleId: sample.id,
          maxTokens,
          position,
          request,
          replyText: reply.text,
          toolCalls: reply.toolCalls.length > 0 ? reply.toolCalls : undefined,
          finishReason: reply.finishReason,
          score,
          promptTokens: reply.promptTokens,
          completionTokens: reply.completionTokens,
          latencyMs: reply.latencyMs,
        });
        count++;
        onEvent({
          type: 'sample',
          done: count,
          total: selected.length,
          sampleId: sample.id,
          value: score.value,
        });
      },
      signal,
    );
  } finally {
    await handle.stop();
  }
}

/**
 * The request's sampling fields: the caller's, plus under a per-sample seed rule the request's own
 * seed, derived from the run seed and the sample's id in the reference (requestSeed.ts).
 */
function withRequestSeed(s: EvalSettings, sample: Sample, position: number): Sampling {
  if (s.seed === null || s.protocol.finalEval.requestSeed !== 'per-sample' || s.sampling.seed !== undefined) {
    return s.sampling;
  }
  const id = s.benchmark.referenceSampleId?.(sample, position) ?? sample.id;
  return { ...s.sampling, seed: requestSeed(s.seed, id) };
}

/** Aggregate the samples of the rung that completed and write the upstream-compatible files. */
function finish(
  repo: EvalRepo,
  s: EvalSettings,
  run: EvalRunRow,
  selected: Sample[],
  maxTokens: number,
  rung: number,
): Metrics {
  const rows = new Map(repo.samples(run.id, maxTokens).map((r) => [r.sample_id, r]));
  const scored = selected.map((sample) => {
    const row = rows.get(sample.id);
    if (!row) throw new Error(`internal: sample ${sample.id} has no record after a completed attempt`);
    return { sample, score: JSON.parse(row.score_json) as Score };
  });
  const metrics = s.benchmark.aggregate(scored);
  writeJsonAtomic(join(run.out_dir, filesOf(s).metrics), metrics);
  const lines = selected.map((sample) => {
    const row = rows.get(sample.id)!;
    return JSON.stringify({
      id: sample.id,
      score: row.score,
      answer: row.answer,
      response: row.reply_text,
      tool_calls: row.tool_calls_json ? JSON.parse(row.tool_calls_json) : undefined,
      finish_reason: row.finish_reason,
      prompt_tokens: row.prompt_tokens,
      completion_tokens: row.completion_tokens,
      latency_ms: row.latency_ms,
    });
  });
  writeFileAtomic(join(run.out_dir, filesOf(s).samples), `${lines.join('\n')}\n`);
  repo.setStatus(run.id, 'completed', { metrics, rung });
  return metrics;
}

/** Absolute path for a local model directory, or the id unchanged for a Hugging Face id. */
export function normaliseModelRef(model: string): string {
  const abs = resolve(model);
  if (existsSync(abs)) {
    assertCheckpointDir(abs, 'model');
    return abs;
  }
  if (/^[\w.-]+\/[\w.-]+$/.test(model) && !model.startsWith('.')) return model;
  throw new UserError(
    `model ${model} is neither a local directory nor a Hugging Face id (org/name)`,
    'Pass the path of a checkpoint directory (with config.json) or an id like Qwen/Qwen3-1.7B-Base.',
  );
}
