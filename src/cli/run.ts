import { spawnSync } from 'node:child_process';
import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import type { Trial } from '../store/trialRepo.ts';
import type { CliContext } from './context.ts';
import { parseIntFlag } from './eval.ts';
import { trialSummary } from './trial.ts';

interface RunFlags {
  config: string;
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
  program
    .command('run')
    .description('run a grid of trials (agents × base models × benchmarks × seeds × hours) on this machine')
    .requiredOption('--config <grid.yaml>', 'grid file (see docs/grid.md)')
    .option('--resume', 'continue unfinished trials of the grid (completed ones are never redone)')
    .option('--retry-failed', 'run failed trials again from their failed phase')
    .option('--parallel <n>', 'trials without GPUs that run at once', parseIntFlag, 1)
    .option('--gpus <list>', 'GPU indices to use, e.g. 0,1,2,3 (default: every GPU nvidia-smi lists)')
    .option('--dry-run', 'list the trials the grid would run, and which exist already')
    .option('--offline', 'never download')
    .option('--json', 'one JSON line per trial at the end')
    .action(async (flags: RunFlags) => {
      const [
        { runLocally },
        { cellKey, expandGrid, loadGrid },
        { createTrial, runTrial, validateTrialSpec },
      ] = await Promise.all([
        import('../schedulers/local.ts'),
        import('../trial/grid.ts'),
        import('../trial/runTrial.ts'),
      ]);
      const { interruptible, trialEnvFor } = await import('./trialEnv.ts');
      const grid = loadGrid(flags.config);
      const specs = expandGrid(grid).map(validateTrialSpec);
      const env = trialEnvFor(ctx, { offline: flags.offline, quiet: flags.json });
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
      const results = await interruptible((signal) => {
        const runEnv = { ...env, signal };
        return runLocally(
          todo.map((p) => ({
            gpus: p.spec.gpus,
            run: async (gpus: number[]) => {
              const trial = p.trial ?? createTrial(runEnv, p.spec);
              return runTrial({ ...runEnv, gpuIndices: gpus }, trial.id);
            },
          })),
          { gpuIndices, cpuSlots: flags.parallel, signal },
        );
      });
      let failures = 0;
      for (const r of results) {
        if (!r) continue;
        if (r.status === 'rejected') failures++;
      }
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
}
