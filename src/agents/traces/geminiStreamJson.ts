/**
 * Gemini CLI `--output-format stream-json`: `init` (session_id, model), `message` (role, content;
 * `delta: true` fragments of one role are merged into one message), `tool_use` (tool_name, tool_id,
 * parameters), `tool_result` (tool_id, status, output, error), `error` (severity, message) and
 * `result` (status, stats {total_tokens, input_tokens, output_tokens, cached, input, duration_ms,
 * tool_calls}); each with its own ISO `timestamp`.
 *
 * Also the older shape with one API call per line: `{method, response: chunk | chunk[], error?,
 * stats?}` where a chunk is a GenerateContentResponse (`candidates[].content.parts[]` with text,
 * thought, functionCall, functionResponse, inlineData; `usageMetadata` token counts).
 *
 * Gemini reports no cost, so `costUsd` stays null.
 */
import type { Trajectory } from '../../core/trial.ts';
import { arr, count, isoFromString, type JsonObject, obj, str, textOf } from './jsonAccess.ts';
import {
  addUsage,
  collectTrajectory,
  type DecoderOutput,
  emptyUsage,
  type TraceDecoder,
  type TraceReadOptions,
  type Usage,
} from './traceReader.ts';

/** stream-json `result.stats`: `input_tokens` includes the cached ones (`cached`). */
function streamStatsUsage(stats: JsonObject): Usage {
  return {
    inputTokens: count(stats.input_tokens),
    outputTokens: count(stats.output_tokens),
    cacheReadTokens: count(stats.cached),
    reasoningTokens: count(stats.thoughts),
    costUsd: null,
  };
}

/** GenerateContentResponse.usageMetadata: promptTokenCount includes cachedContentTokenCount. */
function usageMetadata(u: JsonObject): Usage {
  return {
    inputTokens: count(u.promptTokenCount),
    outputTokens: count(u.candidatesTokenCount),
    cacheReadTokens: count(u.cachedContentTokenCount),
    reasoningTokens: count(u.thoughtsTokenCount),
    costUsd: null,
  };
}

export function createGeminiStreamJsonDecoder(): TraceDecoder {
  const resultUsage = emptyUsage();
  const legacyUsage = emptyUsage();
  // Legacy function responses carry a name but (in older API versions) no id: link by name.
  const openCallsByName = new Map<string, string[]>();
  let syntheticIds = 0;

  function legacyLine(ev: JsonObject, ts: string | null, out: DecoderOutput): void {
    const response = ev.response;
    const chunks = Array.isArray(response) ? response : response === undefined ? [] : [response];
    let lastUsage: JsonObject | undefined;
    for (const c of chunks) {
      const chunk = obj(c);
      if (!chunk) continue;
      const modelVersion = str(chunk.modelVersion);
      if (modelVersion) out.setModel(modelVersion);
      for (const cand of arr(chunk.candidates)) {
        for (const p of arr(obj(obj(cand)?.content)?.parts)) {
          const part = obj(p);
          if (!part) continue;
          const text = str(part.text);
          if (text) {
            if (part.thought === true)
              out.append('legacy-thought', { ts, kind: 'reasoning', role: 'assistant' }, text);
            else out.append('legacy-text', { ts, kind: 'message', role: 'assistant' }, text);
          }
          const fc = obj(part.functionCall);
          if (fc) {
            const name = str(fc.name) ?? '?';
            const id = str(fc.id) ?? `${name}#${++syntheticIds}`;
            openCallsByName.set(name, [...(openCallsByName.get(name) ?? []), id]);
            out.emit({ ts, kind: 'tool_call', role: 'assistant', tool: { id, name, input: fc.args ?? {} } });
          }
          const fr = obj(part.functionResponse);
          if (fr) {
            const name = str(fr.name) ?? '?';
            const queue = openCallsByName.get(name) ?? [];
            const id = str(fr.id) ?? queue[0];
            const at = id ? queue.indexOf(id) : -1;
            if (at >= 0) queue.splice(at, 1);
            const resp = obj(fr.response);
            const output = resp && 'output' in resp ? resp.output : (resp?.error ?? fr.response);
            out.emit({
              ts,
              kind: 'tool_result',
              role: 'tool',
              tool: { id, name },
              text: textOf(output),
              isError: resp?.error !== undefined,
            });
          }
          const inline = obj(part.inlineData);
          if (inline) out.emit({ ts, kind: 'system', text: `inline data (${str(inline.mimeType) ?? '?'})` });
        }
      }
      lastUsage = obj(chunk.usageMetadata) ?? lastUsage;
    }
    // One line is one API call: its fragments end here.
    out.flush();
    if (lastUsage) {
      // Streamed chunks repeat running counts; the last one holds the call's total.
      const usage = usageMetadata(lastUsage);
      addUsage(legacyUsage, usage);
      out.emit({ ts, kind: 'usage', usage, raw: lastUsage });
    }
    if (ev.error !== undefined) {
      const err = obj(ev.error);
      out.emit({
        ts,
        kind: 'error',
        text: str(err?.message) ?? textOf(ev.error),
        isError: true,
        raw: ev.error,
      });
    }
    if (ev.stats !== undefined) out.emit({ ts, kind: 'system', text: 'stats', raw: ev.stats });
  }

  return {
    json(ev, lineTs, out) {
      const ts = lineTs ?? isoFromString(ev.timestamp);
      if (typeof ev.method === 'string' && ev.type === undefined) {
        legacyLine(ev, ts, out);
        return;
      }
      switch (ev.type) {
        case 'init': {
          const sid = str(ev.session_id);
          const model = str(ev.model);
          if (sid) out.setSession(sid);
          if (model) out.setModel(model);
          out.emit({
            ts,
            kind: 'system',
            role: 'system',
            text: `init: session ${sid ?? '?'} · model ${model ?? '?'}`,
            raw: ev,
          });
          return;
        }
        case 'message': {
          const role = ev.role === 'user' ? 'user' : 'assistant';
          const content = str(ev.content) ?? textOf(ev.content);
          if (ev.delta === true) out.append(`message:${role}`, { ts, kind: 'message', role }, content);
          else out.emit({ ts, kind: 'message', role, text: content });
          return;
        }
        case 'tool_use':
          out.emit({
            ts,
            kind: 'tool_call',
            role: 'assistant',
            tool: { id: str(ev.tool_id), name: str(ev.tool_name), input: ev.parameters ?? {} },
          });
          return;
        case 'tool_result': {
          const error = obj(ev.error);
          const output = str(ev.output);
          const text = output ?? (error ? `${str(error.type) ?? 'error'}: ${str(error.message) ?? ''}` : '');
          out.emit({
            ts,
            kind: 'tool_result',
            role: 'tool',
            tool: { id: str(ev.tool_id) },
            text: output && error ? `${output}\n${str(error.message) ?? ''}` : text,
            isError: ev.status === 'error' || (ev.status === undefined && error !== undefined),
          });
          return;
        }
        case 'error':
          out.emit({
            ts,
            kind: 'error',
            text: str(ev.message) ?? textOf(ev),
            isError: ev.severity !== 'warning',
            raw: ev,
          });
          return;
        case 'result': {
          const stats = obj(ev.stats);
          const usage = stats ? streamStatsUsage(stats) : undefined;
          if (usage) addUsage(resultUsage, usage);
          const error = obj(ev.error);
          out.emit({
            ts,
            kind: 'result',
            text: error ? str(error.message) : str(ev.status),
            isError: ev.status === 'error',
            usage,
            raw: ev,
          });
          return;
        }
        default:
          out.emit({ ts, kind: 'system', text: `event ${str(ev.type) ?? '?'}`, raw: ev });
      }
    },
    end() {},
    usage() {
      const total = emptyUsage();
      addUsage(total, resultUsage);
      addUsage(total, legacyUsage);
      return total;
    },
  };
}

export function parseGeminiStreamJson(lines: Iterable<string>, options?: TraceReadOptions): Trajectory {
  return collectTrajectory('gemini-stream-json', createGeminiStreamJsonDecoder(), lines, options);
}
