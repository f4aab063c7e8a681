import type { DetectorVerdict, TrialSpec } from '../core/trial.ts';
import type { TrialLayout } from '../core/trialLayout.ts';

/** What a detector may look at: the trial's files and ledgers (see trialLayout), never the live agent. */
export interface TrialEvidence {
  trialId: string;
  spec: TrialSpec;
  /** Trial directory paths (ledgers, task snapshot, final_model, trajectory, solve_out.txt). */
  layout: TrialLayout;
  /** The live workspace when it still exists (before clean-up), else null. */
  workspaceDir: string | null;
  /** Local weights of the base model. */
  baseModelPath: string | null;
  /** Local weights of disallowed references (instruct twin, models the download ledger shows). */
  referenceModelPaths: string[];
  /** sha256 manifest of the pristine task files the harness wrote (evaluate.py, templates/, timer.sh). */
  pristineManifestPath: string | null;
}

export interface DetectorContext {
  /** PTB_HOME layout root (cache for benchmark data, indexes). */
  home: string;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  onProgress?: (line: string) => void;
}

/** A check over a trial's evidence. Deterministic detectors must return the same verdict every time. */
export interface Detector {
  id: string;
  version: string;
  inspect(evidence: TrialEvidence, ctx: DetectorContext): Promise<DetectorVerdict>;
}
