import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { UserError } from '../core/errors.ts';
import type { ProtocolId } from '../core/protocols.ts';
import { type DetectorVerdict, type TrialSpec, TrialSpecSchema } from '../core/trial.ts';
import type { Trial, TrialPatch, TrialRepo } from '../store/trialRepo.ts';
import { matchesPattern, parseUpstreamMethod, seedFromSuffix } from './grouping.ts';
import { type ModelKind, modelKind } from './models.ts';
import {
  BASELINE_FOLDER,
  PTB_BASELINE_FILE,
  PTB_TRIAL_FILE,
  parseRunFolder,
  parseTimeTaken,
  readAccuracy,
  readClaudeUsage,
  readJudgement,
  type UpstreamJudgement,
} from './upstreamLayout.ts';

/**
 * `ptb import DIR`: a reference results tree into the store. Each run folder becomes a trial
 * (source 'import', external id = folder name, run number = cluster id) whose judgement files are
 * recorded as an audit by the 'upstream-judge' detector; baseline_zeroshot/ becomes baselines.
 * Importing the same tree again changes nothing; a changed file (a judgement corrected by hand)
 * updates the trial and appends an audit.
 */

export const UPSTREAM_JUDGE = { detector: 'upstream-judge', version: '1', policy: 'upstream' } as const;
/** Budget assumed for method folders whose name does not carry `<hours>h` (the reference's default). */
const DEFAULT_HOURS = 10;

export interface ImportOptions {
  /** Method folder names or `*` patterns; all when empty. */
  experiments?: readonly string[];
}

export interface ImportSummary {
  experiments: string[];
  created: number;
  updated: number;
  unchanged: number;
  audits: number;
  baselinesAdded: number;
  baselinesUnchanged: number;
  skipped: { path: string; reason: string }[];
}

const PtbTrialSidecarSchema = z.object({
  spec: z.unknown(),
  audit_verdict: z.string().nullable().optional(),
  input_tokens: z.number().nullable().optional(),
  output_tokens: z.number().nullable().optional(),
  cost_usd: z.number().nullable().optional(),
});

const PtbBaselineSidecarSchema = z.object({
  model: z.string(),
  kind: z.enum(['base', 'instruct', 'other']),
  /** null: recorded before protocols existed; absent: an export of an older ptb. */
  protocol: z.string().nullable().optional(),
});

function readSidecar<T>(path: string, schema: z.ZodType<T>): T | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function subdirectories(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

function specFor(method: string, runDir: string, org: string, model: string, benchmark: string): TrialSpec {
  const sidecar = readSidecar(join(runDir, PTB_TRIAL_FILE), PtbTrialSidecarSchema);
  const fromSidecar = sidecar ? TrialSpecSchema.safeParse(sidecar.spec) : undefined;
  if (fromSidecar?.success && fromSidecar.data.benchmark === benchmark) {
    return { ...fromSidecar.data, experiment: method };
  }
  const parsed = parseUpstreamMethod(method);
  return TrialSpecSchema.parse({
    experiment: method,
    agent: parsed?.agent ?? 'upstream',
    agentConfig: parsed?.agentConfig ?? method,
    baseModel: `${org}/${model}`,
    benchmark,
    hours: parsed?.hours ?? DEFAULT_HOURS,
    gpus: parsed?.gpus ?? 1,
    seed: seedFromSuffix(method) ?? 0,
    sandbox: 'apptainer',
    engine: 'vllm',
    protocol: upstreamProtocol(runDir),
  });
}

/**
 * The protocol an upstream run was evaluated under: the seeded final evaluation (v1.1) leaves
 * per-seed metrics (metrics_seed<S>.json, or num_seeds/per_seed in metrics.json); the paper's
 * (v1.0) one metrics.json.
 */
export function upstreamProtocol(runDir: string): ProtocolId {
  if (readdirSync(runDir).some((name) => /^metrics_seed\d+\.json$/.test(name))) return 'v1.1';
  try {
    const metrics = JSON.parse(readFileSync(join(runDir, 'metrics.json'), 'utf8')) as Record<string, unknown>;
    if ('per_seed' in metrics || 'num_seeds' in metrics) return 'v1.1';
  } catch {
    // no readable metrics.json: nothing says it was seeded
  }
  return 'v1.0';
}

function judgeVerdict(j: UpstreamJudgement): DetectorVerdict {
  const flags = [
    ...(j.contaminationFlagged ? ['contamination'] : []),
    ...(j.disallowedModelFlagged ? ['disallowed-model'] : []),
  ];
  const rule =
    j.verdict === 'flagged'
      ? flags.join('+')
      : j.verdict === 'unverified'
        ? j.problems.map((p) => `${p.file} ${p.kind}`).join(', ')
        : undefined;
  const evidence = [
    {
      source: 'contamination_judgement.txt',
      detail: j.contamination === null ? 'missing' : j.contamination.trim(),
    },
    {
      source: 'disallowed_model_judgement.txt',
      detail: j.disallowedModel === null ? 'missing' : j.disallowedModel.trim(),
    },
  ];
  return {
    detector: UPSTREAM_JUDGE.detector,
    version: UPSTREAM_JUDGE.version,
    verdict: j.verdict,
    ...(rule ? { rule } : {}),
    summary: `reference judge cell "${j.cell}"`,
    evidence,
  };
}

function sameVerdict(a: DetectorVerdict, b: DetectorVerdict): boolean {
  return (
    a.detector === b.detector &&
    a.verdict === b.verdict &&
    a.summary === b.summary &&
    JSON.stringify(a.evidence) === JSON.stringify(b.evidence)
  );
}

/** Only the fields that differ from the stored trial (none on a second import of the same tree). */
function changedFields(existing: Trial | undefined, wanted: TrialPatch): TrialPatch {
  const stored = existing as unknown as Record<string, unknown> | undefined;
  return Object.fromEntries(
    Object.entries(wanted).filter(([key, value]) => !stored || stored[key] !== value),
  ) as TrialPatch;
}

function importRun(
  repo: TrialRepo,
  method: string,
  runDir: string,
  folder: string,
  summary: ImportSummary,
): void {
  const parsed = parseRunFolder(folder);
  if ('problem' in parsed) {
    summary.skipped.push({ path: join(method, folder), reason: parsed.problem });
    return;
  }
  const spec = specFor(method, runDir, parsed.org, parsed.model, parsed.benchmark);
  const metrics = readAccuracy(runDir);
  const judgement = readJudgement(runDir);
  const sidecar = readSidecar(join(runDir, PTB_TRIAL_FILE), PtbTrialSidecarSchema);
  // A ptb trial that was never audited has no judgement files in its export; it stays not audited
  // instead of reading as two missing files.
  const neverAudited =
    sidecar?.audit_verdict === 'not_audited' &&
    judgement.contamination === null &&
    judgement.disallowedModel === null;
  // The reference reads costs only for Claude Code methods (`claude_*`); other scaffolds print no such line.
  const usage =
    spec.agent === 'claude'
      ? readClaudeUsage(runDir)
      : { costUsd: null, inputTokens: null, outputTokens: null };
  const time = existsSync(join(runDir, 'time_taken.txt'))
    ? parseTimeTaken(readFileSync(join(runDir, 'time_taken.txt'), 'utf8'))
    : null;
  let trial = repo.findExternal(method, folder);
  const created = !trial;
  if (!trial) {
    trial = repo.create(spec, () => resolve(runDir), {
      source: 'import',
      externalId: folder,
      runNumber: parsed.clusterId,
    });
  }
  // The judge's verdict is re-recorded only when the files say something new since the last
  // import, so a later `ptb audit` of the imported trial is not overwritten by an unchanged tree.
  const verdict = judgeVerdict(judgement);
  const lastImported = repo
    .audits(trial.id)
    .flatMap((a) => a.verdicts.filter((v) => v.detector === UPSTREAM_JUDGE.detector))
    .at(-1);
  const judgementChanged = !neverAudited && (!lastImported || !sameVerdict(lastImported, verdict));
  const wanted: TrialPatch = {
    status: metrics.accuracy === null ? 'failed' : 'completed',
    accuracy: metrics.accuracy,
    error: metrics.accuracy === null ? metrics.reason : null,
    agent_seconds: time,
    cost_usd: usage.costUsd ?? sidecar?.cost_usd ?? null,
    input_tokens: usage.inputTokens ?? sidecar?.input_tokens ?? null,
    output_tokens: usage.outputTokens ?? sidecar?.output_tokens ?? null,
    ...(created || judgementChanged
      ? { audit_verdict: neverAudited ? 'not_audited' : judgement.verdict }
      : {}),
  };
  const patch = changedFields(created ? undefined : trial, wanted);
  repo.update(trial.id, patch);
  if (judgementChanged) {
    repo.recordAudit(trial.id, judgement.verdict, UPSTREAM_JUDGE.policy, verdict.summary, [verdict]);
    summary.audits++;
  }
  if (created) summary.created++;
  else if (Object.keys(patch).length > 0 || judgementChanged) summary.updated++;
  else summary.unchanged++;
}

function importBaselines(repo: TrialRepo, dir: string, summary: ImportSummary): void {
  // The reference reads the newest cluster id per (benchmark, model); older runs are history.
  const newest = new Map<
    string,
    { folder: string; clusterId: number; org: string; model: string; benchmark: string }
  >();
  for (const folder of subdirectories(dir)) {
    const parsed = parseRunFolder(folder);
    if ('problem' in parsed) {
      summary.skipped.push({ path: join(BASELINE_FOLDER, folder), reason: parsed.problem });
      continue;
    }
    const key = `${parsed.org}/${parsed.model}\u0000${parsed.benchmark}`;
    const seen = newest.get(key);
    if (!seen || parsed.clusterId > seen.clusterId) newest.set(key, { folder, ...parsed });
  }
  const stored = repo.baselines();
  for (const run of [...newest.values()].sort((a, b) => (a.folder < b.folder ? -1 : 1))) {
    const runDir = join(dir, run.folder);
    const sidecar = readSidecar(join(runDir, PTB_BASELINE_FILE), PtbBaselineSidecarSchema);
    const model = sidecar?.model ?? `${run.org}/${run.model}`;
    const kind: ModelKind = sidecar?.kind ?? modelKind(run.model);
    const metrics = readAccuracy(runDir);
    const source = `import:${BASELINE_FOLDER}/${run.folder}`;
    const current = stored.find((b) => b.model === model && b.benchmark === run.benchmark);
    if (
      current &&
      current.source === source &&
      current.accuracy === metrics.accuracy &&
      current.kind === kind
    ) {
      summary.baselinesUnchanged++;
      continue;
    }
    repo.addBaseline({
      model,
      benchmark: run.benchmark,
      kind,
      accuracy: metrics.accuracy,
      source,
      protocol: sidecar?.protocol !== undefined ? sidecar.protocol : upstreamProtocol(runDir),
    });
    summary.baselinesAdded++;
  }
}

export function importUpstream(repo: TrialRepo, root: string, opts: ImportOptions = {}): ImportSummary {
  const dir = resolve(root);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UserError(
      `${root} is not a directory`,
      'Pass the reference results directory (the one holding method folders and baseline_zeroshot/).',
    );
  }
  const summary: ImportSummary = {
    experiments: [],
    created: 0,
    updated: 0,
    unchanged: 0,
    audits: 0,
    baselinesAdded: 0,
    baselinesUnchanged: 0,
    skipped: [],
  };
  const patterns = opts.experiments ?? [];
  for (const method of subdirectories(dir)) {
    const methodDir = join(dir, method);
    if (method === BASELINE_FOLDER) {
      importBaselines(repo, methodDir, summary);
      continue;
    }
    if (patterns.length > 0 && !patterns.some((p) => matchesPattern(method, p))) continue;
    const runs = subdirectories(methodDir);
    if (runs.length === 0) continue;
    summary.experiments.push(method);
    for (const folder of runs) importRun(repo, method, join(methodDir, folder), folder, summary);
  }
  if (summary.experiments.length === 0 && summary.baselinesAdded + summary.baselinesUnchanged === 0) {
    throw new UserError(
      `found no method folders or ${BASELINE_FOLDER}/ in ${root}`,
      'A reference results tree holds <method>/<benchmark>_<org>_<model>_<cluster id>/metrics.json.',
    );
  }
  return summary;
}
