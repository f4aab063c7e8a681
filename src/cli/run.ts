import { spawnSync } from 'node:child_process';
import { type Command, Option } from 'commander';
import { UserError } from '../core/errors.ts';
import { SCHEDULER_KINDS } from '../core/vocabulary.ts';
import type { Trial } from '../store/trialRepo.ts';
import { type CliContext, isOffline } from './context.ts';
import { parseIntFlag } from './eval.ts';
import { registerRunScheduled, submitGrid } from './runScheduled.ts';
import { trialSummary } from './trial.ts';

interface RunFlags {
  config?: string;
  scheduler?: string;
  resume?: boolean;
  retryFailed?: boolean;
  parallel: number;
  gpus?: string;
  dryRun?: boolean;
  offline?: boolean;
  json?: boolean;
}

function detectGpus(): number[] {
  const out = spawnSync('nvidia-smi', ['--query-gpu=index', '--format=csv,noheader'], { encoding: 'utf8' });
  if (out.status !== 0) return [];
  return out.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map(Number);
}

export function registerRun(program: Command, ctx: CliContext): void {
  const run = program
    .command('run')
    .description(
      'run a grid of trials (agents × base models × benchmarks × seeds × hours) here or on a Slurm cluster',
    )
    // Not a required option: it would be demanded of `ptb run status|cancel|resume` too.
    .option('--config <grid.yaml>', 'grid file (see docs/grid.md)')
    .addOption(
      new Option(
        '--scheduler <kind>',
        "where the trials run (default: the grid's scheduler block, else local)",
      ).choices([...SCHEDULER_KINDS]),
    )
    .option('--resume', 'continue unfinished trials of the grid (completed ones are never redone)')
    .option('--retry-failed', 'run failed trials again from their failed phase')
    .option('--parallel <n>', 'trials without GPUs that run at once', parseIntFlag, 1)
    .option('--gpus <list>', 'GPU indices to use, e.g. 0,1,2,3 (default: every GPU nvidia-smi lists)')
    .option('--dry-run', 'list the trials the grid would run, and which exist already')
    .option('--offline', 'never download')
    .option('--json', 'one JSON line per trial at the end')
    .action(async (flags: RunFlags) => {
      if (!flags.config) {
        throw new UserError(
          'ptb run needs a grid: --config grid.yaml',
          'or `ptb run status|cancel|resume EXPERIMENT` for a grid submitted to a scheduler',
        );
      }
      const [
        { LocalExecutor },
        { SchedulerBlockSchema },
        { cellKey, expandGrid, loadGrid },
        { createTrial, runTrial, validateTrialSpec },
        { syncTrialIndex },
      ] = await Promise.all([
        import('../schedulers/local.ts'),
        import('../schedulers/schedulerConfig.ts'),
        import('../trial/grid.ts'),
        import('../trial/runTrial.ts'),
        import('../trial/trialIndex.ts'),
      ]);
      const { interruptible, trialEnvFor } = await import('./trialEnv.ts');
      const grid = loadGrid(flags.config);
      const block = SchedulerBlockSchema.parse({
        ...grid.scheduler,
        kind: flags.scheduler ?? grid.scheduler?.kind,
      });
      if (block.kind !== 'local') {
        // The compute nodes check their sandbox and GPUs when each trial prepares; this node may have neither.
        const specs = expandGrid(grid).map((s) => validateTrialSpec(s, { checkHost: false }));
        await submitGrid(ctx, {
          experiment: grid.experiment,
          specs,
          block,
          offline: isOffline(ctx, flags.offline),
          json: flags.json,
        });
        return;
      }
      const { findExperiment } = await import('../schedulers/experimentRecord.ts');
      const scheduled = findExperiment(ctx.home, grid.experiment);
      if (scheduled) {
        throw new UserError(
          `experiment ${grid.experiment} was submitted to ${scheduled.executor}; it does not run here`,
          `follow it with \`ptb run status ${grid.experiment}\`; \`ptb run resume ${grid.experiment}\` resubmits what did not complete`,
        );
      }
      const specs = expandGrid(grid).map((s) => validateTrialSpec(s));
      const env = trialEnvFor(ctx, { offline: flags.offline, quiet: flags.json });
      syncTrialIndex(env.trials, ctx.home);
      const existing = new Map<string, Trial>();
      for (const t of env.trials.list({ experiment: grid.experiment })) existing.set(cellKey(t.spec), t);
      const plan = specs.map((spec) => ({ spec, trial: existing.get(cellKey(spec)) }));
      const unfinished = plan.filter(
        (p) => p.trial && ['pending', 'running', 'interrupted'].includes(p.trial.status),
      );
      const failed = plan.filter((p) => p.trial?.status === 'failed');
      if (flags.dryRun) {
        for (const p of plan) {
          ctx.stdout.write(
            `${p.spec.agent} ${p.spec.baseModel} ${p.spec.benchmark} seed ${p.spec.seed} ${p.spec.hours}h: ${p.trial ? `${p.trial.status} (${p.trial.id})` : 'new'}\n`,
          );
        }
        return;
      }
      if (unfinished.length > 0 && !flags.resume) {
        throw new UserError(
          `${unfinished.length} trial(s) of experiment ${grid.experiment} are unfinished`,
          'pass --resume to continue them (or --dry-run to see the plan)',
        );
      }
      const todo = plan.filter(
        (p) =>
          !p.trial || (p.trial.status !== 'completed' && (p.trial.status !== 'failed' || flags.retryFailed)),
      );
      const skippedFailed = flags.retryFailed ? 0 : failed.length;
      ctx.stderr.write(
        `grid ${grid.experiment}: ${plan.length} trials, ${plan.length - todo.length} done or skipped, ${todo.length} to run` +
          `${skippedFailed ? ` (${skippedFailed} failed: --retry-failed runs them again)` : ''}\n`,
      );
      const gpuIndices = flags.gpus ? flags.gpus.split(',').map((s) => Number(s.trim())) : detectGpus();
      let failures = 0;
      await interruptible(async (signal) => {
        const runEnv = { ...env, signal };
        const pool = new LocalExecutor({
          runTask: async (i, gpus) => {
            const p = todo[i]!;
            const trial = p.trial ?? createTrial(runEnv, p.spec);
            return runTrial({ ...runEnv, gpuIndices: gpus }, trial.id);
          },
          gpuIndices,
          cpuSlots: flags.parallel,
          signal,
        });
        const gpusPerTask = Math.max(0, ...todo.map((p) => p.spec.gpus));
        if (todo.length > 0 && gpusPerTask > gpuIndices.length) {
          throw new UserError(
            `each trial needs ${gpusPerTask} GPU(s), this machine has ${gpuIndices.length}`,
            'pass --gpus with the indices to use, or lower gpus_per_trial',
          );
        }
        const submission = await pool.submit({
          indices: todo.map((_, i) => i),
          gpusPerTask,
          maxConcurrent: null,
        });
        failures = [...pool.poll([submission]).values()].filter((t) => t.state === 'failed').length;
      });
      const all = env.trials.list({ experiment: grid.experiment });
      if (flags.json) for (const t of all) ctx.stdout.write(`${JSON.stringify(trialSummary(t))}\n`);
      else {
        const done = all.filter((t) => t.status === 'completed').length;
        ctx.stdout.write(
          `experiment ${grid.experiment}: ${done}/${all.length} trials completed, ${failures} failed in this run\n`,
        );
        ctx.stdout.write('list them with `ptb trials --experiment NAME`; rank them with `ptb report`\n');
      }
      if (failures > 0) ctx.exitCode = 1;
    });
  registerRunScheduled(run, ctx);
}
