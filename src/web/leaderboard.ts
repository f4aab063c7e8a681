import { isUserError } from '../core/errors.ts';
import { reportJson, reportNotes, tableCells } from '../report/formats.ts';
import { allPlots } from '../report/plots.ts';
import { buildReport } from '../report/report.ts';
import type { TrialRepo } from '../store/trialRepo.ts';

/**
 * The dashboard's leaderboard is `ptb report`'s (src/report): the same aggregation (newest trial per
 * cell, base-score substitution, weights, seeds), the same table cells, notes and SVG figures.
 */
export type WebLeaderboard =
  | {
      ok: true;
      header: string[];
      rows: { cells: string[]; kind: 'baseline' | 'agent' }[];
      notes: string[];
      /** Standalone SVG documents from src/report/plots.ts: escaped text, presentation attributes only. */
      plots: { title: string; svg: string }[];
      runs: {
        row: string;
        run: string;
        experiment: string;
        complete: boolean;
        avg: number | null;
        problems: string[];
      }[];
      json: ReturnType<typeof reportJson>;
    }
  | { ok: false; error: string; hint: string | null };

const PLOT_TITLES = {
  leaderboard: 'Average score per agent',
  heatmap: 'Score per benchmark',
  time: 'Agent time',
  progress: 'In-run score over time',
} as const;

export interface LeaderboardFilter {
  /** Experiment names (exact); all when empty. */
  experiments?: readonly string[];
  /** Also the demo's trials and baselines (left out by default, as in `ptb report`). */
  includeDemo?: boolean;
}

export function computeLeaderboard(repo: TrialRepo, filter: LeaderboardFilter = {}): WebLeaderboard {
  let report: ReturnType<typeof buildReport>;
  try {
    report = buildReport(repo, { experiments: filter.experiments, includeDemo: filter.includeDemo });
  } catch (err) {
    // e.g. weights that need baselines: show the message and its hint instead of failing the page
    if (isUserError(err)) return { ok: false, error: err.message, hint: err.hint ?? null };
    throw err;
  }
  const lb = report.leaderboard;
  const plots = allPlots(lb, report.series);
  const { header, rows } = tableCells(lb);
  return {
    ok: true,
    header,
    rows,
    notes: reportNotes(lb),
    plots: (Object.keys(PLOT_TITLES) as (keyof typeof PLOT_TITLES)[]).map((k) => ({
      title: PLOT_TITLES[k],
      svg: plots[k],
    })),
    runs: lb.rows.flatMap((row) =>
      row.runs.map((run) => ({
        row: row.name,
        run: run.name,
        experiment: run.experiment,
        complete: run.complete,
        avg: run.avg,
        problems: run.problems,
      })),
    ),
    json: reportJson(lb, report.series),
  };
}
