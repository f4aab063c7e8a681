import { UserError } from '../core/errors.ts';
import { SlurmExecutor } from './slurm/executor.ts';
import type { Executor } from './types.ts';

/**
 * Executors that run a grid detached from this process, by name. Kubernetes Indexed Jobs or HTCondor
 * are one more file each and one line here. (The local pool, `LocalExecutor`, runs inside `ptb run`.)
 */
const BATCH_EXECUTORS: Readonly<Record<string, (env: NodeJS.ProcessEnv) => Executor>> = {
  slurm: (env) => new SlurmExecutor(env),
};

export const BATCH_EXECUTOR_IDS = Object.keys(BATCH_EXECUTORS);

export function batchExecutor(id: string, env: NodeJS.ProcessEnv): Executor {
  const make = BATCH_EXECUTORS[id];
  if (!make) {
    throw new UserError(`no scheduler ${id}`, `choose local or one of: ${BATCH_EXECUTOR_IDS.join(', ')}`);
  }
  return make(env);
}
