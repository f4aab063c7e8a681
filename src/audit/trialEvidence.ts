import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { trialLayout } from '../core/trialLayout.ts';
import type { TrialEvidence } from '../detectors/types.ts';
import type { Trial, TrialRepo } from '../store/trialRepo.ts';
import { resolveReferences } from './forbiddenReferences.ts';

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

const PreparedBaseSchema = z.object({ baseModelPath: z.string().nullable() }).passthrough();

/**
 * The evidence of an audit (the audit phase or a later `ptb audit`): the base model path prepare
 * resolved (a re-audit finds it in the phase record), and, when the provenance detector runs, the
 * trial's disallowed references resolved — fetched by the harness when needed — so every audit of
 * the trial compares with the same models.
 */
export async function auditEvidence(
  trial: Pick<Trial, 'id' | 'dir' | 'spec'>,
  o: {
    repo?: TrialRepo;
    baseModelPath?: string | null;
    withReferences: boolean;
    homeRoot: string;
    env: NodeJS.ProcessEnv;
    offline?: boolean;
    onLine?: (line: string) => void;
    signal?: AbortSignal;
  },
): Promise<TrialEvidence> {
  const prepared = o.repo?.phaseResult(trial.id, 'prepare', PreparedBaseSchema);
  const baseModelPath = o.baseModelPath ?? trial.spec.baseModelPath ?? prepared?.baseModelPath ?? null;
  const evidence = trialEvidence(trial, { baseModelPath, referenceModelPaths: trial.spec.referenceModels });
  // Nothing to compare without a final_model: no reference is fetched for it.
  if (!o.withReferences || !existsSync(evidence.layout.finalModel)) return evidence;
  evidence.references = await resolveReferences({
    spec: trial.spec,
    layout: evidence.layout,
    baseModelPath,
    homeRoot: o.homeRoot,
    env: o.env,
    offline: o.offline ?? false,
    onLine: o.onLine,
    signal: o.signal,
  });
  return evidence;
}
