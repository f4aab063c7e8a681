import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomicWrite.ts';
import { UserError } from '../core/errors.ts';
import { BENCHMARK_IDS } from '../core/schemas.ts';
import type { TrialRepo } from '../store/trialRepo.ts';
import { type AggregateOptions, aggregate, type Leaderboard, WeightsError } from './aggregate.ts';
import { selectTrials, storedBaselines, toReportTrial } from './collect.ts';
import { type ReportFormat, renderCsv, renderJson, renderMarkdown, renderTable } from './formats.ts';
import { renderHtml } from './html.ts';
import { type ProgressSeries, progressSeries } from './inRunProgress.ts';
import { allPlots, type ReportPlots } from './plots.ts';

export interface ReportOptions extends AggregateOptions {
  /** Experiment names or `*` patterns; all experiments when empty. */
  experiments?: readonly string[];
}

export interface Report {
  leaderboard: Leaderboard;
  series: ProgressSeries[];
}

/** `ptb report`: the leaderboard over the stored trials and baselines. */
export function buildReport(repo: TrialRepo, opts: ReportOptions = {}): Report {
  for (const b of opts.benchmarks ?? []) {
    if (!(BENCHMARK_IDS as readonly string[]).includes(b)) {
      throw new UserError(`unknown benchmark "${b}"`, `Choose from: ${BENCHMARK_IDS.join(', ')}.`);
    }
  }
  const trials = selectTrials(repo, opts.experiments).map(toReportTrial);
  let leaderboard: Leaderboard;
  try {
    leaderboard = aggregate(trials, storedBaselines(repo), opts);
  } catch (err) {
    if (err instanceof WeightsError) {
      throw new UserError(
        `cannot derive weights from baselines: ${err.message}`,
        'Record zero-shot baselines of the base and instruct models first (`ptb baseline --models … --benchmarks …`, ' +
          'or `ptb import` a tree with baseline_zeroshot/), or use --weights reference.',
      );
    }
    throw err;
  }
  return { leaderboard, series: progressSeries(leaderboard, repo) };
}

export function renderReport(report: Report, format: ReportFormat): string {
  const { leaderboard, series } = report;
  switch (format) {
    case 'table':
      return renderTable(leaderboard);
    case 'markdown':
      return renderMarkdown(leaderboard);
    case 'csv':
      return renderCsv(leaderboard);
    case 'json':
      return renderJson(leaderboard, series);
    case 'html':
      return renderHtml(leaderboard, allPlots(leaderboard, series));
  }
}

export const PLOT_FILES: Readonly<Record<keyof ReportPlots, string>> = {
  leaderboard: 'leaderboard.svg',
  heatmap: 'heatmap.svg',
  time: 'time.svg',
  progress: 'score_over_time.svg',
};

/** Write the four figures into `dir`; returns their paths. */
export function writePlots(report: Report, dir: string): string[] {
  const plots = allPlots(report.leaderboard, report.series);
  return (Object.keys(PLOT_FILES) as (keyof ReportPlots)[]).map((key) => {
    const path = join(dir, PLOT_FILES[key]);
    writeFileAtomic(path, plots[key]);
    return path;
  });
}
