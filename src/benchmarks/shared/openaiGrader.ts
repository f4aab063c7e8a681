import { UserError } from '../../core/errors.ts';
import type { Grader, GraderRequest } from './grader.ts';

/**
 * The LLM grader over any OpenAI-compatible `/chat/completions` endpoint (OpenAI itself, a proxy,
 * a local server). One HTTP call per `complete()`: the benchmarks own their retry schedules
 * (Arena-Hard 3 tries, HealthBench 5), exactly as the reference scripts do.
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
  constructor(status: number, body: string, url: string, model: string) {
    super(`grader ${model} at ${url} answered HTTP ${status}: ${apiErrorText(body)}`);
    this.name = 'GraderHttpError';
    this.status = status;
    this.body = body;
    this.fatal = status === 401 || status === 403 || status === 404;
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
}

interface ChatCompletionBody {
  choices?: Array<{ message?: { content?: unknown; refusal?: unknown }; finish_reason?: unknown }>;
}

export function createOpenAiGrader(options: OpenAiGraderOptions): Grader {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const url = `${baseUrl}/chat/completions`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_GRADER_TIMEOUT_MS;
  const { model, apiKey } = options;

  async function complete(req: GraderRequest, signal?: AbortSignal): Promise<string> {
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
        headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
        body: JSON.stringify(body),
        signal: combined,
      });
      text = await response.text();
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      if (timeout.aborted)
        throw new Error(`grader ${model} at ${url} did not answer within ${timeoutMs / 1000} s`);
      const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
      throw new Error(`cannot reach grader at ${url} (${(err as Error).message}${cause})`, { cause: err });
    }
    if (!response.ok) throw new GraderHttpError(response.status, text, url, model);

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
