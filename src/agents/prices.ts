/**
 * List prices of the models the reference's agents ran with, in US dollars per million tokens, as the
 * providers publish them for their standard (non-batch, short-context) tier. The model-call relay
 * prices every call with this table; a model that is not listed gets a null cost rather than a guess.
 */

export interface ModelPrice {
  inputPerMTok: number;
  outputPerMTok: number;
  /** Cached input read back (Anthropic cache hits, OpenAI `cached_tokens`, Gemini cached content). */
  cacheReadPerMTok?: number;
  /** Anthropic prompt-cache writes (5-minute tier). */
  cacheWritePerMTok?: number;
}

export type PriceTable = Readonly<Record<string, ModelPrice>>;

/** When the table was last checked against the providers' pricing pages. */
export const PRICES_CHECKED = '2026-03';

const opus45: ModelPrice = {
  inputPerMTok: 5,
  outputPerMTok: 25,
  cacheReadPerMTok: 0.5,
  cacheWritePerMTok: 6.25,
};
const opus4: ModelPrice = {
  inputPerMTok: 15,
  outputPerMTok: 75,
  cacheReadPerMTok: 1.5,
  cacheWritePerMTok: 18.75,
};
const sonnet4: ModelPrice = {
  inputPerMTok: 3,
  outputPerMTok: 15,
  cacheReadPerMTok: 0.3,
  cacheWritePerMTok: 3.75,
};
const haiku45: ModelPrice = {
  inputPerMTok: 1,
  outputPerMTok: 5,
  cacheReadPerMTok: 0.1,
  cacheWritePerMTok: 1.25,
};
const gpt5: ModelPrice = { inputPerMTok: 1.25, outputPerMTok: 10, cacheReadPerMTok: 0.125 };
const gpt52: ModelPrice = { inputPerMTok: 1.75, outputPerMTok: 14, cacheReadPerMTok: 0.175 };

/**
 * Keys are model names or name prefixes: `claude-sonnet-4-5` also prices `claude-sonnet-4-5-20250929`.
 * The longest matching key wins.
 */
export const PRICES: PriceTable = {
  'claude-opus-4-6': opus45,
  'claude-opus-4-5': opus45,
  'claude-opus-4-1': opus4,
  'claude-opus-4': opus4,
  'claude-sonnet-4-6': sonnet4,
  'claude-sonnet-4-5': sonnet4,
  'claude-sonnet-4': sonnet4,
  'claude-haiku-4-5': haiku45,
  'claude-3-5-haiku': { inputPerMTok: 0.8, outputPerMTok: 4, cacheReadPerMTok: 0.08, cacheWritePerMTok: 1 },
  'gpt-5': gpt5,
  'gpt-5-codex': gpt5,
  'gpt-5.1': gpt5,
  'gpt-5.1-codex': gpt5,
  'gpt-5.1-codex-max': gpt5,
  'gpt-5.2': gpt52,
  'gpt-5.2-codex': gpt52,
  'gpt-5.3-codex': gpt52,
  'gpt-5-mini': { inputPerMTok: 0.25, outputPerMTok: 2, cacheReadPerMTok: 0.025 },
  'gpt-5-nano': { inputPerMTok: 0.05, outputPerMTok: 0.4, cacheReadPerMTok: 0.005 },
  'gemini-3-pro-preview': { inputPerMTok: 2, outputPerMTok: 12, cacheReadPerMTok: 0.2 },
  'gemini-3-flash-preview': { inputPerMTok: 0.5, outputPerMTok: 3, cacheReadPerMTok: 0.05 },
  'gemini-2.5-pro': { inputPerMTok: 1.25, outputPerMTok: 10, cacheReadPerMTok: 0.125 },
  'gemini-2.5-flash': { inputPerMTok: 0.3, outputPerMTok: 2.5, cacheReadPerMTok: 0.03 },
  'gemini-2.5-flash-lite': { inputPerMTok: 0.1, outputPerMTok: 0.4, cacheReadPerMTok: 0.01 },
};

/** Strip what callers put around a model id: `models/` (Gemini paths), `provider/` (OpenCode). */
function bareModelName(model: string): string {
  const withoutModels = model.startsWith('models/') ? model.slice('models/'.length) : model;
  const slash = withoutModels.lastIndexOf('/');
  return (slash >= 0 ? withoutModels.slice(slash + 1) : withoutModels).toLowerCase();
}

/**
 * What may follow a listed name and still be the same model: a snapshot date (`-20250929`,
 * `-2025-08-07`), `-latest`, a Vertex-style `@version` or a context tag such as `[1m]`. A newer model
 * (`claude-opus-4-7`) is deliberately not priced as an older one.
 */
const SNAPSHOT_SUFFIX = /^(?:-\d{8}|-\d{4}-\d{2}-\d{2}|-latest|@[\w.-]+|\[\w+\])$/;

/** The price of a model: exact key, else the key the name is a snapshot of; null when unlisted. */
export function priceOf(model: string | null, table: PriceTable = PRICES): ModelPrice | null {
  if (!model) return null;
  const name = bareModelName(model);
  if (table[name]) return table[name];
  for (const key of Object.keys(table)) {
    if (name.startsWith(key) && SNAPSHOT_SUFFIX.test(name.slice(key.length))) return table[key]!;
  }
  return null;
}

export interface TokenCounts {
  /** Input tokens not read from or written to a cache. */
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
}

/** Dollar cost of one call, or null when the model has no price. */
export function costOf(model: string | null, tokens: TokenCounts, table: PriceTable = PRICES): number | null {
  const price = priceOf(model, table);
  if (!price) return null;
  const perToken = (perMTok: number) => perMTok / 1_000_000;
  return (
    tokens.inputTokens * perToken(price.inputPerMTok) +
    tokens.outputTokens * perToken(price.outputPerMTok) +
    tokens.cacheReadTokens * perToken(price.cacheReadPerMTok ?? price.inputPerMTok) +
    tokens.cacheWriteTokens * perToken(price.cacheWritePerMTok ?? price.inputPerMTok)
  );
}
