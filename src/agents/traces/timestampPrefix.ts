/**
 * The harness prefixes every line of the agent's output with the UTC time it was written
 * (`[2025-11-20T10:00:03Z] {"type":...}`): the solve_out.txt format. Every trace parser strips it.
 */

const PREFIX = /^\[(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z)\] ?/;

export interface PrefixedLine {
  /** ISO time from the prefix, or null when the line has none. */
  ts: string | null;
  /** The line without the prefix. */
  body: string;
}

/** Split one line into its timestamp prefix (if any) and the agent's own output. */
export function splitTimestampPrefix(line: string): PrefixedLine {
  // Cheap first-character test: most callers feed millions of lines.
  if (line.charCodeAt(0) !== 91 /* [ */) return { ts: null, body: line };
  const m = PREFIX.exec(line);
  if (!m) return { ts: null, body: line };
  return { ts: m[1]!, body: line.slice(m[0].length) };
}

export function stripTimestampPrefix(line: string): string {
  return splitTimestampPrefix(line).body;
}

/** `[YYYY-MM-DDTHH:MM:SSZ] line`: what the harness writes to solve_out.txt for each output line. */
export function timestampLine(date: Date, line: string): string {
  return `[${date.toISOString().slice(0, 19)}Z] ${line}`;
}
