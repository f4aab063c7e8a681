import { type DetectorOptions, selectDetectors, selectJudges } from '../audit/detectorRegistry.ts';
import { runAudit } from '../audit/runAudit.ts';
import { auditEvidence } from '../audit/trialEvidence.ts';
import { getBenchmark } from '../benchmarks/registry.ts';
import type { HomeLayout } from '../core/paths.ts';
import type { TrialSpec } from '../core/trial.ts';
import type { TrialLayout } from '../core/trialLayout.ts';
import type { AssetCache } from '../hub/assetCache.ts';
import type { TrialRepo } from '../store/trialRepo.ts';

/**
 * Judges the audit phase runs: PTB_JUDGES (judge ids, or `protocol` for the trial's protocol set,
 * see detectors/judges/judgeSets.ts), none when unset — a judge needs an endpoint and a key.
 */
export function auditPhaseJudges(env: NodeJS.ProcessEnv, spec: TrialSpec): DetectorOptions {
  const names = (env.PTB_JUDGES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => (s === 'protocol' ? spec.protocol : s));
  return { env, judges: names, judgeProtocol: spec.protocol };
}

/**
 * The audit phase: every registered detector over the trial's ledgers, files and weights, combined
 * (any flag flags; otherwise any unverified is unverified), recorded append-only. `ptb audit` re-runs
 * the same thing later and keeps this verdict.
 */
export async function runAuditPhase(o: {
  trialId: string;
  spec: TrialSpec;
  layout: TrialLayout;
  repo: TrialRepo;
  prepared: { baseModelPath: string | null };
  home: HomeLayout;
  env: NodeJS.ProcessEnv;
  /** The data cache the detectors read the benchmark's test items from; filled first unless offline. */
  cache?: AssetCache;
  offline?: boolean;
  onLine?: (line: string) => void;
}): Promise<{ auditId: string; combined: string; scoreAs: string }> {
  if (o.cache && !o.offline) await fetchBenchmarkData(o.spec, o.cache, o.env, o.onLine);
  const trial = o.repo.get(o.trialId)!;
  const detectors = selectDetectors({ env: o.env });
  const evidence = await auditEvidence(trial, {
    baseModelPath: o.prepared.baseModelPath,
    withReferences: detectors.some((d) => d.id === 'provenance'),
    homeRoot: o.home.root,
    env: o.env,
    offline: o.offline,
    onLine: o.onLine,
  });
  const result = await runAudit(trial, evidence, {
    detectors: [...detectors, ...selectJudges(auditPhaseJudges(o.env, o.spec))],
    repo: o.repo,
    ctx: { home: o.home.root, env: o.env, onProgress: o.onLine },
  });
  return { auditId: result.auditId, combined: result.combined, scoreAs: result.scoreAs };
}

/**
 * The benchmark's pinned data, fetched before the detectors run: the contamination scan needs the
 * test items, and without them its verdict is unverified, which would score an honest run as the
 * base model only because the cache was cold (the reference's judge needs no such data). A part
 * the trial evaluates from a local file is not fetched. A fetch that fails is reported and left to
 * the detectors, which say what is missing.
 */
export async function fetchBenchmarkData(
  spec: TrialSpec,
  cache: AssetCache,
  env: NodeJS.ProcessEnv,
  onLine: (line: string) => void = () => {},
): Promise<void> {
  const benchmark = getBenchmark(spec.benchmark);
  for (const pin of benchmark.assets) {
    if (spec.evalData[pin.part]) continue;
    try {
      await cache.resolve(benchmark.id, pin, { hfToken: env.HF_TOKEN, mirror: env.PTB_ASSET_MIRROR });
    } catch (err) {
      onLine(`audit: could not fetch ${benchmark.id} ${pin.part} (${(err as Error).message})`);
    }
  }
}
