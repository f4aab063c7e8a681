import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { processStartTicks } from '../engines/processes.ts';

interface LockOwner {
  pid: number;
  startTicks: number | null;
}

function ownerAlive(owner: LockOwner): boolean {
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
  const me: LockOwner = { pid: process.pid, startTicks: processStartTicks(process.pid) };
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
      if (owner && owner.pid !== process.pid && ownerAlive(owner)) {
        throw new UserError(
          `trial in ${trialDir} is being run by process ${owner.pid}`,
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
