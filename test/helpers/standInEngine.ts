import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small OpenAI chat-completions server that stands in for vLLM in tests and in the harness
 * overhead benchmark. It computes its reply from the request (so a scorer can check it), checks
 * the bearer key and the model name, rejects requests that overflow a configured context window
 * with vLLM's own 400 message, and can be told to fail, stall or hang.
 *
 * Reply rules:
 * - without tools: `ANSWER: n`, n = the last number in the last user message (`ANSWER: none` if none);
 * - with tools: one hermes-style tool call of the first tool, arguments built from its parameters
 *   (numbers get n, strings "stand-in", booleans true), content null, finish_reason `tool_calls`.
 */

export type StandInFault =
  /** Answer with this status and body (vLLM's error shape when body is omitted). */
  | { kind: 'status'; status: number; body?: string }
  /** Wait this long before handling the request normally. */
  | { kind: 'delay'; ms: number }
  /** Never answer (until the server closes). */
  | { kind: 'hang' }
  /** Destroy the connection without an answer. */
  | { kind: 'drop' }
  /** Answer 200 with a body that is not a chat completion. */
  | { kind: 'garbage' };

export interface StandInOptions {
  host?: string;
  /** 0 (default): any free port. */
  port?: number;
  /** Bearer key required on /v1 routes; default a random one. Empty string: no auth. */
  apiKey?: string;
  /** Model name the server accepts; default `stand-in-model`. */
  modelName?: string;
  /** Context window in tokens (a token = a whitespace-separated word here). Default unlimited. */
  contextWindow?: number;
  /** Added before every chat reply, to model a server's per-request latency. */
  latencyMs?: number;
  /** Answer /health with 503 until this many ms after start (a model still loading). */
  healthyAfterMs?: number;
}

export interface ReceivedRequest {
  path: string;
  authorization: string | undefined;
  body: Record<string, unknown>;
}

export interface StandInStats {
  /** Every HTTP request, any route. */
  requests: number;
  /** POST /v1/chat/completions requests. */
  chatRequests: number;
  inFlight: number;
  maxInFlight: number;
}

export interface StandInEngine {
  baseUrl: string;
  host: string;
  port: number;
  apiKey: string;
  modelName: string;
  stats: StandInStats;
  /** Bodies of chat requests, in arrival order. */
  received: ReceivedRequest[];
  /** Faults applied to the next chat requests, one per request, in order. */
  injectFaults(...faults: StandInFault[]): void;
  close(): Promise<void>;
}

/** Whitespace-separated words: the stand-in's idea of a token. */
export function standInTokenCount(text: string): number {
  const words = text.trim().split(/\s+/);
  return words[0] === '' ? 0 : words.length;
}

function messageText(message: unknown): string {
  const content = (message as { content?: unknown })?.content;
  return typeof content === 'string' ? content : '';
}

function lastNumber(text: string): string | null {
  const numbers = text.match(/-?\d+(?:\.\d+)?/g);
  return numbers ? numbers[numbers.length - 1]! : null;
}

function vllmError(status: number, type: string, message: string, param: string | null = null): string {
  return JSON.stringify({ error: { message, type, param, code: status } });
}

function argumentsFor(parameters: unknown, n: string | null): Record<string, unknown> {
  const properties = (parameters as { properties?: Record<string, { type?: string }> })?.properties ?? {};
  const args: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(properties)) {
    const type = spec?.type;
    if (type === 'integer' || type === 'number') args[name] = n === null ? 0 : Number(n);
    else if (type === 'boolean') args[name] = true;
    else if (type === 'array') args[name] = [];
    else if (type === 'object' || type === 'dict') args[name] = {};
    else args[name] = 'stand-in';
  }
  return args;
}

export async function startStandInEngine(opts: StandInOptions = {}): Promise<StandInEngine> {
  const host = opts.host ?? '127.0.0.1';
  const apiKey = opts.apiKey ?? randomBytes(12).toString('hex');
  const modelName = opts.modelName ?? 'stand-in-model';
  const startedAt = Date.now();
  const stats: StandInStats = { requests: 0, chatRequests: 0, inFlight: 0, maxInFlight: 0 };
  const received: ReceivedRequest[] = [];
  const faults: StandInFault[] = [];

  const send = (res: http.ServerResponse, status: number, body: string) => {
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const chat = async (req: http.IncomingMessage, res: http.ServerResponse, raw: string) => {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      send(res, 400, vllmError(400, 'BadRequestError', 'request body is not JSON'));
      return;
    }
    received.push({ path: req.url ?? '', authorization: req.headers.authorization, body });
    const fault = faults.shift();
    if (fault?.kind === 'hang') return; // the socket stays open until close()
    if (fault?.kind === 'drop') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status') {
      send(
        res,
        fault.status,
        fault.body ?? vllmError(fault.status, 'InternalServerError', 'injected failure'),
      );
      return;
    }
    if (fault?.kind === 'garbage') {
      send(res, 200, '{"not":"a completion"}');
      return;
    }
    const pause = (fault?.kind === 'delay' ? fault.ms : 0) + (opts.latencyMs ?? 0);
    if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));

    if (body.model !== modelName) {
      send(
        res,
        404,
        vllmError(404, 'NotFoundError', `The model \`${String(body.model)}\` does not exist.`, 'model'),
      );
      return;
    }
    const messages = Array.isArray(body.messages) ? body.messages : [];
    const tools = Array.isArray(body.tools) ? body.tools : [];
    const promptTokens =
      messages.reduce((sum: number, m) => sum + standInTokenCount(messageText(m)), 0) +
      (tools.length > 0 ? standInTokenCount(JSON.stringify(tools)) : 0);
    const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : null;
    if (opts.contextWindow !== undefined) {
      const window = opts.contextWindow;
      // vLLM 0.11's wording for both checks, so the client's classifier sees real messages.
      if (promptTokens >= window) {
        send(
          res,
          400,
          vllmError(
            400,
            'BadRequestError',
            `This model's maximum context length is ${window} tokens. However, your request has ${promptTokens} input tokens. Please reduce the length of the input messages. None`,
          ),
        );
        return;
      }
      if (maxTokens !== null && promptTokens + maxTokens > window) {
        send(
          res,
          400,
          vllmError(
            400,
            'BadRequestError',
            `'max_tokens' or 'max_completion_tokens' is too large: ${maxTokens}. This model's maximum context length is ${window} tokens and your request has ${promptTokens} input tokens (${maxTokens} > ${window} - ${promptTokens}). None`,
          ),
        );
        return;
      }
    }

    const lastUser = [...messages].reverse().find((m) => (m as { role?: unknown })?.role === 'user');
    const n = lastNumber(messageText(lastUser));
    const id = `chatcmpl-${randomBytes(8).toString('hex')}`;
    let message: Record<string, unknown>;
    let finishReason: string;
    let completionTokens: number;
    if (tools.length > 0 && body.tool_choice !== 'none') {
      const fn = (tools[0] as { function?: { name?: string; parameters?: unknown } }).function ?? {};
      const args = JSON.stringify(argumentsFor(fn.parameters, n));
      message = {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: `chatcmpl-tool-${randomBytes(8).toString('hex')}`,
            type: 'function',
            function: { name: fn.name ?? 'unknown', arguments: args },
          },
        ],
      };
      finishReason = 'tool_calls';
      completionTokens = standInTokenCount(args) + 2;
    } else {
      let text = `ANSWER: ${n ?? 'none'}`;
      let words = text.split(' ');
      finishReason = 'stop';
      if (maxTokens !== null && words.length > maxTokens) {
        words = words.slice(0, Math.max(0, maxTokens));
        text = words.join(' ');
        finishReason = 'length';
      }
      message = { role: 'assistant', content: text, tool_calls: [] };
      completionTokens = words.length;
    }
    send(
      res,
      200,
      JSON.stringify({
        id,
        object: 'chat.completion',
        created: Math.floor(Date.now() / 1000),
        model: modelName,
        choices: [{ index: 0, message, finish_reason: finishReason, logprobs: null }],
        usage: {
          prompt_tokens: promptTokens,
          completion_tokens: completionTokens,
          total_tokens: promptTokens + completionTokens,
        },
      }),
    );
  };

  const server = http.createServer((req, res) => {
    stats.requests++;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = (req.url ?? '').split('?')[0];
      if (path === '/health') {
        const ready = Date.now() - startedAt >= (opts.healthyAfterMs ?? 0);
        res.writeHead(ready ? 200 : 503).end();
        return;
      }
      if (path?.startsWith('/v1/') && apiKey !== '' && req.headers.authorization !== `Bearer ${apiKey}`) {
        send(res, 401, JSON.stringify({ error: 'Unauthorized' }));
        return;
      }
      if (path === '/v1/models' && req.method === 'GET') {
        send(
          res,
          200,
          JSON.stringify({
            object: 'list',
            data: [
              {
                id: modelName,
                object: 'model',
                created: 0,
                owned_by: 'vllm',
                max_model_len: opts.contextWindow,
              },
            ],
          }),
        );
        return;
      }
      if (path === '/v1/chat/completions' && req.method === 'POST') {
        stats.chatRequests++;
        stats.inFlight++;
        stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
        let counted = true;
        const done = () => {
          if (counted) stats.inFlight--;
          counted = false;
        };
        res.on('close', done);
        chat(req, res, Buffer.concat(chunks).toString('utf8')).catch((err: unknown) => {
          if (!res.headersSent) send(res, 500, vllmError(500, 'InternalServerError', String(err)));
        });
        return;
      }
      send(res, 404, JSON.stringify({ detail: 'Not Found' }));
    });
  });
  // Generous keep-alive so reused client sockets are not closed under a benchmark's feet.
  server.keepAliveTimeout = 60_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: opts.port ?? 0 }, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    baseUrl: `http://${host}:${port}/v1`,
    host,
    port,
    apiKey,
    modelName,
    stats,
    received,
    injectFaults: (...more) => {
      faults.push(...more);
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
