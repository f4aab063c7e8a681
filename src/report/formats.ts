import { REPORT_FORMATS } from '../core/vocabulary.ts';
import type { BaselineSummary, Leaderboard, LeaderboardRow, RunResult } from './aggregate.ts';
import type { ProgressSeries } from './inRunProgress.ts';
import type { MeanStd } from './stats.ts';
import { benchmarkLabel } from './weights.ts';

/** Text renderings of a leaderboard: aligned table, Markdown, CSV, JSON. Scores print as % (1 decimal). */

export { REPORT_FORMATS };
export type ReportFormat = (typeof REPORT_FORMATS)[number];

function pct(v: number): string {
  return (v * 100).toFixed(1);
}

function meanStdCell(s: MeanStd | undefined): string {
  if (!s || s.mean === null) return 'n/a';
  return s.std === null ? pct(s.mean) : `${pct(s.mean)} ± ${pct(s.std)}`;
}

function timeCell(row: LeaderboardRow): string {
  const { mean, std } = row.time;
  if (mean === null) return 'n/a';
  const h = (s: number) => (s / 3600).toFixed(1);
  const budget = row.budgetFraction === null ? '' : ` (${Math.round(row.budgetFraction * 100)}%)`;
  return `${h(mean)}${std === null ? '' : ` ± ${h(std)}`} h${budget}`;
}

function costCell(row: LeaderboardRow): string {
  const { mean, std } = row.cost;
  if (mean === null) return 'n/a';
  return `$${mean.toFixed(2)}${std === null ? '' : ` ± ${std.toFixed(2)}`}`;
}

function avgCell(row: LeaderboardRow): string {
  if (row.avg === null) return 'incomplete';
  const std = row.std === null ? '' : ` ± ${pct(row.std)}`;
  return `${pct(row.avg)}${std}${row.status === 'partial' ? '*' : ''}`;
}

function baselineLabel(b: BaselineSummary): string {
  return b.kind === 'instruct' ? 'Official instruct models' : 'Base models (zero-shot)';
}

function hasBaseline(b: BaselineSummary): boolean {
  return Object.values(b.perBenchmark).some((v) => v !== null);
}

/** Header and body cells shared by the table, Markdown and HTML renderings. */
export function tableCells(lb: Leaderboard): {
  header: string[];
  rows: { cells: string[]; kind: 'baseline' | 'agent' }[];
} {
  const header = [
    '#',
    'Agent',
    'Avg',
    ...lb.benchmarks.map(benchmarkLabel),
    'Runs',
    'Agent time',
    'Cost/run',
  ];
  const rows: { cells: string[]; kind: 'baseline' | 'agent' }[] = [];
  for (const b of [lb.baselines.instruct, lb.baselines.base]) {
    if (!hasBaseline(b)) continue;
    rows.push({
      kind: 'baseline',
      cells: [
        '–',
        baselineLabel(b),
        b.avg === null ? 'n/a' : pct(b.avg),
        ...lb.benchmarks.map((x) => {
          const v = b.perBenchmark[x];
          return v === null || v === undefined ? 'n/a' : pct(v);
        }),
        '',
        '',
        '',
      ],
    });
  }
  let rank = 0;
  for (const row of lb.rows) {
    rows.push({
      kind: 'agent',
      cells: [
        row.avg === null ? '–' : String(++rank),
        row.name,
        avgCell(row),
        ...lb.benchmarks.map((b) => meanStdCell(row.perBenchmark[b])),
        row.nRuns === row.runs.length ? String(row.nRuns) : `${row.nRuns}/${row.runs.length}`,
        timeCell(row),
        costCell(row),
      ],
    });
  }
  return { header, rows };
}

function substitutionSummary(run: RunResult): string {
  const counts = new Map<string, number>();
  for (const c of run.cells) if (c.substituted) counts.set(c.reason, (counts.get(c.reason) ?? 0) + 1);
  return [...counts].map(([reason, k]) => `${reason} ${k}`).join(', ');
}

/** Lines under the table: weights, model set, what was substituted, what is incomplete. */
export function reportNotes(lb: Leaderboard): string[] {
  const notes: string[] = [];
  if (lb.protocol) notes.push(`Evaluation protocol ${lb.protocol} (every score in this table).`);
  const weights = lb.benchmarks
    .map((b) => `${benchmarkLabel(b)} ${(lb.weights.values[b] ?? 0).toFixed(4)}`)
    .join(', ');
  notes.push(
    `Scores in %. Weights ${lb.weights.source === 'reference' ? 'of the reference (factors.json)' : 'recomputed from baselines as normalised 1/(instruct − base)'}` +
      `${lb.weights.subset ? ', rescaled to sum 1 over these benchmarks' : ''}: ${weights}.`,
  );
  notes.push(
    `Per-benchmark score: mean over the base models ${lb.models.join(', ')}; ± is the sample std over runs.`,
  );
  for (const b of [lb.baselines.instruct, lb.baselines.base]) {
    if (hasBaseline(b) && b.missing.length > 0) {
      notes.push(`${baselineLabel(b)}: no baseline for ${b.missing.join('; ')}.`);
    }
  }
  for (const row of lb.rows) {
    for (const run of row.runs) {
      const subs = substitutionSummary(run);
      if (subs)
        notes.push(`${run.name}: ${run.substitutedCells} cell(s) scored as the base model (${subs}).`);
      if (run.lostAttempts > 0)
        notes.push(
          `${run.name}: ${run.lostAttempts} attempt(s) restarted after preemption or node loss ` +
            `(${(run.lostSeconds / 60).toFixed(1)} min lost, not counted in agent time).`,
        );
    }
  }
  for (const row of lb.rows) {
    for (const run of row.runs.filter((r) => !r.complete)) {
      const shown = run.problems.slice(0, 6).join('; ');
      const more = run.problems.length > 6 ? `; … ${run.problems.length - 6} more` : '';
      notes.push(
        `${row.status === 'partial' ? '* ' : ''}incomplete run ${run.name} (left out of ${row.name}'s average): ${shown}${more}.`,
      );
    }
  }
  return notes;
}

export function renderTable(lb: Leaderboard): string {
  const { header, rows } = tableCells(lb);
  const all = [header, ...rows.map((r) => r.cells)];
  const widths = header.map((_, j) => Math.max(...all.map((r) => [...(r[j] ?? '')].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, j) => (j >= 2 ? c.padStart(widths[j]!) : c.padEnd(widths[j]!)))
      .join('  ')
      .trimEnd();
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of rows) out.push(line(r.cells));
  if (rows.length === 0) out.push('(no trials)');
  return `${out.join('\n')}\n\n${reportNotes(lb).join('\n')}\n`;
}

function markdownEscape(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function renderMarkdown(lb: Leaderboard): string {
  const { header, rows } = tableCells(lb);
  const out = [
    `| ${header.map(markdownEscape).join(' | ')} |`,
    `|${header.map((_, j) => (j >= 2 ? '---:' : '---')).join('|')}|`,
  ];
  for (const r of rows) {
    const cells = r.cells.map(markdownEscape);
    if (r.kind === 'baseline') cells[1] = `*${cells[1]}*`;
    out.push(`| ${cells.join(' | ')} |`);
  }
  return `${out.join('\n')}\n\n${reportNotes(lb)
    .map((n) => `- ${markdownEscape(n)}`)
    .join('\n')}\n`;
}

function csvField(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One line per row; scores as fractions (as the reference's CSVs since commit 53cb9bb). */
export function renderCsv(lb: Leaderboard): string {
  const header = [
    'kind',
    'agent',
    'scaffold',
    'agent_config',
    'hours',
    'status',
    'n_runs',
    'runs_total',
    'avg',
    'std',
    ...lb.benchmarks.flatMap((b) => [`${b}_mean`, `${b}_std`]),
    'time_mean_s',
    'time_std_s',
    'budget_fraction',
    'cost_mean_usd',
    'cost_std_usd',
    'input_tokens_mean',
    'output_tokens_mean',
  ];
  const lines = [header.join(',')];
  for (const b of [lb.baselines.instruct, lb.baselines.base]) {
    if (!hasBaseline(b)) continue;
    lines.push(
      [
        'baseline',
        `${b.kind}`,
        '',
        '',
        null,
        b.avg === null ? 'incomplete' : 'complete',
        null,
        null,
        b.avg,
        null,
        ...lb.benchmarks.flatMap((x) => [b.perBenchmark[x] ?? null, null]),
        ...Array(7).fill(null),
      ]
        .map(csvField)
        .join(','),
    );
  }
  for (const row of lb.rows) {
    lines.push(
      [
        'agent',
        row.name,
        row.agent,
        row.agentConfig,
        row.hours,
        row.status,
        row.nRuns,
        row.runs.length,
        row.avg,
        row.std,
        ...lb.benchmarks.flatMap((b) => [
          row.perBenchmark[b]?.mean ?? null,
          row.perBenchmark[b]?.std ?? null,
        ]),
        row.time.mean,
        row.time.std,
        row.budgetFraction,
        row.cost.mean,
        row.cost.std,
        row.inputTokens.mean,
        row.outputTokens.mean,
      ]
        .map(csvField)
        .join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The JSON document: per agent row avg, std, n_runs, per-benchmark {mean, std}, time, cost, and every run's cells. */
export function reportJson(lb: Leaderboard, series: readonly ProgressSeries[] = []) {
  const baseline = (b: BaselineSummary) => ({
    models: b.models,
    per_benchmark: b.perBenchmark,
    avg: b.avg,
    missing: b.missing,
  });
  return {
    protocol: lb.protocol,
    models: lb.models,
    benchmarks: lb.benchmarks,
    weights: { source: lb.weights.source, subset: lb.weights.subset, values: lb.weights.values },
    baselines: { instruct: baseline(lb.baselines.instruct), base: baseline(lb.baselines.base) },
    rows: lb.rows.map((row) => ({
      agent: row.name,
      scaffold: row.agent,
      agent_config: row.agentConfig,
      hours: row.hours,
      status: row.status,
      avg: row.avg,
      std: row.std,
      n_runs: row.nRuns,
      runs_total: row.runs.length,
      per_benchmark: Object.fromEntries(
        lb.benchmarks.map((b) => [
          b,
          {
            mean: row.perBenchmark[b]?.mean ?? null,
            std: row.perBenchmark[b]?.std ?? null,
            n: row.perBenchmark[b]?.n ?? 0,
          },
        ]),
      ),
      time: { mean_s: row.time.mean, std_s: row.time.std, budget_fraction: row.budgetFraction },
      cost: { mean_usd: row.cost.mean, std_usd: row.cost.std },
      tokens: { input_mean: row.inputTokens.mean, output_mean: row.outputTokens.mean },
      runs: row.runs.map((run) => ({
        name: run.name,
        experiment: run.experiment,
        complete: run.complete,
        avg: run.avg,
        per_benchmark: run.perBenchmark,
        substituted_cells: run.substitutedCells,
        problems: run.problems,
        time_s: run.timeSeconds,
        budget_fraction: run.budgetFraction,
        cost_usd: run.costUsd,
        input_tokens: run.inputTokens,
        output_tokens: run.outputTokens,
        lost_attempts: run.lostAttempts,
        lost_seconds: run.lostSeconds,
        cells: run.cells.map((c) => ({
          model: c.model,
          benchmark: c.benchmark,
          value: c.value,
          reason: c.reason,
          substituted: c.substituted,
          accuracy: c.accuracy,
          trial_id: c.trialId,
        })),
      })),
    })),
    in_run: series.map((s) => ({
      agent: s.row,
      run: s.run,
      trial_id: s.trialId,
      model: s.model,
      benchmark: s.benchmark,
      points: s.points,
    })),
  };
}

export function renderJson(lb: Leaderboard, series: readonly ProgressSeries[] = []): string {
  return `${JSON.stringify(reportJson(lb, series), null, 2)}\n`;
}
