import { UserError } from '../../core/errors.ts';
import type { Grader, GraderRequest } from './grader.ts';

/**
 * The LLM grader over any OpenAI-compatible `/chat/completions` endpoint (OpenAI itself, a proxy,
 * a local server). One `complete()` is one call of the reference's `openai` client (2.17.0, the
 * eval image's pin): up to 1 + 2 HTTP requests, the client's own retries on 408, 409, 429, 5xx,
 * timeouts and connection errors, with its backoff (see clientRetryDelayMs). The benchmarks own
 * the scripts' retry schedules around it (Arena-Hard 3 tries, HealthBench 5), exactly as the
 * reference scripts do.
 */

export const DEFAULT_GRADER_MODEL = 'gpt-5-mini';
export const DEFAULT_GRADER_BASE_URL = 'https://api.openai.com/v1';
/** The openai Python client's default request timeout, which the reference runs under. */
export const DEFAULT_GRADER_TIMEOUT_MS = 600_000;

export const GRADER_ENV = {
  baseUrl: 'PTB_GRADER_BASE_URL',
  apiKey: 'PTB_GRADER_API_KEY',
  model: 'PTB_GRADER_MODEL',
  /** Accepted for the default OpenAI endpoint only, so that key never goes to another host. */
  openAiKey: 'OPENAI_API_KEY',
} as const;

/**
 * The endpoint answered with a non-2xx status. `fatal` marks answers that no retry can fix (bad
 * key, no access, unknown model or URL), so retry loops give up at once instead of turning a
 * misconfiguration into a silent score of zero.
 */
export class GraderHttpError extends Error {
  readonly status: number;
  readonly body: string;
  readonly fatal: boolean;
  readonly headers: Headers;
  constructor(status: number, body: string, url: string, model: string, headers: Headers = new Headers()) {
    super(`grader ${model} at ${url} answered HTTP ${status}: ${apiErrorText(body)}`);
    this.name = 'GraderHttpError';
    this.status = status;
    this.body = body;
    this.headers = headers;
    this.fatal = status === 401 || status === 403 || status === 404;
  }
}

/** The grader gave no answer: a timeout, a refused or reset connection. */
export class GraderTransportError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GraderTransportError';
  }
}

/** True for an error that retrying cannot fix (see GraderHttpError.fatal). */
export function isFatalGraderError(err: unknown): boolean {
  return err instanceof GraderHttpError && err.fatal;
}

function apiErrorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string };
    const message = typeof parsed.error === 'string' ? parsed.error : parsed.error?.message;
    if (typeof message === 'string' && message.length > 0) return `${message} (${truncate(body, 2000)})`;
  } catch {
    // not JSON: show the raw text
  }
  return truncate(body, 2000) || '(empty body)';
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export interface OpenAiGraderOptions {
  baseUrl: string;
  apiKey: string;
  model: string;
  timeoutMs?: number;
  /** The client's own retries per call (openai-python's DEFAULT_MAX_RETRIES = 2). */
  maxRetries?: number;
  /** Pause between the client's retries (tests record it instead of waiting). */
  sleep?: Sleep;
  /** Source of the backoff jitter (tests fix it). */
  random?: () => number;
}

/** openai-python 2.17.0 `_constants.py`. */
export const OPENAI_CLIENT_MAX_RETRIES = 2;
const INITIAL_RETRY_DELAY_S = 0.5;
const MAX_RETRY_DELAY_S = 8;

/**
 * Whether the openai client retries a response (`_should_retry`): the server's `x-should-retry`
 * header decides when present; else 408, 409, 429 and every 5xx.
 */
export function clientShouldRetry(status: number, headers: Headers): boolean {
  const header = headers.get('x-should-retry');
  if (header === 'true') return true;
  if (header === 'false') return false;
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

// What Python's float() accepts from a header value (numbers, inf, nan; surrounding spaces).
const PY_FLOAT = /^\s*[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf(?:inity)?|nan)\s*$/i;

function pythonFloat(text: string | null): number | null {
  if (text === null || !PY_FLOAT.test(text)) return null;
  const t = text.trim().toLowerCase();
  if (t.endsWith('nan')) return Number.NaN;
  if (t.endsWith('inf') || t.endsWith('infinity')) return t.startsWith('-') ? -Infinity : Infinity;
  return Number(t);
}

/** `_parse_retry_after_header`: `retry-after-ms`, else `retry-after` as seconds or an HTTP date. */
function retryAfterSeconds(headers: Headers | undefined, now: number): number | null {
  if (!headers) return null;
  const ms = pythonFloat(headers.get('retry-after-ms'));
  if (ms !== null) return ms / 1000;
  const raw = headers.get('retry-after');
  const seconds = pythonFloat(raw);
  if (seconds !== null) return seconds;
  const date = raw === null ? Number.NaN : Date.parse(raw);
  return Number.isNaN(date) ? null : (date - now) / 1000;
}

/**
 * `_calculate_retry_timeout` for the retry after `retriesTaken` earlier ones: the server's
 * Retry-After when 0 < it ≤ 60 s, else min(0.5·2^retriesTaken, 8) s times a jitter in (0.75, 1].
 */
export function clientRetryDelayMs(
  retriesTaken: number,
  headers: Headers | undefined,
  random: () => number = Math.random,
  now = Date.now(),
): number {
  const retryAfter = retryAfterSeconds(headers, now);
  if (retryAfter !== null && retryAfter > 0 && retryAfter <= 60) return retryAfter * 1000;
  const seconds = Math.min(INITIAL_RETRY_DELAY_S * 2 ** Math.min(retriesTaken, 1000), MAX_RETRY_DELAY_S);
  return Math.max(0, seconds * (1 - 0.25 * random())) * 1000;
}

interface ChatCompletionBody {
  choices?: Array<{ message?: { content?: unknown; refusal?: unknown }; finish_reason?: unknown }>;
}

export function createOpenAiGrader(options: OpenAiGraderOptions): Grader {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const url = `${baseUrl}/chat/completions`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_GRADER_TIMEOUT_MS;
  const maxRetries = options.maxRetries ?? OPENAI_CLIENT_MAX_RETRIES;
  const sleep = options.sleep ?? realSleep;
  const random = options.random ?? Math.random;
  const { model, apiKey } = options;

  /** One call of the openai client: its retries inside, the last failure thrown. */
  async function complete(req: GraderRequest, signal?: AbortSignal): Promise<string> {
    for (let retriesTaken = 0; ; retriesTaken++) {
      const outcome = await request(req, retriesTaken, signal);
      if (outcome.ok) return outcome.content;
      if (retriesTaken >= maxRetries || !outcome.retry) throw outcome.error;
      await sleep(clientRetryDelayMs(retriesTaken, outcome.headers, random), signal);
    }
  }

  type Attempt =
    | { ok: true; content: string }
    | { ok: false; error: Error; retry: boolean; headers?: Headers };

  async function request(req: GraderRequest, retriesTaken: number, signal?: AbortSignal): Promise<Attempt> {
    try {
      return { ok: true, content: await send(req, retriesTaken, signal) };
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      if (err instanceof GraderHttpError) {
        return {
          ok: false,
          error: err,
          retry: clientShouldRetry(err.status, err.headers),
          headers: err.headers,
        };
      }
      // No answer at all (timeout, refused, reset): the client retries those too.
      if (err instanceof GraderTransportError) return { ok: false, error: err, retry: true };
      return { ok: false, error: err as Error, retry: false };
    }
  }

  async function send(req: GraderRequest, retriesTaken: number, signal?: AbortSignal): Promise<string> {
    const body: Record<string, unknown> = { model, messages: req.messages };
    if (req.reasoningEffort !== undefined) body.reasoning_effort = req.reasoningEffort;
    if (req.maxCompletionTokens !== undefined) body.max_completion_tokens = req.maxCompletionTokens;
    if (req.maxTokens !== undefined) body.max_tokens = req.maxTokens;
    if (req.temperature !== undefined) body.temperature = req.temperature;

    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${apiKey}`,
          'x-stainless-retry-count': String(retriesTaken),
        },
        body: JSON.stringify(body),
        signal: combined,
      });
      text = await response.text();
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      if (timeout.aborted)
        throw new GraderTransportError(
          `grader ${model} at ${url} did not answer within ${timeoutMs / 1000} s`,
        );
      const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
      throw new GraderTransportError(`cannot reach grader at ${url} (${(err as Error).message}${cause})`, {
        cause: err,
      });
    }
    if (!response.ok) throw new GraderHttpError(response.status, text, url, model, response.headers);

    let parsed: ChatCompletionBody;
    try {
      parsed = JSON.parse(text) as ChatCompletionBody;
    } catch {
      throw new Error(`grader ${model} at ${url} answered with invalid JSON: ${truncate(text, 300)}`);
    }
    const choice = parsed.choices?.[0];
    const content = choice?.message?.content;
    if (typeof content !== 'string') {
      const reason = choice ? `finish_reason=${String(choice.finish_reason)}` : 'no choices';
      throw new Error(`grader ${model} at ${url} returned no message content (${reason})`);
    }
    return content;
  }

  return { model, baseUrl, complete };
}

export interface GraderFlags {
  baseUrl?: string;
  model?: string;
  apiKey?: string;
  timeoutMs?: number;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

/** Grader from CLI flags, then `PTB_GRADER_*` environment variables, then the defaults. */
export function graderFromOptions(flags: GraderFlags, env: NodeJS.ProcessEnv = process.env): Grader {
  const baseUrl = (
    nonEmpty(flags.baseUrl) ??
    nonEmpty(env[GRADER_ENV.baseUrl]) ??
    DEFAULT_GRADER_BASE_URL
  ).replace(/\/+$/, '');
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(baseUrl);
  } catch {
    throw new UserError(
      `grader base URL ${JSON.stringify(baseUrl)} is not a valid URL`,
      `Pass an http(s) URL such as ${DEFAULT_GRADER_BASE_URL} with --grader-base-url or ${GRADER_ENV.baseUrl}.`,
    );
  }
  if (parsedUrl.protocol !== 'http:' && parsedUrl.protocol !== 'https:') {
    throw new UserError(
      `grader base URL ${baseUrl} must use http or https`,
      `Set --grader-base-url or ${GRADER_ENV.baseUrl} to the endpoint's /v1 URL.`,
    );
  }
  const model = nonEmpty(flags.model) ?? nonEmpty(env[GRADER_ENV.model]) ?? DEFAULT_GRADER_MODEL;
  const isOpenAi = parsedUrl.host === new URL(DEFAULT_GRADER_BASE_URL).host;
  const apiKey =
    nonEmpty(flags.apiKey) ??
    nonEmpty(env[GRADER_ENV.apiKey]) ??
    (isOpenAi ? nonEmpty(env[GRADER_ENV.openAiKey]) : undefined);
  if (!apiKey) {
    const accepted = isOpenAi ? `${GRADER_ENV.apiKey} or ${GRADER_ENV.openAiKey}` : GRADER_ENV.apiKey;
    throw new UserError(
      `no API key for the LLM grader (${model} at ${baseUrl})`,
      `Arena-Hard and HealthBench are graded by an LLM. Set ${accepted} (keys are read from the environment only, never from flags); ` +
        `${GRADER_ENV.baseUrl} and ${GRADER_ENV.model} choose another OpenAI-compatible endpoint and model.`,
    );
  }
  if (flags.timeoutMs !== undefined && !(flags.timeoutMs > 0)) {
    throw new UserError(`grader timeout must be positive, got ${flags.timeoutMs} ms`);
  }
  return createOpenAiGrader({ baseUrl, apiKey, model, timeoutMs: flags.timeoutMs });
}

/** A pause between grader retries; injectable so tests need not wait the reference's seconds. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const realSleep: Sleep = (ms, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
