/**
 * Human-readable rendering of a trajectory: what the harness writes to solve_parsed.txt and what
 * the judge reads. Turns are numbered per role, shell calls read as `$ command`, tool outputs are
 * cut to 2,000 characters (head and tail: a failing run's traceback is at the end), every block
 * shows its wall-clock time and the time since the trace began, and the totals close the file.
 */
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ensureDir } from '../../core/paths.ts';
import type { Trajectory, TrajectoryEvent } from '../../core/trial.ts';
import type { TraceFormat } from '../types.ts';
import { isObject } from './jsonAccess.ts';
import { streamTraceFile } from './registry.ts';
import { commandText } from './shellText.ts';
import type { TraceReadOptions, TraceSummary } from './traceReader.ts';

export interface RenderOptions {
  /** Longest tool output or tool input shown (default 2,000 characters). */
  maxOutputChars?: number;
}

export const DEFAULT_MAX_OUTPUT_CHARS = 2000;

const number = new Intl.NumberFormat('en-US');

/** Keep the first three quarters and the last quarter of an over-long text. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const tail = Math.floor(max / 4);
  const head = max - tail;
  return `${text.slice(0, head)}\n[… ${number.format(text.length - max)} characters omitted …]\n${text.slice(text.length - tail)}`;
}

function clock(ts: string): string {
  const m = /T(\d{2}:\d{2}:\d{2})/.exec(ts);
  return m ? m[1]! : ts;
}

export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
}

function usageLine(u: NonNullable<TrajectoryEvent['usage']>): string {
  const parts = [`input ${number.format(u.inputTokens)}`];
  if (u.cacheReadTokens) parts[0] += ` (cache read ${number.format(u.cacheReadTokens)})`;
  parts.push(`output ${number.format(u.outputTokens)}`);
  if (u.reasoningTokens) parts.push(`reasoning ${number.format(u.reasoningTokens)}`);
  if (u.costUsd !== null) parts.push(`cost $${u.costUsd.toFixed(4)}`);
  return parts.join(' · ');
}

const FILE_KEYS = ['file_path', 'filePath', 'path', 'notebook_path', 'absolute_path'];

/** The body of a tool call: `$ command` for shells, the file for file tools, else the input. */
function toolCallBody(input: unknown, max: number): string {
  if (isObject(input)) {
    const command = commandText(input.command);
    if (command !== undefined) {
      const lines = [`$ ${clip(command, max)}`];
      if (typeof input.cwd === 'string') lines.push(`  (in ${input.cwd})`);
      if (typeof input.description === 'string') lines.push(`  # ${input.description}`);
      return lines.join('\n');
    }
    const fileKey = FILE_KEYS.find((k) => typeof input[k] === 'string');
    if (fileKey) {
      const rest = Object.fromEntries(Object.entries(input).filter(([k]) => k !== fileKey));
      const extra = Object.keys(rest).length ? `\n${clip(JSON.stringify(rest, null, 2), max)}` : '';
      return `file: ${input[fileKey] as string}${extra}`;
    }
  }
  if (input === undefined) return '';
  return clip(typeof input === 'string' ? input : JSON.stringify(input, null, 2), max);
}

/** Renders events one at a time, so a trace of any size can be written as it is read. */
export class TrajectoryRenderer {
  private firstMs: number | null = null;
  private readonly turns = new Map<string, number>();
  private lastKind: TrajectoryEvent['kind'] | null = null;
  private readonly max: number;

  constructor(options: RenderOptions = {}) {
    this.max = options.maxOutputChars ?? DEFAULT_MAX_OUTPUT_CHARS;
  }

  header(format: string): string {
    return `Agent trace (${format})\n`;
  }

  private when(ts: string | null): string {
    if (!ts) return '';
    const ms = Date.parse(ts);
    if (Number.isNaN(ms)) return ` · ${ts}`;
    if (this.firstMs === null) this.firstMs = ms;
    return ` · ${clock(ts)} (+${formatDuration(ms - this.firstMs)})`;
  }

  private block(title: string, ts: string | null, body: string | undefined): string {
    const head = `\n── ${title}${this.when(ts)} ──\n`;
    return body ? `${head}${body.trimEnd()}\n` : head;
  }

  event(e: TrajectoryEvent): string {
    const previous = this.lastKind;
    this.lastKind = e.kind;
    switch (e.kind) {
      case 'message': {
        const role = e.role ?? 'assistant';
        const turn = (this.turns.get(role) ?? 0) + 1;
        this.turns.set(role, turn);
        return this.block(`${role} · turn ${turn}`, e.ts, e.text);
      }
      case 'reasoning':
        return this.block('reasoning', e.ts, e.text);
      case 'tool_call': {
        const id = e.tool?.id ? ` [${e.tool.id}]` : '';
        return this.block(
          `tool call ${e.tool?.name ?? '?'}${id}`,
          e.ts,
          toolCallBody(e.tool?.input, this.max),
        );
      }
      case 'tool_result': {
        const bits = [e.tool?.name ? `tool result ${e.tool.name}` : 'tool result'];
        if (e.tool?.id) bits[0] += ` [${e.tool.id}]`;
        if (e.exitCode !== undefined && e.exitCode !== null) bits.push(`exit ${e.exitCode}`);
        if (e.isError) bits.push('error');
        if (isObject(e.raw) && e.raw.incomplete === true) bits.push('incomplete');
        return this.block(bits.join(' · '), e.ts, clip(e.text ?? '', this.max) || '(no output)');
      }
      case 'usage':
        return `[usage${e.ts ? ` ${clock(e.ts)}` : ''}] ${e.usage ? usageLine(e.usage) : ''}${e.text ? ` (${e.text})` : ''}\n`;
      case 'error':
        return this.block(e.isError === false ? 'warning' : 'error', e.ts, e.text);
      case 'result': {
        const lines = [e.text ?? ''];
        if (e.usage) lines.push(`usage: ${usageLine(e.usage)}`);
        return this.block(e.isError ? 'result (error)' : 'result', e.ts, lines.filter(Boolean).join('\n'));
      }
      case 'system':
        return this.block('system', e.ts, e.text);
      case 'raw': {
        // Consecutive foreign lines (tool chatter, truncated JSON) read as one block.
        const line = clip(e.text ?? '', this.max);
        return previous === 'raw' ? `${line}\n` : `${this.block('output', e.ts, undefined)}${line}\n`;
      }
      default:
        return '';
    }
  }

  footer(s: TraceSummary): string {
    const t = s.totals;
    const lines = ['', '══ summary ══'];
    lines.push(`format: ${s.format} · session: ${s.sessionId ?? 'unknown'} · model: ${s.model ?? 'unknown'}`);
    if (s.firstTs && s.lastTs) {
      const span = formatDuration(Date.parse(s.lastTs) - Date.parse(s.firstTs));
      lines.push(`wall clock: ${s.firstTs} → ${s.lastTs} (${span})`);
    } else {
      lines.push('wall clock: no timestamps');
    }
    lines.push(
      `events: ${number.format(s.eventCount)} · messages: ${number.format(t.messages)} · tool calls: ${number.format(t.toolCalls)} · unparsed lines: ${number.format(s.unparsedLines)}`,
    );
    lines.push(
      `tokens: input ${number.format(t.inputTokens)} (cache read ${number.format(t.cacheReadTokens)}) · output ${number.format(t.outputTokens)} · reasoning ${number.format(t.reasoningTokens)}`,
    );
    lines.push(t.costUsd === null ? 'cost: not reported by the agent' : `cost: $${t.costUsd.toFixed(4)}`);
    return `${lines.join('\n')}\n`;
  }
}

/** Summary figures of a whole trajectory (what a streaming reader reports at the end). */
export function summarize(t: Trajectory): TraceSummary {
  let firstTs: string | null = null;
  let lastTs: string | null = null;
  let firstMs = Number.POSITIVE_INFINITY;
  let lastMs = Number.NEGATIVE_INFINITY;
  for (const e of t.events) {
    if (!e.ts) continue;
    const ms = Date.parse(e.ts);
    if (ms < firstMs) [firstMs, firstTs] = [ms, e.ts];
    if (ms > lastMs) [lastMs, lastTs] = [ms, e.ts];
  }
  const { events, ...rest } = t;
  return { ...rest, eventCount: events.length, firstTs, lastTs };
}

export function renderTrajectory(t: Trajectory, options?: RenderOptions): string {
  const r = new TrajectoryRenderer(options);
  const parts = [r.header(t.format)];
  for (const e of t.events) parts.push(r.event(e));
  parts.push(r.footer(summarize(t)));
  return parts.join('');
}

/**
 * solve_out.txt -> solve_parsed.txt, streaming: memory stays bounded whatever the trace size.
 * Written to a temporary file and renamed, so readers never see half a rendering.
 */
export async function renderTraceFile(
  format: TraceFormat,
  tracePath: string,
  outPath: string,
  options: RenderOptions & TraceReadOptions = {},
): Promise<TraceSummary> {
  ensureDir(dirname(outPath));
  const tmp = `${outPath}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'w');
  const r = new TrajectoryRenderer(options);
  let buffered: string[] = [];
  let size = 0;
  const write = (s: string) => {
    buffered.push(s);
    size += s.length;
    if (size >= 1 << 20) {
      writeSync(fd, buffered.join(''));
      buffered = [];
      size = 0;
    }
  };
  let closed = false;
  try {
    write(r.header(format));
    const summary = await streamTraceFile(format, tracePath, (e) => write(r.event(e)), options);
    write(r.footer(summary));
    writeSync(fd, buffered.join(''));
    closeSync(fd);
    closed = true;
    renameSync(tmp, outPath);
    return summary;
  } finally {
    if (!closed) closeSync(fd);
    rmSync(tmp, { force: true });
  }
}
