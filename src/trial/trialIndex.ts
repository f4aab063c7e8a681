import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { HomeLayout } from '../core/paths.ts';
import type { IndexSync, TrialRepo } from '../store/trialRepo.ts';

/** The one field of an experiment record (schedulers/experimentRecord.ts) the index needs. */
const ResultsDirSchema = z.object({ resultsDir: z.string().min(1) });

/** Where an experiment run through a scheduler keeps its trial directories. */
export function experimentTrialsDir(resultsDir: string): string {
  return join(resultsDir, 'trials');
}

/**
 * Every folder that holds trial directories: PTB_HOME/trials (trials run here) and the results
 * directory of each experiment submitted to a scheduler (often on a shared filesystem).
 */
export function trialRoots(home: HomeLayout): string[] {
  const roots = [home.trials];
  if (!existsSync(home.experiments)) return roots;
  for (const name of readdirSync(home.experiments).sort()) {
    const recordPath = join(home.experiments, name, 'experiment.json');
    if (!existsSync(recordPath)) continue;
    try {
      const record = ResultsDirSchema.parse(JSON.parse(readFileSync(recordPath, 'utf8')));
      const dir = experimentTrialsDir(record.resultsDir);
      if (!roots.includes(dir)) roots.push(dir);
    } catch {
      // a record being written or damaged: its trials are indexed on the next sync
    }
  }
  return roots;
}

/**
 * Bring the store's index up to date with the trial directories (status, report, view and trial
 * listings call this first; only journals that grew are read). `rebuild` replays every journal.
 */
export function syncTrialIndex(
  repo: TrialRepo,
  home: HomeLayout,
  opts: { rebuild?: boolean } = {},
): IndexSync {
  return repo.syncDirs(trialRoots(home), opts);
}
