/**
 * Codex CLI `exec --json`. Two protocols share this format:
 *
 * - the JSONL item protocol (current CLIs): `thread.started`, `turn.started`, `item.started` /
 *   `item.updated` / `item.completed` (item types `agent_message`, `reasoning`, `command_execution`,
 *   `file_change`, `mcp_tool_call`, `web_search`, `todo_list`, `error`), `turn.completed` with
 *   `usage {input_tokens, cached_input_tokens, output_tokens}`, `turn.failed`, `error`;
 * - the legacy event protocol of older CLIs: `{id, msg: {type, ...}}` envelopes with
 *   `session_configured`, `task_started`, `agent_message(_delta)`, `exec_command_begin/end`,
 *   `exec_command_output_delta` (base64 chunks), `token_count`, `patch_apply_begin/end`, ...
 *   Consecutive `*_delta` events of one kind become one event.
 *
 * Runs without `--json` (codexhigh/codexlow) produce plain text: every line becomes a `raw` event.
 * Codex reports no cost, so `costUsd` stays null.
 */
import type { Trajectory } from '../../core/trial.ts';
import { arr, count, exitCode, isObject, type JsonObject, num, obj, str, textOf } from './jsonAccess.ts';
import { RecentMap } from './recentMap.ts';
import { commandText } from './shellText.ts';
import {
  addUsage,
  collectTrajectory,
  type DecoderOutput,
  emptyUsage,
  type TraceDecoder,
  type TraceReadOptions,
  type Usage,
} from './traceReader.ts';

/** OpenAI usage: `input_tokens` already includes the cached ones. */
function openAiUsage(u: JsonObject): Usage {
  return {
    inputTokens: count(u.input_tokens),
    outputTokens: count(u.output_tokens),
    cacheReadTokens: count(u.cached_input_tokens),
    reasoningTokens: count(u.reasoning_output_tokens),
    costUsd: null,
  };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** An output chunk: base64 text (current serialisation) or a byte array (older one). */
function chunkBytes(chunk: unknown): Buffer {
  if (Array.isArray(chunk)) return Buffer.from(chunk.filter((b): b is number => typeof b === 'number'));
  const s = str(chunk) ?? '';
  if (s.length % 4 === 0 && BASE64.test(s)) return Buffer.from(s, 'base64');
  return Buffer.from(s, 'utf8');
}

function todoText(item: JsonObject): string {
  const lines = arr(item.items).map((t) => {
    const todo = obj(t) ?? {};
    return `[${todo.completed === true ? 'x' : ' '}] ${str(todo.text) ?? ''}`;
  });
  return `plan:\n${lines.join('\n')}`;
}

function mcpResultText(result: unknown): string {
  const r = obj(result);
  if (!r) return textOf(result);
  const parts = arr(r.content).map((c) => {
    const block = obj(c);
    return block?.type === 'text' ? (str(block.text) ?? '') : textOf(c);
  });
  if (parts.length) return parts.join('\n');
  return textOf(r.structured_content ?? r.structuredContent ?? r);
}

function webSearchText(item: JsonObject): string {
  const action = obj(item.action);
  const query =
    str(item.query) ||
    str(action?.query) ||
    arr(action?.queries)
      .filter((q) => typeof q === 'string')
      .join(' | ');
  if (action?.type === 'open_page' || action?.type === 'openPage') return `open ${str(action.url) ?? '?'}`;
  if (action?.type === 'find_in_page' || action?.type === 'findInPage')
    return `find "${str(action.pattern) ?? ''}" in ${str(action.url) ?? '?'}`;
  return `search: ${query}`;
}

function fileChangeLines(changes: unknown): string {
  // item protocol: [{path, kind}]; legacy: {path: {add|delete|update: ...}} or {path: {type, ...}}
  if (Array.isArray(changes)) {
    return changes
      .map((c) => {
        const change = obj(c) ?? {};
        const kind = typeof change.kind === 'string' ? change.kind : str(obj(change.kind)?.type);
        return `${kind ?? 'change'} ${str(change.path) ?? '?'}`;
      })
      .join('\n');
  }
  const map = obj(changes);
  if (!map) return '';
  return Object.entries(map)
    .map(([path, c]) => {
      const change = obj(c) ?? {};
      const kind = str(change.type) ?? Object.keys(change)[0] ?? 'change';
      return `${kind} ${path}`;
    })
    .join('\n');
}

interface PendingItem {
  kind: 'message' | 'reasoning';
  text: string;
  ts: string | null;
}

export function createCodexJsonDecoder(): TraceDecoder {
  const turnUsage = emptyUsage();
  const flatTokenCounts = emptyUsage();
  // Legacy token_count carries running session totals; a new CLI process (reprompt loop) may start
  // them again from zero, so a drop closes one segment and the segments are summed.
  const closedSegments = emptyUsage();
  let segment: Usage | null = null;
  // Calls already emitted (an end event repeats what its begin event said); recent ones suffice.
  const calledIds = new RecentMap<string, true>(4096);
  // Item ids (`item_0`, `item_1`, ...) restart in every CLI process; a resumed run (reprompt loop)
  // starts with another `thread.started`, and its ids get a `#<run>` suffix to stay unique.
  let run = 0;
  // Streaming items (messages, reasoning) not yet completed; flushed at the end of a cut-off trace.
  const openItems = new Map<string, PendingItem>();
  // Legacy exec output deltas per call id, until exec_command_end replaces them.
  const execOutput = new Map<string, { ts: string | null; chunks: Buffer[] }>();

  function call(out: DecoderOutput, ts: string | null, id: string | undefined, name: string, input: unknown) {
    if (id && calledIds.has(id)) return;
    if (id) calledIds.set(id, true);
    out.emit({ ts, kind: 'tool_call', role: 'assistant', tool: { id, name, input } });
  }

  function item(phase: string, it: JsonObject, ts: string | null, out: DecoderOutput, ev: JsonObject): void {
    const rawId = str(it.id);
    const id = rawId !== undefined && run > 1 ? `${rawId}#${run}` : rawId;
    const done = phase === 'item.completed';
    switch (it.type) {
      case 'agent_message':
      case 'reasoning': {
        const kind = it.type === 'agent_message' ? 'message' : 'reasoning';
        const text = str(it.text) ?? '';
        if (!done) {
          if (id) openItems.set(id, { kind, text, ts });
          return;
        }
        if (id) openItems.delete(id);
        out.emit({ ts, kind, role: 'assistant', text });
        return;
      }
      case 'command_execution': {
        const command = commandText(it.command) ?? textOf(it.command);
        call(out, ts, id, 'shell', { command });
        if (!done) return;
        const status = str(it.status);
        const code = exitCode(it.exit_code);
        out.emit({
          ts,
          kind: 'tool_result',
          role: 'tool',
          tool: { id, name: 'shell' },
          text: str(it.aggregated_output) ?? '',
          exitCode: code,
          isError: status === 'failed' || status === 'declined' || (code !== null && code !== 0),
        });
        return;
      }
      case 'file_change': {
        call(out, ts, id, 'apply_patch', { changes: it.changes });
        if (!done) return;
        out.emit({
          ts,
          kind: 'tool_result',
          role: 'tool',
          tool: { id, name: 'apply_patch' },
          text: fileChangeLines(it.changes),
          isError: it.status === 'failed',
        });
        return;
      }
      case 'mcp_tool_call': {
        const name = `${str(it.server) ?? 'mcp'}.${str(it.tool) ?? '?'}`;
        call(out, ts, id, name, it.arguments);
        if (!done) return;
        const error = str(obj(it.error)?.message);
        out.emit({
          ts,
          kind: 'tool_result',
          role: 'tool',
          tool: { id, name },
          text: error ?? mcpResultText(it.result),
          isError: it.status === 'failed' || error !== undefined,
        });
        return;
      }
      case 'web_search': {
        call(out, ts, id, 'web_search', { query: str(it.query), action: it.action });
        if (!done) return;
        out.emit({
          ts,
          kind: 'tool_result',
          role: 'tool',
          tool: { id, name: 'web_search' },
          text: webSearchText(it),
        });
        return;
      }
      case 'todo_list':
        out.emit({ ts, kind: 'system', role: 'assistant', text: todoText(it), raw: ev });
        return;
      case 'error':
        out.emit({ ts, kind: 'error', text: str(it.message) ?? textOf(it), isError: true, raw: ev });
        return;
      default:
        out.emit({ ts, kind: 'system', text: `${phase} ${str(it.type) ?? '?'}`, raw: ev });
    }
  }

  /** Legacy final message after its deltas: keep the streamed block, drop the repeat. */
  function finalText(out: DecoderOutput, key: string, text: string): boolean {
    const pending = out.pendingText(key);
    if (pending === undefined) return false;
    out.flush();
    return pending.trim() === text.trim();
  }

  function legacy(type: string, ev: JsonObject, ts: string | null, out: DecoderOutput): void {
    switch (type) {
      case 'session_configured': {
        const model = str(ev.model);
        if (model) out.setModel(model);
        const sid = str(ev.session_id);
        if (sid) out.setSession(sid);
        const bits = [`session ${sid ?? '?'}`, `model ${model ?? '?'}`];
        if (str(ev.model_provider_id)) bits.push(`provider ${ev.model_provider_id}`);
        if (str(ev.cwd)) bits.push(`cwd ${ev.cwd}`);
        if (str(ev.approval_policy)) bits.push(`approval ${ev.approval_policy}`);
        const sandbox = ev.sandbox_policy;
        if (sandbox !== undefined)
          bits.push(`sandbox ${str(sandbox) ?? str(obj(sandbox)?.type) ?? textOf(sandbox)}`);
        out.emit({
          ts,
          kind: 'system',
          role: 'system',
          text: `session configured: ${bits.join(' · ')}`,
          raw: ev,
        });
        return;
      }
      case 'task_started':
      case 'turn_started': {
        const window = num(ev.model_context_window);
        out.emit({
          ts,
          kind: 'system',
          text: window === undefined ? 'turn started' : `turn started (context window ${window})`,
          raw: ev,
        });
        return;
      }
      case 'task_complete':
      case 'turn_complete':
        out.emit({ ts, kind: 'system', text: 'turn complete', raw: ev });
        return;
      case 'agent_message': {
        const text = str(ev.message) ?? '';
        if (finalText(out, 'agent_message_delta', text)) return;
        out.emit({ ts, kind: 'message', role: 'assistant', text });
        return;
      }
      case 'agent_message_delta':
        out.append(type, { ts, kind: 'message', role: 'assistant' }, str(ev.delta) ?? '');
        return;
      case 'user_message': {
        const images = arr(ev.images).length;
        const text = str(ev.message) ?? '';
        out.emit({
          ts,
          kind: 'message',
          role: 'user',
          text: images ? `${text}\n[${images} image(s)]` : text,
        });
        return;
      }
      case 'agent_reasoning':
      case 'agent_reasoning_raw_content': {
        const text = str(ev.text) ?? '';
        if (finalText(out, `${type}_delta`, text)) return;
        const title = str(ev.title);
        out.emit({ ts, kind: 'reasoning', role: 'assistant', text: title ? `${title}\n${text}` : text });
        return;
      }
      case 'agent_reasoning_delta':
      case 'agent_reasoning_raw_content_delta':
        out.append(type, { ts, kind: 'reasoning', role: 'assistant' }, str(ev.delta) ?? '');
        return;
      case 'agent_reasoning_section_break':
        out.flush();
        return;
      case 'exec_command_begin': {
        const command = commandText(ev.command) ?? textOf(ev.command);
        const input: JsonObject = { command };
        if (str(ev.cwd)) input.cwd = ev.cwd;
        if (str(ev.source)) input.source = ev.source;
        call(out, ts, str(ev.call_id), 'shell', input);
        return;
      }
      case 'exec_command_output_delta': {
        const id = str(ev.call_id) ?? '';
        const buffered = execOutput.get(id) ?? { ts, chunks: [] };
        buffered.ts = ts ?? buffered.ts;
        buffered.chunks.push(chunkBytes(ev.chunk));
        execOutput.set(id, buffered);
        return;
      }
      case 'exec_command_end': {
        const id = str(ev.call_id);
        call(out, ts, id, 'shell', { command: commandText(ev.command) ?? textOf(ev.command) });
        if (id) execOutput.delete(id);
        const code = exitCode(ev.exit_code);
        const stdout = str(ev.stdout) ?? '';
        const stderr = str(ev.stderr) ?? '';
        const text =
          str(ev.aggregated_output) ||
          str(ev.formatted_output) ||
          [stdout, stderr].filter(Boolean).join('\n');
        out.emit({
          ts,
          kind: 'tool_result',
          role: 'tool',
          tool: { id, name: 'shell' },
          text,
          exitCode: code,
          isError: code !== null && code !== 0,
        });
        return;
      }
      case 'token_count': {
        const info = obj(ev.info);
        if (info) {
          const total = obj(info.total_token_usage);
          if (total) {
            const next = openAiUsage(total);
            if (
              segment &&
              (next.inputTokens < segment.inputTokens || next.outputTokens < segment.outputTokens)
            ) {
              addUsage(closedSegments, segment);
            }
            segment = next;
          }
          const last = obj(info.last_token_usage);
          out.emit({ ts, kind: 'usage', usage: openAiUsage(last ?? total ?? {}), raw: ev });
        } else if (num(ev.input_tokens) !== undefined || num(ev.output_tokens) !== undefined) {
          // Oldest shape: one flat count per model response.
          const usage = openAiUsage(ev);
          addUsage(flatTokenCounts, usage);
          out.emit({ ts, kind: 'usage', usage, raw: ev });
        }
        return;
      }
      case 'stream_error':
        out.emit({ ts, kind: 'error', text: str(ev.message) ?? textOf(ev), isError: true, raw: ev });
        return;
      case 'warning':
        out.emit({ ts, kind: 'system', text: `warning: ${str(ev.message) ?? textOf(ev)}`, raw: ev });
        return;
      case 'mcp_tool_call_begin': {
        const inv = obj(ev.invocation) ?? ev;
        const name = `${str(inv.server) ?? str(inv.server_name) ?? 'mcp'}.${str(inv.tool) ?? str(inv.tool_name) ?? '?'}`;
        call(out, ts, str(ev.call_id), name, inv.arguments);
        return;
      }
      case 'mcp_tool_call_end': {
        const inv = obj(ev.invocation) ?? ev;
        const name = `${str(inv.server) ?? str(inv.server_name) ?? 'mcp'}.${str(inv.tool) ?? str(inv.tool_name) ?? '?'}`;
        const id = str(ev.call_id);
        call(out, ts, id, name, inv.arguments);
        const result = obj(ev.result);
        // Rust Result<CallToolResult, String> serialises as {"Ok": ...} or {"Err": "..."}.
        const err = result && 'Err' in result ? textOf(result.Err) : undefined;
        const ok = result && 'Ok' in result ? obj(result.Ok) : result;
        out.emit({
          ts,
          kind: 'tool_result',
          role: 'tool',
          tool: { id, name },
          text: err ?? mcpResultText(ok),
          isError: err !== undefined || ok?.isError === true || ok?.is_error === true,
        });
        return;
      }
      case 'patch_apply_begin': {
        const input: JsonObject = { changes: ev.changes };
        if (ev.patch !== undefined) input.patch = ev.patch;
        call(out, ts, str(ev.call_id), 'apply_patch', input);
        return;
      }
      case 'patch_apply_end': {
        const id = str(ev.call_id);
        call(out, ts, id, 'apply_patch', { changes: ev.changes });
        const success = ev.success !== false;
        const text = [str(ev.stdout), str(ev.stderr), str(ev.error)].filter(Boolean).join('\n');
        out.emit({
          ts,
          kind: 'tool_result',
          role: 'tool',
          tool: { id, name: 'apply_patch' },
          text,
          isError: !success,
        });
        return;
      }
      case 'web_search_begin':
        call(out, ts, str(ev.call_id), 'web_search', { query: str(ev.query) });
        return;
      case 'web_search_end': {
        const id = str(ev.call_id);
        call(out, ts, id, 'web_search', { query: str(ev.query) });
        out.emit({
          ts,
          kind: 'tool_result',
          role: 'tool',
          tool: { id, name: 'web_search' },
          text: `search: ${str(ev.query) ?? ''}`,
        });
        return;
      }
      case 'turn_aborted':
        out.emit({
          ts,
          kind: 'error',
          text: `turn aborted: ${str(ev.reason) ?? '?'}`,
          isError: true,
          raw: ev,
        });
        return;
      default:
        out.emit({ ts, kind: 'system', text: `event ${type}`, raw: ev });
    }
  }

  return {
    json(line, ts, out) {
      // Legacy envelopes wrap the event: {"id": "0", "msg": {"type": ...}}.
      const msg = obj(line.msg);
      const ev = msg && typeof msg.type === 'string' ? msg : line;
      const type = str(ev.type);
      if (type === undefined) {
        // Older `exec --json` opened with a config summary line and a {"prompt": ...} line.
        if (str(ev.prompt) !== undefined) {
          out.emit({ ts, kind: 'message', role: 'user', text: str(ev.prompt) });
        } else {
          const model = str(ev.model);
          if (model) out.setModel(model);
          out.emit({ ts, kind: 'system', role: 'system', text: 'configuration', raw: ev });
        }
        return;
      }
      switch (type) {
        case 'thread.started': {
          run += 1;
          openItems.clear();
          const id = str(ev.thread_id);
          if (id) out.setSession(id);
          out.emit({
            ts,
            kind: 'system',
            role: 'system',
            text: `thread started ${id ?? ''}`.trim(),
            raw: ev,
          });
          return;
        }
        case 'turn.started':
          out.emit({ ts, kind: 'system', text: 'turn started', raw: ev });
          return;
        case 'turn.completed': {
          const usage = openAiUsage(obj(ev.usage) ?? {});
          addUsage(turnUsage, usage);
          out.emit({ ts, kind: 'usage', usage, raw: ev });
          return;
        }
        case 'turn.failed':
          out.emit({
            ts,
            kind: 'error',
            text: str(obj(ev.error)?.message) ?? textOf(ev.error),
            isError: true,
            raw: ev,
          });
          return;
        case 'error': {
          // Same shape in both protocols (legacy adds codex_error_info).
          const info = ev.codex_error_info;
          const code = str(info) ?? (isObject(info) ? Object.keys(info)[0] : undefined) ?? str(ev.code);
          const message = str(ev.message) ?? textOf(ev);
          out.emit({
            ts,
            kind: 'error',
            text: code ? `${message} (${code})` : message,
            isError: true,
            raw: ev,
          });
          return;
        }
        case 'item.started':
        case 'item.updated':
        case 'item.completed': {
          const it = obj(ev.item);
          if (!it) {
            out.emit({ ts, kind: 'system', text: type, raw: ev });
            return;
          }
          item(type, it, ts, out, ev);
          return;
        }
        default:
          legacy(type, ev, ts, out);
      }
    },
    end(out) {
      for (const pending of openItems.values()) {
        out.emit({ ts: pending.ts, kind: pending.kind, role: 'assistant', text: pending.text });
      }
      openItems.clear();
      for (const [id, buffered] of execOutput) {
        out.emit({
          ts: buffered.ts,
          kind: 'tool_result',
          role: 'tool',
          tool: { id: id || undefined, name: 'shell' },
          text: Buffer.concat(buffered.chunks).toString('utf8'),
          exitCode: null,
          raw: { incomplete: true },
        });
      }
      execOutput.clear();
    },
    usage() {
      const total = emptyUsage();
      addUsage(total, turnUsage);
      addUsage(total, flatTokenCounts);
      addUsage(total, closedSegments);
      if (segment) addUsage(total, segment);
      return total;
    },
  };
}

export function parseCodexJson(lines: Iterable<string>, options?: TraceReadOptions): Trajectory {
  return collectTrajectory('codex-json', createCodexJsonDecoder(), lines, options);
}
