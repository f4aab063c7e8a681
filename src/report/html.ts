import type { Leaderboard } from './aggregate.ts';
import { reportNotes, tableCells } from './formats.ts';
import type { ReportPlots } from './plots.ts';
import { escapeXml } from './svg.ts';

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1a1a1a; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; width: 100%; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .35rem .5rem; text-align: right; white-space: nowrap; }
th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
th { background: #f4f6f8; position: sticky; top: 0; }
tr.baseline td { font-style: italic; color: #555; background: #fafafa; }
ul.notes { color: #444; padding-left: 1.2rem; }
figure { margin: 1.5rem 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
`;

/** A self-contained page: inline CSS and SVG, no scripts, nothing fetched. */
export function renderHtml(lb: Leaderboard, plots: ReportPlots, title = 'ptb leaderboard'): string {
  const { header, rows } = tableCells(lb);
  const table = [
    '<table>',
    `<thead><tr>${header.map((h) => `<th scope="col">${escapeXml(h)}</th>`).join('')}</tr></thead>`,
    '<tbody>',
    ...rows.map(
      (r) =>
        `<tr${r.kind === 'baseline' ? ' class="baseline"' : ''}>${r.cells
          .map((c, j) => (j === 1 ? `<th scope="row">${escapeXml(c)}</th>` : `<td>${escapeXml(c)}</td>`))
          .join('')}</tr>`,
    ),
    '</tbody>',
    '</table>',
  ].join('\n');
  const figure = (svg: string, caption: string) =>
    `<figure>\n${svg.trim()}\n<figcaption>${escapeXml(caption)}</figcaption>\n</figure>`;
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeXml(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    '<main>',
    `<h1>${escapeXml(title)}</h1>`,
    `<p>${escapeXml(`${lb.rows.length} agent row(s) over ${lb.models.length} base model(s) × ${lb.benchmarks.length} benchmark(s).`)}</p>`,
    table,
    `<ul class="notes">\n${reportNotes(lb)
      .map((n) => `<li>${escapeXml(n)}</li>`)
      .join('\n')}\n</ul>`,
    '<h2>Figures</h2>',
    figure(plots.leaderboard, 'Weighted average per agent row; whiskers: sample std over runs.'),
    figure(plots.heatmap, 'Per-benchmark score (mean over base models and runs).'),
    figure(plots.time, 'Agent time per trial; red tick: the budget.'),
    figure(plots.progress, "The agents' own in-run evaluations over time."),
    '</main>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
