import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../core/errors.ts';
import { BENCHMARK_IDS } from '../core/schemas.ts';
import { TrialSpecSchema } from '../core/trial.ts';
import { trialLayout } from '../core/trialLayout.ts';
import type { TrialEvidence } from '../detectors/types.ts';

/**
 * TrialEvidence for a run directory in the reference's layout
 * (`<method>/<benchmark>_<org>_<model>_<cluster-id>/` with task/, solve_out.txt, final_model/ and
 * the judgement files), for `ptb audit --dir`. Such runs have no ledgers, no trajectory and no
 * pristine manifest, so the detectors that need those say unverified.
 */
export interface UpstreamRun {
  benchmark: string;
  baseModel: string;
  clusterId: string;
  method: string;
  agent: string;
  agentConfig: string;
  hours: number;
  gpus: number;
}

/** Parse the two folder names; throws a UserError naming the expected shape. */
export function parseUpstreamRunDir(dir: string): UpstreamRun {
  const name = basename(resolve(dir));
  const parts = name.split('_');
  if (parts.length !== 4 || !(BENCHMARK_IDS as readonly string[]).includes(parts[0]!)) {
    throw new UserError(
      `${name} is not an upstream run directory name`,
      `Expected <benchmark>_<org>_<model>_<cluster-id> with benchmark one of ${BENCHMARK_IDS.join(', ')} (e.g. gsm8k_Qwen_Qwen3-1.7B-Base_16675578).`,
    );
  }
  const [benchmark, org, model, clusterId] = parts as [string, string, string, string];
  const method = basename(dirname(resolve(dir)));
  // <agent>_<agent-config>_<hours>h[_<n>gpu][<experiment>]
  const m = /^([^_]+)_(.*)_(\d+(?:\.\d+)?)h(?:_(\d+)gpu)?(.*)$/.exec(method);
  return {
    benchmark,
    baseModel: `${org}/${model}`,
    clusterId,
    method,
    agent: m?.[1] ?? 'upstream',
    agentConfig: m?.[2] ?? '',
    hours: m ? Number(m[3]) : 10,
    gpus: m?.[4] ? Number(m[4]) : 1,
  };
}

export function upstreamRunEvidence(dir: string, opts: { baseModelPath?: string } = {}): TrialEvidence {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new UserError(
      `run directory ${dir} does not exist`,
      'Pass the path of one <benchmark>_<org>_<model>_<id> folder.',
    );
  }
  const run = parseUpstreamRunDir(root);
  const layout = trialLayout(root);
  if (!existsSync(layout.taskSnapshot) && !existsSync(layout.solveOut)) {
    throw new UserError(
      `${dir} has neither task/ nor solve_out.txt`,
      'Point --dir at a single run folder of an upstream results tree.',
    );
  }
  const spec = TrialSpecSchema.parse({
    experiment: run.method || 'upstream',
    agent: run.agent,
    agentConfig: run.agentConfig,
    baseModel: run.baseModel,
    benchmark: run.benchmark,
    hours: run.hours,
    gpus: run.gpus,
    sandbox: 'apptainer',
    ...(opts.baseModelPath ? { baseModelPath: resolve(opts.baseModelPath) } : {}),
  });
  return {
    trialId: `${run.method}/${basename(root)}`,
    spec,
    layout,
    workspaceDir: null,
    baseModelPath: opts.baseModelPath ? resolve(opts.baseModelPath) : null,
    referenceModelPaths: [],
    pristineManifestPath: null,
  };
}

/** Where `ptb audit --dir` writes its audits unless told otherwise (never over upstream's files). */
export function upstreamAuditsDir(dir: string): string {
  return join(resolve(dir), 'ptb_audit');
}
