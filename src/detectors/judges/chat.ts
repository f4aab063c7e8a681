import { setTimeout as sleep } from 'node:timers/promises';
import { clip } from '../shared/verdicts.ts';

/**
 * One turn of a tool-using conversation with a judge model, over OpenAI's Chat Completions API (any
 * compatible endpoint) or Anthropic's Messages API. The conversation is kept in a neutral form and
 * rendered for each protocol; transient failures (network, 429, 5xx) are retried with backoff.
 */
export interface JudgeEndpoint {
  provider: 'openai' | 'anthropic';
  baseUrl: string;
  /** From the environment (PTB_JUDGE_API_KEY); never stored. */
  apiKey: string;
  timeoutMs?: number;
  retries?: number;
  backoffMs?: number;
  maxOutputTokens?: number;
}

export interface ToolSpec {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

export interface ToolCall {
  id: string;
  name: string;
  arguments: Record<string, unknown>;
}

export type Turn =
  | { role: 'user'; text: string }
  | { role: 'assistant'; text: string; calls: ToolCall[] }
  | { role: 'tool'; results: Array<{ id: string; text: string }> };

export interface ChatRequest {
  model: string;
  effort: string | null;
  system: string;
  turns: Turn[];
  tools: ToolSpec[];
}

export interface ChatReply {
  text: string;
  calls: ToolCall[];
}

export class TransientChatError extends Error {}

function parseArgs(raw: unknown): Record<string, unknown> {
  if (raw && typeof raw === 'object') return raw as Record<string, unknown>;
  if (typeof raw !== 'string' || raw.trim() === '') return {};
  try {
    const v = JSON.parse(raw);
    return v && typeof v === 'object' ? v : { value: v };
  } catch {
    return { command: raw };
  }
}

function openAiBody(req: ChatRequest, endpoint: JudgeEndpoint): Record<string, unknown> {
  const messages: unknown[] = [{ role: 'system', content: req.system }];
  for (const t of req.turns) {
    if (t.role === 'user') messages.push({ role: 'user', content: t.text });
    else if (t.role === 'assistant')
      messages.push({
        role: 'assistant',
        content: t.text || null,
        ...(t.calls.length
          ? {
              tool_calls: t.calls.map((c) => ({
                id: c.id,
                type: 'function',
                function: { name: c.name, arguments: JSON.stringify(c.arguments) },
              })),
            }
          : {}),
      });
    else for (const r of t.results) messages.push({ role: 'tool', tool_call_id: r.id, content: r.text });
  }
  return {
    model: req.model,
    messages,
    ...(req.tools.length ? { tools: req.tools.map((t) => ({ type: 'function', function: t })) } : {}),
    ...(req.effort ? { reasoning_effort: req.effort } : {}),
    ...(endpoint.maxOutputTokens ? { max_completion_tokens: endpoint.maxOutputTokens } : {}),
  };
}

function anthropicBody(req: ChatRequest, endpoint: JudgeEndpoint): Record<string, unknown> {
  const messages: unknown[] = [];
  for (const t of req.turns) {
    if (t.role === 'user') messages.push({ role: 'user', content: t.text });
    else if (t.role === 'assistant')
      messages.push({
        role: 'assistant',
        content: [
          ...(t.text ? [{ type: 'text', text: t.text }] : []),
          ...t.calls.map((c) => ({ type: 'tool_use', id: c.id, name: c.name, input: c.arguments })),
        ],
      });
    else
      messages.push({
        role: 'user',
        content: t.results.map((r) => ({ type: 'tool_result', tool_use_id: r.id, content: r.text })),
      });
  }
  return {
    model: req.model,
    max_tokens: endpoint.maxOutputTokens ?? 8_192,
    system: req.system,
    messages,
    ...(req.tools.length
      ? {
          tools: req.tools.map((t) => ({
            name: t.name,
            description: t.description,
            input_schema: t.parameters,
          })),
        }
      : {}),
  };
}

async function post(
  url: string,
  headers: Record<string, string>,
  body: unknown,
  endpoint: JudgeEndpoint,
  signal?: AbortSignal,
) {
  const timeout = AbortSignal.timeout(endpoint.timeoutMs ?? 600_000);
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    text = await response.text();
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new TransientChatError(`cannot reach ${url}: ${(err as Error).message}`);
  }
  if (response.status === 429 || response.status >= 500)
    throw new TransientChatError(`${url} answered HTTP ${response.status}: ${clip(text, 300)}`);
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}: ${clip(text, 300)}`);
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new Error(`${url} answered with invalid JSON: ${clip(text, 200)}`);
  }
}

async function once(endpoint: JudgeEndpoint, req: ChatRequest, signal?: AbortSignal): Promise<ChatReply> {
  const root = endpoint.baseUrl.replace(/\/+$/, '');
  if (endpoint.provider === 'anthropic') {
    const url = /\/v1$/.test(root) ? `${root}/messages` : `${root}/v1/messages`;
    const body = await post(
      url,
      { 'x-api-key': endpoint.apiKey, 'anthropic-version': '2023-06-01' },
      anthropicBody(req, endpoint),
      endpoint,
      signal,
    );
    const blocks = (body.content as Array<Record<string, unknown>> | undefined) ?? [];
    return {
      text: blocks
        .filter((b) => b.type === 'text')
        .map((b) => String(b.text ?? ''))
        .join(''),
      calls: blocks
        .filter((b) => b.type === 'tool_use')
        .map((b) => ({ id: String(b.id), name: String(b.name), arguments: parseArgs(b.input) })),
    };
  }
  const body = await post(
    `${root}/chat/completions`,
    endpoint.apiKey ? { authorization: `Bearer ${endpoint.apiKey}` } : {},
    openAiBody(req, endpoint),
    endpoint,
    signal,
  );
  const message = ((body.choices as Array<Record<string, unknown>> | undefined)?.[0]?.message ??
    {}) as Record<string, unknown>;
  const calls = ((message.tool_calls as Array<Record<string, unknown>> | undefined) ?? []).map((c) => {
    const fn = (c.function ?? {}) as Record<string, unknown>;
    return { id: String(c.id), name: String(fn.name), arguments: parseArgs(fn.arguments) };
  });
  return { text: typeof message.content === 'string' ? message.content : '', calls };
}

/** One assistant turn, retried on transient failures. */
export async function chatTurn(
  endpoint: JudgeEndpoint,
  req: ChatRequest,
  signal?: AbortSignal,
): Promise<ChatReply> {
  const retries = endpoint.retries ?? 2;
  for (let attempt = 0; ; attempt++) {
    try {
      return await once(endpoint, req, signal);
    } catch (err) {
      if (!(err instanceof TransientChatError) || attempt >= retries) throw err;
      await sleep((endpoint.backoffMs ?? 2_000) * 2 ** attempt, undefined, { signal });
    }
  }
}
