import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isDemoBaseline } from '../core/demoNamespace.ts';
import { UserError } from '../core/errors.ts';
import { trialLayout } from '../core/trialLayout.ts';
import { assertCreatableDir } from '../core/userPaths.ts';
import type { Trial, TrialRepo } from '../store/trialRepo.ts';
import { methodNames } from './aggregate.ts';
import { selectTrials, toReportTrial } from './collect.ts';
import { checkFolder, type FileSource, type FolderPlan, writeFolder } from './exportWrites.ts';
import { upstreamModelPart } from './models.ts';
import {
  BASELINE_FOLDER,
  formatTimeTaken,
  JUDGEMENT_LINES,
  PTB_BASELINE_FILE,
  PTB_TRIAL_FILE,
  runFolderName,
} from './upstreamLayout.ts';

/**
 * `ptb export DIR`: finished trials written in the reference's results layout, so the reference's
 * aggregation scripts (and `ptb import`) read them: `<method>/<benchmark>_<org>_<model>_<n>/` with
 * metrics.json, time_taken.txt, the two judgement files and the run's logs; baselines go to
 * baseline_zeroshot/. Model weights (final_model/) are not copied. `ptb_trial.json` keeps what the
 * layout cannot say (the full trial spec, tokens), so an export imports back to the same leaderboard.
 * It never overwrites or deletes a file it did not write (exportWrites.ts): into an existing tree it
 * adds what is missing, refreshes its own earlier output, and refuses — before writing anything —
 * where another run's files are in the way.
 */

export interface ExportSummary {
  runs: number;
  baselines: number;
  skippedUnfinished: number;
  methods: string[];
}

/** Small files copied as they are when the trial has them. */
const COPIED_FILES = [
  'metrics.json',
  'time_taken.txt',
  'contamination_judgement.txt',
  'disallowed_model_judgement.txt',
  'prompt.txt',
  'solve_out.txt',
  'solve_parsed.txt',
  'output.log',
  'error.log',
  'judge_output.json',
  'judge_output.txt',
  'system_monitor.log',
] as const;

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The same accuracy in a metrics.json written differently (an upstream file with more keys). */
function sameAccuracy(accuracy: number): (existing: string) => boolean {
  return (existing) => {
    try {
      return (JSON.parse(existing) as { accuracy?: unknown }).accuracy === accuracy;
    } catch {
      return false;
    }
  };
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * Judgement files for a trial that has none of its own (ptb's audit keeps verdicts in the store):
 * clean → both negative lines; flagged → the flag its rules point at (model use for weight/model
 * rules, contamination otherwise); unverified or not audited → no files, which the reference reads
 * as an error and scores as the base model, like ptb's default policy.
 */
function judgementFiles(repo: TrialRepo, trial: Trial): Map<string, string> {
  const verdict = trial.audit_verdict;
  const files = new Map<string, string>();
  if (verdict !== 'clean' && verdict !== 'flagged') return files;
  let contamination = false;
  let model = false;
  if (verdict === 'flagged') {
    const flagged = repo.latestAudit(trial.id)?.verdicts.filter((v) => v.verdict === 'flagged') ?? [];
    for (const v of flagged) {
      if (/model|weight/i.test(`${v.detector} ${v.rule ?? ''}`)) model = true;
      else contamination = true;
    }
    if (!model && !contamination) contamination = true;
  }
  const lines = JUDGEMENT_LINES;
  files.set(
    'contamination_judgement.txt',
    `${contamination ? lines.contamination.flagged : lines.contamination.clean}\n`,
  );
  files.set(
    'disallowed_model_judgement.txt',
    `${model ? lines.disallowedModel.flagged : lines.disallowedModel.clean}\n`,
  );
  return files;
}

/** What a trial's run folder gets: its files copied, what is missing written from the store. */
function runFolderPlan(repo: TrialRepo, trial: Trial, runDir: string): FolderPlan {
  const source = trialLayout(trial.dir);
  // An imported run folder exported onto its own tree: its files are already there.
  const own = resolve(runDir) === resolve(source.root);
  const files = new Map<string, FileSource>();
  const has = (name: string) => files.has(name) || (own && isFile(join(runDir, name)));
  for (const name of COPIED_FILES) {
    const from = join(source.root, name);
    if (!own && isFile(from)) files.set(name, { copyFrom: from });
  }
  if (!has('metrics.json') && trial.accuracy !== null) {
    files.set('metrics.json', {
      text: json({ accuracy: trial.accuracy }),
      equivalent: sameAccuracy(trial.accuracy),
    });
  }
  if (!has('time_taken.txt') && trial.agent_seconds !== null) {
    files.set('time_taken.txt', { text: `${formatTimeTaken(trial.agent_seconds)}\n` });
  }
  if (!has('contamination_judgement.txt') && !has('disallowed_model_judgement.txt')) {
    for (const [name, text] of judgementFiles(repo, trial)) files.set(name, { text });
  }
  files.set(PTB_TRIAL_FILE, {
    text: json({
      trial_id: trial.id,
      spec: trial.spec,
      status: trial.status,
      accuracy: trial.accuracy,
      audit_verdict: trial.audit_verdict,
      agent_seconds: trial.agent_seconds,
      input_tokens: trial.input_tokens,
      output_tokens: trial.output_tokens,
      cost_usd: trial.cost_usd,
    }),
  });
  return { dir: runDir, files, others: own ? 'own' : 'exclusive' };
}

export function exportUpstream(
  repo: TrialRepo,
  outDir: string,
  opts: { experiments?: readonly string[]; includeDemo?: boolean } = {},
): ExportSummary {
  assertCreatableDir(
    outDir,
    'export directory',
    'ptb export writes a results tree: give it a directory (a new one is created)',
  );
  const trials = selectTrials(repo, opts.experiments, { includeDemo: opts.includeDemo });
  const names = methodNames(trials.map((t) => toReportTrial(t)));
  const summary: ExportSummary = { runs: 0, baselines: 0, skippedUnfinished: 0, methods: [] };
  const methods = new Set<string>();
  const plans: FolderPlan[] = [];

  // Run numbers: the cluster id of imported trials; ptb trials count up per cell in creation order,
  // so the newest keeps the highest number.
  const byCell = new Map<string, Trial[]>();
  for (const t of trials) {
    const key = JSON.stringify([names.get(t.id), t.benchmark, upstreamModelPart(t.base_model)]);
    byCell.set(key, [...(byCell.get(key) ?? []), t]);
  }
  for (const cellTrials of byCell.values()) {
    cellTrials.sort((a, b) =>
      a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1,
    );
    const used = new Set<number>();
    let next = 1;
    for (const trial of cellTrials) {
      if (trial.status !== 'completed' && trial.status !== 'failed') {
        summary.skippedUnfinished++;
        continue;
      }
      let runNumber = trial.run_number;
      if (runNumber === null || used.has(runNumber)) {
        while (used.has(next)) next++;
        runNumber = next;
      }
      used.add(runNumber);
      next = Math.max(next, runNumber + 1);
      const method = names.get(trial.id)!;
      const { org, name } = upstreamModelPart(trial.base_model);
      const runDir = join(outDir, method, runFolderName(trial.benchmark, org, name, runNumber));
      plans.push(runFolderPlan(repo, trial, runDir));
      methods.add(method);
      summary.runs++;
    }
  }

  for (const b of repo.baselines()) {
    if (!opts.includeDemo && isDemoBaseline(b)) continue;
    const { org, name } = upstreamModelPart(b.model);
    const imported = new RegExp(`^import:${BASELINE_FOLDER}/(.+)$`).exec(b.source)?.[1];
    const folder = imported ?? runFolderName(b.benchmark, org, name, 1);
    const files = new Map<string, FileSource>();
    if (b.accuracy !== null) {
      files.set('metrics.json', {
        text: json({ accuracy: b.accuracy }),
        equivalent: sameAccuracy(b.accuracy),
      });
    }
    files.set(PTB_BASELINE_FILE, {
      text: json({
        model: b.model,
        kind: b.kind,
        accuracy: b.accuracy,
        source: b.source,
        protocol: b.protocol,
      }),
    });
    plans.push({ dir: join(outDir, BASELINE_FOLDER, folder), files, others: 'shared' });
    summary.baselines++;
  }

  // Everything is checked before anything is written: a refused export leaves the tree as it was.
  const checks = plans.map(checkFolder);
  const conflicts = checks.flatMap((c) => c.conflicts);
  if (conflicts.length > 0) {
    const shown = conflicts.slice(0, 8).map((c) => `  ${c}`);
    if (conflicts.length > 8) shown.push(`  … and ${conflicts.length - 8} more`);
    throw new UserError(
      `refusing to export into ${outDir}: it would overwrite or mix with files ptb did not write (nothing was written):\n${shown.join('\n')}`,
      'export into a new or empty directory, or move the listed files away (ptb export never overwrites or deletes files it did not write)',
    );
  }
  for (const check of checks) writeFolder(check);
  summary.methods = [...methods].sort();
  return summary;
}
