/**
 * The resource monitor ledger (ledgers/monitor.jsonl, one sample a minute while the agent runs) as
 * line charts over the trial's time: GPU utilisation and memory per GPU, CPU, memory and disk of the
 * sandbox. Every chart says its unit in the title and on the axis; a gap in a series (a sample
 * without that value) breaks the line instead of drawing through it.
 */
import type { MonitorSample } from '../core/trial.ts';
import { colour, escapeXml, n, svgDocument, text, ticks } from '../report/svg.ts';

export interface MonitorChart {
  key: 'gpu_util' | 'gpu_memory' | 'cpu' | 'memory' | 'disk';
  title: string;
  /** Standalone SVG (escaped text, presentation attributes only): safe to inline. */
  svg: string;
}

interface Series {
  name: string;
  points: { t: number; v: number | null }[];
}

const WIDTH = 460;
const HEIGHT = 200;
const MARGIN = { left: 56, right: 16, top: 24, bottom: 40 };

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** Bytes shown in GiB from 1 GiB up, else MiB: a unit that keeps the axis readable. */
function byteUnit(maxBytes: number): { unit: 'GiB' | 'MiB'; per: number } {
  return maxBytes >= GIB ? { unit: 'GiB', per: GIB } : { unit: 'MiB', per: MIB };
}

/** Minutes on the x axis; hours once the trial ran longer than three. */
function timeUnit(spanSeconds: number): { unit: 'min' | 'h'; per: number } {
  return spanSeconds > 3 * 3600 ? { unit: 'h', per: 3600 } : { unit: 'min', per: 60 };
}

function lineChart(opts: {
  id: string;
  title: string;
  yLabel: string;
  xUnit: string;
  xMax: number;
  yMax: number;
  series: Series[];
}): string {
  const { id, title, yLabel, xUnit, series } = opts;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const yTicks = ticks(opts.yMax > 0 ? opts.yMax : 1, 4);
  const yTop = yTicks.at(-1)!;
  const xTicks = ticks(opts.xMax > 0 ? opts.xMax : 1, 5);
  const xRight = xTicks.at(-1)!;
  const x = (t: number) => MARGIN.left + (t / xRight) * plotW;
  const y = (v: number) => MARGIN.top + plotH - (v / yTop) * plotH;
  // The title is the SVG's accessible name; the page shows it as the figure's caption.
  const body: string[] = [];
  for (const v of yTicks) {
    body.push(
      `<line x1="${n(MARGIN.left)}" x2="${n(MARGIN.left + plotW)}" y1="${n(y(v))}" y2="${n(y(v))}" stroke="#e5e5e5"/>`,
      text(MARGIN.left - 6, y(v) + 4, formatTick(v), { 'text-anchor': 'end', fill: '#555555' }),
    );
  }
  for (const t of xTicks) {
    body.push(
      text(x(t), MARGIN.top + plotH + 16, formatTick(t), { 'text-anchor': 'middle', fill: '#555555' }),
    );
  }
  body.push(
    `<line x1="${n(MARGIN.left)}" x2="${n(MARGIN.left + plotW)}" y1="${n(MARGIN.top + plotH)}" y2="${n(MARGIN.top + plotH)}" stroke="#888888"/>`,
    text(MARGIN.left + plotW / 2, HEIGHT - 6, `time since the first sample (${xUnit})`, {
      'text-anchor': 'middle',
      fill: '#333333',
    }),
    text(14, MARGIN.top + plotH / 2, yLabel, {
      'text-anchor': 'middle',
      fill: '#333333',
      transform: `rotate(-90 14 ${n(MARGIN.top + plotH / 2)})`,
    }),
  );
  series.forEach((s, i) => {
    // Consecutive known values form one segment; a single known point is drawn as a dot.
    let segment: string[] = [];
    const flush = () => {
      if (segment.length > 1)
        body.push(
          `<polyline fill="none" stroke="${colour(i)}" stroke-width="2" points="${segment.join(' ')}"><title>${escapeXml(s.name)}</title></polyline>`,
        );
      else if (segment.length === 1) {
        const [px, py] = segment[0]!.split(',');
        body.push(
          `<circle cx="${px}" cy="${py}" r="3" fill="${colour(i)}"><title>${escapeXml(s.name)}</title></circle>`,
        );
      }
      segment = [];
    };
    for (const p of s.points) {
      if (p.v === null) flush();
      else segment.push(`${n(x(p.t))},${n(y(p.v))}`);
    }
    flush();
  });
  if (series.length > 1) {
    series.forEach((s, i) => {
      const lx = MARGIN.left + 8 + i * 90;
      body.push(
        `<rect x="${n(lx)}" y="4" width="10" height="10" fill="${colour(i)}"/>`,
        text(lx + 14, 13, s.name, { fill: '#333333' }),
      );
    });
  }
  const known = series.flatMap((s) => s.points.map((p) => p.v).filter((v): v is number => v !== null));
  const description =
    known.length === 0
      ? `${title}: no values recorded.`
      : `${title}: ${series.map((s) => s.name).join(', ')}; from ${formatTick(Math.min(...known))} to ${formatTick(Math.max(...known))}.`;
  return svgDocument({ id, width: WIDTH, height: HEIGHT, title, description, body });
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 100) return String(Math.round(v));
  return String(Number(v.toPrecision(3)));
}

function maxOf(values: (number | null)[]): number {
  return values.reduce<number>((m, v) => (v !== null && v > m ? v : m), 0);
}

/** The charts of a trial's monitor samples (empty when there are none). */
export function monitorCharts(samples: readonly MonitorSample[], idPrefix = 'mon'): MonitorChart[] {
  if (samples.length === 0) return [];
  const t0 = Date.parse(samples[0]!.ts);
  const span = (Date.parse(samples.at(-1)!.ts) - t0) / 1000;
  const time = timeUnit(span);
  const at = (s: MonitorSample) => (Date.parse(s.ts) - t0) / 1000 / time.per;
  const xMax = span / time.per;
  const charts: MonitorChart[] = [];
  const gpuIndices = [...new Set(samples.flatMap((s) => s.gpus.map((g) => g.index)))].sort((a, b) => a - b);
  const perGpu = (pick: (g: MonitorSample['gpus'][number]) => number | null, scale = 1): Series[] =>
    gpuIndices.map((index) => ({
      name: `GPU ${index}`,
      points: samples.map((s) => {
        const g = s.gpus.find((x) => x.index === index);
        const v = g ? pick(g) : null;
        return { t: at(s), v: v === null ? null : v / scale };
      }),
    }));
  if (gpuIndices.length > 0) {
    const title = 'GPU utilisation (%)';
    charts.push({
      key: 'gpu_util',
      title,
      svg: lineChart({
        id: `${idPrefix}-gpu-util`,
        title,
        yLabel: 'utilisation (%)',
        xUnit: time.unit,
        xMax,
        yMax: 100,
        series: perGpu((g) => g.utilPercent),
      }),
    });
    const totals = samples.flatMap((s) => s.gpus.map((g) => g.memoryTotalMiB ?? g.memoryUsedMiB));
    const memTitle = 'GPU memory used (GiB)';
    charts.push({
      key: 'gpu_memory',
      title: memTitle,
      svg: lineChart({
        id: `${idPrefix}-gpu-mem`,
        title: memTitle,
        yLabel: 'memory (GiB)',
        xUnit: time.unit,
        xMax,
        yMax: maxOf(totals) / 1024,
        series: perGpu((g) => g.memoryUsedMiB, 1024),
      }),
    });
  }
  const cpu = samples.map((s) => ({ t: at(s), v: s.cpuPercent }));
  const cpuTitle = 'CPU (% of one core)';
  charts.push({
    key: 'cpu',
    title: cpuTitle,
    svg: lineChart({
      id: `${idPrefix}-cpu`,
      title: cpuTitle,
      yLabel: 'CPU (%)',
      xUnit: time.unit,
      xMax,
      yMax: Math.max(100, maxOf(cpu.map((p) => p.v))),
      series: [{ name: 'sandbox', points: cpu }],
    }),
  });
  for (const [key, field, label] of [
    ['memory', 'memoryBytes', 'Memory'],
    ['disk', 'diskBytes', 'Disk (workspace)'],
  ] as const) {
    const values = samples.map((s) => s[field]);
    const unit = byteUnit(maxOf(values));
    const title = `${label} (${unit.unit})`;
    charts.push({
      key,
      title,
      svg: lineChart({
        id: `${idPrefix}-${key}`,
        title,
        yLabel: `${label.split(' ')[0]!.toLowerCase()} (${unit.unit})`,
        xUnit: time.unit,
        xMax,
        yMax: maxOf(values) / unit.per,
        series: [
          {
            name: 'sandbox',
            points: samples.map((s, i) => ({
              t: at(s),
              v: values[i] === null ? null : values[i]! / unit.per,
            })),
          },
        ],
      }),
    });
  }
  return charts;
}
