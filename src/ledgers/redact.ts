/**
 * Secret redaction for every stored artifact (traces, logs, ledgers, snapshots). Two kinds of match:
 *  - known values (the keys the harness holds): the whole value, and any run of at least 10 of its
 *    leading characters (a truncated key in a log line still identifies it), as the reference does;
 *  - common key shapes (OpenAI, Anthropic, OpenRouter, Google, Hugging Face, GitHub, Slack), whoever's
 *    key it is.
 * Each becomes `[REDACTED:<name>]`. The streaming variant cuts its input only at line breaks (or
 * whitespace in very long lines) and never inside a match, so a key split across chunks is still found.
 */
import { chmodSync, createReadStream, createWriteStream, renameSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';

export interface KnownSecret {
  name: string;
  value: string;
}

/** Key shapes, most specific first (an `sk-ant-` key is named as Anthropic's, not as a generic `sk-`). */
export const SECRET_PATTERNS: ReadonlyArray<{ name: string; pattern: RegExp }> = [
  { name: 'anthropic-key', pattern: /(?<![A-Za-z0-9])sk-ant-[A-Za-z0-9_-]{16,}/g },
  { name: 'openrouter-key', pattern: /(?<![A-Za-z0-9])sk-or-[A-Za-z0-9_-]{16,}/g },
  { name: 'openai-project-key', pattern: /(?<![A-Za-z0-9])sk-proj-[A-Za-z0-9_-]{16,}/g },
  // Generic `sk-` keys (OpenAI legacy, DeepSeek, Moonshot...): long and with a digit, unlike `sk-learn-...`.
  { name: 'openai-key', pattern: /(?<![A-Za-z0-9])sk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{32,}/g },
  { name: 'google-api-key', pattern: /(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35,}/g },
  { name: 'hf-token', pattern: /(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}/g },
  {
    name: 'github-token',
    pattern: /(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})/g,
  },
  { name: 'slack-token', pattern: /(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}/g },
];

/** Shortest known value redacted at all, and the prefix length that identifies a longer one. */
const MIN_KNOWN_LENGTH = 8;
const PREFIX_LENGTH = 10;

/** Environment variables that hold credentials (`*_API_KEY`, `*_TOKEN`, `*_SECRET`, ...) as known secrets. */
export function knownSecretsFromEnv(env: NodeJS.ProcessEnv = process.env): KnownSecret[] {
  const secrets: KnownSecret[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!value || value.length < MIN_KNOWN_LENGTH) continue;
    if (
      /(?:API_KEY|_TOKEN|_SECRET|_PASSWORD|ACCESS_KEY)$/i.test(name) ||
      /^(?:HF_TOKEN|HUGGING_FACE_HUB_TOKEN)$/.test(name)
    )
      secrets.push({ name, value });
  }
  return secrets;
}

interface Match {
  start: number;
  end: number;
  name: string;
  known: boolean;
}

export interface Redactor {
  (text: string): string;
  /** How many secrets `text` holds (overlapping matches count once). */
  count(text: string): number;
  /** A byte stream transform (UTF-8) that redacts what passes through. */
  stream(): Transform & { replacements: number };
}

/** A redactor for these known values (plain strings are named `secret`) plus the common key shapes. */
export function createRedactor(knownSecrets: ReadonlyArray<string | KnownSecret>): Redactor {
  const known = knownSecrets
    .map((entry) => (typeof entry === 'string' ? { name: 'secret', value: entry } : entry))
    .filter((entry) => entry.value.length >= MIN_KNOWN_LENGTH)
    // Longest first, so one value that is the prefix of another is not matched instead of it.
    .sort((a, b) => b.value.length - a.value.length);

  const findMatches = (text: string): Match[] => {
    const found: Match[] = [];
    for (const secret of known) {
      const probe = secret.value.length > PREFIX_LENGTH ? secret.value.slice(0, PREFIX_LENGTH) : secret.value;
      for (let at = text.indexOf(probe); at >= 0; at = text.indexOf(probe, at + 1)) {
        let length = probe.length;
        while (length < secret.value.length && text[at + length] === secret.value[length]) length += 1;
        found.push({ start: at, end: at + length, name: secret.name, known: true });
      }
    }
    for (const { name, pattern } of SECRET_PATTERNS) {
      pattern.lastIndex = 0;
      for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
        found.push({ start: match.index, end: match.index + match[0].length, name, known: false });
      }
    }
    // By position; at the same start a known value's name wins over a shape's, then the longer match.
    found.sort((a, b) => a.start - b.start || Number(b.known) - Number(a.known) || b.end - a.end);
    // Overlapping matches merge into one span named after the first, so no part of either leaks.
    const merged: Match[] = [];
    for (const match of found) {
      const last = merged.at(-1);
      if (last && match.start < last.end) last.end = Math.max(last.end, match.end);
      else merged.push({ ...match });
    }
    return merged;
  };

  const apply = (text: string, matches: Match[]): string => {
    if (matches.length === 0) return text;
    let out = '';
    let at = 0;
    for (const match of matches) {
      out += `${text.slice(at, match.start)}[REDACTED:${match.name}]`;
      at = match.end;
    }
    return out + text.slice(at);
  };

  const redact = ((text: string) => apply(text, findMatches(text))) as Redactor;
  redact.count = (text: string) => findMatches(text).length;
  redact.stream = () => createRedactingStream(findMatches, apply);
  return redact;
}

/** Lines longer than this are cut at whitespace (or, failing that, anywhere outside a match). */
const MAX_HELD_CHARS = 64 * 1024;

function createRedactingStream(
  findMatches: (text: string) => Match[],
  apply: (text: string, matches: Match[]) => string,
): Transform & { replacements: number } {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  const stream = new Transform({
    transform(chunk: Buffer | string, _encoding: BufferEncoding, callback: TransformCallback) {
      pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
      let cut = pending.lastIndexOf('\n') + 1;
      if (cut === 0 && pending.length > MAX_HELD_CHARS) {
        const space = Math.max(pending.lastIndexOf(' '), pending.lastIndexOf('\t'));
        cut = space > 0 ? space + 1 : pending.length - 1024;
      }
      if (cut <= 0) return callback();
      const matches = findMatches(pending);
      // Never cut inside a match: move the cut back to where the match starts.
      for (const match of matches) if (match.start < cut && match.end >= cut) cut = match.start;
      if (cut <= 0) return callback();
      const head = matches.filter((match) => match.end <= cut);
      stream.replacements += head.length;
      const out = apply(pending.slice(0, cut), head);
      pending = pending.slice(cut);
      callback(null, out);
    },
    flush(callback: TransformCallback) {
      pending += decoder.end();
      const matches = findMatches(pending);
      stream.replacements += matches.length;
      callback(null, apply(pending, matches));
    },
  }) as Transform & { replacements: number };
  stream.replacements = 0;
  return stream;
}

/** Redact a file in place (written to a temporary file, then renamed). Returns how many secrets it held. */
export async function redactFile(path: string, redactor: Redactor): Promise<number> {
  const temporary = join(dirname(path), `.${basename(path)}.redacting-${process.pid}`);
  const transform = redactor.stream();
  try {
    await pipeline(createReadStream(path), transform, createWriteStream(temporary));
    if (transform.replacements === 0) {
      unlinkSync(temporary);
      return 0;
    }
    chmodSync(temporary, statSync(path).mode & 0o7777);
    renameSync(temporary, path);
    return transform.replacements;
  } catch (err) {
    try {
      unlinkSync(temporary);
    } catch {
      // never created
    }
    throw err;
  }
}
