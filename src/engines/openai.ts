import { UserError } from '../core/errors.ts';
import type { Engine, EngineHandle, EngineStartOptions } from './types.ts';

/**
 * The `openai` engine: an OpenAI-compatible endpoint someone else runs (a vLLM server started by
 * hand, a hosted API). ptb starts nothing and stops nothing; start() only checks that the endpoint
 * answers `GET /models` with the given key and, where it lists models, that it serves the one asked for.
 */

export interface OpenAIEndpointOptions {
  /** API root, e.g. `http://host:8000/v1`; a bare origin gets `/v1` appended. Default: PTB_OPENAI_BASE_URL. */
  baseUrl?: string;
  /** Default: PTB_OPENAI_API_KEY, then OPENAI_API_KEY, else none. */
  apiKey?: string;
  /** Name for the request's `model` field. Default: the `model` passed to start(). */
  model?: string;
  /** Refuse to start when the endpoint lists models and this one is not among them. Default true. */
  verifyModel?: boolean;
  /** Limit for the reachability check. Default 15 s. */
  checkTimeoutMs?: number;
  /** Where to read the variables above; default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** Strip trailing slashes; a URL with no path is taken to mean the usual `/v1` root. */
export function normalizeBaseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new UserError(`not a URL: ${raw}`, 'give the API root, e.g. http://127.0.0.1:8000/v1');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UserError(`unsupported URL scheme ${url.protocol} in ${raw}`, 'use an http:// or https:// URL');
  }
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.origin}${path === '' ? '/v1' : path}`;
}

function firstSet(...values: Array<string | undefined>): string | undefined {
  return values.find((value) => value !== undefined && value.trim() !== '')?.trim();
}

async function checkEndpoint(
  baseUrl: string,
  apiKey: string,
  model: string,
  opts: { verifyModel: boolean; timeoutMs: number; signal?: AbortSignal },
): Promise<void> {
  const url = `${baseUrl}/models`;
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, {
      headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
      signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
    });
  } catch (err) {
    opts.signal?.throwIfAborted();
    const cause = (err as { cause?: { code?: string } })?.cause?.code;
    const why = timeout.aborted
      ? `no answer within ${Math.round(opts.timeoutMs / 1000)} s`
      : (cause ?? String(err));
    throw new UserError(
      `cannot reach the OpenAI-compatible endpoint ${url}: ${why}`,
      'check PTB_OPENAI_BASE_URL (or --base-url) and that the server is running',
    );
  }
  const text = await res.text();
  if (res.status === 401 || res.status === 403) {
    throw new UserError(
      `the endpoint ${baseUrl} refused the API key (HTTP ${res.status})`,
      'set PTB_OPENAI_API_KEY (or OPENAI_API_KEY) to a key this endpoint accepts',
    );
  }
  if (res.status === 404) {
    throw new UserError(
      `${url} does not exist (HTTP 404)`,
      'the base URL must be the API root that has /models and /chat/completions, e.g. http://host:8000/v1',
    );
  }
  if (!res.ok) {
    throw new UserError(
      `the endpoint ${url} answered HTTP ${res.status}: ${text.slice(0, 300)}`,
      'check that the server is healthy',
    );
  }
  if (!opts.verifyModel) return;
  let ids: string[] = [];
  try {
    const data = (JSON.parse(text) as { data?: unknown }).data;
    if (Array.isArray(data)) {
      ids = data
        .map((entry) => (entry as { id?: unknown })?.id)
        .filter((id): id is string => typeof id === 'string');
    }
  } catch {
    return; // a listing we cannot read proves reachability, nothing more
  }
  if (ids.length > 0 && !ids.includes(model)) {
    const shown = ids.slice(0, 10).join(', ') + (ids.length > 10 ? `, … (${ids.length} in all)` : '');
    throw new UserError(
      `the endpoint ${baseUrl} does not serve the model "${model}"; it serves: ${shown}`,
      'pass the served model name as the model (for vLLM: its --served-model-name or the path it was started with)',
    );
  }
}

/** An `openai` engine bound to one endpoint; options left out come from the environment at start(). */
export function openaiEngineFor(endpoint: OpenAIEndpointOptions = {}): Engine {
  return {
    id: 'openai',
    description: 'an existing OpenAI-compatible endpoint (PTB_OPENAI_BASE_URL); ptb starts and stops nothing',
    async start(opts: EngineStartOptions): Promise<EngineHandle> {
      const env = endpoint.env ?? process.env;
      const rawUrl = firstSet(endpoint.baseUrl, env.PTB_OPENAI_BASE_URL);
      if (!rawUrl) {
        throw new UserError(
          'the openai engine needs the URL of an OpenAI-compatible endpoint',
          'set PTB_OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1), or use --engine vllm or --engine hf',
        );
      }
      const baseUrl = normalizeBaseUrl(rawUrl);
      const apiKey = firstSet(endpoint.apiKey, env.PTB_OPENAI_API_KEY, env.OPENAI_API_KEY) ?? '';
      const modelName = firstSet(endpoint.model, opts.model);
      if (!modelName) {
        throw new UserError('the openai engine needs a model name', 'pass the model the endpoint serves');
      }
      await checkEndpoint(baseUrl, apiKey, modelName, {
        verifyModel: endpoint.verifyModel ?? true,
        timeoutMs: endpoint.checkTimeoutMs ?? 15_000,
        signal: opts.signal,
      });
      return { baseUrl, apiKey, modelName, stop: async () => {} };
    },
  };
}

/** The `openai` engine configured from the environment. */
export const openaiEngine: Engine = openaiEngineFor();
