import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../core/atomicWrite.ts';
import { isUserError, UserError } from '../core/errors.ts';
import { type HomeLayout, repoRoot } from '../core/paths.ts';
import type { TrialSpec } from '../core/trial.ts';
import type { TrialBrief, TrialRepo } from '../store/trialRepo.ts';
import { cellKey } from '../trial/grid.ts';
import { trialDirName } from '../trial/workspace.ts';
import {
  appendSubmission,
  defaultResultsDir,
  type ExperimentFiles,
  type ExperimentRecord,
  experimentFiles,
  findExperiment,
  homeRecordPath,
  type ManifestLine,
  type ManifestTask,
  markSubmissionPending,
  readManifest,
  readSubmissions,
  writeExperiment,
  writeManifest,
} from './experimentRecord.ts';
import { type SchedulerBlock, slurmResources } from './schedulerConfig.ts';
import { batchScript, EXEC_EXIT, taskLogPath } from './slurm/batchScript.ts';
import {
  type Executor,
  LIVE_TASK_STATES,
  type Submission,
  type TaskState,
  type TaskStatus,
} from './types.ts';

export const PTB_VERSION = '0.1.0';

/** A trial's state as `ptb run status` shows it: the scheduler's word merged with the trial's own record. */
export type RunState = TaskState | 'not_submitted';

/** States `ptb run resume` submits again (a completed trial never; a live task is left to the scheduler). */
const RESUBMITTED: ReadonlySet<RunState> = new Set([
  'failed',
  'cancelled',
  'timeout',
  'out_of_memory',
  'node_fail',
  'preempted',
  'unknown',
  'not_submitted',
]);

export interface SchedulerContext {
  home: HomeLayout;
  repo: TrialRepo;
  executor: Executor;
  say(line: string): void;
}

/** Trial specs in grid order: the same grid always hashes the same. */
export function gridHash(specs: readonly TrialSpec[]): string {
  return createHash('sha256')
    .update(JSON.stringify(specs.map((s) => [cellKey(s), s])))
    .digest('hex');
}

function checkResultsDir(dir: string): string {
  const abs = resolve(dir);
  // sbatch's #SBATCH lines and --output patterns do not survive these characters.
  if (/[\s%"'\\]/.test(abs)) {
    throw new UserError(
      `the results directory ${abs} has a space, quote, backslash or % in its path`,
      'choose scheduler.results_dir without them (Slurm log patterns cannot hold them)',
    );
  }
  return abs;
}

function ptbCommand(block: SchedulerBlock): string[] {
  return block.ptb_command ?? [process.execPath, join(repoRoot, 'bin', 'ptb.js')];
}

/** The trials this experiment's results directory holds, indexed (reads only journals that grew). */
export function syncExperiment(ctx: Pick<SchedulerContext, 'repo'>, record: ExperimentRecord): void {
  ctx.repo.syncDirs([experimentFiles(record.resultsDir).trials]);
}

export interface SubmitResult {
  record: ExperimentRecord;
  submission: Submission | null;
  /** What happened, for the user. */
  message: string;
}

/**
 * `ptb run --scheduler slurm`: write the manifest and submit one job array for every trial that is
 * not completed. Running it again with the same grid submits nothing; another grid under the same
 * name is refused.
 */
export async function submitExperiment(
  ctx: SchedulerContext,
  o: { experiment: string; specs: TrialSpec[]; block: SchedulerBlock; offline: boolean },
): Promise<SubmitResult> {
  ctx.executor.checkClient?.();
  const hash = gridHash(o.specs);
  const existing = findExperiment(ctx.home, o.experiment);
  if (existing && existing.gridHash !== hash) {
    throw new UserError(
      `experiment ${o.experiment} exists already with a different grid (${existing.trials} trials, submitted ${existing.createdAt})`,
      'give this grid another experiment name, or run the grid it was submitted with (`ptb run status ' +
        `${o.experiment}\` shows it)`,
    );
  }
  const resultsDir = checkResultsDir(
    existing?.resultsDir ?? o.block.results_dir ?? defaultResultsDir(ctx.home, o.experiment),
  );
  const files = experimentFiles(resultsDir);
  if (!existing) refuseLocalTrials(ctx, o.experiment);
  const record = recordFor(ctx, o, resultsDir, hash, existing);
  let entries: ManifestLine[] = existing ? readManifest(files.manifest) : [];
  const fresh = !existing || entries.length === 0;
  if (fresh) entries = createTrials(ctx, record, files, o.specs);
  writeExperiment(ctx.home, record);

  const log = recoverUnanswered(ctx, files);
  if (log.length > 0) {
    return {
      record,
      submission: null,
      message:
        `experiment ${o.experiment} was submitted already (job ${log.map((s) => s.job).join(', ')}); nothing submitted. ` +
        `See \`ptb run status ${o.experiment}\`; \`ptb run resume ${o.experiment}\` resubmits trials that did not complete`,
    };
  }
  syncExperiment(ctx, record);
  const todo = entries.filter((e) => ctx.repo.get(e.trialId)?.status !== 'completed').map((e) => e.index);
  if (todo.length === 0) {
    return {
      record,
      submission: null,
      message: `every trial of ${o.experiment} is completed; nothing submitted`,
    };
  }
  let submission: Submission;
  try {
    submission = await submitIndices(ctx, record, files, todo);
  } catch (err) {
    // Refused on first submission: nothing ran, so nothing is kept (another grid may take the name).
    if (fresh) forgetUnsubmitted(ctx, record, entries);
    throw err;
  }
  return {
    record,
    submission,
    message: `submitted ${todo.length} trial(s) of ${o.experiment} as job array ${submission.job}`,
  };
}

/** Undo a first submission the scheduler refused: its trials never ran (each journal holds only its creation). */
function forgetUnsubmitted(
  ctx: SchedulerContext,
  record: ExperimentRecord,
  entries: readonly ManifestLine[],
): void {
  const files = experimentFiles(record.resultsDir);
  ctx.repo.forgetNeverRun(entries.map((e) => e.trialId));
  for (const e of entries) rmSync(e.dir, { recursive: true, force: true });
  for (const path of [
    files.manifest,
    files.submissions,
    files.record,
    homeRecordPath(ctx.home, record.experiment),
  ]) {
    rmSync(path, { force: true });
  }
}

function refuseLocalTrials(ctx: SchedulerContext, experiment: string): void {
  ctx.repo.syncDirs([ctx.home.trials]);
  const local = ctx.repo.list({ experiment });
  if (local.length > 0) {
    throw new UserError(
      `experiment ${experiment} already has ${local.length} trial(s) run on this machine`,
      'give the grid another experiment name for the cluster',
    );
  }
}

function recordFor(
  ctx: SchedulerContext,
  o: { experiment: string; specs: TrialSpec[]; block: SchedulerBlock; offline: boolean },
  resultsDir: string,
  hash: string,
  existing: ExperimentRecord | undefined,
): ExperimentRecord {
  const models = new Set(o.specs.map((s) => s.baseModel));
  const hours = Math.max(...o.specs.map((s) => s.hours));
  const gpus = Math.max(...o.specs.map((s) => s.gpus));
  return {
    v: 1,
    experiment: o.experiment,
    executor: ctx.executor.id,
    createdAt: existing?.createdAt ?? new Date().toISOString(),
    resultsDir,
    gridHash: hash,
    trials: o.specs.length,
    resources: { ...slurmResources(o.block, { hours, gpus }), extraArgs: [...o.block.extra_args] },
    maxConcurrent: o.block.max_concurrent ?? null,
    nodeHome: o.block.node_home,
    ptbCommand: ptbCommand(o.block),
    maxRequeues: o.block.max_requeues,
    offline: o.offline,
    baselines: ctx.repo
      .baselines()
      .filter((b) => models.has(b.model))
      .map((b) => ({
        model: b.model,
        benchmark: b.benchmark,
        kind: b.kind,
        accuracy: b.accuracy,
        source: b.source,
        protocol: b.protocol,
      })),
  };
}

/** Every trial of the grid, created on the head (pending), and the manifest that names them by index. */
function createTrials(
  ctx: SchedulerContext,
  record: ExperimentRecord,
  files: ExperimentFiles,
  specs: readonly TrialSpec[],
): ManifestTask[] {
  mkdirSync(files.trials, { recursive: true });
  mkdirSync(files.logs, { recursive: true });
  const entries = ctx.repo.inTransaction(() =>
    specs.map((spec, index) => {
      // Journals of new trials skip the fsync: the manifest (written next) is enough to recreate them.
      const trial = ctx.repo.create(spec, (id) => join(files.trials, trialDirName(spec, id)), {
        durable: false,
      });
      return { index, trialId: trial.id, dir: trial.dir, spec };
    }),
  );
  writeManifest(files.manifest, entries);
  ctx.say(`experiment ${record.experiment}: ${entries.length} trials in ${record.resultsDir}`);
  return entries;
}

/** Submissions that were made; one whose answer ptb never recorded is looked up by its token. */
function recoverUnanswered(ctx: SchedulerContext, files: ExperimentFiles): Submission[] {
  const log = readSubmissions(files);
  for (const lost of log.unanswered) {
    const found = ctx.executor.findByToken?.(lost.token);
    if (found) {
      const submission: Submission = { ...found, indices: lost.indices };
      appendSubmission(files, submission);
      log.submissions.push(submission);
    }
  }
  return log.submissions;
}

async function submitIndices(
  ctx: SchedulerContext,
  record: ExperimentRecord,
  files: ExperimentFiles,
  indices: number[],
): Promise<Submission> {
  mkdirSync(files.logs, { recursive: true });
  writeFileAtomic(
    files.script,
    batchScript({
      experiment: record.experiment,
      resources: record.resources,
      manifest: files.manifest,
      resultsDir: record.resultsDir,
      logDir: files.logs,
      ptbCommand: record.ptbCommand,
      nodeHome: record.nodeHome,
      maxRequeues: record.maxRequeues,
      ptbVersion: PTB_VERSION,
    }),
  );
  const token = `ptb-${randomBytes(6).toString('hex')}`;
  markSubmissionPending(files, token, indices);
  const submission = await ctx.executor.submit({
    indices,
    gpusPerTask: record.resources.gpusPerTask,
    maxConcurrent: record.maxConcurrent,
    script: files.script,
    token,
  });
  appendSubmission(files, submission);
  return submission;
}

export interface TrialRunStatus {
  index: number;
  trialId: string;
  agent: string;
  baseModel: string;
  benchmark: string;
  seed: number;
  hours: number;
  state: RunState;
  /** The scheduler's own word, when it knows the task. */
  schedulerState: string | null;
  phase: string | null;
  job: string | null;
  node: string | null;
  /** Agent attempts thrown away and redone (preemption, node loss) and the time they had used. */
  lostAttempts: number;
  lostSeconds: number;
  /** SLURM_RESTART_COUNT at the trial's latest start. */
  restartCount: number | null;
  finalScore: number | null;
  reason: string | null;
  log: string;
  dir: string;
}

export interface ExperimentStatus {
  record: ExperimentRecord;
  trials: TrialRunStatus[];
  counts: Partial<Record<RunState, number>>;
  /** Why the scheduler could not be asked (the states then come from the trials' records alone). */
  schedulerProblem: string | null;
}

/**
 * Every trial's state from one scheduler query for all of the experiment's jobs, merged with the
 * trial's own record: a completed record is completed whatever the scheduler says; otherwise the
 * scheduler's state of the task's latest submission. When the scheduler cannot be asked the records
 * alone answer (with `schedulerProblem`), unless `requireScheduler` (resume, cancel) makes that an error.
 */
export function experimentStatus(
  ctx: SchedulerContext,
  record: ExperimentRecord,
  opts: { requireScheduler?: boolean } = {},
): ExperimentStatus {
  const files = experimentFiles(record.resultsDir);
  syncExperiment(ctx, record);
  const entries = readManifest(files.manifest);
  const { submissions } = readSubmissions(files);
  let polled = new Map<number, TaskStatus>();
  let schedulerProblem: string | null = null;
  try {
    polled = ctx.executor.poll(submissions);
  } catch (err) {
    // Slurm down or not reachable from here: the trials' own records still say what they know, but
    // what is still running cannot be known, so nothing is resubmitted or cancelled on that basis.
    if (!isUserError(err) || opts.requireScheduler) throw err;
    schedulerProblem = err.message;
  }
  const submitted = new Set(submissions.flatMap((s) => s.indices));
  const trials = ctx.repo.briefs(record.experiment);
  const lost = ctx.repo.lostAttemptTotals();
  const runs = ctx.repo.latestRuns();
  const out: TrialRunStatus[] = entries.map((e) => {
    const trial = trials.get(e.trialId);
    const task = polled.get(e.index);
    const { state, reason } = mergeState(trial, task, submitted.has(e.index), schedulerProblem);
    return {
      index: e.index,
      trialId: e.trialId,
      agent: e.spec.agent,
      baseModel: e.spec.baseModel,
      benchmark: e.spec.benchmark,
      seed: e.spec.seed,
      hours: e.spec.hours,
      state,
      schedulerState: task?.raw ?? null,
      phase: trial?.phase ?? null,
      job: task?.job ?? runs.get(e.trialId)?.job ?? null,
      node: task?.node ?? runs.get(e.trialId)?.host ?? null,
      lostAttempts: lost.get(e.trialId)?.attempts ?? 0,
      lostSeconds: lost.get(e.trialId)?.seconds ?? 0,
      restartCount: runs.get(e.trialId)?.restartCount ?? null,
      finalScore: trial?.final_score ?? null,
      reason,
      log: taskLogPath(files.logs, e.index),
      dir: e.dir,
    };
  });
  const counts: Partial<Record<RunState, number>> = {};
  for (const t of out) counts[t.state] = (counts[t.state] ?? 0) + 1;
  return { record, trials: out, counts, schedulerProblem };
}

/**
 * Exit codes (sacct `exit:signal`) that mean the node could not see the results directory: the batch
 * script's own code, or slurmstepd failing to open the task's log there (signal 53: IO setup failed).
 */
function resultsDirUnseen(exitCode: string | null): boolean {
  return exitCode === `${EXEC_EXIT.resultsDirMissing}:0` || exitCode === '0:53';
}

function mergeState(
  trial: TrialBrief | undefined,
  task: TaskStatus | undefined,
  submitted: boolean,
  schedulerProblem: string | null = null,
): { state: RunState; reason: string | null } {
  if (trial?.status === 'completed') return { state: 'completed', reason: null };
  if (!submitted) return { state: 'not_submitted', reason: null };
  if (schedulerProblem !== null) {
    return trial?.status === 'failed'
      ? { state: 'failed', reason: trial.error }
      : {
          state: 'unknown',
          reason: `the scheduler could not be asked; the trial's record says ${trial?.status ?? 'nothing'}`,
        };
  }
  if (!task) {
    // The scheduler forgot the task (no accounting, or purged): the record says what it knows.
    return trial?.status === 'failed'
      ? { state: 'failed', reason: trial.error }
      : {
          state: 'unknown',
          reason: 'the scheduler no longer knows this task and the trial did not complete',
        };
  }
  if (LIVE_TASK_STATES.has(task.state)) return { state: task.state, reason: task.reason };
  if (resultsDirUnseen(task.exitCode)) {
    return {
      state: 'failed',
      reason: `the results directory is not visible on node ${task.node ?? '?'} (the task could not open its log or read its manifest there)`,
    };
  }
  if (task.state === 'completed' || task.state === 'failed') {
    return {
      state: 'failed',
      reason:
        trial?.error ??
        `the task ended (${task.raw}, exit ${task.exitCode ?? '?'}) before the trial completed`,
    };
  }
  return { state: task.state, reason: trial?.error ?? task.reason };
}

/** `ptb run resume`: submit again every trial that did not complete and that the scheduler is not running. */
export async function resumeExperiment(
  ctx: SchedulerContext,
  record: ExperimentRecord,
): Promise<SubmitResult> {
  const status = experimentStatus(ctx, record, { requireScheduler: true });
  const todo = status.trials.filter((t) => RESUBMITTED.has(t.state));
  const done = status.counts.completed ?? 0;
  if (todo.length === 0) {
    const live = status.trials.length - done;
    return {
      record,
      submission: null,
      message: `nothing to resume: ${done} completed${live ? `, ${live} still with the scheduler` : ''}`,
    };
  }
  const submission = await submitIndices(
    ctx,
    record,
    experimentFiles(record.resultsDir),
    todo.map((t) => t.index),
  );
  return {
    record,
    submission,
    message: `resubmitted ${todo.length} trial(s) of ${record.experiment} (${summarise(todo)}) as job array ${submission.job}`,
  };
}

function summarise(trials: readonly TrialRunStatus[]): string {
  const by = new Map<string, number>();
  for (const t of trials) by.set(t.state, (by.get(t.state) ?? 0) + 1);
  return [...by].map(([s, n]) => `${n} ${s}`).join(', ');
}

/** `ptb run cancel`: scancel the experiment's live jobs, or the task of one trial. */
export function cancelExperiment(
  ctx: SchedulerContext,
  record: ExperimentRecord,
  trial: string | null,
): { cancelled: string[] } {
  const files = experimentFiles(record.resultsDir);
  const { submissions } = readSubmissions(files);
  if (submissions.length === 0) throw new UserError(`experiment ${record.experiment} has no submitted jobs`);
  if (trial !== null) {
    const entry = readManifest(files.manifest).find(
      (e) => e.trialId === trial || e.trialId.startsWith(trial),
    );
    if (!entry) {
      throw new UserError(
        `experiment ${record.experiment} has no trial ${trial}`,
        `list them with \`ptb run status ${record.experiment}\``,
      );
    }
    const latest = [...submissions].reverse().find((s) => s.indices.includes(entry.index));
    if (!latest) throw new UserError(`trial ${entry.trialId} was never submitted`);
    ctx.executor.cancel(latest, entry.index);
    return { cancelled: [`${latest.job}_${entry.index}`] };
  }
  // Jobs with a task the scheduler still runs for a trial that has not completed (a completed trial's
  // task may still be finishing: nothing to cancel there).
  const status = experimentStatus(ctx, record, { requireScheduler: true });
  const live = new Set(
    status.trials
      .filter((t) => LIVE_TASK_STATES.has(t.state as TaskState) && t.job)
      .map((t) => t.job!.split('_')[0]!),
  );
  const cancelled: string[] = [];
  for (const s of submissions) {
    if (!live.has(s.job)) continue;
    ctx.executor.cancel(s, null);
    cancelled.push(s.job);
  }
  return { cancelled };
}
