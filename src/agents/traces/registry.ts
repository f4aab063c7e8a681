/**
 * One entry point for every trace format: parse lines in memory, parse a file, or stream a file's
 * events to a callback without keeping them (bounded memory for traces of any size).
 */
import { createReadStream, existsSync } from 'node:fs';
import { UserError } from '../../core/errors.ts';
import type { Trajectory, TrajectoryEvent } from '../../core/trial.ts';
import type { TraceFormat } from '../types.ts';
import { createClaudeStreamJsonDecoder } from './claudeStreamJson.ts';
import { createCodexJsonDecoder } from './codexJson.ts';
import { createGeminiStreamJsonDecoder } from './geminiStreamJson.ts';
import { createOpenCodeJsonDecoder } from './openCodeJson.ts';
import { createPlainTextDecoder } from './plainText.ts';
import {
  collectTrajectory,
  type TraceDecoder,
  TraceReader,
  type TraceReadOptions,
  type TraceSummary,
  toTrajectory,
} from './traceReader.ts';

const DECODERS: Record<TraceFormat, () => TraceDecoder> = {
  'claude-stream-json': createClaudeStreamJsonDecoder,
  'codex-json': createCodexJsonDecoder,
  'gemini-stream-json': createGeminiStreamJsonDecoder,
  'opencode-json': createOpenCodeJsonDecoder,
  text: createPlainTextDecoder,
};

export const TRACE_FORMATS = Object.keys(DECODERS) as TraceFormat[];

export function createTraceDecoder(format: TraceFormat): TraceDecoder {
  const make = DECODERS[format];
  if (!make) {
    throw new UserError(`Unknown trace format "${format}".`, `Use one of: ${TRACE_FORMATS.join(', ')}.`);
  }
  return make();
}

/** A reader to feed line by line (e.g. while the agent is still writing its output). */
export function createTraceReader(
  format: TraceFormat,
  onEvent: (event: TrajectoryEvent) => void,
  options?: TraceReadOptions,
): TraceReader {
  return new TraceReader(format, createTraceDecoder(format), onEvent, options);
}

export function parseTrace(
  format: TraceFormat,
  lines: Iterable<string>,
  options?: TraceReadOptions,
): Trajectory {
  return collectTrajectory(format, createTraceDecoder(format), lines, options);
}

/**
 * Call `onLine` for every line of a file, reading it in 1 MiB pieces. Lines end at `\n` only: a
 * bare `\r` (progress bars) stays inside its line, as the timestamping harness wrote it.
 */
export async function forEachLine(path: string, onLine: (line: string) => void): Promise<void> {
  if (!existsSync(path)) {
    throw new UserError(
      `Trace file not found: ${path}`,
      'Check the trial directory: solve_out.txt appears once the agent phase has started.',
    );
  }
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 });
  // Pieces of the line not finished yet: joined once, so a huge line costs linear time.
  let unfinished: string[] = [];
  for await (const piece of stream as AsyncIterable<string>) {
    let nl = piece.indexOf('\n');
    if (nl === -1) {
      unfinished.push(piece);
      continue;
    }
    unfinished.push(piece.slice(0, nl));
    onLine(unfinished.length === 1 ? unfinished[0]! : unfinished.join(''));
    unfinished = [];
    let start = nl + 1;
    for (nl = piece.indexOf('\n', start); nl !== -1; nl = piece.indexOf('\n', start)) {
      onLine(piece.slice(start, nl));
      start = nl + 1;
    }
    if (start < piece.length) unfinished.push(piece.slice(start));
  }
  if (unfinished.length) onLine(unfinished.join(''));
}

/** Stream a trace file's events to `onEvent` without keeping them; returns the totals. */
export async function streamTraceFile(
  format: TraceFormat,
  path: string,
  onEvent: (event: TrajectoryEvent) => void,
  options?: TraceReadOptions,
): Promise<TraceSummary> {
  const reader = createTraceReader(format, onEvent, options);
  await forEachLine(path, (line) => reader.line(line));
  return reader.finish();
}

/** Parse a trace file (e.g. solve_out.txt) into a whole trajectory, streaming the file. */
export async function parseTraceFile(
  format: TraceFormat,
  path: string,
  options?: TraceReadOptions,
): Promise<Trajectory> {
  const events: TrajectoryEvent[] = [];
  const summary = await streamTraceFile(format, path, (e) => events.push(e), options);
  return toTrajectory(summary, events);
}
