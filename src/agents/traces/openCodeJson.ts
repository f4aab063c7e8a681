/**
 * OpenCode `run --format json`: `{type, timestamp (epoch ms), sessionID, part | error}` per line.
 * `step_start`; `text` (part.text); `reasoning` (part.text, with --thinking); `tool_use`, written
 * once the call has finished (part.callID, part.tool, part.state {status, title, input, output,
 * error, time {start, end}}); `step_finish` (part.reason, part.cost, part.tokens {input, output,
 * reasoning, cache {read, write}}); `error` (error.name, error.data.message).
 *
 * OpenCode's `tokens.input` leaves out cache reads and writes; they are added back so that
 * `inputTokens` counts every prompt token as in the other formats.
 */
import type { Trajectory } from '../../core/trial.ts';
import { count, isoFromMs, type JsonObject, num, obj, str, textOf } from './jsonAccess.ts';
import {
  addUsage,
  collectTrajectory,
  emptyUsage,
  type TraceDecoder,
  type TraceReadOptions,
  type Usage,
} from './traceReader.ts';

function stepUsage(part: JsonObject): Usage {
  const tokens = obj(part.tokens) ?? {};
  const cache = obj(tokens.cache) ?? {};
  const cacheRead = count(cache.read);
  return {
    inputTokens: count(tokens.input) + cacheRead + count(cache.write),
    outputTokens: count(tokens.output),
    cacheReadTokens: cacheRead,
    reasoningTokens: count(tokens.reasoning),
    costUsd: num(part.cost) ?? null,
  };
}

export function createOpenCodeJsonDecoder(): TraceDecoder {
  const total = emptyUsage();

  return {
    json(ev, lineTs, out) {
      const sid = str(ev.sessionID);
      if (sid) out.setSession(sid);
      const ts = lineTs ?? isoFromMs(ev.timestamp);
      const part = obj(ev.part) ?? {};
      switch (ev.type) {
        case 'step_start':
          out.emit({ ts, kind: 'system', text: 'step start', raw: ev });
          return;
        case 'text':
          out.emit({ ts, kind: 'message', role: 'assistant', text: str(part.text) ?? '' });
          return;
        case 'reasoning':
          out.emit({ ts, kind: 'reasoning', role: 'assistant', text: str(part.text) ?? '' });
          return;
        case 'tool_use': {
          const state = obj(part.state) ?? {};
          const time = obj(state.time) ?? {};
          const id = str(part.callID) ?? str(part.id);
          const name = str(part.tool);
          out.emit({
            ts: isoFromMs(time.start) ?? ts,
            kind: 'tool_call',
            role: 'assistant',
            tool: { id, name, input: state.input ?? {} },
          });
          const status = str(state.status);
          if (status !== 'completed' && status !== 'error') return;
          out.emit({
            ts: lineTs ?? isoFromMs(time.end) ?? ts,
            kind: 'tool_result',
            role: 'tool',
            tool: { id, name },
            text: status === 'error' ? textOf(state.error) : textOf(state.output),
            isError: status === 'error',
            raw: { status, title: state.title },
          });
          return;
        }
        case 'step_finish': {
          const usage = stepUsage(part);
          addUsage(total, usage);
          out.emit({ ts, kind: 'usage', text: str(part.reason), usage, raw: ev });
          return;
        }
        case 'error': {
          const error = obj(ev.error) ?? {};
          const message = str(obj(error.data)?.message) ?? str(error.message);
          const name = str(error.name);
          const text = name && message ? `${name}: ${message}` : (message ?? name ?? textOf(ev.error));
          out.emit({ ts, kind: 'error', text, isError: true, raw: ev });
          return;
        }
        default:
          out.emit({ ts, kind: 'system', text: `event ${str(ev.type) ?? '?'}`, raw: ev });
      }
    },
    end() {},
    usage() {
      return { ...total };
    },
  };
}

export function parseOpenCodeJson(lines: Iterable<string>, options?: TraceReadOptions): Trajectory {
  return collectTrajectory('opencode-json', createOpenCodeJsonDecoder(), lines, options);
}
