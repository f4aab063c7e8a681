import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { processStartTicks } from '../engines/processes.ts';

interface LockOwner {
  pid: number;
  startTicks: number | null;
  /** Host of the owner (trial directories on a shared filesystem are run from many hosts). */
  host?: string;
  /** The batch job that ran it (`<array job>_<task>`), when a scheduler did. */
  job?: string | null;
}

/** The Slurm array task this process runs as, if any. */
export function slurmTask(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.SLURM_ARRAY_JOB_ID && env.SLURM_ARRAY_TASK_ID)
    return `${env.SLURM_ARRAY_JOB_ID}_${env.SLURM_ARRAY_TASK_ID}`;
  return env.SLURM_JOB_ID ?? null;
}

function ownerAlive(owner: LockOwner): boolean {
  if (owner.host !== undefined && owner.host !== hostname()) {
    // Another host's process cannot be asked. Under Slurm the earlier owner is a finished run of this
    // trial (a task runs once at a time; ptb resubmits only tasks the scheduler ended), so it is stale.
    return slurmTask() === null;
  }
  const ticks = processStartTicks(owner.pid);
  return ticks !== null && (owner.startTicks === null || ticks === owner.startTicks);
}

/**
 * One harness process per trial. The lock file names its owner by pid and kernel start time, so a
 * lock left by a killed harness (even one whose pid was reused) is taken over, and a live one refuses.
 */
export async function withTrialLock<T>(trialDir: string, run: () => Promise<T>): Promise<T> {
  mkdirSync(trialDir, { recursive: true });
  const path = join(trialDir, '.lock');
  const me: LockOwner = {
    pid: process.pid,
    startTicks: processStartTicks(process.pid),
    host: hostname(),
    job: slurmTask(),
  };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, JSON.stringify(me));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner: LockOwner | null = null;
      try {
        owner = JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
      } catch {
        owner = null;
      }
      if (owner && (owner.pid !== process.pid || owner.host !== me.host) && ownerAlive(owner)) {
        throw new UserError(
          `trial in ${trialDir} is being run by process ${owner.pid}${owner.host && owner.host !== me.host ? ` on ${owner.host}` : ''}`,
          'wait for it, or stop that process before resuming',
        );
      }
      rmSync(path, { force: true });
      if (attempt === 1) throw new UserError(`cannot take the lock ${path}`);
    }
  }
  try {
    return await run();
  } finally {
    rmSync(path, { force: true });
  }
}
