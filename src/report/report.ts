import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomicWrite.ts';
import { UserError } from '../core/errors.ts';
import { getProtocol } from '../core/protocols.ts';
import { BENCHMARK_IDS } from '../core/schemas.ts';
import type { TrialRepo } from '../store/trialRepo.ts';
import {
  type AggregateOptions,
  aggregate,
  type Leaderboard,
  type ReportTrial,
  WeightsError,
} from './aggregate.ts';
import { selectTrials, storedBaselines, toReportTrial } from './collect.ts';
import { type ReportFormat, renderCsv, renderJson, renderMarkdown, renderTable } from './formats.ts';
import { renderHtml } from './html.ts';
import { type ProgressSeries, progressSeries } from './inRunProgress.ts';
import { allPlots, type ReportPlots } from './plots.ts';

export interface ReportOptions extends AggregateOptions {
  /** Experiment names or `*` patterns; all experiments when empty. */
  experiments?: readonly string[];
  /** Only trials evaluated under this protocol; required when the selection holds several. */
  protocol?: string;
  /** Also the demo's trials and baselines (left out by default). */
  includeDemo?: boolean;
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
  const selection = { includeDemo: opts.includeDemo };
  const lost = repo.lostAttemptTotals();
  const trials = oneProtocol(
    selectTrials(repo, opts.experiments, selection).map((t) => toReportTrial(t, lost.get(t.id))),
    opts.protocol,
  );
  let leaderboard: Leaderboard;
  try {
    // Baselines of the trials' protocol: a substituted base score must be comparable with the rest.
    const protocol = opts.protocol ?? trials[0]?.protocol;
    leaderboard = aggregate(trials, storedBaselines(repo, { ...selection, protocol }), opts);
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

/**
 * The trials of one protocol. Scores of different protocols are not comparable (v1.1 averages five
 * seeds and compares numbers exactly, v1.0 is one run with inspect's endswith), so a leaderboard
 * never mixes them: with several in the selection, `--protocol` picks one, else this refuses.
 */
export function oneProtocol(trials: ReportTrial[], protocol: string | undefined): ReportTrial[] {
  if (protocol !== undefined) {
    const id = getProtocol(protocol).id;
    const chosen = trials.filter((t) => t.protocol === id);
    if (chosen.length === 0 && trials.length > 0) {
      throw new UserError(
        `no selected trial was evaluated under protocol ${id}`,
        `The selection holds ${describeProtocols(trials)}.`,
      );
    }
    return chosen;
  }
  const protocols = new Set(trials.map((t) => t.protocol));
  if (protocols.size > 1) {
    throw new UserError(
      `the selected trials were evaluated under different protocols: ${describeProtocols(trials)}; their scores are not comparable (v1.1 averages fixed seeds and compares numbers exactly, v1.0 is one run scored as the paper), so one leaderboard would mix them`,
      `Report one protocol at a time: ${[...protocols]
        .sort()
        .map((p) => `ptb report --protocol ${p}`)
        .join(' | ')} (or narrow --experiments).`,
    );
  }
  return trials;
}

function describeProtocols(trials: readonly ReportTrial[]): string {
  const byProtocol = new Map<string, Set<string>>();
  for (const t of trials)
    byProtocol.set(t.protocol, (byProtocol.get(t.protocol) ?? new Set()).add(t.experiment));
  return [...byProtocol]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([p, experiments]) => `${p} (${[...experiments].sort().join(', ')})`)
    .join(' and ');
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
