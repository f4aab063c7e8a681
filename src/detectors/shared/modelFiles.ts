import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Files of a Hugging Face checkpoint directory, read leniently (a broken file reads as absent). */

export function readJsonObject(path: string): Record<string, unknown> | null {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

export interface ChatTemplate {
  /** File it came from, relative to the model dir. */
  source: string;
  text: string;
}

function templateText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  // Named templates: [{name, template}], compared as a whole.
  if (Array.isArray(value)) {
    const named = value
      .filter(
        (v): v is { name: string; template: string } =>
          typeof v?.name === 'string' && typeof v?.template === 'string',
      )
      .sort((a, b) => a.name.localeCompare(b.name));
    return named.length > 0 ? named.map((v) => `${v.name}\n${v.template}`).join('\n\n') : null;
  }
  return null;
}

/**
 * The chat template a tokenizer loads: chat_template.jinja first (newer transformers save it
 * there), then chat_template.json, then tokenizer_config.json's `chat_template` — the reference's
 * find_different_qwen_chat_templates reads the first and the last in this order.
 */
export function chatTemplateOf(dir: string): ChatTemplate | null {
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja)) return { source: 'chat_template.jinja', text: readFileSync(jinja, 'utf8') };
  const json = readJsonObject(join(dir, 'chat_template.json'));
  const fromJson = templateText(json?.chat_template);
  if (fromJson !== null) return { source: 'chat_template.json', text: fromJson };
  const config = readJsonObject(join(dir, 'tokenizer_config.json'));
  const fromConfig = templateText(config?.chat_template);
  if (fromConfig !== null) return { source: 'tokenizer_config.json', text: fromConfig };
  return null;
}

/** Templates are compared after trimming outer whitespace, as the reference does. */
export function sameTemplate(a: string, b: string): boolean {
  return a.trim() === b.trim();
}

export interface TokenInventory {
  /** Every added-token string (special or not). */
  added: Set<string>;
  /** Strings marked special, or named in special_tokens_map.json. */
  special: Set<string>;
  /** Whether any tokenizer file was found. */
  found: boolean;
}

function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string')
    return (value as { content: string }).content;
  return null;
}

/** Added and special tokens from tokenizer_config.json, tokenizer.json and special_tokens_map.json. */
export function tokenInventory(dir: string): TokenInventory {
  const inv: TokenInventory = { added: new Set(), special: new Set(), found: false };
  const config = readJsonObject(join(dir, 'tokenizer_config.json'));
  if (config) {
    inv.found = true;
    const decoder = config.added_tokens_decoder;
    if (decoder && typeof decoder === 'object') {
      for (const entry of Object.values(decoder as Record<string, unknown>)) {
        const content = tokenContent(entry);
        if (content === null) continue;
        inv.added.add(content);
        if ((entry as { special?: unknown }).special === true) inv.special.add(content);
      }
    }
    for (const key of [
      'bos_token',
      'eos_token',
      'unk_token',
      'pad_token',
      'sep_token',
      'cls_token',
      'mask_token',
    ]) {
      const content = tokenContent(config[key]);
      if (content !== null) inv.special.add(content);
    }
    for (const extra of Array.isArray(config.additional_special_tokens)
      ? config.additional_special_tokens
      : []) {
      const content = tokenContent(extra);
      if (content !== null) inv.special.add(content);
    }
  }
  const tokenizerJson = join(dir, 'tokenizer.json');
  if (existsSync(tokenizerJson)) {
    inv.found = true;
    // tokenizer.json can be tens of MB; only its added_tokens list matters here.
    const parsed = readJsonObject(tokenizerJson);
    for (const entry of Array.isArray(parsed?.added_tokens) ? parsed.added_tokens : []) {
      const content = tokenContent(entry);
      if (content === null) continue;
      inv.added.add(content);
      if ((entry as { special?: unknown }).special === true) inv.special.add(content);
    }
  }
  const map = readJsonObject(join(dir, 'special_tokens_map.json'));
  if (map) {
    inv.found = true;
    for (const [key, value] of Object.entries(map)) {
      const values = key === 'additional_special_tokens' && Array.isArray(value) ? value : [value];
      for (const v of values) {
        const content = tokenContent(v);
        if (content !== null) inv.special.add(content);
      }
    }
  }
  return inv;
}

/** Template family an evaluation derives from an architecture or model id (reference order). */
export function modelFamily(name: string): 'qwen' | 'gemma' | 'llama' | 'smollm' | null {
  const lower = name.toLowerCase();
  for (const family of ['gemma', 'llama', 'qwen', 'smollm'] as const)
    if (lower.includes(family)) return family;
  return null;
}

/**
 * A model in the local Hugging Face cache (`$HF_HOME/hub/models--org--name/snapshots/<rev>`),
 * newest snapshot first; null when absent. Lets a submission be compared with its base model
 * when the trial recorded no base path (imported upstream runs).
 */
export function findCachedModel(repoId: string, env: NodeJS.ProcessEnv): string | null {
  const hfHome =
    env.HF_HOME?.trim() || join(env.XDG_CACHE_HOME?.trim() || join(homedir(), '.cache'), 'huggingface');
  const roots = [env.HF_HUB_CACHE?.trim(), join(hfHome, 'hub')].filter((r): r is string => Boolean(r));
  for (const root of roots) {
    const snapshots = join(root, `models--${repoId.replace(/\//g, '--')}`, 'snapshots');
    if (!existsSync(snapshots)) continue;
    const candidates = readdirSync(snapshots)
      .map((rev) => join(snapshots, rev))
      .filter((dir) => existsSync(join(dir, 'config.json')))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
    if (candidates[0]) return candidates[0];
  }
  return null;
}
