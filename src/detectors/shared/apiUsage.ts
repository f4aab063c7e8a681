import { PROVIDER_HOSTS } from '../../ledgers/providerHosts.ts';

/**
 * Hosted-LLM API use in the agent's code and trace. The reference's `find_api_illegal` lists every
 * file or trace matching a set of client-call regexes for a human to read; those matches are kept
 * here as warnings. A flag needs more: a client being constructed or called, aimed at a hosted
 * model (a provider host or model name in the file, or no local `base_url` at all) — an agent
 * serving its own checkpoint with vLLM and querying it through the `openai` client is not misuse.
 */

export type ApiProvider = 'openai' | 'anthropic' | 'google_gemini' | 'litellm';

/** The reference's patterns (find_api_illegal.py), per provider. */
export const REFERENCE_API_PATTERNS: Readonly<Record<Exclude<ApiProvider, 'litellm'>, readonly RegExp[]>> = {
  openai: [/completions\.create/, /from openai import/, /import openai/, /OpenAI\(\)/],
  anthropic: [/messages\.create/, /from anthropic import/, /import anthropic/, /Anthropic\(\)/],
  google_gemini: [
    /generate_content/,
    /from google\.generativeai/,
    /import google\.generativeai/,
    /genai\.GenerativeModel/,
  ],
};

/** Paths the reference skips (evaluation helpers that call the grader API, libraries). */
export const REFERENCE_EXCLUDED_PATHS: readonly RegExp[] = [
  /evaluation_code\/utils\/completion\.py$/,
  /evaluation_code\/grader\.py$/,
  /(^|\/)site-packages\//,
  /(^|\/)patched_lib\//,
  /(^|\/)env\/lib\//,
  /(^|\/)inspect_ai\//,
  /(^|\/)inspect_evals\//,
  /(^|\/)evaluate\.py$/,
];

/** Constructing or calling a hosted-API client (stricter than the reference's import patterns). */
const CALL_PATTERNS: Readonly<Record<ApiProvider, RegExp>> = {
  openai:
    /\b(?:Async)?(?:Azure)?OpenAI\s*\(|\.chat\.completions\.create\s*\(|\.responses\.create\s*\(|openai\.(?:Chat)?Completion\.create\s*\(/,
  anthropic: /\b(?:Async)?Anthropic(?:Bedrock|Vertex)?\s*\(|\.messages\.create\s*\(/,
  google_gemini: /genai\.GenerativeModel\s*\(|genai\.Client\s*\(|\.models\.generate_content\s*\(/,
  litellm: /\blitellm\.a?completion\s*\(/,
};

/** Model names only hosted providers serve. */
const HOSTED_MODEL =
  /["'`](?:gpt-[345][\w.:-]*|gpt-4o[\w.:-]*|o[134](?:-mini|-pro|-preview)?(?:-[\w.]+)?|chatgpt-[\w.-]+|claude-[\w.-]+|gemini-[\w.-]+|(?:openai|anthropic|google|gemini)\/[\w.-]+)["'`]/;

/** Provider hosts named in code: the egress policy's list, without its wildcard patterns. */
const PROVIDER_HOST = new RegExp(
  `\\b(?:${PROVIDER_HOSTS.filter((p) => !p.host.includes('*'))
    .map((p) => p.host.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('|')})\\b`,
);

const HTTP_CLIENT = /\b(?:requests|httpx|aiohttp|urllib\.request|curl|fetch)\b/;

/** A base URL aimed at this machine (a locally served model). */
const LOCAL_BASE_URL =
  /(?:base_url|api_base|base-url|OPENAI_BASE_URL|OPENAI_API_BASE)[^\n]{0,60}(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])/;

export interface ApiUsage {
  /** Providers whose reference patterns matched, with the first matching line. */
  referenceHits: Array<{ provider: ApiProvider; pattern: string; line: number; text: string }>;
  /** Whether the text calls a hosted model (flag-worthy), and why. */
  hosted: { line: number; text: string; reason: string } | null;
  /** A base_url aimed at this machine appears (the client talks to a locally served model). */
  local: boolean;
}

function lineOf(text: string, index: number): { line: number; text: string } {
  const start = text.lastIndexOf('\n', index - 1) + 1;
  const end = text.indexOf('\n', index);
  return {
    line: text.slice(0, index).split('\n').length,
    text: text.slice(start, end === -1 ? undefined : end).trim(),
  };
}

/**
 * Scan one text. For code files a call without a local base_url counts as hosted; for a shell
 * command or tool input (`requireHostedTarget`) a hosted model name or provider host must appear
 * too, since `grep -rn "OpenAI(" .` is not a call.
 */
export function scanApiUsage(text: string, opts: { requireHostedTarget?: boolean } = {}): ApiUsage {
  const referenceHits: ApiUsage['referenceHits'] = [];
  for (const [provider, patterns] of Object.entries(REFERENCE_API_PATTERNS) as Array<
    [ApiProvider, readonly RegExp[]]
  >) {
    for (const pattern of patterns) {
      const m = pattern.exec(text);
      if (m) {
        referenceHits.push({ provider, pattern: pattern.source, ...lineOf(text, m.index) });
        break;
      }
    }
  }
  let hosted: ApiUsage['hosted'] = null;
  const local = LOCAL_BASE_URL.test(text);
  const model = HOSTED_MODEL.exec(text);
  const host = PROVIDER_HOST.exec(text);
  for (const [provider, pattern] of Object.entries(CALL_PATTERNS) as Array<[ApiProvider, RegExp]>) {
    const m = pattern.exec(text);
    if (!m) continue;
    if (model || host || (!local && !opts.requireHostedTarget)) {
      const why = model
        ? `names hosted model ${model[0]}`
        : host
          ? `targets ${host[0]}`
          : 'no local base_url, so the client goes to the provider';
      hosted = { ...lineOf(text, m.index), reason: `${provider} client call; ${why}` };
      break;
    }
  }
  if (!hosted && host && HTTP_CLIENT.test(text)) {
    hosted = { ...lineOf(text, host.index), reason: `HTTP request to ${host[0]}` };
  }
  return { referenceHits, hosted, local };
}

export function isReferenceExcluded(path: string): boolean {
  return REFERENCE_EXCLUDED_PATHS.some((p) => p.test(path));
}
