import type { ScoringRules } from '../../core/protocols.ts';
import type { Score } from '../../core/schemas.ts';
import { ScorerFailure } from '../types.ts';
import { pythonStrip } from './pythonText.ts';

/**
 * inspect_ai's `match()` scorer logic as the reference's eval image runs it: the inspect fork
 * rank-and-file/inspect_ai_vllm_stdout @ b2a0762 (`scorer/_common.py` `match_str`,
 * `_util/text.py` `strip_numeric_punctuation` and `str_to_float`, `scorer/_unicode.py`), reproduced
 * with Python's string semantics: `str.isnumeric()`, `casefold()`, `re` with Unicode `\s`/`\d`,
 * `float()` and `format(x, ".5g")`.
 *
 * With `numeric=True` the rule is:
 *   - the target (stripped, casefolded) must satisfy `str.isnumeric()` (so "-3", "2.5" and
 *     "1,000" are NOT numeric targets and fall back to the text rule below);
 *   - `$ , £ € * _` are deleted from the reply (`*` and `_` being markdown emphasis), and every `.`
 *     not followed by a decimal digit;
 *   - the reply is split on whitespace and, for location "end", the LAST token that is numeric
 *     once its dots are removed is taken (else the last token as it is);
 *   - a token is parsed from its leading number (`1.2.3` is 1.2), then both sides are normalized
 *     to 5 significant digits and compared with `endswith` (so an extracted "25" matches a target
 *     of "5": a quirk of the reference, kept).
 * Otherwise both sides lose surrounding ASCII whitespace/punctuation and are compared as text.
 *
 * The reference's final evaluation in protocol v1.1 keeps that extraction and compares by value
 * (upstream `src/eval/exact_numeric_match.py` @ 1b6c1a9): see lastNumberExact and
 * signedLastNumberExact.
 */

export type MatchLocation = 'begin' | 'end' | 'any' | 'exact';

export interface MatchResult {
  /** What inspect records as the score's `answer`: the normalized number, or the stripped reply. */
  answer: string;
  matched: boolean;
}

/**
 * The reference raises here (e.g. a last token ".10.00.50", or a superscript power that overflows),
 * which fails the sample in inspect. Callers decide how to count it.
 */
export class NumericNormalizeError extends Error {
  constructor(readonly token: string) {
    super(`could not parse ${JSON.stringify(token)} as a number (inspect's normalize_number raises here)`);
    this.name = 'NumericNormalizeError';
  }
}

// Python's `re` `\s` on str patterns = the characters for which str.isspace() is true.
const PY_WS_CLASS =
  '\\t\\n\\u000b\\u000c\\r\\u001c\\u001d\\u001e\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_WS_RUN = new RegExp(`[${PY_WS_CLASS}]+`, 'u');
const ASCII_PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
const ASCII_WHITESPACE = ' \t\n\r\u000b\u000c';

/** `str.casefold()`: upper- then lower-casing gives the full folding (ß → ss) for the cases that matter. */
export function casefold(text: string): string {
  return text.toUpperCase().toLowerCase();
}

/** `s.strip(chars)`. */
function stripChars(text: string, chars: string): string {
  const set = new Set(chars);
  const cps = Array.from(text);
  let start = 0;
  let end = cps.length;
  while (start < end && set.has(cps[start]!)) start++;
  while (end > start && set.has(cps[end - 1]!)) end--;
  return cps.slice(start, end).join('');
}

/** inspect's `strip_punctuation`: `s.strip(string.whitespace + string.punctuation)`. */
export function stripPunctuation(text: string): string {
  return stripChars(text, ASCII_WHITESPACE + ASCII_PUNCTUATION);
}

/**
 * The fork's `strip_numeric_punctuation`: `re.sub(r"[$,£,€,*,_]", "", s)` then
 * `re.sub(r"\.(?=\s|$|\D)", "", s)`, i.e. drop `$ , £ € * _` and every `.` not followed by a
 * decimal digit.
 */
export function stripNumericPunctuation(text: string): string {
  return text.replace(/[$,£€*_]/gu, '').replace(/\.(?!\p{Nd})/gu, '');
}

// ---- str.isnumeric() and unicodedata values -------------------------------------------------

// CJK ideographs carrying a Unihan numeric value (Python counts them as numeric), limited to the
// ones inspect's numeral parser knows.
const CH_DIGITS: Readonly<Record<string, number>> = {
  零: 0,
  〇: 0,
  '○': 0,
  一: 1,
  二: 2,
  三: 3,
  四: 4,
  五: 5,
  六: 6,
  七: 7,
  八: 8,
  九: 9,
  壹: 1,
  贰: 2,
  貳: 2,
  叁: 3,
  參: 3,
  肆: 4,
  伍: 5,
  陆: 6,
  陸: 6,
  柒: 7,
  捌: 8,
  玖: 9,
  两: 2,
  兩: 2,
  幺: 1,
};
const CH_ALT_TENS: Readonly<Record<string, number>> = { 廿: 20, 卅: 30, 卌: 40 };
const CH_SMALL_UNITS: Readonly<Record<string, number>> = {
  十: 10,
  拾: 10,
  百: 100,
  佰: 100,
  千: 1000,
  仟: 1000,
};
const CH_LARGE_UNITS: Readonly<Record<string, number>> = {
  万: 10_000,
  萬: 10_000,
  亿: 100_000_000,
  億: 100_000_000,
  兆: 1_000_000_000_000,
};
const CH_NUMERIC = new Set(
  [
    ...Object.keys(CH_DIGITS),
    ...Object.keys(CH_ALT_TENS),
    ...Object.keys(CH_SMALL_UNITS),
    ...Object.keys(CH_LARGE_UNITS),
  ].filter((c) => c !== '○'),
);

/** `str.isnumeric()`: non-empty and every character has a Unicode numeric type. */
export function isPythonNumeric(text: string): boolean {
  if (text.length === 0) return false;
  for (const ch of text) {
    if (!/\p{N}/u.test(ch) && !CH_NUMERIC.has(ch)) return false;
  }
  return true;
}

const ND = /^\p{Nd}$/u;

/** `unicodedata.decimal(ch)`: Nd digits come in runs of ten consecutive code points starting at 0. */
function decimalValue(ch: string): number | null {
  const cp = ch.codePointAt(0)!;
  if (cp >= 0x30 && cp <= 0x39) return cp - 0x30;
  if (!ND.test(ch)) return null;
  let start = cp;
  while (ND.test(String.fromCodePoint(start - 1))) start--;
  return (cp - start) % 10;
}

// unicodedata.digit for non-Nd characters (superscripts, circled and dingbat digits).
const DIGIT_RUNS: ReadonlyArray<readonly [number, number, number]> = [
  [0x2070, 0x2070, 0],
  [0x00b9, 0x00b9, 1],
  [0x00b2, 0x00b3, 2],
  [0x2074, 0x2079, 4],
  [0x2080, 0x2089, 0],
  [0x2460, 0x2468, 1],
  [0x2474, 0x247c, 1],
  [0x2488, 0x2490, 1],
  [0x24ea, 0x24ea, 0],
  [0x24f5, 0x24fd, 1],
  [0x2776, 0x277e, 1],
  [0x2780, 0x2788, 1],
  [0x278a, 0x2792, 1],
  [0x1f100, 0x1f100, 0],
  [0x1f101, 0x1f10a, 0],
];

function digitValue(ch: string): number | null {
  const dec = decimalValue(ch);
  if (dec !== null) return dec;
  const cp = ch.codePointAt(0)!;
  for (const [from, to, first] of DIGIT_RUNS) if (cp >= from && cp <= to) return first + cp - from;
  return null;
}

// unicodedata.numeric for single non-digit characters: fractions, Roman numerals, numbers ≥ 10.
const NUMERIC_SINGLE: ReadonlyMap<number, number> = new Map<number, number>([
  [0x00bc, 1 / 4],
  [0x00bd, 1 / 2],
  [0x00be, 3 / 4],
  [0x2150, 1 / 7],
  [0x2151, 1 / 9],
  [0x2152, 1 / 10],
  [0x2153, 1 / 3],
  [0x2154, 2 / 3],
  [0x2155, 1 / 5],
  [0x2156, 2 / 5],
  [0x2157, 3 / 5],
  [0x2158, 4 / 5],
  [0x2159, 1 / 6],
  [0x215a, 5 / 6],
  [0x215b, 1 / 8],
  [0x215c, 3 / 8],
  [0x215d, 5 / 8],
  [0x215e, 7 / 8],
  [0x215f, 1],
  [0x2189, 0],
  [0x2180, 1000],
  [0x2181, 5000],
  [0x2182, 10000],
  [0x2185, 6],
  [0x2186, 50],
  [0x2187, 50000],
  [0x2188, 100000],
  [0x24fe, 10],
  [0x277f, 10],
  [0x2789, 10],
  [0x2793, 10],
]);
const ROMAN = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 50, 100, 500, 1000];

function numericValue(ch: string): number | null {
  const digit = digitValue(ch);
  if (digit !== null) return digit;
  const cp = ch.codePointAt(0)!;
  const single = NUMERIC_SINGLE.get(cp);
  if (single !== undefined) return single;
  if (cp >= 0x2160 && cp <= 0x216f) return ROMAN[cp - 0x2160]!;
  if (cp >= 0x2170 && cp <= 0x217f) return ROMAN[cp - 0x2170]!;
  if (cp >= 0x2469 && cp <= 0x2473) return cp - 0x2469 + 10;
  if (cp >= 0x247d && cp <= 0x2487) return cp - 0x247d + 10;
  if (cp >= 0x2491 && cp <= 0x249b) return cp - 0x2491 + 10;
  if (cp >= 0x24eb && cp <= 0x24f4) return cp - 0x24eb + 11;
  const chinese = CH_DIGITS[ch] ?? CH_ALT_TENS[ch] ?? CH_SMALL_UNITS[ch] ?? CH_LARGE_UNITS[ch];
  return chinese ?? null;
}

// ---- float() / str_to_float / unicode_number_to_float ----------------------------------------

/** Python `float(s)` for a string of numeric characters and dots: only Nd digits are accepted. */
function pythonFloat(text: string): number | null {
  let ascii = '';
  for (const ch of text) {
    if (ch === '.') ascii += '.';
    else {
      const d = decimalValue(ch);
      if (d === null) return null;
      ascii += String(d);
    }
  }
  return /^(?:\d+\.?\d*|\.\d+)$/.test(ascii) ? Number(ascii) : null;
}

const SUPERSCRIPT_DIGITS = '⁰¹²³⁴⁵⁶⁷⁸⁹';

/** Python `int(s)` for the characters that can reach it here (Nd digits only). */
function pythonInt(text: string): number | null {
  if (text.length === 0) return null;
  let value = 0;
  for (const ch of text) {
    const d = decimalValue(ch);
    if (d === null) return null;
    value = value * 10 + d;
  }
  return value;
}

// The fork's `str_to_float` fraction table.
const STR_TO_FLOAT_FRACTIONS: Readonly<Record<string, number>> = {
  '½': 0.5,
  '⅓': 1 / 3,
  '⅔': 2 / 3,
  '¼': 0.25,
  '¾': 0.75,
  '⅕': 0.2,
  '⅖': 0.4,
  '⅗': 0.6,
  '⅘': 0.8,
  '⅙': 1 / 6,
  '⅚': 5 / 6,
  '⅐': 1 / 7,
  '⅛': 0.125,
  '⅜': 0.375,
  '⅝': 0.625,
  '⅞': 0.875,
  '⅑': 1 / 9,
  '⅒': 0.1,
};

// `re.match(r"^([+-]?\d+(?:\.\d+)?)", base)`: the leading number of the base part.
const LEADING_FLOAT = /^([+-]?\p{Nd}+(?:\.\p{Nd}+)?)/u;

/** Python `float()` of a LEADING_FLOAT match (sign, Nd digits, at most one dot). */
function signedFloat(text: string): number {
  const sign = text.startsWith('-') ? -1 : 1;
  const body = text.startsWith('-') || text.startsWith('+') ? text.slice(1) : text;
  return sign * pythonFloat(body)!;
}

/**
 * The fork's `str_to_float`: null where it raises ValueError (the caller falls back to the
 * unicode parser). Fraction characters anywhere add to the base, superscripts start the exponent,
 * and the base is its LEADING number ("1.2.3" → 1.2). A power that overflows raises OverflowError
 * in Python, which nothing catches: NumericNormalizeError here.
 */
function strToFloat(text: string): number | null {
  if (text.length === 0) return null;
  const chars = Array.from(text);
  if (chars.length === 1 && chars[0]! in STR_TO_FLOAT_FRACTIONS) return STR_TO_FLOAT_FRACTIONS[chars[0]!]!;
  let basePart = '';
  let fraction: string | null = null;
  let exponentPart = '';
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch in STR_TO_FLOAT_FRACTIONS) {
      if (fraction !== null) return null;
      fraction = ch;
    } else if (SUPERSCRIPT_DIGITS.includes(ch)) {
      exponentPart = chars.slice(i).join('');
      break;
    } else basePart += ch;
  }
  let base = 0;
  if (basePart.length > 0) {
    const leading = LEADING_FLOAT.exec(basePart);
    if (!leading) return null;
    base = signedFloat(leading[1]!);
  }
  if (fraction !== null)
    base = base < 0 ? base - STR_TO_FLOAT_FRACTIONS[fraction]! : base + STR_TO_FLOAT_FRACTIONS[fraction]!;
  else if (basePart.length === 0) base = 1;
  if (exponentPart.length === 0) return base;
  const exponent = pythonInt(
    Array.from(exponentPart, (c) =>
      SUPERSCRIPT_DIGITS.includes(c) ? String(SUPERSCRIPT_DIGITS.indexOf(c)) : c,
    ).join(''),
  );
  if (exponent === null) return null;
  if (base === 1) return 1;
  const power = base ** exponent;
  if (!Number.isFinite(power) && Number.isFinite(base)) throw new NumericNormalizeError(text);
  return power;
}

function parseChineseNumber(text: string): number | null {
  let integerPart = text;
  let fracPart = '';
  const dot = text.indexOf('.');
  if (dot >= 0) {
    integerPart = text.slice(0, dot);
    fracPart = text.slice(dot + 1);
  }
  let intValue = 0;
  const hasUnits = Array.from(integerPart).some(
    (c) => c in CH_SMALL_UNITS || c in CH_LARGE_UNITS || c in CH_ALT_TENS,
  );
  if (!hasUnits) {
    let digits = '';
    for (const ch of integerPart) {
      const d = digitValue(ch) ?? CH_DIGITS[ch];
      if (d === undefined || d === null) return null;
      digits += String(d);
    }
    intValue = digits.length > 0 ? Number(digits) : 0;
  } else {
    let total = 0;
    let section = 0;
    let number = 0;
    for (const ch of integerPart) {
      if (ch in CH_ALT_TENS) section += CH_ALT_TENS[ch]!;
      else if (ch === '零' || ch === '〇' || ch === '○') continue;
      else if (ch in CH_DIGITS) number = CH_DIGITS[ch]!;
      else if (digitValue(ch) !== null) number = digitValue(ch)!;
      else if (ch in CH_SMALL_UNITS) {
        section += (number || 1) * CH_SMALL_UNITS[ch]!;
        number = 0;
      } else if (ch in CH_LARGE_UNITS) {
        section += number;
        number = 0;
        total += section * CH_LARGE_UNITS[ch]!;
        section = 0;
      } else return null;
    }
    intValue = total + section + number;
  }
  let frac = 0;
  let place = 0.1;
  for (const ch of fracPart) {
    const d = digitValue(ch) ?? CH_DIGITS[ch];
    if (d === undefined || d === null) return null;
    frac += d * place;
    place /= 10;
  }
  return intValue + frac;
}

function parseCoreNumber(text: string): number | null {
  if (text.length === 0) return null;
  const chars = Array.from(text);
  if (chars.some((c) => c in CH_DIGITS || c in CH_SMALL_UNITS || c in CH_LARGE_UNITS || c in CH_ALT_TENS)) {
    const chinese = parseChineseNumber(text);
    if (chinese !== null) return chinese;
  }
  let out = '';
  let seenDecimal = false;
  for (const ch of chars) {
    if (ch === '.') {
      if (seenDecimal) return null;
      seenDecimal = true;
      out += '.';
      continue;
    }
    const d = digitValue(ch) ?? CH_DIGITS[ch];
    if (d === undefined || d === null) return chars.length === 1 ? numericValue(ch) : null;
    out += String(d);
  }
  if (out.replace(/\./g, '').length === 0) return null;
  const value = Number(out);
  return Number.isNaN(value) ? null : value;
}

/** The fallback parser (`scorer/_unicode.py`) for the numeric-character tokens float() refuses. */
function unicodeNumberToFloat(text: string): number | null {
  const chars = Array.from(text);
  if (chars.length === 1) return numericValue(chars[0]!);
  let end = chars.length;
  while (end > 0 && SUPERSCRIPT_DIGITS.includes(chars[end - 1]!)) end--;
  let exponent: number | null = null;
  let baseChars = chars;
  if (end < chars.length && end > 0) {
    exponent = Number(
      chars
        .slice(end)
        .map((c) => SUPERSCRIPT_DIGITS.indexOf(c))
        .join(''),
    );
    baseChars = chars.slice(0, end);
  }
  const fractions = baseChars
    .map((c, i) => ({ i, v: numericValue(c) }))
    .filter(({ v }) => v !== null && v > 0 && v < 1);
  let base: number | null;
  if (fractions.length > 1) return null;
  if (fractions.length === 1) {
    const { i, v } = fractions[0]!;
    if (i !== baseChars.length - 1) return null;
    const head = baseChars.slice(0, i).join('');
    const headValue = head.length > 0 ? parseCoreNumber(head) : 0;
    base = headValue === null ? null : headValue + v!;
  } else base = parseCoreNumber(baseChars.join(''));
  if (base === null) return null;
  if (exponent === null) return base;
  const power = base ** exponent;
  // Python raises on an overflowing float power; the parser turns that into ValueError.
  return Number.isFinite(power) || !Number.isFinite(base) ? power : null;
}

// ---- format(x, ".Ng") ------------------------------------------------------------------------

/** Exact decimal expansion of a finite non-zero double: |x| = 0.digits × 10^exp10. */
function exactDecimal(x: number): { digits: string; exp10: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const biasedExp = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & 0xfffffffffffffn;
  let exp2: number;
  if (biasedExp === 0) exp2 = -1074;
  else {
    mantissa |= 1n << 52n;
    exp2 = biasedExp - 1075;
  }
  if (exp2 >= 0) {
    const digits = (mantissa << BigInt(exp2)).toString();
    return { digits, exp10: digits.length };
  }
  const digits = (mantissa * 5n ** BigInt(-exp2)).toString();
  return { digits, exp10: digits.length + exp2 };
}

/** Python's `format(x, f".{precision}g")`, including round-half-even on the exact binary value. */
export function formatGeneral(x: number, precision = 5): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  if (x === 0) return `${sign}0`;
  const p = Math.max(precision, 1);
  const exact = exactDecimal(x);
  let digits = exact.digits.replace(/0+$/, '');
  let exp10 = exact.exp10;
  if (digits.length > p) {
    const kept = digits.slice(0, p);
    const rest = digits.slice(p);
    const tie = rest[0] === '5' && /^50*$/.test(rest);
    const up = rest[0]! > '5' || (rest[0] === '5' && !tie) || (tie && Number(kept[p - 1]) % 2 === 1);
    let rounded = up ? (BigInt(kept) + 1n).toString() : kept;
    if (rounded.length > p) {
      exp10 += 1;
      rounded = rounded.slice(0, p);
    }
    digits = rounded;
  }
  digits = digits.padEnd(p, '0');
  const exponent = exp10 - 1;
  if (exponent >= -4 && exponent < p) {
    let intPart: string;
    let fracPart: string;
    if (exponent >= 0) {
      intPart = digits.slice(0, exponent + 1);
      fracPart = digits.slice(exponent + 1);
    } else {
      intPart = '0';
      fracPart = '0'.repeat(-exponent - 1) + digits;
    }
    fracPart = fracPart.replace(/0+$/, '');
    return `${sign}${intPart}${fracPart ? `.${fracPart}` : ''}`;
  }
  const tail = digits.slice(1).replace(/0+$/, '');
  const expSign = exponent < 0 ? '-' : '+';
  return `${sign}${digits[0]}${tail ? `.${tail}` : ''}e${expSign}${String(Math.abs(exponent)).padStart(2, '0')}`;
}

// ---- match_str ------------------------------------------------------------------------------

/** inspect's `normalize_number`: numeric tokens become 5-significant-digit strings, others stay. */
export function normalizeNumber(token: string, precision = 5): string {
  if (!isPythonNumeric(token.replace(/\./g, ''))) return token;
  const value = strToFloat(token) ?? unicodeNumberToFloat(token);
  if (value === null) throw new NumericNormalizeError(token);
  return formatGeneral(value, precision);
}

function firstNumberNormalized(words: readonly string[]): string {
  const number = words.find((w) => isPythonNumeric(w.replace(/\./g, ''))) ?? words[0]!;
  return normalizeNumber(number);
}

/**
 * `match_str(value, target, location, ignore_case=True, ignore_punctuation=True, numeric)`.
 * Throws NumericNormalizeError where the reference raises.
 */
export function inspectMatch(
  value: string,
  target: string,
  opts: { location?: MatchLocation; numeric?: boolean } = {},
): MatchResult {
  const location = opts.location ?? 'end';
  let v = pythonStrip(value);
  let t = pythonStrip(target);
  let answer = v;
  v = casefold(v);
  t = casefold(t);
  if (opts.numeric && isPythonNumeric(t)) {
    v = stripNumericPunctuation(v);
    t = normalizeNumber(stripNumericPunctuation(t));
    if (location === 'begin') v = firstNumberNormalized(v.split(PY_WS_RUN));
    else if (location === 'end') v = firstNumberNormalized(v.split(PY_WS_RUN).reverse());
    else if (location === 'exact') v = normalizeNumber(v);
    answer = v;
  } else {
    v = stripPunctuation(v);
    t = stripPunctuation(t);
  }
  if (location === 'begin') return { answer, matched: v.startsWith(t) };
  if (location === 'end') return { answer, matched: v.endsWith(t) };
  if (location === 'exact') return { answer, matched: v === t };
  return { answer, matched: v.includes(t) };
}

/** `match(numeric=True)` as GSM8K and AIME use it (location "end"). */
export function matchNumericEnd(value: string, target: string): MatchResult {
  return inspectMatch(value, target, { location: 'end', numeric: true });
}

/**
 * inspect_evals AIME's `remove_boxed_from_ans`: `re.sub(r"\\boxed\{(.+)\}", r"\1", text)`. The
 * greedy `.+` stops at line ends, so on each line everything from the first `\boxed{` to the
 * last `}` of that line is unwrapped once.
 */
export function removeBoxed(text: string): string {
  return text.replace(/\\boxed\{([^\n]+)\}/g, (_whole, inner: string) => inner);
}

// ---- the final evaluation's exact comparison (protocol v1.1) ---------------------------------

/** The extracted answer and whether it equals the target. */
export interface ExactMatch {
  answer: string;
  matched: boolean;
  /** The last number did not parse (the reference's own scorer raises there). */
  unparsable: boolean;
}

function lastNumericWord(words: readonly string[], signed: boolean): string | undefined {
  return words.find((w) =>
    isPythonNumeric((signed && w.startsWith('-') ? w.slice(1) : w).replace(/\./g, '')),
  );
}

/**
 * `last_number_exact` (exact_numeric_match.py @ 1b6c1a9): match_str's numeric "end" extraction,
 * compared to the normalized target with `==`. For non-negative integer targets (AIME).
 */
export function lastNumberExact(completion: string, target: string): ExactMatch {
  const t = casefold(pythonStrip(target));
  if (!isPythonNumeric(t))
    throw new Error(`internal: target ${JSON.stringify(target)} is not a non-negative integer`);
  const normalizedTarget = normalizeNumber(stripNumericPunctuation(t));
  const words = stripNumericPunctuation(casefold(pythonStrip(completion)))
    .split(PY_WS_RUN)
    .reverse();
  const number = lastNumericWord(words, false) ?? words[0]!;
  try {
    const answer = normalizeNumber(number);
    return { answer, matched: answer === normalizedTarget, unparsable: false };
  } catch (err) {
    if (!(err instanceof NumericNormalizeError)) throw err;
    return { answer: number, matched: false, unparsable: true };
  }
}

const SIGNED_NUMBER = /^-?\p{Nd}+(?:\.\p{Nd}+)?$/u;

/** `parse_number`: a number word as normalize_number parses it, with an optional leading minus. */
function parseSignedWord(word: string): number {
  const negative = word.startsWith('-');
  const digits = negative ? word.slice(1) : word;
  const value = strToFloat(digits) ?? unicodeNumberToFloat(digits);
  if (value === null) throw new NumericNormalizeError(word);
  return negative ? -value : value;
}

/**
 * `signed_last_number_exact` (exact_numeric_match.py @ 1b6c1a9): the last whitespace-separated
 * word that is a number after strip_numeric_punctuation, a leading minus included, compared with
 * the target by value (|a − t| < 1e-9). For targets that may be negative or carry thousands
 * separators (GSM8K: "-3", "14,000").
 */
export function signedLastNumberExact(completion: string, target: string): ExactMatch {
  const t = stripNumericPunctuation(pythonStrip(target));
  if (!SIGNED_NUMBER.test(t)) throw new Error(`internal: target ${JSON.stringify(target)} is not a number`);
  const targetValue = signedFloat(t);
  const words = stripNumericPunctuation(casefold(pythonStrip(completion)))
    .split(PY_WS_RUN)
    .reverse();
  const word = lastNumericWord(words, true);
  if (word === undefined) return { answer: words[0]!, matched: false, unparsable: false };
  try {
    const value = parseSignedWord(word);
    return {
      answer: formatGeneral(value, 12),
      matched: Math.abs(value - targetValue) < 1e-9,
      unparsable: false,
    };
  } catch (err) {
    if (!(err instanceof NumericNormalizeError)) throw err;
    return { answer: word, matched: false, unparsable: true };
  }
}

// ---- scores ----------------------------------------------------------------------------------

export interface NumericScoreOptions {
  /** GSM8K's targets may be signed or comma-grouped (signed_last_number_exact); AIME's may not. */
  signedTargets: boolean;
}

/**
 * One sample of an inspect `match(numeric=True)` task as a ptb Score under the protocol's rules:
 * `endswith` (inspect) or `exact` (the v1.1 final evaluation). A last number the reference cannot
 * parse fails the attempt (ScorerFailure, as inspect's scorer raises) or counts as wrong.
 */
export function numericMatchScore(
  completion: string,
  target: string,
  rules: Pick<ScoringRules, 'numericComparison' | 'unparsableNumber'>,
  opts: NumericScoreOptions,
): Score {
  if (rules.numericComparison === 'exact') {
    const exact = opts.signedTargets
      ? signedLastNumberExact(completion, target)
      : lastNumberExact(completion, target);
    if (exact.unparsable && rules.unparsableNumber === 'fail-attempt') throw unparsableFailure(exact.answer);
    return {
      value: exact.matched ? 1 : 0,
      answer: exact.answer,
      explanation: exact.unparsable
        ? `could not parse ${JSON.stringify(exact.answer)} as a number; counted as incorrect`
        : undefined,
      details: { target, comparison: 'exact', ...(exact.unparsable ? { unparsable: true } : {}) },
    };
  }
  try {
    const { answer, matched } = matchNumericEnd(completion, target);
    return { value: matched ? 1 : 0, answer, details: { target, comparison: 'endswith' } };
  } catch (err) {
    if (!(err instanceof NumericNormalizeError)) throw err;
    if (rules.unparsableNumber === 'fail-attempt') throw unparsableFailure(err.token);
    return {
      value: 0,
      answer: null,
      explanation: `${err.message}; counted as incorrect`,
      details: { target, comparison: 'endswith', referenceOutcome: 'scorer error', token: err.token },
    };
  }
}

function unparsableFailure(token: string): ScorerFailure {
  return new ScorerFailure(
    `the last number ${JSON.stringify(token)} cannot be parsed: inspect's scorer raises there, which fails the evaluation attempt`,
  );
}
