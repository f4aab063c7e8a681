import type { BaselineSummary, Leaderboard, LeaderboardRow } from './aggregate.ts';
import type { ProgressSeries } from './inRunProgress.ts';
import { clip, colour, escapeXml, n, svgDocument, text, ticks } from './svg.ts';
import { benchmarkLabel } from './weights.ts';

/**
 * The report's figures as standalone SVG documents: no scripts, no external references, the same
 * bytes for the same leaderboard. Each figure has a title and description for screen readers, and
 * every mark a <title> with its exact numbers.
 */

const WIDTH = 820;
const LABEL_WIDTH = 280;
const ROW_HEIGHT = 26;

function pct(value: number): string {
  return (value * 100).toFixed(1);
}

function xAxis(opts: {
  x0: number;
  width: number;
  y: number;
  top: number;
  max: number;
  label: string;
  format?: (v: number) => string;
}): string[] {
  const { x0, width, y, top, max, label } = opts;
  const format = opts.format ?? ((v: number) => String(v));
  const out = [`<g class="axis" stroke="#d0d0d0">`];
  for (const t of ticks(max)) {
    if (t > max + 1e-9) continue;
    const x = x0 + (t / max) * width;
    out.push(`<line x1="${n(x)}" y1="${n(top)}" x2="${n(x)}" y2="${n(y)}"/>`);
  }
  out.push('</g>');
  for (const t of ticks(max)) {
    if (t > max + 1e-9) continue;
    out.push(text(x0 + (t / max) * width, y + 16, format(t), { 'text-anchor': 'middle', fill: '#444444' }));
  }
  out.push(text(x0 + width / 2, y + 34, label, { 'text-anchor': 'middle', fill: '#222222' }));
  return out;
}

function axisMax(values: number[], floor: number): number {
  const max = Math.max(floor, ...values.filter((v) => Number.isFinite(v)));
  return ticks(max).at(-1)!;
}

function rowSummary(row: LeaderboardRow): string {
  if (row.avg === null) return `${row.name}: incomplete (no complete run of ${row.runs.length})`;
  const std = row.std === null ? '' : ` ± ${pct(row.std)}`;
  const partial =
    row.status === 'partial' ? `, ${row.runs.length - row.nRuns} incomplete run(s) left out` : '';
  return `${row.name}: ${pct(row.avg)}${std} (${row.nRuns} run${row.nRuns === 1 ? '' : 's'}${partial})`;
}

function errorBar(x1: number, x2: number, y: number, half: number): string {
  return (
    `<path d="M${n(x1)} ${n(y)}H${n(x2)}M${n(x1)} ${n(y - half)}V${n(y + half)}M${n(x2)} ${n(y - half)}V${n(y + half)}" ` +
    'stroke="#222222" stroke-width="1.2" fill="none"/>'
  );
}

/** Weighted average per agent row with ± sample std over runs, and the two baselines as reference lines. */
export function leaderboardSvg(lb: Leaderboard, id = 'leaderboard'): string {
  const top = 44;
  const plotWidth = WIDTH - LABEL_WIDTH - 70;
  const rows = lb.rows;
  const height = top + Math.max(1, rows.length) * ROW_HEIGHT + 56;
  const refs = [lb.baselines.instruct, lb.baselines.base].filter(
    (b): b is BaselineSummary & { avg: number } => b.avg !== null,
  );
  const max = axisMax(
    [...rows.map((r) => ((r.avg ?? 0) + (r.std ?? 0)) * 100), ...refs.map((b) => b.avg * 100)],
    10,
  );
  const scale = (v: number) => LABEL_WIDTH + (Math.max(0, v * 100) / max) * plotWidth;
  const axisY = top + Math.max(1, rows.length) * ROW_HEIGHT + 6;
  const body = [
    text(12, 22, 'Weighted average score by agent (mean ± sample std over runs)', {
      'font-size': 14,
      'font-weight': 'bold',
    }),
    ...xAxis({ x0: LABEL_WIDTH, width: plotWidth, y: axisY, top: top - 6, max, label: 'score (%)' }),
  ];
  rows.forEach((row, i) => {
    const y = top + i * ROW_HEIGHT;
    const mid = y + ROW_HEIGHT / 2;
    body.push(`<g><title>${escapeXml(rowSummary(row))}</title>`);
    body.push(text(LABEL_WIDTH - 8, mid + 4, clip(row.name, 40), { 'text-anchor': 'end', fill: '#222222' }));
    if (row.avg === null) {
      body.push(text(LABEL_WIDTH + 6, mid + 4, 'incomplete', { fill: '#888888', 'font-style': 'italic' }));
    } else {
      const end = scale(row.avg);
      body.push(
        `<rect x="${n(LABEL_WIDTH)}" y="${n(y + 4)}" width="${n(end - LABEL_WIDTH)}" height="${n(ROW_HEIGHT - 8)}" fill="${row.status === 'complete' ? colour(0) : '#9fc5e8'}"/>`,
      );
      let labelX = end;
      if (row.std !== null) {
        const lo = scale(row.avg - row.std);
        const hi = scale(row.avg + row.std);
        body.push(errorBar(lo, hi, mid, 5));
        labelX = hi;
      }
      body.push(
        text(labelX + 6, mid + 4, pct(row.avg) + (row.status === 'partial' ? '*' : ''), { fill: '#222222' }),
      );
    }
    body.push('</g>');
  });
  for (const ref of refs) {
    const x = scale(ref.avg);
    const label = ref.kind === 'instruct' ? 'instruct' : 'base zero-shot';
    body.push(
      `<g><title>${escapeXml(`${label}: ${pct(ref.avg)}`)}</title>` +
        `<line x1="${n(x)}" y1="${n(top - 6)}" x2="${n(x)}" y2="${n(axisY)}" stroke="${ref.kind === 'instruct' ? '#D55E00' : '#555555'}" stroke-dasharray="5 3" stroke-width="1.5"/>` +
        text(x, top - 10, `${label} ${pct(ref.avg)}`, {
          'text-anchor': 'middle',
          fill: '#444444',
          'font-size': 11,
        }) +
        '</g>',
    );
  }
  if (rows.length === 0)
    body.push(text(LABEL_WIDTH, top + 16, 'No trials in this report.', { fill: '#888888' }));
  return svgDocument({
    id,
    width: WIDTH,
    height,
    title: 'Leaderboard',
    description: rows.length > 0 ? rows.map(rowSummary).join('; ') : 'No trials.',
    body,
  });
}

/** 0 → near white, 1 → dark blue (sequential, readable in greyscale). */
function heat(value: number): string {
  const t = Math.min(1, Math.max(0, value));
  const from = [247, 251, 255];
  const to = [8, 48, 107];
  const c = from.map((f, i) => Math.round(f + (to[i]! - f) * t));
  return `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

/** Benchmark × agent: the mean over runs of each benchmark's base-model average. */
export function heatmapSvg(lb: Leaderboard, id = 'heatmap'): string {
  const cellWidth = Math.max(
    70,
    Math.min(110, Math.floor((WIDTH - LABEL_WIDTH - 20) / (lb.benchmarks.length + 1))),
  );
  const width = LABEL_WIDTH + cellWidth * (lb.benchmarks.length + 1) + 20;
  const top = 64;
  type Line = { name: string; values: (number | null)[]; avg: number | null; note: string };
  const lines: Line[] = [];
  for (const b of [lb.baselines.instruct, lb.baselines.base]) {
    if (Object.values(b.perBenchmark).every((v) => v === null)) continue;
    lines.push({
      name: b.kind === 'instruct' ? 'Official instruct models' : 'Base models (zero-shot)',
      values: lb.benchmarks.map((x) => b.perBenchmark[x] ?? null),
      avg: b.avg,
      note: 'baseline',
    });
  }
  for (const row of lb.rows) {
    lines.push({
      name: row.name,
      values: lb.benchmarks.map((x) => row.perBenchmark[x]?.mean ?? null),
      avg: row.avg,
      note: `${row.nRuns} complete run(s)`,
    });
  }
  const height = top + Math.max(1, lines.length) * ROW_HEIGHT + 20;
  const body = [
    text(12, 22, 'Score per benchmark (mean over base models, then over runs; %)', {
      'font-size': 14,
      'font-weight': 'bold',
    }),
  ];
  [...lb.benchmarks.map(benchmarkLabel), 'Avg'].forEach((label, j) => {
    body.push(
      text(LABEL_WIDTH + j * cellWidth + cellWidth / 2, top - 10, clip(label, 14), {
        'text-anchor': 'middle',
        fill: '#222222',
        'font-weight': j === lb.benchmarks.length ? 'bold' : 'normal',
      }),
    );
  });
  lines.forEach((line, i) => {
    const y = top + i * ROW_HEIGHT;
    body.push(
      text(LABEL_WIDTH - 8, y + ROW_HEIGHT / 2 + 4, clip(line.name, 40), {
        'text-anchor': 'end',
        fill: '#222222',
        'font-style': line.note === 'baseline' ? 'italic' : 'normal',
      }),
    );
    [...line.values, line.avg].forEach((v, j) => {
      const x = LABEL_WIDTH + j * cellWidth;
      const column = j < lb.benchmarks.length ? benchmarkLabel(lb.benchmarks[j]!) : 'weighted average';
      const label = v === null ? 'n/a' : pct(v);
      body.push(
        `<g><title>${escapeXml(`${line.name} · ${column}: ${label} (${line.note})`)}</title>` +
          `<rect x="${n(x + 1)}" y="${n(y + 1)}" width="${n(cellWidth - 2)}" height="${n(ROW_HEIGHT - 2)}" fill="${v === null ? '#eeeeee' : heat(v)}"/>` +
          text(x + cellWidth / 2, y + ROW_HEIGHT / 2 + 4, label, {
            'text-anchor': 'middle',
            fill: v !== null && v > 0.5 ? '#ffffff' : '#222222',
          }) +
          '</g>',
      );
    });
  });
  return svgDocument({
    id,
    width,
    height,
    title: 'Benchmark by agent heatmap',
    description: `Rows: ${lines.map((l) => l.name).join(', ') || 'none'}. Columns: ${lb.benchmarks.map(benchmarkLabel).join(', ')} and the weighted average. Darker is higher.`,
    body,
  });
}

function hoursLabel(seconds: number): string {
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** Agent time per trial (mean over cells, then mean ± std over runs), with each row's budget. */
export function timeSvg(lb: Leaderboard, id = 'time'): string {
  const top = 44;
  const plotWidth = WIDTH - LABEL_WIDTH - 80;
  const rows = lb.rows;
  const height = top + Math.max(1, rows.length) * ROW_HEIGHT + 56;
  const max = axisMax(
    rows.flatMap((r) => [((r.time.mean ?? 0) + (r.time.std ?? 0)) / 3600, r.hours ?? 0]),
    1,
  );
  const scale = (seconds: number) => LABEL_WIDTH + (Math.max(0, seconds / 3600) / max) * plotWidth;
  const axisY = top + Math.max(1, rows.length) * ROW_HEIGHT + 6;
  const body = [
    text(12, 22, 'Time used by the agent per trial (mean ± sample std over runs)', {
      'font-size': 14,
      'font-weight': 'bold',
    }),
    ...xAxis({ x0: LABEL_WIDTH, width: plotWidth, y: axisY, top: top - 6, max, label: 'hours' }),
  ];
  rows.forEach((row, i) => {
    const y = top + i * ROW_HEIGHT;
    const mid = y + ROW_HEIGHT / 2;
    const t = row.time;
    const summary =
      t.mean === null
        ? `${row.name}: no time recorded`
        : `${row.name}: ${hoursLabel(t.mean)}${t.std === null ? '' : ` ± ${hoursLabel(t.std)}`}${row.hours ? ` of ${row.hours} h budget` : ''}`;
    body.push(`<g><title>${escapeXml(summary)}</title>`);
    body.push(text(LABEL_WIDTH - 8, mid + 4, clip(row.name, 40), { 'text-anchor': 'end', fill: '#222222' }));
    if (t.mean === null) {
      body.push(
        text(LABEL_WIDTH + 6, mid + 4, 'no time recorded', { fill: '#888888', 'font-style': 'italic' }),
      );
    } else {
      const end = scale(t.mean);
      body.push(
        `<rect x="${n(LABEL_WIDTH)}" y="${n(y + 4)}" width="${n(end - LABEL_WIDTH)}" height="${n(ROW_HEIGHT - 8)}" fill="${colour(2)}"/>`,
      );
      let labelX = end;
      if (t.std !== null) {
        const hi = scale(t.mean + t.std);
        body.push(errorBar(scale(t.mean - t.std), hi, mid, 5));
        labelX = hi;
      }
      const budgetX = row.hours ? scale(row.hours * 3600) : 0;
      if (Math.abs(budgetX - labelX) < 8) labelX = Math.max(labelX, budgetX);
      body.push(text(labelX + 6, mid + 4, hoursLabel(t.mean), { fill: '#222222' }));
    }
    if (row.hours) {
      const x = scale(row.hours * 3600);
      body.push(
        `<line x1="${n(x)}" y1="${n(y + 2)}" x2="${n(x)}" y2="${n(y + ROW_HEIGHT - 2)}" stroke="#D55E00" stroke-width="2"/>`,
      );
    }
    body.push('</g>');
  });
  if (rows.length === 0)
    body.push(text(LABEL_WIDTH, top + 16, 'No trials in this report.', { fill: '#888888' }));
  return svgDocument({
    id,
    width: WIDTH,
    height,
    title: 'Time used per agent',
    description:
      'Bars: mean agent hours per trial; whiskers: sample standard deviation over runs; red tick: the time budget.',
    body,
  });
}

/** Accuracy of the agent's own in-run evaluations against hours since its agent phase started. */
export function progressSvg(
  series: readonly ProgressSeries[],
  rowOrder: readonly string[],
  id = 'progress',
): string {
  const left = 60;
  const legendWidth = 230;
  const top = 44;
  const plotWidth = WIDTH - left - legendWidth;
  const plotHeight = 280;
  const height = top + plotHeight + 60;
  const body = [
    text(12, 22, 'Score over time (in-run evaluations)', { 'font-size': 14, 'font-weight': 'bold' }),
  ];
  const maxHours = axisMax(
    series.flatMap((s) => s.points.map((p) => p.hours)),
    1,
  );
  const x = (h: number) => left + (Math.max(0, h) / maxHours) * plotWidth;
  const y = (a: number) => top + plotHeight - Math.min(1, Math.max(0, a)) * plotHeight;
  body.push(
    ...xAxis({
      x0: left,
      width: plotWidth,
      y: top + plotHeight,
      top,
      max: maxHours,
      label: 'hours since the agent started',
    }),
  );
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    body.push(
      `<line x1="${n(left)}" y1="${n(y(v))}" x2="${n(left + plotWidth)}" y2="${n(y(v))}" stroke="#eeeeee"/>`,
    );
    body.push(text(left - 6, y(v) + 4, `${v * 100}%`, { 'text-anchor': 'end', fill: '#444444' }));
  }
  const rows = [
    ...new Set([...rowOrder.filter((r) => series.some((s) => s.row === r)), ...series.map((s) => s.row)]),
  ];
  for (const s of series) {
    const c = colour(rows.indexOf(s.row));
    const label = `${s.run} · ${s.model} · ${benchmarkLabel(s.benchmark)}`;
    body.push(`<g><title>${escapeXml(label)}</title>`);
    if (s.points.length > 1) {
      body.push(
        `<polyline points="${s.points.map((p) => `${n(x(p.hours))},${n(y(p.accuracy))}`).join(' ')}" fill="none" stroke="${c}" stroke-width="1.5" stroke-opacity="0.85"/>`,
      );
    }
    for (const p of s.points) {
      body.push(
        `<circle cx="${n(x(p.hours))}" cy="${n(y(p.accuracy))}" r="3" fill="${c}"><title>${escapeXml(`${label}: ${pct(p.accuracy)}% at ${p.hours.toFixed(2)} h`)}</title></circle>`,
      );
    }
    body.push('</g>');
  }
  rows.forEach((r, i) => {
    const ly = top + 8 + i * 18;
    body.push(
      `<rect x="${n(left + plotWidth + 16)}" y="${n(ly - 9)}" width="12" height="12" fill="${colour(i)}"/>`,
    );
    body.push(text(left + plotWidth + 34, ly + 1, clip(r, 30), { fill: '#222222' }));
  });
  if (series.length === 0) {
    body.push(
      text(
        left + plotWidth / 2,
        top + plotHeight / 2,
        'No in-run evaluations were recorded for these trials.',
        {
          'text-anchor': 'middle',
          fill: '#888888',
        },
      ),
    );
  }
  return svgDocument({
    id,
    width: WIDTH,
    height,
    title: 'Score over time',
    description:
      series.length === 0
        ? 'No in-run evaluations were recorded.'
        : `${series.length} trial(s) with in-run evaluations; one line per trial, coloured by agent row.`,
    body,
  });
}

export interface ReportPlots {
  leaderboard: string;
  heatmap: string;
  time: string;
  progress: string;
}

export function allPlots(lb: Leaderboard, series: readonly ProgressSeries[]): ReportPlots {
  return {
    leaderboard: leaderboardSvg(lb),
    heatmap: heatmapSvg(lb),
    time: timeSvg(lb),
    progress: progressSvg(
      series,
      lb.rows.map((r) => r.name),
    ),
  };
}
