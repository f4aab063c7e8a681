import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { UserError } from '../core/errors.ts';
import type { HomeLayout } from '../core/paths.ts';
import type { EvalEvent } from '../eval/runEval.ts';
import { AssetCache } from '../hub/assetCache.ts';
import { ExperimentRecordSchema, manifestTask } from '../schedulers/experimentRecord.ts';
import { openDb } from '../store/db.ts';
import { EvalRepo } from '../store/evalRepo.ts';
import { journalPath, type Trial, TrialRepo } from '../store/trialRepo.ts';
import { stopOf } from './lostAttempt.ts';
import { runTrial } from './runTrial.ts';
import { slurmTask } from './trialLock.ts';

/** How one task of a manifest ended; the batch script maps it to an exit code. */
export type ExecOutcome = 'completed' | 'failed' | 'preempted' | 'cancelled';

export class ResultsDirNotVisible extends UserError {}

/** GPU indices the scheduler gave this task (CUDA_VISIBLE_DEVICES), [] when it gave none. */
export function assignedGpus(env: NodeJS.ProcessEnv): number[] | undefined {
  const setting = env.CUDA_VISIBLE_DEVICES?.trim();
  if (!setting) return [];
  const parts = setting.split(',').map((p) => p.trim());
  // UUIDs: the gate reads CUDA_VISIBLE_DEVICES itself, which is the allocation either way.
  return parts.every((p) => /^\d+$/.test(p)) ? parts.map(Number) : undefined;
}

/**
 * `ptb trial exec --manifest M --index I`: what a compute node runs for one array task. The trial's
 * record is its directory on the shared filesystem: a store in memory is seeded from the trial's
 * journal and every change goes back there. The head's database is never opened here.
 */
export async function execManifestTask(o: {
  manifest: string;
  index: number;
  home: HomeLayout;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  onLine?: (line: string) => void;
  onEvalEvent?: (e: EvalEvent) => void;
}): Promise<{ outcome: ExecOutcome; trial: Trial | null; message: string }> {
  if (!existsSync(o.manifest)) {
    throw new ResultsDirNotVisible(
      `the manifest ${o.manifest} is not visible on ${hostname()}`,
      'the results directory must be on a filesystem every compute node sees (scheduler.results_dir)',
    );
  }
  const entry = manifestTask(o.manifest, o.index);
  if (!entry) throw new UserError(`the manifest ${o.manifest} has no task ${o.index}`);
  const record = ExperimentRecordSchema.parse(
    JSON.parse(readFileSync(join(dirname(o.manifest), 'experiment.json'), 'utf8')),
  );
  const db = openDb(':memory:');
  try {
    const repo = new TrialRepo(db);
    if (!existsSync(journalPath(entry.dir))) {
      // The head died between writing the manifest and creating this trial: the manifest line is enough.
      repo.create(entry.spec, () => entry.dir, { id: entry.trialId });
    } else if (repo.syncDir(entry.dir).trialId !== entry.trialId) {
      throw new UserError(`the trial directory ${entry.dir} does not hold trial ${entry.trialId}`);
    }
    for (const b of record.baselines) repo.addBaseline(b);
    const restartCount = o.env.SLURM_RESTART_COUNT ? Number(o.env.SLURM_RESTART_COUNT) : null;
    const gpus = entry.spec.gpus > 0 ? assignedGpus(o.env) : [];
    repo.recordRun(entry.trialId, {
      executor: record.executor,
      host: hostname(),
      job: slurmTask(o.env),
      restartCount,
      gpus: gpus ?? [],
    });
    if (repo.get(entry.trialId)?.status === 'completed') {
      return {
        outcome: 'completed',
        trial: repo.get(entry.trialId)!,
        message: 'completed earlier; not run again',
      };
    }
    try {
      const trial = await runTrial(
        {
          trials: repo,
          evals: new EvalRepo(db),
          cache: new AssetCache(o.home.dataCache),
          home: o.home,
          env: o.env,
          offline: record.offline,
          signal: o.signal,
          gpuIndices: gpus,
          onLine: o.onLine,
          onEvalEvent: o.onEvalEvent,
          redoStoppedPhases: { restartCount },
        },
        entry.trialId,
      );
      return {
        outcome: trial.status === 'completed' ? 'completed' : 'failed',
        trial,
        message: trial.status === 'completed' ? 'completed' : (trial.error ?? trial.status),
      };
    } catch (err) {
      const stop = stopOf(o.signal);
      const trial = repo.get(entry.trialId) ?? null;
      if (stop?.kind === 'preempted') return { outcome: 'preempted', trial, message: stop.message };
      if (stop) return { outcome: 'cancelled', trial, message: stop.message };
      return { outcome: 'failed', trial, message: (err as Error).message };
    }
  } finally {
    db.close();
  }
}
