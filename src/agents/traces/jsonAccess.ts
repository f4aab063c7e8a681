/** Defensive readers for the loosely typed JSON that agent CLIs print. */

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function obj(v: unknown): JsonObject | undefined {
  return isObject(v) ? v : undefined;
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** A number or 0 (token counters are absent when zero in several CLIs). */
export function count(v: unknown): number {
  return num(v) ?? 0;
}

/** Integer exit code or null. */
export function exitCode(v: unknown): number | null {
  const n = num(v);
  return n === undefined ? null : Math.trunc(n);
}

/** Text for a value that may be a string or structured data. */
export function textOf(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** ISO time from epoch milliseconds (OpenCode, tool timings). */
export function isoFromMs(v: unknown): string | null {
  const n = num(v);
  if (n === undefined) return null;
  const d = new Date(n);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** ISO time from an ISO-like string carried by the event itself. */
export function isoFromString(v: unknown): string | null {
  const s = str(v);
  if (!s || Number.isNaN(Date.parse(s))) return null;
  return s;
}
