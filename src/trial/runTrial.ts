import {
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { credentialFilesFor } from '../agents/definitions/common.ts';
import { findAgent } from '../agents/lookup.ts';
import { parseTraceFile } from '../agents/traces/registry.ts';
import { renderTrajectory } from '../agents/traces/render.ts';
import type { AgentRunContext } from '../agents/types.ts';
import { getBenchmark } from '../benchmarks/registry.ts';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import { UserError } from '../core/errors.ts';
import type { HomeLayout } from '../core/paths.ts';
import {
  AgentOutcomeSchema,
  ModelCallEventSchema,
  type Phase,
  type TrialSpec,
  type TrialSpecInput,
  TrialSpecSchema,
} from '../core/trial.ts';
import { SANDBOX_PATHS, type TrialLayout, trialLayout } from '../core/trialLayout.ts';
import { assertCheckpointDir } from '../core/userPaths.ts';
import { describeIssues } from '../core/zodIssues.ts';
import { readJsonLines } from '../detectors/shared/files.ts';
import type { EvalEvent } from '../eval/runEval.ts';
import type { AssetCache } from '../hub/assetCache.ts';
import { createRedactor, knownSecretsFromEnv } from '../ledgers/redact.ts';
import { ensurePythonEnv } from '../runtime/pythonEnv.ts';
import { grantSandboxRead, sandboxHostIds } from '../sandbox/bwrap.ts';
import { defaultImage } from '../sandbox/imageBuild.ts';
import { assertSandboxCan } from '../sandbox/registry.ts';
import type { EvalRepo } from '../store/evalRepo.ts';
import type { Trial, TrialRepo } from '../store/trialRepo.ts';
import { runAgentPhase } from './agentPhase.ts';
import { agentMounts } from './agentSandbox.ts';
import { runAuditPhase } from './auditPhase.ts';
import { collectTrial } from './collect.ts';
import { runEvaluatePhase } from './evaluatePhase.ts';
import { finalScore } from './finalize.ts';
import { buildHfCacheView, sharedHfCache as sharedHfCacheOf } from './hfCacheView.ts';
import { discardAttempt, discardUnfinishedPhases, stopOf } from './lostAttempt.ts';
import { renderPrompt } from './prompt.ts';
import { startHarnessServices } from './services.ts';
import { formatHms } from './traceWriter.ts';
import { withTrialLock } from './trialLock.ts';
import { prepareWorkspace, trialDirName } from './workspace.ts';

export interface TrialEnv {
  trials: TrialRepo;
  evals: EvalRepo;
  cache: AssetCache;
  home: HomeLayout;
  env: NodeJS.ProcessEnv;
  offline: boolean;
  signal?: AbortSignal;
  /** GPU indices this trial may use (given by the scheduler); default: all visible. */
  gpuIndices?: number[];
  onLine?: (line: string) => void;
  /** The agent's own output, line by line (redacted, as solve_out.txt records it), while it runs. */
  onAgentLine?: (line: string) => void;
  onEvalEvent?: (e: EvalEvent) => void;
  /** Override the agent's hard limit and kill grace (default: hours×60+5 min, then 30 s). */
  agentLimits?: { timeoutMs?: number; killGraceMs?: number };
  /** Test hook: called after each phase is persisted (crash-injection tests kill the process here). */
  afterPhase?: (phase: Phase) => void;
  /**
   * Under a batch scheduler a phase cut short (preemption, node loss, cancel) is thrown away and redone
   * (the agent from a fresh workspace with its full budget) instead of kept as interrupted.
   */
  redoStoppedPhases?: { restartCount: number | null };
}

const PrepareResultSchema = z.object({
  createdAtMs: z.number(),
  baseModelPath: z.string().nullable(),
  pristineFiles: z.array(z.string()),
  sharedHfCache: z.string().nullable().default(null),
});
const AgentResultSchema = z.object({
  outcome: AgentOutcomeSchema,
  exitCode: z.number().nullable(),
  seconds: z.number(),
  oomKilled: z.boolean(),
  detail: z.string(),
});

/**
 * Check a spec before anything is created: refuse what cannot run as asked, instead of weakening it.
 * `checkHost: false` (a grid submitted to a cluster) leaves the sandbox and GPU checks to the compute
 * node, where each trial's prepare phase makes them.
 */
export function validateTrialSpec(input: TrialSpecInput, opts: { checkHost?: boolean } = {}): TrialSpec {
  const parsed = TrialSpecSchema.safeParse(input);
  if (!parsed.success) {
    throw new UserError(
      `invalid trial: ${describeIssues(parsed.error.issues, input).join('; ')}`,
      'see `ptb trial run --help` (grids: docs/grid.md)',
    );
  }
  const spec = parsed.data;
  getBenchmark(spec.benchmark);
  findAgent(spec.agent);
  if (spec.agent === 'command' && !spec.agentCommand?.length) {
    throw new UserError('the command agent needs a command', 'pass --agent-command "<executable> [args]"');
  }
  if (opts.checkHost !== false) assertHostCanRun(spec);
  if (spec.sandbox !== 'bwrap' && spec.sandbox !== 'podman') {
    throw new UserError(
      `trials run their agent in bwrap or podman in this version; ${spec.sandbox} runs single commands only`,
      'use --sandbox bwrap or --sandbox podman',
    );
  }
  if (spec.baseModelPath) assertCheckpointDir(spec.baseModelPath, '--base-model-path');
  return spec;
}

/**
 * The chosen sandbox must give what the trial asks for here (GPUs, the network policy, its image), or
 * the trial is refused: before anything is created locally, at prepare on a compute node.
 */
export function assertHostCanRun(spec: TrialSpec): void {
  assertSandboxCan(spec.sandbox, {
    gpus: spec.gpus,
    network: spec.network,
    unsafeNoSandbox: spec.unsafeNoSandbox,
    ...(spec.sandbox === 'podman' || spec.sandbox === 'apptainer'
      ? { image: spec.image ?? defaultImage(spec.sandbox) }
      : {}),
  });
}

export function createTrial(t: Pick<TrialEnv, 'trials' | 'home'>, input: TrialSpecInput): Trial {
  const spec = validateTrialSpec(input);
  return t.trials.create(spec, (id) => join(t.home.trials, trialDirName(spec, id)));
}

/** Base model weights: an explicit path, or the snapshot in the Hugging Face cache. */
export function resolveBaseModelPath(spec: TrialSpec, env: NodeJS.ProcessEnv): string | null {
  if (spec.baseModelPath) return spec.baseModelPath;
  // The same cache the agent is shown (PTB_HF_CACHE, HF_HOME or ~/.cache/huggingface).
  const hfHome = sharedHfCacheOf(env);
  if (!hfHome) return null;
  const repoDir = join(hfHome, 'hub', `models--${spec.baseModel.replace(/\//g, '--')}`);
  const ref = join(repoDir, 'refs', 'main');
  if (!existsSync(ref)) return null;
  const snapshot = join(repoDir, 'snapshots', readFileSync(ref, 'utf8').trim());
  return existsSync(join(snapshot, 'config.json')) ? snapshot : null;
}

/** Give the workspace to the sandbox user when ptb runs as root (its writable binds must be its own). */
function chownTree(dir: string, uid: number, gid: number): void {
  chownSync(dir, uid, gid);
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) chownTree(path, uid, gid);
    else chownSync(path, uid, gid);
  }
}

/**
 * Run a trial through its phases, resuming after the last completed one. Each phase's result is in
 * the database before the next starts; a completed phase is never redone. An agent phase that was
 * running when the harness died is not restarted: it is recorded as interrupted with the time it used.
 */
export async function runTrial(t: TrialEnv, trialId: string): Promise<Trial> {
  const trial = t.trials.find(trialId);
  if (!trial) throw new UserError(`no trial ${trialId}`, 'list trials with `ptb trials`');
  // A completed trial is never run again (a resubmitted or requeued task finds it done).
  if (trial.status === 'completed') return trial;
  return withTrialLock(trial.dir, async () => {
    try {
      return await runPhases(t, trial);
    } catch (err) {
      // Whatever stopped the trial outside a phase (Ctrl-C between phases, no Python), the row must not
      // stay `running`: interrupted trials resume, failed ones say why.
      const now = t.trials.get(trial.id);
      if (now?.status === 'running') {
        t.trials.update(
          trial.id,
          t.signal?.aborted ? { status: 'interrupted' } : { status: 'failed', error: (err as Error).message },
        );
      }
      throw err;
    }
  });
}

async function runPhases(t: TrialEnv, trial: Trial): Promise<Trial> {
  const spec = trial.spec;
  const layout = trialLayout(trial.dir);
  const benchmark = getBenchmark(spec.benchmark);
  const agent = findAgent(spec.agent);
  const say = t.onLine ?? (() => {});
  mkdirSync(layout.root, { recursive: true });
  writeJsonAtomic(layout.spec, { id: trial.id, ...spec });
  const redo = t.redoStoppedPhases;
  if (redo) discardUnfinishedPhases(t.trials, trial.id, layout, redo.restartCount);
  t.trials.update(trial.id, { status: 'running', error: null });
  const python = await ensurePythonEnv({ home: t.home.root, env: t.env, onProgress: say, signal: t.signal });

  const step = async <T>(phase: Phase, run: (resumed: boolean) => Promise<T>): Promise<void> => {
    const row = t.trials.phase(trial.id, phase);
    if (row?.status === 'completed') return;
    t.signal?.throwIfAborted();
    t.trials.startPhase(trial.id, phase);
    say(`phase ${phase}${row ? ' (resumed)' : ''}`);
    try {
      // `started` without completion = the harness died inside this phase; `failed` phases simply run again.
      const result = await run(row?.status === 'started');
      // Under a batch scheduler a phase stopped mid-way is redone, never kept half-done.
      if (redo && t.signal?.aborted) throw t.signal.reason;
      t.trials.completePhase(trial.id, phase, result);
    } catch (err) {
      if (t.signal?.aborted) {
        const stop = stopOf(t.signal);
        if (redo) {
          discardAttempt(t.trials, trial.id, layout, {
            phase,
            startedAt: t.trials.phase(trial.id, phase)?.started_at ?? new Date().toISOString(),
            endedAtMs: Date.now(),
            reason: stop?.kind ?? 'interrupted',
            restartCount: redo.restartCount,
          });
        }
        t.trials.update(trial.id, { status: 'interrupted', ...(stop ? { error: stop.message } : {}) });
        throw err;
      }
      const message = (err as Error).message;
      t.trials.failPhase(trial.id, phase, message);
      t.trials.update(trial.id, { status: 'failed', error: `${phase}: ${message}` });
      throw err;
    }
    t.afterPhase?.(phase);
  };

  const redact = createRedactor(knownSecretsFromEnv(t.env));

  await step('prepare', async () => {
    // The machine running the trial must give what it asks for (a compute node may lack the sandbox or GPUs).
    assertHostCanRun(spec);
    const baseModelPath = resolveBaseModelPath(spec, t.env);
    const prompt = renderPrompt(spec, benchmark, agent);
    const prepared = await prepareWorkspace({
      spec,
      benchmark,
      layout,
      cache: t.cache,
      prompt,
      offline: t.offline,
      onLine: say,
    });
    mkdirSync(join(layout.work.dir, 'ptb-home'), { recursive: true });
    mkdirSync(join(layout.work.dir, 'hf_home'), { recursive: true });
    // The pre-seeded Hugging Face cache, read-only, behind a private writable view (discarded later).
    const sharedHfCache = sharedHfCacheOf(t.env);
    if (sharedHfCache) {
      const view = buildHfCacheView(sharedHfCache, join(layout.work.dir, 'hf_home'));
      say(`Hugging Face cache ${sharedHfCache}: ${view.repos} repos visible read-only to the agent`);
    }
    if (process.getuid?.() === 0) {
      const ids = sandboxHostIds();
      chownTree(layout.work.dir, ids.uid, ids.gid);
      const inputs = [baseModelPath, sharedHfCache, ...Object.values(spec.evalData)].filter(
        (p): p is string => p !== null,
      );
      for (const note of grantSandboxRead(inputs, ids)) say(`ptb: ${note}`);
    }
    return {
      createdAtMs: prepared.createdAtMs,
      baseModelPath,
      pristineFiles: prepared.pristineFiles,
      sharedHfCache,
    };
  });
  const prepared = t.trials.phaseResult(trial.id, 'prepare', PrepareResultSchema)!;
  mkdirSync(t.home.dataCache, { recursive: true });
  const mounts = agentMounts({
    spec,
    layout,
    python,
    baseModelPath: prepared.baseModelPath,
    dataCacheDir: t.home.dataCache,
    hfHome: join(layout.work.dir, 'hf_home'),
    sharedHfCache: prepared.sharedHfCache,
  });
  mounts.env.PTB_TASK_DEFAULT_LIMIT = String(benchmark.defaults.agentLimit ?? -1);
  mounts.env.PTB_TASK_DEFAULT_MAX_TOKENS = String(
    spec.evalMaxTokens ?? benchmark.defaults.maxTokensLadder[0],
  );

  await step('agent', async (resumed) => {
    if (resumed) return interruptedAgent(layout, t.trials.phase(trial.id, 'agent')!.started_at);
    const credentialsDir = join(t.home.root, 'credentials');
    const credentialFiles = credentialFilesFor(agent, credentialsDir);
    const services = await startHarnessServices({
      spec,
      layout,
      agent,
      env: t.env,
      mounts,
      credentialsDir,
    });
    try {
      const context: AgentRunContext = {
        prompt: readFileSync(layout.prompt, 'utf8'),
        agentConfig: spec.agentConfig,
        benchmark: spec.benchmark,
        baseModel: spec.baseModel,
        hours: spec.hours,
        gpus: spec.gpus,
        home: SANDBOX_PATHS.home,
        taskDir: SANDBOX_PATHS.task,
        relayUrls: services.relayUrls,
        relayTokens: services.relayTokens,
        credentialFiles: credentialFiles.map((f) => `${SANDBOX_PATHS.home}/${f.homePath}`),
        agentCommand: spec.agentCommand,
      };
      return await runAgentPhase({
        spec,
        home: t.home,
        credentialFiles,
        layout,
        agent,
        context,
        mounts,
        bridges: services.bridges,
        env: services.env,
        redact,
        signal: t.signal,
        budgetExceeded: services.budgetExceeded,
        onLine: t.onAgentLine,
        gpuIndices: t.gpuIndices,
        ...t.agentLimits,
      });
    } finally {
      await services.close();
    }
  });
  const agentResult = t.trials.phaseResult(trial.id, 'agent', AgentResultSchema)!;
  t.trials.update(trial.id, { agent_outcome: agentResult.outcome, agent_seconds: agentResult.seconds });

  await step('collect', async () => {
    const collected = await collectTrial(layout, [...mounts.readOnly, ...mounts.writable]);
    const trajectory = await parseTraceFile(agent.traceFormat, layout.solveOut);
    writeJsonAtomic(layout.trajectory, trajectory);
    writeFileSync(layout.solveParsed, renderTrajectory(trajectory));
    const totals = trajectory.totals;
    return {
      ...collected,
      tokens: { input: totals.inputTokens, output: totals.outputTokens, costUsd: totals.costUsd },
    };
  });

  await step('audit', async () =>
    runAuditPhase({
      trialId: trial.id,
      spec,
      layout,
      repo: t.trials,
      prepared,
      home: t.home,
      env: t.env,
      cache: t.cache,
      offline: t.offline,
      onLine: say,
    }),
  );

  await step('evaluate', async () =>
    runEvaluatePhase({
      spec,
      layout,
      evalRepo: t.evals,
      cache: t.cache,
      env: t.env,
      venvHome: t.home.root,
      offline: t.offline,
      gpuIndices: t.gpuIndices,
      onEvent: t.onEvalEvent,
      signal: t.signal,
    }),
  );

  await step('finalize', async () => {
    const evaluation = t.trials.phaseResult(
      trial.id,
      'evaluate',
      z.object({ metrics: z.object({ accuracy: z.number() }).passthrough().nullable() }).passthrough(),
    );
    const audit = t.trials.latestAudit(trial.id)?.combined ?? 'not_audited';
    const score = finalScore(
      spec,
      evaluation?.metrics?.accuracy ?? null,
      audit,
      t.trials.baselines(spec.protocol),
    );
    const calls = modelCallTotals(layout);
    t.trials.update(trial.id, {
      accuracy: score.accuracy,
      final_score: score.finalScore,
      substituted: score.substituted,
      audit_verdict: audit,
      input_tokens: calls.input,
      output_tokens: calls.output,
      cost_usd: calls.cost,
      status: 'completed',
      phase: null,
      finished_at: new Date().toISOString(),
    });
    return score;
  });
  return t.trials.get(trial.id)!;
}

/** The agent phase was running when the harness died: keep what it produced, record the time it used. */
function interruptedAgent(layout: TrialLayout, startedAt: string) {
  let lastAt = Date.parse(startedAt);
  if (existsSync(layout.solveOut)) lastAt = Math.max(lastAt, statSync(layout.solveOut).mtimeMs);
  const seconds = Math.max(0, (lastAt - Date.parse(startedAt)) / 1000);
  if (!existsSync(layout.timeTaken))
    writeFileSync(
      layout.timeTaken,
      `${formatHms(seconds * 1000)}
`,
    );
  return {
    outcome: 'interrupted' as const,
    exitCode: null,
    seconds,
    oomKilled: false,
    detail: 'the harness stopped while the agent ran; the trial continues with what the agent produced',
  };
}

function modelCallTotals(layout: TrialLayout): {
  input: number | null;
  output: number | null;
  cost: number | null;
} {
  const calls = readJsonLines(layout.ledgers.modelCalls, ModelCallEventSchema);
  if (!calls.exists) return { input: null, output: null, cost: null };
  // A torn last line (the harness died mid-write) is skipped: the totals cover the complete lines.
  const priced = calls.events.filter((c) => c.event.costUsd !== null);
  return {
    input: calls.events.reduce((n, c) => n + c.event.inputTokens, 0),
    output: calls.events.reduce((n, c) => n + c.event.outputTokens, 0),
    cost: priced.length > 0 ? priced.reduce((n, c) => n + (c.event.costUsd ?? 0), 0) : null,
  };
}
