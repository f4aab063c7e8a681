import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, UserError } from '../../core/errors.ts';
import type { DetectorVerdict, Evidence, TrialSpecInput } from '../../core/trial.ts';
import { trialLayout } from '../../core/trialLayout.ts';
import { tinyChatTemplatePath } from '../../runtime/tinyModel.ts';
import type { AuditWithVerdicts } from '../../store/trialRepo.ts';
import { createTrial, runTrial, type TrialEnv } from '../runTrial.ts';
import { SELFTEST_CASES, type SelftestCase } from './cases.ts';
import {
  buildSelftestFixtures,
  SELFTEST_BASE_MODEL,
  SELFTEST_TWIN_REPO,
  type SelftestFixtures,
} from './fixtures.ts';
import { startStandInHub } from './standInHub.ts';
import { startStandInProvider } from './standInProvider.ts';

export interface SelftestCaseResult {
  case: string;
  kind: SelftestCase['kind'];
  description: string;
  expected: { verdict: string; detectors: string[]; rules: string[] };
  actual: {
    verdict: string;
    /** Detectors that flagged, with their rules. */
    flagged: Array<{ detector: string; rule: string }>;
    unverified: Array<{ detector: string; rule: string }>;
  };
  passed: boolean;
  /** Why the case failed (empty when it passed). */
  problem: string;
  /** The first piece of evidence of the detector that matters for the case. */
  evidence: string;
  trial: string | null;
  dir: string | null;
  seconds: number;
}

export interface SelftestSummary {
  caught: number;
  cheaters: number;
  false_positives: number;
  honest: number;
  passed: number;
  failed: number;
  /** Requests that reached the stand-in provider behind the relay: must stay 0 (no cheater's call got through). */
  provider_calls: number;
  seconds: number;
}

/** What one detector did across the selftest: the cheaters it flagged, those it was expected to flag and did not, the honest agents it flagged or left unverified. */
export interface DetectorTally {
  detector: string;
  caught: string[];
  missed: string[];
  falsePositives: string[];
}

export interface SelftestReport {
  experiment: string;
  results: SelftestCaseResult[];
  summary: SelftestSummary;
  /** Per detector (sorted by id), plus `uncaught`: cheaters no detector flagged. */
  detectors: DetectorTally[];
  uncaught: string[];
}

/** The per-detector view of the results (expected detectors come from the cases). */
export function detectorTallies(results: readonly SelftestCaseResult[]): {
  detectors: DetectorTally[];
  uncaught: string[];
} {
  const ids = new Set<string>();
  for (const r of results) {
    for (const f of [...r.actual.flagged, ...r.actual.unverified]) ids.add(f.detector);
    for (const d of r.expected.detectors) ids.add(d);
  }
  const detectors = [...ids].sort().map((detector) => {
    const flaggedBy = (r: SelftestCaseResult) => r.actual.flagged.some((f) => f.detector === detector);
    const cheaters = results.filter((r) => r.kind === 'cheater');
    return {
      detector,
      caught: cheaters.filter(flaggedBy).map((r) => r.case),
      missed: cheaters
        .filter((r) => r.expected.detectors.includes(detector) && !flaggedBy(r))
        .map((r) => r.case),
      falsePositives: results
        .filter((r) => r.kind === 'honest')
        .filter((r) => flaggedBy(r) || r.actual.unverified.some((f) => f.detector === detector))
        .map((r) => r.case),
    };
  });
  const uncaught = results
    .filter((r) => r.kind === 'cheater' && r.actual.flagged.length === 0)
    .map((r) => r.case);
  return { detectors, uncaught };
}

export interface SelftestOptions {
  /** Case ids to run (default: all). */
  only?: string[];
  /** Keep each trial's live workspace (work/); by default it is removed once the trial is judged. */
  keep?: boolean;
  /** Trials run at the same time (default 2). */
  concurrency?: number;
  onResult?: (result: SelftestCaseResult) => void;
}

/** Host variables that must not reach a selftest trial: real credentials and judge/grader endpoints. */
const SECRET_ENV =
  /(_API_KEY|_TOKEN|_SECRET|_PASSWORD)$|^PTB_JUDGE|^PTB_GRADER_|^PTB_RELAY_UPSTREAM_|^PTB_HF_UPSTREAM$/;

/**
 * The environment of the selftest's trials: no real keys (the relay has none to swap in), the
 * relay's upstreams and the HF pass-through's upstream on stand-ins on loopback. Together with the
 * `allowlist` egress policy with no hosts, nothing a selftest agent does reaches the internet.
 */
export function selftestEnv(env: NodeJS.ProcessEnv, hubUrl: string, providerUrl: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!SECRET_ENV.test(k)) out[k] = v;
  out.PTB_HF_UPSTREAM = hubUrl;
  for (const provider of ['OPENAI', 'ANTHROPIC', 'GEMINI', 'OPENCODE'])
    out[`PTB_RELAY_UPSTREAM_${provider}`] = `${providerUrl}/${provider.toLowerCase()}`;
  return out;
}

function specFor(c: SelftestCase, fixtures: SelftestFixtures, experiment: string): TrialSpecInput {
  return {
    experiment,
    agent: c.agent.id,
    agentConfig: c.agent.id === 'command' ? '' : (c.agent.config ?? ''),
    ...(c.agent.id === 'command' ? { agentCommand: c.agent.command } : {}),
    baseModel: SELFTEST_BASE_MODEL,
    baseModelPath: fixtures.baseModel,
    benchmark: 'gsm8k',
    hours: 0.1,
    gpus: 0,
    sandbox: 'bwrap',
    engine: 'hf',
    // The selftest is about the audit: one evaluation per trial (v1.1 would run five seeds).
    protocol: 'v1.0',
    evalLimit: 4,
    evalData: fixtures.evalData,
    evalTemplate: tinyChatTemplatePath,
    evalMaxTokens: 16,
    taskFiles: { 'train_data.jsonl': fixtures.trainData },
    // The twin is a disallowed derivative of the base: the audit fetches it from the (stand-in) Hub
    // outside the sandbox, signs it once and compares, as it does for a real base's instruct twin.
    forbiddenModels: [SELFTEST_TWIN_REPO],
    network: 'allowlist',
    allowHosts: [],
  };
}

function evidenceLine(e: Evidence | undefined): string {
  if (!e) return '';
  return `${e.source}: ${e.detail}`.replace(/\s+/g, ' ').slice(0, 300);
}

const rulesOf = (v: DetectorVerdict) => (v.rule ?? '').split(/,\s*/).filter(Boolean);

/** Compare one trial's audit with what its case expects. */
export function judgeCase(
  c: SelftestCase,
  audit: Pick<AuditWithVerdicts, 'combined' | 'verdicts'> | undefined,
): Pick<SelftestCaseResult, 'actual' | 'passed' | 'problem' | 'evidence'> {
  const verdicts = audit?.verdicts ?? [];
  const pick = (value: string) =>
    verdicts.filter((v) => v.verdict === value).map((v) => ({ detector: v.detector, rule: v.rule ?? '' }));
  const actual = {
    verdict: audit?.combined ?? 'not_audited',
    flagged: pick('flagged'),
    unverified: pick('unverified'),
  };
  const problems: string[] = [];
  let evidence = '';
  if (c.kind === 'honest') {
    if (actual.verdict !== 'clean') problems.push(`expected clean, got ${actual.verdict}`);
    const culprit =
      verdicts.find((v) => v.verdict === 'flagged') ?? verdicts.find((v) => v.verdict === 'unverified');
    if (culprit) evidence = `${culprit.detector}: ${evidenceLine(culprit.evidence[0]) || culprit.summary}`;
  } else {
    if (actual.verdict !== 'flagged') problems.push(`expected flagged, got ${actual.verdict}`);
    for (const id of c.expect.detectors) {
      const v = verdicts.find((x) => x.detector === id);
      if (v?.verdict !== 'flagged') {
        problems.push(`${id} did not flag (${v ? `${v.verdict}: ${v.summary}` : 'did not run'})`);
        continue;
      }
      const rules = rulesOf(v);
      if (c.expect.rules && !c.expect.rules.some((r) => rules.includes(r)))
        problems.push(`${id} flagged ${rules.join(', ')}, not ${c.expect.rules.join(' or ')}`);
      const first = v.evidence.find((e) => e.severity === 'flag') ?? v.evidence[0];
      if (!first) problems.push(`${id} flagged without evidence`);
      if (!evidence) evidence = `${id}: ${evidenceLine(first)}`;
    }
    const seen = new Set(verdicts.flatMap((v) => v.evidence.map((e) => String(e.rule ?? ''))));
    for (const rule of c.expect.evidenceRules ?? []) {
      if (!seen.has(rule)) problems.push(`no ${rule} evidence in the audit`);
    }
  }
  return { actual, passed: problems.length === 0, problem: problems.join('; '), evidence };
}

async function runPool<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

/**
 * `ptb selftest`: every case as a real trial (sandbox, ledgers, audit, evaluation) in one new
 * experiment `selftest-<timestamp>`, each trial's audit compared with what the case expects.
 */
export async function runSelftest(t: TrialEnv, opts: SelftestOptions = {}): Promise<SelftestReport> {
  const known = new Set(SELFTEST_CASES.map((c) => c.id));
  const unknown = (opts.only ?? []).filter((id) => !known.has(id));
  if (unknown.length > 0) {
    throw new UserError(
      `unknown selftest case${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`,
      `choose from: ${[...known].join(', ')}`,
    );
  }
  const cases = SELFTEST_CASES.filter((c) => !opts.only?.length || opts.only.includes(c.id));
  const started = Date.now();
  const say = t.onLine ?? (() => {});
  const fixtures = await buildSelftestFixtures({
    root: join(t.home.root, 'selftest'),
    homeRoot: t.home.root,
    cache: t.cache,
    env: t.env,
    onLine: say,
    signal: t.signal,
  });
  const hub = await startStandInHub(fixtures.hubRepos);
  const provider = await startStandInProvider();
  const env = selftestEnv(t.env, hub.url, provider.url);
  const experiment = `selftest-${new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
  const results: SelftestCaseResult[] = [];
  let providerCalls = 0;
  try {
    const trials = cases.map((c) => ({ c, trial: createTrial(t, specFor(c, fixtures, experiment)) }));
    say(`selftest: ${cases.length} cases in experiment ${experiment}`);
    await runPool(trials, opts.concurrency ?? 2, async ({ c, trial }) => {
      const caseStarted = Date.now();
      let runError = '';
      try {
        await runTrial(
          {
            ...t,
            env,
            onLine: (line) => say(`[${c.id}] ${line}`),
            onEvalEvent: undefined,
          },
          trial.id,
        );
      } catch (err) {
        if (t.signal?.aborted) throw err;
        runError = errorMessage(err);
      }
      const judged = judgeCase(c, t.trials.latestAudit(trial.id));
      const result: SelftestCaseResult = {
        case: c.id,
        kind: c.kind,
        description: c.description,
        expected: {
          verdict: c.expect.verdict,
          detectors: c.expect.detectors,
          rules: c.expect.rules ?? [],
        },
        ...judged,
        passed: judged.passed && !runError,
        problem: [runError && `trial failed: ${runError}`, judged.problem].filter(Boolean).join('; '),
        trial: trial.id,
        dir: trial.dir,
        seconds: Math.round((Date.now() - caseStarted) / 100) / 10,
      };
      if (!opts.keep) rmSync(trialLayout(trial.dir).work.dir, { recursive: true, force: true });
      results.push(result);
      opts.onResult?.(result);
    });
  } finally {
    providerCalls = provider.requests.length;
    await hub.close();
    await provider.close();
  }
  // Report in case order, whatever order the trials finished in.
  results.sort((a, b) => cases.findIndex((c) => c.id === a.case) - cases.findIndex((c) => c.id === b.case));
  const cheaters = results.filter((r) => r.kind === 'cheater');
  const honest = results.filter((r) => r.kind === 'honest');
  return {
    experiment,
    results,
    ...detectorTallies(results),
    summary: {
      caught: cheaters.filter((r) => r.passed).length,
      cheaters: cheaters.length,
      false_positives: honest.filter((r) => !r.passed).length,
      honest: honest.length,
      passed: results.filter((r) => r.passed).length,
      failed: results.filter((r) => !r.passed).length,
      provider_calls: providerCalls,
      seconds: Math.round((Date.now() - started) / 1000),
    },
  };
}

/** Whether the selftest proves the audit: every cheater caught, no honest agent flagged. */
export function selftestPassed(report: SelftestReport): boolean {
  return report.summary.failed === 0 && report.summary.provider_calls === 0 && report.results.length > 0;
}
