/**
 * The model-call relay: the only way an agent's CLI reaches its model provider. The CLI inside the
 * sandbox is given a per-trial relay token as its API key and the relay's URL as its base URL; the relay
 * checks the token, swaps in the real key (which stays in the harness's memory), forwards the request,
 * streams the answer back unchanged, and appends one ModelCallEvent per call with the model, the
 * tokens and the cost. With a dollar budget it refuses further calls once the budget is spent and tells
 * the harness, which stops the agent.
 *
 * Routes: `/<provider>/<rest>` goes to `<upstream of provider><rest>`, e.g. `/anthropic/v1/messages` to
 * `https://api.anthropic.com/v1/messages`.
 */
import { appendFileSync, chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import zlib from 'node:zlib';
import { costOf, PRICES, type PriceTable, type TokenCounts } from '../agents/prices.ts';
import type { ProviderId } from '../agents/types.ts';
import type { ModelCallEvent } from '../core/trial.ts';

export const RELAY_PROVIDERS: readonly ProviderId[] = ['anthropic', 'openai', 'gemini', 'opencode'];

/** The providers' public API roots (the relay appends the CLI's path, e.g. `/v1/messages`). */
export const DEFAULT_UPSTREAMS: Readonly<Record<ProviderId, string>> = {
  anthropic: 'https://api.anthropic.com',
  openai: 'https://api.openai.com',
  gemini: 'https://generativelanguage.googleapis.com',
  opencode: 'https://opencode.ai/zen',
};

export interface ModelRelayOptions {
  listen: { socketPath: string } | { port: number; host?: string };
  /** Base URL per provider, e.g. `{ anthropic: 'https://api.anthropic.com' }`. */
  upstreams: Partial<Record<ProviderId, string>>;
  /** Real credentials from the host environment; held in memory only. A provider without one is forwarded without a credential. */
  realKeys: Partial<Record<ProviderId, string>>;
  /** The trial's token: the only credential the relay accepts. */
  relayToken: string;
  /** Planted fake keys: a call that carries one is refused and recorded as `decoy`. */
  decoyKeys?: readonly string[];
  ledgerPath: string;
  /** Refuse calls once this many dollars have been spent (priced calls only). */
  budgetUsd?: number;
  prices?: PriceTable;
}

export interface RelayTotals {
  calls: number;
  refusedCalls: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  costUsd: number;
  /** Calls whose model has no price (their cost is not in `costUsd`). */
  unpricedCalls: number;
}

export interface BudgetExceeded {
  budgetUsd: number;
  spentUsd: number;
}

export interface ModelRelay {
  /** `http://127.0.0.1:<port>` when listening on TCP, null on a Unix socket. */
  url: string | null;
  socketPath: string | null;
  /** Resolves once the spent dollars reach the budget (never without a budget). */
  budgetExceeded: Promise<BudgetExceeded>;
  isBudgetExceeded(): boolean;
  totals(): RelayTotals;
  close(): Promise<void>;
}

type Credential = ModelCallEvent['credential'];

/** Where a caller can put its key; every place is checked and every place holding the token is swapped. */
interface CredentialSlot {
  kind: 'x-api-key' | 'x-goog-api-key' | 'authorization' | 'query-key';
  value: string;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'accept-encoding',
]);

const MAX_REQUEST_BYTES = 64 * 1024 * 1024;
/** Non-streamed answers are parsed for usage only up to this size (they are forwarded whole regardless). */
const MAX_PARSED_BODY_BYTES = 32 * 1024 * 1024;

function credentialSlots(headers: IncomingHttpHeaders, url: URL): CredentialSlot[] {
  const slots: CredentialSlot[] = [];
  const header = (name: string) => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const apiKey = header('x-api-key');
  if (apiKey) slots.push({ kind: 'x-api-key', value: apiKey.trim() });
  const googKey = header('x-goog-api-key');
  if (googKey) slots.push({ kind: 'x-goog-api-key', value: googKey.trim() });
  const authorization = header('authorization');
  if (authorization) {
    const match = /^\s*Bearer\s+(.*)$/i.exec(authorization);
    slots.push({ kind: 'authorization', value: (match ? match[1]! : authorization).trim() });
  }
  const queryKey = url.searchParams.get('key');
  if (queryKey) slots.push({ kind: 'query-key', value: queryKey.trim() });
  return slots;
}

function classify(slots: CredentialSlot[], relayToken: string, decoys: ReadonlySet<string>): Credential {
  if (slots.length === 0) return 'none';
  if (slots.some((slot) => decoys.has(slot.value))) return 'decoy';
  if (slots.every((slot) => slot.value === relayToken)) return 'relay-token';
  return 'other';
}

// ---- usage extraction: one function for every provider's JSON, streamed or not ----

interface CallUsage extends TokenCounts {
  model: string | null;
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? Math.max(0, Math.round(value)) : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Provider usage objects in ptb's convention: `inputTokens` excludes cached input (Anthropic reports it
 * that way; OpenAI and Gemini count cached tokens inside the prompt total, so they are subtracted).
 */
function normaliseUsage(usage: Record<string, unknown>): Partial<TokenCounts> {
  if ('prompt_tokens' in usage || 'completion_tokens' in usage) {
    const details = isObject(usage.prompt_tokens_details) ? usage.prompt_tokens_details : {};
    const cached = num(details.cached_tokens) ?? 0;
    const prompt = num(usage.prompt_tokens);
    return {
      inputTokens: prompt === undefined ? undefined : Math.max(0, prompt - cached),
      outputTokens: num(usage.completion_tokens),
      cacheReadTokens: cached,
    };
  }
  if ('promptTokenCount' in usage || 'candidatesTokenCount' in usage) {
    const cached = num(usage.cachedContentTokenCount) ?? 0;
    const prompt = num(usage.promptTokenCount);
    const candidates = num(usage.candidatesTokenCount);
    const thoughts = num(usage.thoughtsTokenCount) ?? 0;
    return {
      inputTokens: prompt === undefined ? undefined : Math.max(0, prompt - cached),
      outputTokens: candidates === undefined && thoughts === 0 ? undefined : (candidates ?? 0) + thoughts,
      cacheReadTokens: cached,
    };
  }
  if (isObject(usage.input_tokens_details) || isObject(usage.output_tokens_details)) {
    // OpenAI Responses API: input_tokens includes cached_tokens, output_tokens includes reasoning.
    const details = isObject(usage.input_tokens_details) ? usage.input_tokens_details : {};
    const cached = num(details.cached_tokens) ?? 0;
    const input = num(usage.input_tokens);
    return {
      inputTokens: input === undefined ? undefined : Math.max(0, input - cached),
      outputTokens: num(usage.output_tokens),
      cacheReadTokens: cached,
    };
  }
  // Anthropic Messages: input_tokens excludes cache reads and writes, which are counted apart.
  return {
    inputTokens: num(usage.input_tokens),
    outputTokens: num(usage.output_tokens),
    cacheReadTokens: num(usage.cache_read_input_tokens),
    cacheWriteTokens: num(usage.cache_creation_input_tokens),
  };
}

/** Fold one response object or stream event into the call's usage (later values replace earlier ones). */
function absorb(target: CallUsage, event: unknown): void {
  if (Array.isArray(event)) {
    for (const item of event) absorb(target, item);
    return;
  }
  if (!isObject(event)) return;
  const merge = (usage: unknown) => {
    if (!isObject(usage)) return;
    for (const [key, value] of Object.entries(normaliseUsage(usage))) {
      if (value !== undefined) target[key as keyof TokenCounts] = value;
    }
  };
  const setModel = (model: unknown) => {
    if (typeof model === 'string' && model && !target.model) target.model = model;
  };
  // Anthropic stream: message_start carries the message (input usage), message_delta the output count.
  if (isObject(event.message) && event.type === 'message_start') {
    setModel(event.message.model);
    merge(event.message.usage);
  }
  // OpenAI Responses stream: response.created/.completed/.incomplete/.failed carry the response object.
  if (isObject(event.response) && typeof event.type === 'string' && event.type.startsWith('response.')) {
    setModel(event.response.model);
    merge(event.response.usage);
  }
  setModel(event.model);
  setModel(event.modelVersion);
  merge(event.usage);
  merge(event.usageMetadata);
}

/** Watches the bytes going back to the caller and extracts usage, without holding up or altering them. */
class UsageTap extends Transform {
  readonly usage: CallUsage;
  private readonly sse: boolean;
  private readonly decoder = new StringDecoder('utf8');
  private readonly inflater: zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | null;
  private pending = '';
  private eventData: string[] = [];
  private body: Buffer[] = [];
  private bodyBytes = 0;
  private bodyTooLarge = false;

  constructor(contentType: string, contentEncoding: string, usage: CallUsage) {
    super();
    this.usage = usage;
    this.sse = contentType.includes('text/event-stream');
    const encoding = contentEncoding.trim().toLowerCase();
    this.inflater =
      encoding === 'gzip'
        ? zlib.createGunzip()
        : encoding === 'deflate'
          ? zlib.createInflate()
          : encoding === 'br'
            ? zlib.createBrotliDecompress()
            : null;
    this.inflater?.on('data', (chunk: Buffer) => this.inspect(chunk));
    this.inflater?.on('error', () => {
      // usage is best effort; the caller still gets the bytes
    });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.inflater) this.inflater.write(chunk);
    else this.inspect(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const finish = () => {
      this.finishInspection();
      done();
    };
    if (this.inflater) {
      this.inflater.once('end', finish);
      this.inflater.once('error', finish);
      this.inflater.end();
    } else finish();
  }

  /** Parse what arrived so far even if the stream never ends (caller went away). */
  finishInspection(): void {
    if (this.sse) {
      this.consumeText(`${this.decoder.end()}\n\n`);
      return;
    }
    if (this.bodyTooLarge || this.body.length === 0) return;
    try {
      absorb(this.usage, JSON.parse(Buffer.concat(this.body).toString('utf8')));
    } catch {
      // not JSON (an HTML error page, a truncated body): no usage
    }
    this.body = [];
  }

  private inspect(chunk: Buffer): void {
    if (this.sse) {
      this.consumeText(this.decoder.write(chunk));
      return;
    }
    if (this.bodyTooLarge) return;
    this.bodyBytes += chunk.length;
    if (this.bodyBytes > MAX_PARSED_BODY_BYTES) {
      this.bodyTooLarge = true;
      this.body = [];
      return;
    }
    this.body.push(chunk);
  }

  private consumeText(text: string): void {
    this.pending += text;
    let newline = this.pending.indexOf('\n');
    while (newline >= 0) {
      const line = this.pending.slice(0, newline).replace(/\r$/, '');
      this.pending = this.pending.slice(newline + 1);
      if (line === '') this.dispatchEvent();
      else if (line.startsWith('data:')) this.eventData.push(line.slice(5).replace(/^ /, ''));
      newline = this.pending.indexOf('\n');
    }
    // A single line longer than the parse cap is dropped rather than held.
    if (this.pending.length > MAX_PARSED_BODY_BYTES) this.pending = '';
  }

  private dispatchEvent(): void {
    if (this.eventData.length === 0) return;
    const data = this.eventData.join('\n');
    this.eventData = [];
    if (data.trim() === '[DONE]') return;
    try {
      absorb(this.usage, JSON.parse(data));
    } catch {
      // a keep-alive or non-JSON event
    }
  }
}

function requestModel(provider: string, path: string, body: unknown): string | null {
  if (isObject(body) && typeof body.model === 'string' && body.model) return body.model;
  // Gemini names the model in the path: /v1beta/models/<model>:generateContent
  const match = /\/models\/([^/:?]+)(?::|$)/.exec(path);
  if (match && (provider === 'gemini' || !isObject(body) || body.model === undefined)) {
    return decodeURIComponent(match[1]!);
  }
  return null;
}

function requestStreams(path: string, url: URL, body: unknown): boolean {
  if (isObject(body) && body.stream === true) return true;
  return path.includes(':streamGenerateContent') || url.searchParams.get('alt') === 'sse';
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        reject(new Error(`request body larger than ${MAX_REQUEST_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ type: 'error', error: { type, code: type, message, status } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export async function startModelRelay(options: ModelRelayOptions): Promise<ModelRelay> {
  const prices = options.prices ?? PRICES;
  const decoys = new Set((options.decoyKeys ?? []).filter((key) => key.length > 0));
  const upstreams = new Map<string, URL>();
  for (const [provider, base] of Object.entries(options.upstreams)) {
    if (base) upstreams.set(provider, new URL(base));
  }
  mkdirSync(dirname(options.ledgerPath), { recursive: true });
  const totals: RelayTotals = {
    calls: 0,
    refusedCalls: 0,
    inputTokens: 0,
    outputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    costUsd: 0,
    unpricedCalls: 0,
  };
  let exceeded = false;
  let resolveBudget!: (value: BudgetExceeded) => void;
  const budgetExceeded = new Promise<BudgetExceeded>((resolve) => {
    resolveBudget = resolve;
  });
  const keepAlive = {
    http: new http.Agent({ keepAlive: true }),
    https: new https.Agent({ keepAlive: true }),
  };

  const record = (event: ModelCallEvent) => {
    appendFileSync(options.ledgerPath, `${JSON.stringify(event)}\n`);
    totals.calls += 1;
    if (event.refused) totals.refusedCalls += 1;
    totals.inputTokens += event.inputTokens;
    totals.outputTokens += event.outputTokens;
    totals.cacheReadTokens += event.cacheReadTokens;
    totals.cacheWriteTokens += event.cacheWriteTokens;
    if (event.costUsd !== null) totals.costUsd += event.costUsd;
    else if (!event.refused && event.inputTokens + event.outputTokens > 0) totals.unpricedCalls += 1;
    if (options.budgetUsd !== undefined && !exceeded && totals.costUsd >= options.budgetUsd) {
      exceeded = true;
      resolveBudget({ budgetUsd: options.budgetUsd, spentUsd: totals.costUsd });
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    const ts = new Date().toISOString();
    const url = new URL(req.url ?? '/', 'http://relay.invalid');
    const [, providerSegment = '', ...restSegments] = url.pathname.split('/');
    const restPath = `/${restSegments.join('/')}`;
    const method = req.method ?? 'GET';
    const base = {
      ts,
      provider: providerSegment,
      method,
      path: restPath,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
      inputTokens: 0,
      outputTokens: 0,
    };
    const slots = credentialSlots(req.headers, url);
    const credential = classify(slots, options.relayToken, decoys);
    let bodyBytes: Buffer;
    try {
      bodyBytes = await readBody(req);
    } catch (err) {
      sendError(res, 413, 'ptb_relay_request_too_large', (err as Error).message);
      return;
    }
    let body: unknown;
    try {
      body = bodyBytes.length > 0 ? JSON.parse(bodyBytes.toString('utf8')) : undefined;
    } catch {
      body = undefined;
    }
    const model = requestModel(providerSegment, restPath, body);
    const stream = requestStreams(restPath, url, body);
    const refuse = (status: number, reason: string, type: string, message: string) => {
      record({
        ...base,
        model,
        status,
        costUsd: null,
        durationMs: performance.now() - started,
        stream,
        refused: reason,
        credential,
      });
      sendError(res, status, type, message);
    };

    const upstream = upstreams.get(providerSegment);
    if (!upstream) {
      const known = RELAY_PROVIDERS.includes(providerSegment as ProviderId);
      refuse(
        404,
        known ? 'no-upstream' : 'unknown-provider',
        'ptb_relay_not_found',
        known
          ? `ptb relay: no upstream is configured for provider '${providerSegment}' in this trial`
          : `ptb relay: unknown provider '${providerSegment}'; use /${[...upstreams.keys()].join(', /')}`,
      );
      return;
    }
    if (credential !== 'relay-token') {
      refuse(
        401,
        credential === 'decoy' ? 'decoy-credential' : `${credential}-credential`,
        'authentication_error',
        'ptb relay: the request must carry this trial’s relay token as its API key',
      );
      return;
    }
    if (exceeded) {
      refuse(
        402,
        'budget',
        'ptb_budget_exceeded',
        `ptb relay: the trial's model budget of $${options.budgetUsd} is spent; no further model calls are allowed`,
      );
      return;
    }

    // Swap the token for the real key in the same place the caller put it.
    const realKey = options.realKeys[providerSegment as ProviderId];
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      headers[name] = value;
    }
    headers['accept-encoding'] = 'identity';
    for (const slot of slots) {
      if (slot.kind === 'query-key') {
        if (realKey) url.searchParams.set('key', realKey);
        else url.searchParams.delete('key');
      } else if (slot.kind === 'authorization') {
        if (realKey) headers.authorization = `Bearer ${realKey}`;
        else delete headers.authorization;
      } else if (realKey) headers[slot.kind] = realKey;
      else delete headers[slot.kind];
    }
    if (bodyBytes.length > 0) headers['content-length'] = String(bodyBytes.length);

    const basePath = upstream.pathname.replace(/\/+$/, '');
    const target = new URL(upstream.href);
    target.pathname = `${basePath}${restPath}`;
    target.search = url.search;
    const client = target.protocol === 'https:' ? https : http;
    const usage: CallUsage = {
      model: null,
      inputTokens: 0,
      outputTokens: 0,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
    };
    let status = 0;
    let tap: UsageTap | null = null;
    let logged = false;
    const finish = (finalStatus: number) => {
      if (logged) return;
      logged = true;
      tap?.finishInspection();
      const callModel = model ?? usage.model;
      const tokens: TokenCounts = {
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
        cacheReadTokens: usage.cacheReadTokens,
        cacheWriteTokens: usage.cacheWriteTokens,
      };
      record({
        ...base,
        ...tokens,
        model: callModel,
        status: finalStatus,
        costUsd: costOf(callModel, tokens, prices),
        durationMs: performance.now() - started,
        stream,
        credential,
      });
    };

    const upstreamReq = client.request(target, {
      method,
      headers,
      agent: target.protocol === 'https:' ? keepAlive.https : keepAlive.http,
    });
    upstreamReq.on('response', (upstreamRes) => {
      status = upstreamRes.statusCode ?? 502;
      const responseHeaders: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(upstreamRes.headers)) {
        if (value === undefined || (HOP_BY_HOP.has(name) && name !== 'content-length')) continue;
        responseHeaders[name] = value;
      }
      res.writeHead(status, responseHeaders);
      res.flushHeaders();
      tap = new UsageTap(
        String(upstreamRes.headers['content-type'] ?? ''),
        String(upstreamRes.headers['content-encoding'] ?? ''),
        usage,
      );
      upstreamRes.pipe(tap).pipe(res);
      upstreamRes.on('error', () => res.destroy());
      res.on('finish', () => finish(status));
    });
    upstreamReq.on('error', (err) => {
      if (res.headersSent) {
        res.destroy();
        finish(status || 502);
        return;
      }
      finish(502);
      sendError(res, 502, 'ptb_relay_upstream_error', `ptb relay: upstream unreachable (${err.message})`);
    });
    // The caller went away mid-answer: stop the upstream call and record what arrived.
    res.on('close', () => {
      if (!res.writableFinished) {
        upstreamReq.destroy();
        finish(status || 499);
      }
    });
    upstreamReq.end(bodyBytes);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      sendError(res, 500, 'ptb_relay_error', `ptb relay: ${(err as Error).message}`);
    });
  });
  server.keepAliveTimeout = 30_000;
  // Streams of long agent turns can take many minutes.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;

  let socketPath: string | null = null;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('socketPath' in options.listen) {
      socketPath = options.listen.socketPath;
      if (existsSync(socketPath)) unlinkSync(socketPath);
      mkdirSync(dirname(socketPath), { recursive: true });
      server.listen(socketPath, () => {
        // The sandbox side connects as an unprivileged user; the relay token is what guards the relay.
        chmodSync(socketPath!, 0o666);
        resolve();
      });
    } else {
      server.listen(options.listen.port, options.listen.host ?? '127.0.0.1', () => resolve());
    }
  });
  const address = server.address();
  const url =
    address && typeof address === 'object'
      ? `http://${(address as AddressInfo).family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
      : null;

  return {
    url,
    socketPath,
    budgetExceeded,
    isBudgetExceeded: () => exceeded,
    totals: () => ({ ...totals }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          keepAlive.http.destroy();
          keepAlive.https.destroy();
          if (socketPath && existsSync(socketPath)) unlinkSync(socketPath);
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}
