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
  /**
   * The trial's disallowed references as the audit resolved them (weights, signature, or the
   * problem that left neither). When absent, `referenceModelPaths` are the references.
   */
  references?: ReferenceModel[];
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

/** A disallowed model the provenance audit compares final_model with, as resolved for one audit. */
export interface ReferenceModel {
  /** repo@commit, or the local path. */
  label: string;
  repo: string | null;
  revision: string | null;
  relation: 'instruct-twin' | 'fine-tune';
  /** Why it is a reference: ptb's (or the user's) list for the base, a download by the agent, a path in the trial spec. */
  source: 'forbidden-list' | 'user-list' | 'downloaded' | 'trial-path';
  /** Local weights (a fetched snapshot or a given path). */
  weights: string | null;
  /** A stored signature to use when the weights are absent. */
  signature: string | null;
  /** Where to store the signature once the weights have been read. */
  signatureTarget: string | null;
  /** Why neither weights nor signature can be used. */
  problem: string | null;
  /** Without it the verdict cannot be clean (every listed model; downloads only once comparable). */
  required: boolean;
}
