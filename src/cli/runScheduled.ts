import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import type { TrialSpec } from '../core/trial.ts';
import type { ExperimentStatus, RunState, SchedulerContext } from '../schedulers/experimentRun.ts';
import type { SchedulerBlock } from '../schedulers/schedulerConfig.ts';
import type { CliContext } from './context.ts';
import { parseIntFlag } from './eval.ts';

/** The scheduler flows, loaded by the commands that use them (`ptb --help` stays light). */
async function schedulerModules() {
  const [record, run, registry, types, store] = await Promise.all([
    import('../schedulers/experimentRecord.ts'),
    import('../schedulers/experimentRun.ts'),
    import('../schedulers/registry.ts'),
    import('../schedulers/types.ts'),
    import('../store/trialRepo.ts'),
  ]);
  const context = (ctx: CliContext, executorId: string, quiet = false): SchedulerContext => ({
    home: ctx.home,
    repo: new store.TrialRepo(ctx.db()),
    executor: registry.batchExecutor(executorId, ctx.env),
    say: quiet ? () => {} : (line) => ctx.stderr.write(`${line}\n`),
  });
  return { ...record, ...run, ...types, context };
}

/** `ptb run --scheduler slurm`: submit and return (prints the job id on stdout). */
export async function submitGrid(
  ctx: CliContext,
  o: { experiment: string; specs: TrialSpec[]; block: SchedulerBlock; offline: boolean; json?: boolean },
): Promise<void> {
  const m = await schedulerModules();
  const result = await m.submitExperiment(m.context(ctx, o.block.kind, o.json), o);
  if (o.json) {
    ctx.stdout.write(
      `${JSON.stringify({ experiment: o.experiment, job: result.submission?.job ?? null, indices: result.submission?.indices ?? [], resultsDir: result.record.resultsDir, message: result.message })}\n`,
    );
    return;
  }
  ctx.stderr.write(`${result.message}\n`);
  if (result.submission) {
    ctx.stdout.write(`${result.submission.job}\n`);
    ctx.stderr.write(
      `results: ${result.record.resultsDir}\nfollow it with \`ptb run status ${o.experiment} --watch\`; you may log out\n`,
    );
  }
}

const STATE_ORDER: readonly RunState[] = [
  'running',
  'pending',
  'requeued',
  'completed',
  'failed',
  'cancelled',
  'timeout',
  'out_of_memory',
  'node_fail',
  'preempted',
  'unknown',
  'not_submitted',
];

export function countsLine(status: ExperimentStatus): string {
  const parts = STATE_ORDER.filter((s) => status.counts[s]).map((s) => `${status.counts[s]} ${s}`);
  return `${status.record.experiment}: ${status.trials.length} trials — ${parts.join(', ') || 'none'}`;
}

function minutes(seconds: number): string {
  return `${(seconds / 60).toFixed(1)}m`;
}

function statusTable(status: ExperimentStatus): string {
  const head = [
    '#',
    'trial',
    'agent',
    'benchmark',
    'seed',
    'state',
    'phase',
    'job',
    'node',
    'restarts',
    'log',
  ];
  const rows = status.trials.map((t) => [
    String(t.index),
    t.trialId,
    t.agent,
    t.benchmark,
    String(t.seed),
    t.state,
    t.phase ?? '—',
    t.job ?? '—',
    t.node ?? '—',
    t.lostAttempts ? `${t.lostAttempts} (${minutes(t.lostSeconds)} lost)` : '0',
    t.log,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const reasons = status.trials
    .filter((t) => t.reason && t.state !== 'completed')
    .map((t) => `  #${t.index} ${t.state}: ${t.reason}`);
  return [line(head), ...rows.map(line), ...(reasons.length ? ['', ...reasons] : [])].join('\n');
}

function statusJson(status: ExperimentStatus) {
  return {
    experiment: status.record.experiment,
    executor: status.record.executor,
    resultsDir: status.record.resultsDir,
    counts: status.counts,
    schedulerProblem: status.schedulerProblem,
    trials: status.trials,
  };
}

/** `ptb run` has its own --json, which commander gives to `run` even after `status`/`resume`: read both. */
function withRunJson<T extends object>(own: T, cmd: Command): T & { json?: boolean } {
  return { ...own, json: Boolean(cmd.optsWithGlobals().json) };
}

export function registerRunScheduled(run: Command, ctx: CliContext): void {
  run
    .command('status <experiment>')
    .description('state of every trial of an experiment submitted to a scheduler (one sacct call)')
    .option('--watch', 'refresh until no trial is pending or running')
    .option('--interval <s>', 'seconds between refreshes with --watch', parseIntFlag, 30)
    .option('--json', 'one JSON object (with --watch: one per refresh)')
    .action(async (experiment: string, own: { watch?: boolean; interval: number }, cmd: Command) => {
      const flags = withRunJson(own, cmd);
      const m = await schedulerModules();
      const record = m.requireExperiment(ctx.home, experiment);
      const sctx = m.context(ctx, record.executor, true);
      for (;;) {
        const status = m.experimentStatus(sctx, record);
        if (flags.json) ctx.stdout.write(`${JSON.stringify(statusJson(status))}\n`);
        else {
          if (flags.watch && ctx.stdout.isTTY) ctx.stdout.write('\x1b[H\x1b[2J');
          ctx.stdout.write(`${countsLine(status)}\n${statusTable(status)}\n`);
          if (status.schedulerProblem) ctx.stderr.write(`ptb: ${status.schedulerProblem}\n`);
        }
        const live = status.trials.some((t) => m.LIVE_TASK_STATES.has(t.state as never));
        if (!flags.watch || !live) break;
        await sleep(Math.max(1, flags.interval) * 1000);
      }
    });
  run
    .command('cancel <experiment>')
    .description("cancel an experiment's jobs (scancel), or the task of one trial")
    .option('--trial <id>', 'only this trial (id or unique prefix)')
    .action(async (experiment: string, flags: { trial?: string }) => {
      const m = await schedulerModules();
      const record = m.requireExperiment(ctx.home, experiment);
      const { cancelled } = m.cancelExperiment(m.context(ctx, record.executor), record, flags.trial ?? null);
      ctx.stdout.write(
        cancelled.length
          ? `cancelled ${cancelled.join(', ')}; \`ptb run resume ${experiment}\` submits them again\n`
          : 'nothing to cancel: no task is pending or running\n',
      );
    });
  run
    .command('resume <experiment>')
    .description('submit again every trial that did not complete (failed, cancelled, timeout, node failure…)')
    .option('--json', 'the submission as JSON')
    .action(async (experiment: string, own: object, cmd: Command) => {
      const flags = withRunJson(own, cmd);
      const m = await schedulerModules();
      const record = m.requireExperiment(ctx.home, experiment);
      const result = await m.resumeExperiment(m.context(ctx, record.executor), record);
      if (flags.json) {
        ctx.stdout.write(
          `${JSON.stringify({ experiment, job: result.submission?.job ?? null, indices: result.submission?.indices ?? [], message: result.message })}\n`,
        );
        return;
      }
      ctx.stderr.write(`${result.message}\n`);
      if (result.submission) ctx.stdout.write(`${result.submission.job}\n`);
    });
}
