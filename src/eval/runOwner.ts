import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import { processStartTicks } from '../engines/processes.ts';

/**
 * Which ptb process is running an evaluation: written into the run's folder when it starts or
 * resumes. A run still marked `running` whose owner is gone (killed, out of memory, the machine
 * rebooted) was interrupted, and `ptb evals` says so.
 */
export const RUN_OWNER_FILE = 'owner.json';

interface RunOwner {
  pid: number;
  startTicks: number | null;
  host: string;
}

export function recordRunOwner(outDir: string): void {
  const owner: RunOwner = { pid: process.pid, startTicks: processStartTicks(process.pid), host: hostname() };
  writeJsonAtomic(join(outDir, RUN_OWNER_FILE), owner);
}

/**
 * True when the run's owner is known to be gone: it ran on this machine and that process (the
 * same pid and start time) no longer exists. Unknown owners (other machines, older runs) are not.
 */
export function runOwnerGone(outDir: string): boolean {
  let owner: RunOwner;
  try {
    owner = JSON.parse(readFileSync(join(outDir, RUN_OWNER_FILE), 'utf8')) as RunOwner;
  } catch {
    return false;
  }
  if (owner.host !== hostname() || !Number.isInteger(owner.pid)) return false;
  const ticks = processStartTicks(owner.pid);
  return ticks === null || (owner.startTicks !== null && ticks !== owner.startTicks);
}
