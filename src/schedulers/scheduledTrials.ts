import { isUserError } from '../core/errors.ts';
import type { HomeLayout } from '../core/paths.ts';
import type { TrialRepo } from '../store/trialRepo.ts';
import { listExperiments } from './experimentRecord.ts';
import { experimentStatus, type TrialRunStatus } from './experimentRun.ts';
import { batchExecutor } from './registry.ts';

/**
 * The scheduler's view of every trial submitted from this PTB_HOME (one query per experiment), so that
 * `ptb trials` and `ptb view` show the same states as `ptb run status`. An experiment whose scheduler
 * cannot be asked here (no Slurm commands on this machine) is left out, with the reason.
 */
export function scheduledTrialStates(
  home: HomeLayout,
  repo: TrialRepo,
  env: NodeJS.ProcessEnv,
  opts: { experiment?: string } = {},
): { states: Map<string, TrialRunStatus>; problems: string[] } {
  const states = new Map<string, TrialRunStatus>();
  const problems: string[] = [];
  for (const record of listExperiments(home)) {
    if (opts.experiment !== undefined && record.experiment !== opts.experiment) continue;
    try {
      const status = experimentStatus(
        { home, repo, executor: batchExecutor(record.executor, env), say: () => {} },
        record,
      );
      for (const t of status.trials) states.set(t.trialId, t);
      if (status.schedulerProblem)
        problems.push(`${record.experiment}: scheduler state unknown (${status.schedulerProblem})`);
    } catch (err) {
      if (!isUserError(err)) throw err;
      problems.push(`${record.experiment}: scheduler state unknown (${err.message})`);
    }
  }
  return { states, problems };
}
