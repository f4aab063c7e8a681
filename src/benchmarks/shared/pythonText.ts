/**
 * Python text semantics the reference's scorers depend on: `str.strip()` (whose whitespace set
 * differs from JavaScript's `trim()`), and reading string constants out of pinned Python sources
 * (grader and judge prompts are fetched as `.py` files and never vendored).
 */

// Characters for which CPython's str.isspace() is true (bidi WS/B/S or category Zs).
const PY_WHITESPACE =
  '\\t\\n\\u000b\\u000c\\r\\u001c\\u001d\\u001e\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const LEADING_WS = new RegExp(`^[${PY_WHITESPACE}]+`);
const TRAILING_WS = new RegExp(`[${PY_WHITESPACE}]+$`);

/** `str.strip()` with no argument. */
export function pythonStrip(text: string): string {
  return text.replace(LEADING_WS, '').replace(TRAILING_WS, '');
}

export class PythonSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PythonSourceError';
  }
}

interface Parsed {
  value: string;
  /** Index just past the literal. */
  end: number;
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  "'": "'",
  '"': '"',
  a: '\u0007',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

/**
 * Parse one Python string literal starting at `start` (an optional `r`/`u` prefix, single or
 * triple quotes). Bytes and f-strings are refused: a prompt constant is never one.
 */
export function parsePythonStringLiteral(src: string, start: number): Parsed {
  let i = start;
  let raw = false;
  while (i < src.length && /[rRuUbBfF]/.test(src[i]!)) {
    const p = src[i]!.toLowerCase();
    if (p === 'b' || p === 'f') throw new PythonSourceError(`unsupported ${p}-string at offset ${start}`);
    if (p === 'r') raw = true;
    i++;
  }
  const quote = src[i];
  if (quote !== '"' && quote !== "'") throw new PythonSourceError(`no string literal at offset ${start}`);
  return decodePythonQuoted(src, start, i, {
    raw,
    bytes: false,
    error: (message) => new PythonSourceError(message),
  });
}

export interface QuotedLiteralOptions {
  /** An `r` prefix: backslashes stay, escaping only the closing quote. */
  raw: boolean;
  /** A `b` prefix: ASCII characters only, octal escapes wrap at 0xff, no \u, \U or \N escapes. */
  bytes: boolean;
  /** The caller's error for a malformed literal (prompt readers and the BFCL parser differ). */
  error: (message: string) => Error;
}

/**
 * Decode the quoted part of a Python string literal: the opening quote (single or triple) is at
 * `quoteAt`, after any prefix letters the caller has read into `options`; `start`, where the
 * literal begins, is for messages. Returns the value and the index just past the closing quote.
 */
export function decodePythonQuoted(
  src: string,
  start: number,
  quoteAt: number,
  options: QuotedLiteralOptions,
): Parsed {
  const { raw, bytes, error } = options;
  const quote = src[quoteAt]!;
  const closing = src.startsWith(quote.repeat(3), quoteAt) ? quote.repeat(3) : quote;
  const triple = closing.length === 3;
  let i = quoteAt + closing.length;
  let value = '';
  for (;;) {
    if (i >= src.length) throw error(`unterminated string literal at offset ${start}`);
    if (src.startsWith(closing, i)) return { value, end: i + closing.length };
    const c = src[i]!;
    if ((c === '\n' || c === '\r') && !triple) throw error(`unterminated string literal at offset ${start}`);
    if (bytes && c.charCodeAt(0) > 127) {
      throw error(`bytes can only contain ASCII literal characters (offset ${i})`);
    }
    if (c !== '\\') {
      value += c;
      i++;
      continue;
    }
    const next = src[i + 1];
    if (next === undefined) throw error(`unterminated string literal at offset ${start}`);
    if (raw) {
      // A raw literal keeps the backslash; it only stops the next character from closing it.
      value += c + next;
      i += 2;
      continue;
    }
    const escaped = decodeEscape(src, i, bytes, error);
    value += escaped.value;
    i = escaped.end;
  }
}

function decodeEscape(src: string, at: number, bytes: boolean, error: (message: string) => Error): Parsed {
  const next = src[at + 1]!;
  if (next === '\n') return { value: '', end: at + 2 };
  if (next === '\r') return { value: '', end: src[at + 2] === '\n' ? at + 3 : at + 2 };
  const simple = SIMPLE_ESCAPES[next];
  if (simple !== undefined) return { value: simple, end: at + 2 };
  if (/[0-7]/.test(next)) {
    const digits = /^[0-7]{1,3}/.exec(src.slice(at + 1, at + 4))![0];
    const code = Number.parseInt(digits, 8);
    return { value: String.fromCodePoint(bytes ? code & 0xff : code), end: at + 1 + digits.length };
  }
  const hexLength = next === 'x' ? 2 : !bytes && next === 'u' ? 4 : !bytes && next === 'U' ? 8 : 0;
  if (hexLength > 0) {
    const digits = src.slice(at + 2, at + 2 + hexLength);
    if (!new RegExp(`^[0-9a-fA-F]{${hexLength}}$`).test(digits)) {
      throw error(`truncated \\${next} escape at offset ${at}`);
    }
    const code = Number.parseInt(digits, 16);
    if (code > 0x10ffff) throw error(`illegal Unicode character at offset ${at}`);
    return { value: String.fromCodePoint(code), end: at + 2 + hexLength };
  }
  if (next === 'N' && !bytes) {
    // Named escapes need the Unicode name table; no prompt or BFCL literal uses one, so refuse loudly.
    throw error(`\\N{...} escapes are not supported (offset ${at})`);
  }
  // Python keeps an unknown escape as it is (with a warning).
  return { value: `\\${next}`, end: at + 2 };
}

function skipBlanks(src: string, i: number, newlines: boolean): number {
  let j = i;
  for (;;) {
    const c = src[j];
    if (c === ' ' || c === '\t' || c === '\f') j++;
    else if (c === '\\' && src[j + 1] === '\n') j += 2;
    else if (newlines && (c === '\n' || c === '\r')) j++;
    else if (newlines && c === '#') {
      while (j < src.length && src[j] !== '\n') j++;
    } else return j;
  }
}

const LITERAL_START = /^[rRuU]{0,2}["']/;

/**
 * The value of a string expression at `start`: one literal, adjacent literals (implicit
 * concatenation, inside parentheses across lines), or a module-level name bound to one.
 */
export function parsePythonStringExpression(src: string, start: number): Parsed {
  let i = skipBlanks(src, start, false);
  const parenthesised = src[i] === '(';
  if (parenthesised) i = skipBlanks(src, i + 1, true);
  const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
  if (name && !LITERAL_START.test(src.slice(i))) {
    const value = pythonAssignedString(src, name[0]);
    let end = i + name[0].length;
    if (parenthesised) end = expectClosingParen(src, end);
    return { value, end };
  }
  let value = '';
  let parts = 0;
  for (;;) {
    if (!LITERAL_START.test(src.slice(i))) break;
    const lit = parsePythonStringLiteral(src, i);
    value += lit.value;
    parts++;
    i = skipBlanks(src, lit.end, parenthesised);
  }
  if (parts === 0) throw new PythonSourceError(`expected a string at offset ${start}`);
  if (parenthesised) return { value, end: expectClosingParen(src, i) };
  return { value, end: i };
}

function expectClosingParen(src: string, at: number): number {
  const i = skipBlanks(src, at, true);
  if (src[i] !== ')') throw new PythonSourceError(`expected ')' at offset ${i}`);
  return i + 1;
}

/**
 * The string bound at module level by `NAME = <string expression>`; a directly following
 * `.strip()` is applied, as Python would.
 */
export function pythonAssignedString(src: string, name: string): string {
  const assignment = new RegExp(`^${name}\\s*(?::\\s*str\\s*)?=\\s*`, 'm').exec(src);
  if (!assignment) throw new PythonSourceError(`no module-level assignment to ${name}`);
  const parsed = parsePythonStringExpression(src, assignment.index + assignment[0].length);
  return src.startsWith('.strip()', parsed.end) ? pythonStrip(parsed.value) : parsed.value;
}

/**
 * In a dict display, the string value of `outerKey: { ..., innerKey: <string>, ... }` (e.g.
 * `JUDGE_SETTINGS["creative_writing"]["system_prompt"]`). Comments and other entries are skipped
 * by reading the source token by token, so a commented-out line never matches.
 */
export function pythonNestedDictString(src: string, outerKey: string, innerKey: string): string {
  const open = findDictValueStart(src, 0, src.length, outerKey, true);
  if (open === null || src[open] !== '{')
    throw new PythonSourceError(`no dict entry ${JSON.stringify(outerKey)}`);
  const close = matchingBrace(src, open);
  const valueStart = findDictValueStart(src, open + 1, close, innerKey);
  if (valueStart === null) {
    throw new PythonSourceError(`no key ${JSON.stringify(innerKey)} inside ${JSON.stringify(outerKey)}`);
  }
  return parsePythonStringExpression(src, valueStart).value;
}

/** Position of the value after `"key":` in [from, to) (at brace depth 0 unless anyDepth), or null. */
function findDictValueStart(
  src: string,
  from: number,
  to: number,
  key: string,
  anyDepth = false,
): number | null {
  let depth = 0;
  let i = from;
  while (i < to) {
    const c = src[i]!;
    if (c === '#') {
      while (i < to && src[i] !== '\n') i++;
    } else if (startsLiteral(src, i)) {
      const lit = parsePythonStringLiteral(src, i);
      i = lit.end;
      if ((anyDepth || depth === 0) && lit.value === key) {
        const colon = skipBlanks(src, i, true);
        if (src[colon] === ':') return skipBlanks(src, colon + 1, true);
      }
    } else {
      if (c === '{' || c === '[' || c === '(') depth++;
      else if (c === '}' || c === ']' || c === ')') depth--;
      i++;
    }
  }
  return null;
}

/** A string literal (with its prefix letters) starts at i, not in the middle of a name. */
function startsLiteral(src: string, i: number): boolean {
  if (i > 0 && /[A-Za-z0-9_]/.test(src[i - 1]!)) return false;
  return /^[rRuUbBfF]{0,2}["']/.test(src.slice(i, i + 3));
}

function matchingBrace(src: string, open: number): number {
  let depth = 0;
  let i = open;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '#') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (startsLiteral(src, i)) {
      i = parsePythonStringLiteral(src, i).end;
    } else {
      if (c === '{' || c === '[' || c === '(') depth++;
      else if (c === '}' || c === ']' || c === ')') {
        depth--;
        if (depth === 0) return i;
      }
      i++;
    }
  }
  throw new PythonSourceError(`unbalanced brace at offset ${open}`);
}
