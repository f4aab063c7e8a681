import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomicWrite.ts';
import { trialLayout } from '../core/trialLayout.ts';
import type { Trial, TrialRepo } from '../store/trialRepo.ts';
import { methodNames } from './aggregate.ts';
import { selectTrials, toReportTrial } from './collect.ts';
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

function copyIfPresent(from: string, to: string): boolean {
  if (!existsSync(from) || !statSync(from).isFile()) return false;
  if (resolve(from) !== resolve(to)) copyFileSync(from, to);
  return true;
}

/**
 * Judgement files for a trial that has none of its own (ptb's audit keeps verdicts in the store):
 * clean → both negative lines; flagged → the flag its rules point at (model use for weight/model
 * rules, contamination otherwise); unverified or not audited → no files, which the reference reads
 * as an error and scores as the base model, like ptb's default policy.
 */
function writeJudgements(repo: TrialRepo, trial: Trial, runDir: string): void {
  const verdict = trial.audit_verdict;
  if (verdict !== 'clean' && verdict !== 'flagged') return;
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
  writeFileAtomic(
    join(runDir, 'contamination_judgement.txt'),
    `${contamination ? lines.contamination.flagged : lines.contamination.clean}\n`,
  );
  writeFileAtomic(
    join(runDir, 'disallowed_model_judgement.txt'),
    `${model ? lines.disallowedModel.flagged : lines.disallowedModel.clean}\n`,
  );
}

export function exportUpstream(
  repo: TrialRepo,
  outDir: string,
  opts: { experiments?: readonly string[] } = {},
): ExportSummary {
  const trials = selectTrials(repo, opts.experiments);
  const names = methodNames(trials.map(toReportTrial));
  const summary: ExportSummary = { runs: 0, baselines: 0, skippedUnfinished: 0, methods: [] };
  const methods = new Set<string>();

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
      const source = trialLayout(trial.dir);
      // A folder left by an earlier export is replaced, never merged (stale judgements would survive);
      // exporting an imported tree onto itself leaves the source files alone.
      if (resolve(runDir) !== resolve(source.root)) rmSync(runDir, { recursive: true, force: true });
      mkdirSync(runDir, { recursive: true });
      for (const file of COPIED_FILES) copyIfPresent(join(source.root, file), join(runDir, file));
      if (!existsSync(join(runDir, 'metrics.json')) && trial.accuracy !== null) {
        writeJsonAtomic(join(runDir, 'metrics.json'), { accuracy: trial.accuracy });
      }
      if (!existsSync(join(runDir, 'time_taken.txt')) && trial.agent_seconds !== null) {
        writeFileAtomic(join(runDir, 'time_taken.txt'), `${formatTimeTaken(trial.agent_seconds)}\n`);
      }
      if (
        !existsSync(join(runDir, 'contamination_judgement.txt')) &&
        !existsSync(join(runDir, 'disallowed_model_judgement.txt'))
      ) {
        writeJudgements(repo, trial, runDir);
      }
      writeJsonAtomic(join(runDir, PTB_TRIAL_FILE), {
        trial_id: trial.id,
        spec: trial.spec,
        status: trial.status,
        accuracy: trial.accuracy,
        audit_verdict: trial.audit_verdict,
        agent_seconds: trial.agent_seconds,
        input_tokens: trial.input_tokens,
        output_tokens: trial.output_tokens,
        cost_usd: trial.cost_usd,
      });
      methods.add(method);
      summary.runs++;
    }
  }

  for (const b of repo.baselines()) {
    const { org, name } = upstreamModelPart(b.model);
    const imported = new RegExp(`^import:${BASELINE_FOLDER}/(.+)$`).exec(b.source)?.[1];
    const folder = imported ?? runFolderName(b.benchmark, org, name, 1);
    const runDir = join(outDir, BASELINE_FOLDER, folder);
    rmSync(join(runDir, 'metrics.json'), { force: true });
    mkdirSync(runDir, { recursive: true });
    if (b.accuracy !== null) writeJsonAtomic(join(runDir, 'metrics.json'), { accuracy: b.accuracy });
    writeJsonAtomic(join(runDir, PTB_BASELINE_FILE), {
      model: b.model,
      kind: b.kind,
      accuracy: b.accuracy,
      source: b.source,
    });
    summary.baselines++;
  }
  summary.methods = [...methods].sort();
  return summary;
}
