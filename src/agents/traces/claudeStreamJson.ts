/**
 * Claude Code `--print --verbose --output-format stream-json`: one JSON object per line with `type`
 * `system` (subtype `init` carries session, model, tools, cwd), `assistant` / `user` (an Anthropic
 * message whose `content[]` holds `text`, `thinking`, `tool_use`, `tool_result` blocks) and `result`
 * (final text, `total_cost_usd`, session `usage`, per-model `modelUsage`).
 *
 * Token totals come from the `result` line(s). A run killed by the time limit has none; then the
 * per-message usage is summed, counting each API message once (Claude Code repeats the message's
 * usage on every content-block line of it) and the cost stays unknown.
 */
import type { Trajectory } from '../../core/trial.ts';
import { arr, count, isObject, type JsonObject, num, obj, str, textOf } from './jsonAccess.ts';
import { RecentMap } from './recentMap.ts';
import {
  addUsage,
  collectTrajectory,
  type DecoderOutput,
  emptyUsage,
  type NewEvent,
  type TraceDecoder,
  type TraceReadOptions,
  type Usage,
} from './traceReader.ts';

/** Anthropic usage -> trajectory usage. Input counts every prompt token, cached or not. */
function anthropicUsage(u: JsonObject, costUsd: number | null = null): Usage {
  const cacheRead = count(u.cache_read_input_tokens ?? u.cacheReadInputTokens);
  const cacheWrite = count(u.cache_creation_input_tokens ?? u.cacheCreationInputTokens);
  return {
    inputTokens: count(u.input_tokens ?? u.inputTokens) + cacheRead + cacheWrite,
    outputTokens: count(u.output_tokens ?? u.outputTokens),
    cacheReadTokens: cacheRead,
    reasoningTokens: 0,
    costUsd,
  };
}

/** `result` usage: the per-model breakdown covers helper models too, so prefer it when present. */
function resultUsage(ev: JsonObject): Usage {
  const cost = num(ev.total_cost_usd) ?? num(ev.cost_usd) ?? null;
  const perModel = obj(ev.modelUsage);
  if (perModel && Object.keys(perModel).length > 0) {
    const total = emptyUsage();
    for (const m of Object.values(perModel)) if (isObject(m)) addUsage(total, anthropicUsage(m));
    total.costUsd = cost;
    return total;
  }
  return anthropicUsage(obj(ev.usage) ?? {}, cost);
}

/** A tool_result's content: a string, or a list of text / image / json blocks. */
function toolResultText(content: unknown): string {
  if (typeof content === 'string') return content;
  return arr(content)
    .map((b) => {
      const block = obj(b);
      if (!block) return textOf(b);
      if (block.type === 'text') return str(block.text) ?? '';
      if (block.type === 'image') return '[image]';
      if (block.type === 'json') return textOf(block.json ?? block.data);
      return textOf(block);
    })
    .join('\n');
}

function initSummary(ev: JsonObject): string {
  const tools = arr(ev.tools ?? ev.allowed_tools)
    .map((t) => (typeof t === 'string' ? t : str(obj(t)?.name)))
    .filter((t): t is string => !!t);
  const model = str(ev.model) ?? str(obj(ev.settings)?.model);
  const cwd = str(ev.cwd) ?? str(ev.working_directory);
  const bits = [`session ${str(ev.session_id) ?? '?'}`];
  if (model) bits.push(`model ${model}`);
  if (cwd) bits.push(`cwd ${cwd}`);
  if (tools.length) bits.push(`tools: ${tools.join(', ')}`);
  return `init: ${bits.join(' · ')}`;
}

export function createClaudeStreamJsonDecoder(): TraceDecoder {
  const resultTotal = emptyUsage();
  let results = 0;
  // Usage of recent API messages by id (the last line of a message wins: it has the final output
  // count). The lines of one message are adjacent, so older messages are summed and forgotten.
  const olderMessages = emptyUsage();
  const messageUsage = new RecentMap<string, Usage>(64, (_, u) => addUsage(olderMessages, u));

  function messageBlocks(ev: JsonObject, ts: string | null, out: DecoderOutput): void {
    const message = obj(ev.message) ?? {};
    const role = str(message.role) === 'user' || ev.type === 'user' ? 'user' : 'assistant';
    const id = str(message.id);
    const usage = obj(message.usage);
    if (role === 'assistant' && id && usage) messageUsage.set(id, anthropicUsage(usage));
    if (role === 'assistant') {
      const model = str(message.model);
      if (model && model !== '<synthetic>') out.setModel(model);
    }
    const content = message.content;
    if (typeof content === 'string') {
      out.emit({ ts, kind: 'message', role, text: content });
      return;
    }
    for (const b of arr(content)) {
      const block = obj(b);
      if (!block) continue;
      const type = str(block.type);
      if (type === 'text') {
        out.emit({ ts, kind: 'message', role, text: str(block.text) ?? '' });
      } else if (type === 'thinking') {
        out.emit({ ts, kind: 'reasoning', role: 'assistant', text: str(block.thinking) ?? '' });
      } else if (type === 'redacted_thinking') {
        out.emit({ ts, kind: 'reasoning', role: 'assistant', text: '[redacted thinking]' });
      } else if (type === 'tool_use' || type === 'server_tool_use') {
        out.emit({
          ts,
          kind: 'tool_call',
          role: 'assistant',
          tool: { id: str(block.id), name: str(block.name), input: block.input },
        });
      } else if (type === 'tool_result' || (type?.endsWith('_tool_result') && block.tool_use_id)) {
        const event: NewEvent = {
          ts,
          kind: 'tool_result',
          role: 'tool',
          tool: { id: str(block.tool_use_id) },
          text: toolResultText(block.content),
          isError: block.is_error === true,
        };
        out.emit(event);
      } else {
        out.emit({ ts, kind: 'system', role, text: `content block ${type ?? '?'}`, raw: block });
      }
    }
  }

  return {
    json(ev, ts, out) {
      const sessionId = str(ev.session_id);
      if (sessionId) out.setSession(sessionId);
      switch (ev.type) {
        case 'system': {
          if (ev.subtype === 'init') {
            const model = str(ev.model) ?? str(obj(ev.settings)?.model);
            if (model) out.setModel(model);
            out.emit({ ts, kind: 'system', role: 'system', text: initSummary(ev), raw: ev });
          } else {
            out.emit({
              ts,
              kind: 'system',
              role: 'system',
              text: `system/${str(ev.subtype) ?? '?'}`,
              raw: ev,
            });
          }
          return;
        }
        case 'assistant':
        case 'user':
          messageBlocks(ev, ts, out);
          return;
        case 'result': {
          const usage = resultUsage(ev);
          results += 1;
          addUsage(resultTotal, usage);
          out.emit({
            ts,
            kind: 'result',
            text: str(ev.result) ?? str(ev.subtype),
            isError: ev.is_error === true || str(ev.subtype)?.startsWith('error') === true,
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
      if (results > 0) return { ...resultTotal };
      const total = { ...olderMessages };
      for (const u of messageUsage.values()) addUsage(total, u);
      return total;
    },
  };
}

export function parseClaudeStreamJson(lines: Iterable<string>, options?: TraceReadOptions): Trajectory {
  return collectTrajectory('claude-stream-json', createClaudeStreamJsonDecoder(), lines, options);
}
