import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { ChatRequest, ModelReply, Sampling, ToolCall } from '../core/schemas.ts';
import { pinnedSocketAgent } from './sandboxSocket.ts';
import type { EngineHandle } from './types.ts';

/**
 * The one client ptb uses to talk to an engine: OpenAI chat completions over plain node:http with
 * keep-alive sockets. node:http rather than fetch because fetch (undici) gives up on a response
 * whose headers take more than 300 s, and a non-streamed 16k-token generation on a busy server can.
 */

export interface ChatOptions {
  maxTokens: number;
  /** Only the fields set here are sent; nothing else, so the checkpoint's generation config applies. */
  sampling?: Sampling;
  signal?: AbortSignal;
}

export interface ChatClient {
  chat(req: ChatRequest, opts: ChatOptions): Promise<ModelReply>;
}

export interface ChatClientOptions {
  /** Per-attempt limit; default 1 h (the reference's own limits are hours per evaluation). */
  timeoutMs?: number;
  /** Further attempts after a transient failure (network, 5xx, 429, timeout); default 3. */
  retries?: number;
  /** First backoff pause; doubles per retry (capped at 30 s). Default 1 s. */
  backoffMs?: number;
}

export type EngineErrorKind = 'context_length' | 'server' | 'network' | 'timeout' | 'bad_request';

/** A request the engine did not answer with a usable reply. */
export class EngineRequestError extends Error {
  readonly kind: EngineErrorKind;
  /** HTTP status, or null when no response came (network, timeout). */
  readonly status: number | null;
  /** Response body as received ('' when none). */
  readonly body: string;
  /** Attempts made before giving up. */
  attempts = 1;
  /** For context_length: the window the server reported, when its message says so. */
  readonly contextWindow: number | null;
  /** For context_length: the prompt size the server reported, when its message says so. */
  readonly promptTokens: number | null;

  constructor(
    kind: EngineErrorKind,
    message: string,
    details: { status?: number | null; body?: string; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'EngineRequestError';
    this.kind = kind;
    this.status = details.status ?? null;
    this.body = details.body ?? '';
    const numbers = kind === 'context_length' ? contextNumbers(message) : null;
    this.contextWindow = numbers?.window ?? null;
    this.promptTokens = numbers?.prompt ?? null;
  }

  /** Worth trying again: the same request may succeed. A 400 never is. */
  get transient(): boolean {
    return this.kind === 'server' || this.kind === 'network' || this.kind === 'timeout';
  }
}

export function isEngineRequestError(err: unknown): err is EngineRequestError {
  return err instanceof EngineRequestError;
}

// vLLM 0.11: "'max_tokens' or 'max_completion_tokens' is too large: 16000. This model's maximum
// context length is 4096 tokens and your request has 50 input tokens (16000 > 4096 - 50)." and
// "This model's maximum context length is 4096 tokens. However, your request has 5000 input
// tokens."; V1 input processing: "The decoder prompt (length 5000) is longer than the maximum model
// length of 4096."; OpenAI: code "context_length_exceeded".
const CONTEXT_LENGTH_PATTERNS = [
  /maximum context length/i,
  /max_(?:completion_)?tokens'?[^.]{0,60}too large/i,
  /longer than the maximum model length/i,
  /context_length_exceeded/i,
  /exceeds? (?:the )?(?:model'?s? )?(?:maximum )?context (?:length|window)/i,
];

/** Whether an error message from an OpenAI-compatible server says the request does not fit the context. */
export function isContextLengthMessage(message: string): boolean {
  return CONTEXT_LENGTH_PATTERNS.some((pattern) => pattern.test(message));
}

function contextNumbers(message: string): { window: number | null; prompt: number | null } {
  const window =
    /maximum context length is (\d+)/i.exec(message)?.[1] ??
    /maximum model length of (\d+)/i.exec(message)?.[1];
  const prompt =
    /request has (\d+) input tokens/i.exec(message)?.[1] ??
    /\((\d+) in the messages/i.exec(message)?.[1] ??
    /prompt \(length (\d+)\)/i.exec(message)?.[1];
  return { window: window ? Number(window) : null, prompt: prompt ? Number(prompt) : null };
}

/** The human-readable message inside an error body: `{error:{message}}`, `{message}`, `{error:"..."}` or text. */
export function errorBodyMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as unknown;
    if (parsed && typeof parsed === 'object') {
      const record = parsed as Record<string, unknown>;
      const error = record.error;
      if (
        error &&
        typeof error === 'object' &&
        typeof (error as { message?: unknown }).message === 'string'
      ) {
        return (error as { message: string }).message;
      }
      if (typeof error === 'string') return error;
      if (typeof record.message === 'string') return record.message;
      if (typeof record.detail === 'string') return record.detail;
    }
  } catch {
    // not JSON: use the text itself
  }
  return body.trim().slice(0, 2_000);
}

/** Classify a non-2xx answer. */
export function httpError(status: number, body: string): EngineRequestError {
  const message = errorBodyMessage(body);
  const text = `engine answered HTTP ${status}: ${message}`;
  // OpenAI puts `context_length_exceeded` in the error's code rather than its message.
  if (
    status >= 400 &&
    status < 500 &&
    (isContextLengthMessage(message) || /"context_length_exceeded"/.test(body))
  ) {
    return new EngineRequestError('context_length', text, { status, body });
  }
  if (status === 408) return new EngineRequestError('timeout', text, { status, body });
  if (status === 429 || status >= 500) return new EngineRequestError('server', text, { status, body });
  return new EngineRequestError('bad_request', text, { status, body });
}

/** The JSON body of one chat completion request: only what the caller set, no sampling defaults. */
export function chatCompletionBody(
  modelName: string,
  req: ChatRequest,
  opts: { maxTokens: number; sampling?: Sampling },
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: modelName,
    messages: req.messages,
    max_tokens: opts.maxTokens,
  };
  if (req.tools && req.tools.length > 0) body.tools = req.tools;
  if (req.toolChoice !== undefined) body.tool_choice = req.toolChoice;
  for (const [key, value] of Object.entries(opts.sampling ?? {})) {
    if (value !== undefined) body[key] = value;
  }
  return body;
}

const ReplyToolCallSchema = z.object({
  id: z.string().nullish(),
  type: z.string().nullish(),
  function: z.object({
    name: z.string(),
    // Some servers send arguments as an object instead of a JSON string.
    arguments: z.union([z.string(), z.record(z.string(), z.unknown())]).nullish(),
  }),
});

const CompletionSchema = z.object({
  choices: z
    .array(
      z.object({
        message: z.object({
          content: z.string().nullish(),
          tool_calls: z.array(ReplyToolCallSchema).nullish(),
        }),
        finish_reason: z.string().nullish(),
      }),
    )
    .min(1),
  usage: z.object({ prompt_tokens: z.number().nullish(), completion_tokens: z.number().nullish() }).nullish(),
});

/** Turn a 200 body into a ModelReply; a body that is not a chat completion is a server error. */
export function parseCompletion(status: number, body: string, latencyMs: number): ModelReply {
  let parsed: z.infer<typeof CompletionSchema>;
  try {
    parsed = CompletionSchema.parse(JSON.parse(body));
  } catch (err) {
    throw new EngineRequestError('server', `engine answered HTTP ${status} with no chat completion`, {
      status,
      body,
      cause: err,
    });
  }
  const choice = parsed.choices[0]!;
  const toolCalls: ToolCall[] = (choice.message.tool_calls ?? []).map((call) => ({
    ...(call.id ? { id: call.id } : {}),
    type: 'function',
    function: {
      name: call.function.name,
      arguments:
        typeof call.function.arguments === 'string'
          ? call.function.arguments
          : JSON.stringify(call.function.arguments ?? {}),
    },
  }));
  return {
    text: choice.message.content ?? '',
    toolCalls,
    finishReason: choice.finish_reason ?? null,
    promptTokens: parsed.usage?.prompt_tokens ?? null,
    completionTokens: parsed.usage?.completion_tokens ?? null,
    latencyMs,
  };
}

interface RawResponse {
  status: number;
  body: string;
}

/** Why an attempt was cut short by us rather than by the network. */
class AttemptTimeout extends Error {}

/**
 * One POST with a per-attempt timeout and the caller's abort signal. Timers and listeners are set
 * up by hand: AbortSignal.timeout/any per request cost more than the request itself on a fast server.
 */
function postJson(
  target: http.RequestOptions & { protocol: string },
  payload: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<RawResponse> {
  const request = target.protocol === 'https:' ? https.request : http.request;
  return new Promise<RawResponse>((resolve, reject) => {
    let failure: unknown = null;
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      outcome();
    };
    const fail = (err: unknown) => settle(() => reject(failure ?? err));
    const req = request(
      { ...target, headers: { ...target.headers, 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          settle(() =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
          ),
        );
        res.on('error', fail);
        res.on('close', () => {
          if (!res.complete) {
            fail(
              Object.assign(new Error('connection closed before the response ended'), { code: 'ECONNRESET' }),
            );
          }
        });
      },
    );
    const timer = setTimeout(() => {
      failure = new AttemptTimeout();
      req.destroy(failure as Error);
    }, timeoutMs);
    const onAbort = () => {
      failure = signal?.reason;
      req.destroy(new Error('aborted by the caller'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err: NodeJS.ErrnoException) => {
      // A kept-alive socket the server closed while idle fails at once on reuse (Node's docs
      // recommend resending); mark it so the caller resends without a backoff pause.
      const stale =
        req.reusedSocket && failure === null && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
      fail(stale ? Object.assign(err, { staleSocket: true }) : err);
    });
    req.end(payload);
  });
}

function transportError(err: unknown, timeoutMs: number): EngineRequestError {
  if (err instanceof AttemptTimeout) {
    return new EngineRequestError(
      'timeout',
      `engine did not answer within ${Math.round(timeoutMs / 1000)} s`,
    );
  }
  const code = (err as { code?: unknown })?.code;
  const detail = typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
  return new EngineRequestError('network', `could not reach the engine: ${detail}`, { cause: err });
}

/** Pause before retry `retry` (1-based): backoff·2^(retry-1), at most 30 s, ±20 % jitter. */
function backoffDelay(backoffMs: number, retry: number): number {
  const base = Math.min(30_000, backoffMs * 2 ** (retry - 1));
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}

/** A ChatClient for one running engine. */
export function openAIChatClient(
  handle: Pick<EngineHandle, 'baseUrl' | 'apiKey' | 'modelName' | 'socketPath'>,
  opts: ChatClientOptions = {},
): ChatClient {
  const timeoutMs = opts.timeoutMs ?? 3_600_000;
  const retries = opts.retries ?? 3;
  const backoffMs = opts.backoffMs ?? 1_000;
  const url = new URL(`${handle.baseUrl.replace(/\/+$/, '')}/chat/completions`);
  const headers: Record<string, string> = { accept: 'application/json', 'content-type': 'application/json' };
  if (handle.apiKey) headers.authorization = `Bearer ${handle.apiKey}`;
  const target = {
    protocol: url.protocol,
    hostname: url.hostname.replace(/^\[|\]$/g, ''), // IPv6 literals come bracketed
    port: url.port,
    path: `${url.pathname}${url.search}`,
    method: 'POST',
    headers,
    // One pool of kept-alive sockets per client, unbounded like the engine's own request queue; a
    // sandboxed engine is reached through its Unix socket, checked at every connect.
    agent: handle.socketPath
      ? pinnedSocketAgent(handle.socketPath)
      : url.protocol === 'https:'
        ? new https.Agent({ keepAlive: true })
        : new http.Agent({ keepAlive: true }),
  };

  async function attempt(payload: string, signal: AbortSignal | undefined): Promise<ModelReply> {
    signal?.throwIfAborted();
    let started = performance.now();
    let raw: RawResponse;
    for (let staleResends = 0; ; staleResends++) {
      started = performance.now();
      try {
        raw = await postJson(target, payload, timeoutMs, signal);
        break;
      } catch (err) {
        signal?.throwIfAborted(); // the caller's abort is not an engine failure: propagate as is
        if ((err as { staleSocket?: boolean }).staleSocket && staleResends < 3) continue;
        throw transportError(err, timeoutMs);
      }
    }
    const latencyMs = performance.now() - started;
    if (raw.status < 200 || raw.status >= 300) throw httpError(raw.status, raw.body);
    return parseCompletion(raw.status, raw.body, latencyMs);
  }

  return {
    async chat(req, chatOpts) {
      const payload = JSON.stringify(chatCompletionBody(handle.modelName, req, chatOpts));
      for (let tried = 1; ; tried++) {
        try {
          return await attempt(payload, chatOpts.signal);
        } catch (err) {
          if (!(err instanceof EngineRequestError)) throw err;
          err.attempts = tried;
          if (!err.transient || tried > retries) throw err;
        }
        await sleep(backoffDelay(backoffMs, tried), undefined, { signal: chatOpts.signal });
      }
    },
  };
}
