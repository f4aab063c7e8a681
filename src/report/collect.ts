import { isDemoBaseline, isDemoTrial } from '../core/demoNamespace.ts';
import { UserError } from '../core/errors.ts';
import { VerdictValueSchema } from '../core/trial.ts';
import type { Trial, TrialRepo } from '../store/trialRepo.ts';
import type { ReportBaseline, ReportTrial } from './aggregate.ts';
import { matchesPattern } from './grouping.ts';

/** A stored trial as the aggregation sees it. */
export function toReportTrial(t: Trial, lost?: { attempts: number; seconds: number }): ReportTrial {
  return {
    id: t.id,
    experiment: t.experiment,
    source: t.source,
    agent: t.agent,
    agentConfig: t.agent_config,
    hours: t.hours,
    gpus: t.gpus,
    seed: t.seed,
    baseModel: t.base_model,
    benchmark: t.benchmark,
    runNumber: t.run_number,
    createdAt: t.created_at,
    status: t.status,
    accuracy: t.accuracy,
    protocol: t.spec.protocol,
    verdict:
      t.audit_verdict === 'not_audited'
        ? 'not_audited'
        : (VerdictValueSchema.safeParse(t.audit_verdict).data ?? null),
    unverifiedPolicy: t.spec.unverifiedPolicy,
    agentSeconds: t.agent_seconds,
    inputTokens: t.input_tokens,
    outputTokens: t.output_tokens,
    costUsd: t.cost_usd,
    lostAttempts: lost?.attempts ?? 0,
    lostSeconds: lost?.seconds ?? 0,
  };
}

export interface SelectOptions {
  /** Also the demo's trials and baselines (src/core/demoNamespace.ts); left out by default. */
  includeDemo?: boolean;
}

/**
 * Trials of the experiments matching `patterns` (all when none); an unmatched pattern is a user error.
 * The demo's trials are left out unless `includeDemo`.
 */
export function selectTrials(
  repo: TrialRepo,
  patterns: readonly string[] = [],
  opts: SelectOptions = {},
): Trial[] {
  const all = repo.list();
  const visible = opts.includeDemo ? all : all.filter((t) => !isDemoTrial(t));
  const experiments = repo.listExperiments().map((e) => e.name);
  const chosen = new Set<string>();
  for (const p of patterns) {
    const hits = experiments.filter((e) => matchesPattern(e, p));
    if (hits.length === 0) {
      throw new UserError(
        `no experiment matches "${p}"`,
        experiments.length > 0
          ? `Known experiments: ${experiments.join(', ')}.`
          : 'The store has no trials yet: run trials, or `ptb import DIR` a reference results tree.',
      );
    }
    const onlyDemo = hits.every((e) => {
      const trials = all.filter((t) => t.experiment === e);
      return trials.length > 0 && trials.every(isDemoTrial);
    });
    if (onlyDemo && !opts.includeDemo) {
      throw new UserError(
        `"${p}" matches only the demo's trials (${hits.join(', ')}), which are left out of results`,
        'Add --include-demo to see them.',
      );
    }
    for (const h of hits) chosen.add(h);
  }
  return patterns.length === 0 ? visible : visible.filter((t) => chosen.has(t.experiment));
}

/** Stored baselines (newest per model and benchmark); the demo's tiny model's only with `includeDemo`. */
export function storedBaselines(
  repo: TrialRepo,
  opts: SelectOptions & { protocol?: string } = {},
): ReportBaseline[] {
  return repo
    .baselines(opts.protocol)
    .filter((b) => opts.includeDemo || !isDemoBaseline(b))
    .map((b) => ({
      model: b.model,
      benchmark: b.benchmark,
      kind: b.kind,
      accuracy: b.accuracy,
      createdAt: b.created_at,
    }));
}
