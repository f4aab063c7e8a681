/** Minimal helpers for hand-written SVG: escaping, stable number formatting, a colour palette. */

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, ''); // not allowed in XML 1.0
}

/** Coordinates with at most two decimals, no `-0`: the same input always gives the same bytes. */
export function n(value: number): string {
  const r = Math.round(value * 100) / 100;
  return Object.is(r, -0) ? '0' : String(r);
}

/** Colour-blind-safe categorical palette (Okabe–Ito, without black). */
export const PALETTE = [
  '#0072B2',
  '#E69F00',
  '#009E73',
  '#D55E00',
  '#CC79A7',
  '#56B4E9',
  '#F0E442',
  '#999999',
];

export function colour(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

/** `<svg>` root with an accessible name (title) and description, ids prefixed so several can share a page. */
export function svgDocument(opts: {
  id: string;
  width: number;
  height: number;
  title: string;
  description: string;
  body: string[];
}): string {
  const { id, width, height, title, description, body } = opts;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${n(width)}" height="${n(height)}" viewBox="0 0 ${n(width)} ${n(height)}" role="img" aria-labelledby="${id}-title ${id}-desc" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`,
    `<title id="${id}-title">${escapeXml(title)}</title>`,
    `<desc id="${id}-desc">${escapeXml(description)}</desc>`,
    `<rect width="${n(width)}" height="${n(height)}" fill="#ffffff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

export function text(
  x: number,
  y: number,
  content: string,
  attrs: Record<string, string | number> = {},
): string {
  const extra = Object.entries(attrs)
    .map(([k, v]) => ` ${k}="${escapeXml(typeof v === 'number' ? n(v) : v)}"`)
    .join('');
  return `<text x="${n(x)}" y="${n(y)}"${extra}>${escapeXml(content)}</text>`;
}

/** Shorten a label to `max` characters (the full text stays in the element's title). */
export function clip(label: string, max: number): string {
  return label.length <= max ? label : `${label.slice(0, max - 1)}…`;
}

/** Round tick values for an axis from 0 to at least `max`. */
export function ticks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => s >= raw) ?? raw;
  // k × step, cleaned of binary noise (0.6000000000000001 → 0.6).
  const at = (k: number) => Number((k * step).toPrecision(12));
  const out: number[] = [];
  let k = 0;
  while (at(k) < max) out.push(at(k++));
  out.push(at(k));
  return out;
}
