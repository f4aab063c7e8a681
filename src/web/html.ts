/**
 * HTML building with escaping by default: every value interpolated into `html` is escaped unless it
 * is itself the result of `html` (or `raw`). Agent-controlled text (traces, ledgers, evidence) can then
 * only ever appear as text.
 */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function renderValue(value: unknown): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(renderValue).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += renderValue(values[i]) + strings[i + 1]!;
  return new SafeHtml(out);
}

/** Trusted markup built by this module's callers (SVG from our own plot code). */
export function raw(markup: string): SafeHtml {
  return new SafeHtml(markup);
}

/** A same-origin link: path segments are URL-encoded, query values too. */
export function href(segments: string[], query: Record<string, string | number | undefined> = {}): string {
  const path = `/${segments.map(encodeURIComponent).join('/')}`;
  const q = Object.entries(query)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return q.length ? `${path}?${q.join('&')}` : path;
}

export const NAV = [
  { path: '/', label: 'Experiments' },
  { path: '/trials', label: 'Trials' },
  { path: '/leaderboard', label: 'Leaderboard' },
  { path: '/evals', label: 'Evaluations' },
  { path: '/compare', label: 'Compare' },
] as const;

/** Full page: external CSS/JS from this server only (the CSP forbids inline scripts and styles). */
export function page(opts: { title: string; active?: string; body: SafeHtml; script?: boolean }): string {
  const nav = NAV.map(
    (n) => html`<a href="${n.path}"${n.path === opts.active ? raw(' class="active"') : ''}>${n.label}</a>`,
  );
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${opts.title} · ptb</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css">
${opts.script === false ? '' : raw('<script src="/static/app.js" defer></script>')}
</head>
<body>
<header><a class="brand" href="/">ptb</a><nav>${nav}</nav></header>
<main>
${opts.body}
</main>
</body>
</html>
`.value;
}

// ---- small formatting helpers shared by the pages ----

export function pct(score: number | null | undefined): string {
  return score === null || score === undefined || Number.isNaN(score) ? '–' : `${(score * 100).toFixed(1)}%`;
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${String(m).padStart(2, '0')}m` : `${m}m ${String(s % 60).padStart(2, '0')}s`;
}

export function bytesText(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

export function money(usd: number | null | undefined): string {
  return usd === null || usd === undefined ? '–' : `$${usd.toFixed(usd < 1 ? 4 : 2)}`;
}

export function badge(text: string | null | undefined, kind?: string): SafeHtml {
  const cls = (kind ?? text ?? 'none').replace(/[^a-z_]/gi, '');
  return html`<span class="badge b-${cls}">${text ?? '–'}</span>`;
}
