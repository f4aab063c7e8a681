/**
 * The shared driver behind every trace parser. A format supplies a `TraceDecoder` that turns one
 * parsed JSON object into trajectory events; the reader does everything else: timestamp prefixes,
 * JSON parsing, keeping truncated or foreign lines as `raw` events, event numbering, text limits,
 * coalescing of streamed fragments and the message/tool-call counts.
 *
 * It works one line at a time and holds at most one pending (coalescing) event, so a caller that
 * consumes events as they come (`onEvent`) reads a trace of any size in bounded memory.
 */
import type { Trajectory, TrajectoryEvent } from '../../core/trial.ts';
import type { TraceFormat } from '../types.ts';
import { RecentMap } from './recentMap.ts';
import { splitTimestampPrefix } from './timestampPrefix.ts';

/** An event before the reader numbers it. */
export type NewEvent = Omit<TrajectoryEvent, 'index'>;

export type Usage = NonNullable<TrajectoryEvent['usage']>;

/**
 * Token and cost totals a decoder reports at the end (counts of events are the reader's job).
 * One convention for every format: `inputTokens` counts every prompt token, cache reads and cache
 * writes included (Anthropic and OpenCode report them apart, so they are added back);
 * `cacheReadTokens` is the part of it served from cache; `outputTokens` is the CLI's own output
 * counter; `reasoningTokens` is reported separately where the CLI gives it (Codex, Gemini's
 * thoughts, OpenCode); `costUsd` is null unless the CLI reports a cost (Claude Code, OpenCode).
 */
export type UsageTotals = Pick<
  Trajectory['totals'],
  'inputTokens' | 'outputTokens' | 'cacheReadTokens' | 'reasoningTokens' | 'costUsd'
>;

/** Everything of a Trajectory except the events themselves (for streaming consumers). */
export type TraceSummary = Omit<Trajectory, 'events'> & {
  eventCount: number;
  firstTs: string | null;
  lastTs: string | null;
};

/** What a decoder may do with the reader while it handles one line. */
export interface DecoderOutput {
  /** Emit an event (any pending coalesced block is emitted first). */
  emit(event: NewEvent): void;
  /**
   * Append `text` to the pending block with the same `key`, or start a new one from `proto`.
   * Streamed fragments (deltas) become one event this way.
   */
  append(key: string, proto: NewEvent, text: string): void;
  /** Text of the pending block when it has this key (used to drop a final message that repeats its deltas). */
  pendingText(key: string): string | undefined;
  /** Emit the pending block now. */
  flush(): void;
  setSession(id: string): void;
  setModel(model: string): void;
}

export interface TraceDecoder {
  /** Handle one JSON object (the timestamp prefix already removed; `ts` is its time or null). */
  json(event: Record<string, unknown>, ts: string | null, out: DecoderOutput): void;
  /** End of input: emit whatever is still pending (truncated traces end mid-call). */
  end(out: DecoderOutput): void;
  usage(): UsageTotals;
  /** Plain-text formats: every line is a `raw` event and no line counts as unparsed. */
  readonly plainText?: boolean;
}

export interface TraceReadOptions {
  /**
   * Longest `text` kept per event; longer texts keep their head and a marker. Bounds memory when a
   * tool prints hundreds of megabytes. Default 200,000 characters.
   */
  maxTextChars?: number;
}

export const DEFAULT_MAX_TEXT_CHARS = 200_000;

export function emptyUsage(): Usage {
  return { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, reasoningTokens: 0, costUsd: null };
}

export function addUsage(into: Usage, u: Usage): void {
  into.inputTokens += u.inputTokens;
  into.outputTokens += u.outputTokens;
  into.cacheReadTokens += u.cacheReadTokens;
  into.reasoningTokens += u.reasoningTokens;
  if (u.costUsd !== null) into.costUsd = (into.costUsd ?? 0) + u.costUsd;
}

export function capText(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}\n[… ${text.length - max} more characters not kept]`;
}

interface Pending {
  key: string;
  event: NewEvent;
  parts: string[];
}

export class TraceReader implements DecoderOutput {
  private index = 0;
  private pending: Pending | null = null;
  private unparsed = 0;
  private messages = 0;
  private toolCalls = 0;
  private firstTs: string | null = null;
  private lastTs: string | null = null;
  private firstMs = Number.POSITIVE_INFINITY;
  private lastMs = Number.NEGATIVE_INFINITY;
  private lastNoted = '';
  private sessionId: string | null = null;
  private model: string | null = null;
  private finished: TraceSummary | null = null;
  /** Tool names by call id, so a result names its tool even when the format leaves it out. */
  private readonly toolNames = new RecentMap<string, string>(4096);
  private readonly maxText: number;

  constructor(
    readonly format: TraceFormat,
    private readonly decoder: TraceDecoder,
    private readonly onEvent: (event: TrajectoryEvent) => void,
    options: TraceReadOptions = {},
  ) {
    this.maxText = options.maxTextChars ?? DEFAULT_MAX_TEXT_CHARS;
  }

  /** Feed one line of the trace (with or without its newline and timestamp prefix). */
  line(line: string): void {
    if (this.finished) throw new Error('TraceReader.line() after finish()');
    const trimmedEnd = line.endsWith('\r') ? line.slice(0, -1) : line;
    const { ts, body } = splitTimestampPrefix(trimmedEnd);
    const first = firstNonSpace(body);
    if (first === -1) return;
    if (this.decoder.plainText) {
      this.emit({ ts, kind: 'raw', text: body });
      return;
    }
    if (body.charCodeAt(first) !== 123 /* { */) {
      this.rawLine(ts, body);
      return;
    }
    let value: unknown;
    try {
      // JSON.parse skips surrounding whitespace itself; no trimmed copy of a long line needed.
      value = JSON.parse(body);
    } catch {
      this.rawLine(ts, body);
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.rawLine(ts, body);
      return;
    }
    try {
      this.decoder.json(value as Record<string, unknown>, ts, this);
    } catch {
      // A shape the decoder did not foresee: keep the line rather than lose it or stop.
      this.rawLine(ts, body);
    }
  }

  finish(): TraceSummary {
    if (this.finished) return this.finished;
    this.decoder.end(this);
    this.flush();
    const usage = this.decoder.usage();
    this.finished = {
      format: this.format,
      sessionId: this.sessionId,
      model: this.model,
      totals: { ...usage, toolCalls: this.toolCalls, messages: this.messages },
      unparsedLines: this.unparsed,
      eventCount: this.index,
      firstTs: this.firstTs,
      lastTs: this.lastTs,
    };
    return this.finished;
  }

  emit(event: NewEvent): void {
    this.flush();
    this.deliver(event);
  }

  append(key: string, proto: NewEvent, text: string): void {
    if (this.pending?.key === key) {
      this.pending.parts.push(text);
      return;
    }
    this.flush();
    this.pending = { key, event: proto, parts: [text] };
  }

  pendingText(key: string): string | undefined {
    return this.pending?.key === key ? this.pending.parts.join('') : undefined;
  }

  flush(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    this.deliver({ ...p.event, text: p.parts.join('') });
  }

  setSession(id: string): void {
    if (id) this.sessionId = id;
  }

  setModel(model: string): void {
    if (model) this.model = model;
  }

  private noteTime(ts: string): void {
    // Consecutive events mostly share their line's timestamp.
    if (ts === this.lastNoted) return;
    this.lastNoted = ts;
    const ms = Date.parse(ts);
    if (Number.isNaN(ms)) return;
    if (ms < this.firstMs) {
      this.firstMs = ms;
      this.firstTs = ts;
    }
    if (ms > this.lastMs) {
      this.lastMs = ms;
      this.lastTs = ts;
    }
  }

  private rawLine(ts: string | null, body: string): void {
    this.unparsed += 1;
    this.emit({ ts, kind: 'raw', text: body });
  }

  private deliver(event: NewEvent): void {
    const out = { index: this.index++, ...event } as TrajectoryEvent;
    if (out.text !== undefined && out.text.length > this.maxText) out.text = capText(out.text, this.maxText);
    if (out.kind === 'message') this.messages += 1;
    else if (out.kind === 'tool_call') {
      this.toolCalls += 1;
      if (out.tool?.id && out.tool.name) this.toolNames.set(out.tool.id, out.tool.name);
    } else if (out.kind === 'tool_result' && out.tool?.id && !out.tool.name) {
      const name = this.toolNames.get(out.tool.id);
      if (name) out.tool = { ...out.tool, name };
    }
    if (out.ts) this.noteTime(out.ts);
    this.onEvent(out);
  }
}

function firstNonSpace(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) return i;
  }
  return -1;
}

/** Run a decoder over an in-memory sequence of lines and collect the whole trajectory. */
export function collectTrajectory(
  format: TraceFormat,
  decoder: TraceDecoder,
  lines: Iterable<string>,
  options?: TraceReadOptions,
): Trajectory {
  const events: TrajectoryEvent[] = [];
  const reader = new TraceReader(format, decoder, (e) => events.push(e), options);
  for (const line of lines) reader.line(line);
  return toTrajectory(reader.finish(), events);
}

export function toTrajectory(summary: TraceSummary, events: TrajectoryEvent[]): Trajectory {
  return {
    format: summary.format,
    sessionId: summary.sessionId,
    model: summary.model,
    events,
    totals: summary.totals,
    unparsedLines: summary.unparsedLines,
  };
}
