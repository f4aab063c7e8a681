import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { trialLayout } from '../core/trialLayout.ts';
import type { TrialEvidence } from '../detectors/types.ts';
import type { Trial } from '../store/trialRepo.ts';

/** Where the harness writes the hash manifest of the task files it prepared (relative to the trial dir). */
export const PRISTINE_MANIFEST = join('ledgers', 'pristine_manifest.json');

/**
 * What the detectors may read of a ptb trial: its directory, spec and base model path. The trial
 * runner passes what prepare resolved (the base model's local path, disallowed references).
 */
export function trialEvidence(
  trial: Pick<Trial, 'id' | 'dir' | 'spec'>,
  resolved: { baseModelPath?: string | null; referenceModelPaths?: string[] } = {},
): TrialEvidence {
  const layout = trialLayout(trial.dir);
  const pristine = join(trial.dir, PRISTINE_MANIFEST);
  return {
    trialId: trial.id,
    spec: trial.spec,
    layout,
    workspaceDir: existsSync(layout.work.dir) ? layout.work.dir : null,
    baseModelPath: resolved.baseModelPath ?? trial.spec.baseModelPath ?? null,
    referenceModelPaths: resolved.referenceModelPaths ?? [],
    pristineManifestPath: existsSync(pristine) ? pristine : null,
  };
}
