import { PythonRandom } from '../../benchmarks/shared/pythonRandom.ts';

/**
 * Perturbed twins of benchmark items for the likelihood probe: the same item with its proper names
 * and its numbers replaced, consistently in every text field (question, worked answer). A model that
 * only got better at the benchmark's kind of task gains as much on the twin as on the item; a model
 * that saw the item itself prefers the original names and numbers.
 *
 * The replacements are drawn from the benchmark's own items (names used in other items, numbers of
 * the same shape: digit count, trailing zeros, decimals), so neither side of a pair is more
 * "benchmark-like" than the other. Numbers change only where the item's arithmetic can be redone:
 * GSM8K-style calculator marks `<<expr=result>>` are re-evaluated with the new inputs and every
 * result is replaced where it appears, so the twin is as correct as the item. An item whose
 * arithmetic cannot be redone keeps its numbers and gets new names only.
 */

export interface TwinPools {
  names: string[];
  /** Numbers seen in the items, by shape (see numberShape). */
  numbers: Map<string, string[]>;
}

export interface Twin<R> {
  record: R;
  names: number;
  numbers: number;
}

const WORD = /\b[A-Z][a-z]{2,}\b/g;
const NUMBER = /(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.,])\d+(?:\.\d+)?(?![\w])/g;
/** Capitalised words that are not names (calendar words, units, common sentence starters). */
const NOT_NAMES = new Set(
  (
    'Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July ' +
    'August September October November December The This That There These Those They Then Each Every ' +
    'How What When Where Which Who Why She Her His Him He If In On At Of For And But Answer Question ' +
    'Reasoning Solve Mr Mrs Ms Dr Christmas Easter Halloween Thanksgiving'
  ).split(' '),
);

/** Strings of every text field of a record (nested arrays and objects included). */
export function recordTexts(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) recordTexts(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) recordTexts(v, out);
  return out;
}

function mapStrings<R>(value: R, f: (s: string) => string): R {
  if (typeof value === 'string') return f(value) as R;
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f)) as R;
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, f)])) as R;
  return value;
}

/**
 * Proper names of a corpus: capitalised words never written in lower case anywhere in it (so
 * sentence-initial common words drop out) and not calendar words or pronouns.
 */
export function properNames(texts: readonly string[]): Set<string> {
  const capitalised = new Set<string>();
  const lower = new Set<string>();
  for (const text of texts) {
    for (const m of text.matchAll(/\b[a-z][a-z]{2,}\b/g)) lower.add(m[0]);
    for (const m of text.matchAll(WORD)) capitalised.add(m[0]);
  }
  return new Set([...capitalised].filter((w) => !lower.has(w.toLowerCase()) && !NOT_NAMES.has(w)));
}

const parseNumber = (s: string) => Number(s.replace(/,/g, ''));

/** Digit count, trailing zeros and decimals of a number as written: replacements keep it. */
export function numberShape(s: string): string {
  const plain = s.replace(/,/g, '');
  const [int = '', frac] = plain.split('.');
  const zeros = frac === undefined ? /0*$/.exec(int)![0].length : 0;
  return `${int.length}:${Math.min(zeros, int.length - 1)}:${frac?.length ?? 0}:${s.includes(',') ? ',' : ''}`;
}

export function buildTwinPools(records: readonly unknown[]): TwinPools {
  const texts = records.flatMap((r) => recordTexts(r));
  const numbers = new Map<string, Set<string>>();
  for (const text of texts) {
    for (const m of text.matchAll(NUMBER)) {
      if (parseNumber(m[0]) <= 1) continue;
      const shape = numberShape(m[0]);
      if (!numbers.has(shape)) numbers.set(shape, new Set());
      numbers.get(shape)!.add(m[0]);
    }
  }
  return {
    names: [...properNames(texts)].sort(),
    numbers: new Map([...numbers].map(([k, v]) => [k, [...v].sort()])),
  };
}

// ---- a small arithmetic evaluator for calculator marks (numbers, + - * / ( ), unary minus) ----

function evaluate(expr: string): number | null {
  const tokens = expr.replace(/,/g, '').match(/\d+(?:\.\d+)?|[-+*/()]|\S/g) ?? [];
  let i = 0;
  const peek = () => tokens[i];
  const primary = (): number => {
    const t = tokens[i++];
    if (t === '(') {
      const v = sum();
      if (tokens[i++] !== ')') throw new Error('unbalanced');
      return v;
    }
    if (t === '-') return -primary();
    if (t !== undefined && /^\d/.test(t)) return Number(t);
    throw new Error(`unexpected ${t}`);
  };
  const product = (): number => {
    let v = primary();
    while (peek() === '*' || peek() === '/') v = tokens[i++] === '*' ? v * primary() : v / primary();
    return v;
  };
  const sum = (): number => {
    let v = product();
    while (peek() === '+' || peek() === '-') v = tokens[i++] === '+' ? v + product() : v - product();
    return v;
  };
  try {
    const v = sum();
    return i === tokens.length && Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

const MARK = /<<([^<>=]+)=([^<>]+)>>/g;
type Relation = 'exact' | 'floor' | 'round';

function relation(value: number, written: number): Relation | null {
  if (Math.abs(value - written) < 1e-6 * Math.max(1, Math.abs(written))) return 'exact';
  if (Math.floor(value) === written) return 'floor';
  if (Math.round(value) === written) return 'round';
  return null;
}

function formatLike(value: number, like: string): string | null {
  const decimals = like.includes('.') ? like.split('.')[1]!.length : 0;
  if (decimals === 0 && !Number.isInteger(value)) return null;
  const fixed = decimals === 0 ? String(value) : value.toFixed(decimals);
  if (!like.includes(',')) return fixed;
  const [int, frac] = fixed.split('.');
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac === undefined ? grouped : `${grouped}.${frac}`;
}

/**
 * A number near `v` of the same shape: same digit count, same trailing zeros, same decimals, within
 * about ±20% (at least ±2 steps), never one of the item's other inputs. Near, so the twin stays in
 * the benchmark's own range of numbers: an honest model that learned that range finds both alike.
 */
export function nearbyNumber(v: number, rng: PythonRandom, avoid: ReadonlyMap<number, unknown>): number {
  const text = String(v);
  const decimals = text.includes('.') ? text.split('.')[1]!.length : 0;
  const unit = decimals > 0 ? 10 ** -decimals : 10 ** Math.min(/0*$/.exec(text)![0].length, text.length - 1);
  const digits = Math.floor(Math.abs(v)).toString().length;
  const steps = Math.max(2, Math.round((0.2 * v) / unit));
  const options: number[] = [];
  for (let k = -steps; k <= steps; k++) {
    const c = Number((v + k * unit).toFixed(decimals));
    if (k === 0 || c <= 1 || avoid.has(c) || Math.floor(c).toString().length !== digits) continue;
    options.push(c);
  }
  return options.length ? options[rng.randbelow(options.length)]! : v;
}

/** Numbers of a text as values (commas dropped), in order. */
const valuesIn = (text: string) => [...text.matchAll(NUMBER)].map((m) => parseNumber(m[0]));

/**
 * New numbers for one item, keyed by value: every input number (a number of a field without
 * calculator marks, i.e. the question, that no mark computes) gets a nearby number, then every mark is
 * recomputed in order and its result mapped. Null when the item's arithmetic is not closed (a mark
 * uses a number that is neither an input, an earlier result nor 0/1, e.g. 1.5 written for "150%"),
 * an input is never used by a mark, or the new arithmetic breaks (a non-integer where the item had
 * an integer, a sign change, two numbers becoming one).
 */
function numberMapping(texts: readonly string[], rng: PythonRandom): Map<number, number> | null {
  const marks = texts.flatMap((t) =>
    [...t.matchAll(MARK)].map((m) => ({ expr: m[1]!, result: m[2]!.trim() })),
  );
  if (marks.length === 0) return null;
  const results = new Set(marks.map((m) => parseNumber(m.result.replace(/[^\d.,-]/g, ''))));
  // Inputs come from the fields without marks (the question); the worked answer only repeats them.
  const shapes = new Map<number, string>();
  for (const text of texts.filter((t) => !t.includes('<<')))
    for (const m of text.matchAll(NUMBER)) {
      const v = parseNumber(m[0]);
      if (v > 1 && !results.has(v)) shapes.set(v, numberShape(m[0]));
    }
  if (shapes.size === 0) return null;
  const used = new Set(marks.flatMap((m) => valuesIn(m.expr)));
  if ([...shapes.keys()].some((v) => !used.has(v))) return null;
  const map = new Map<number, number>();
  for (const v of shapes.keys()) map.set(v, nearbyNumber(v, rng, shapes));
  const known = new Set<number>([0, 1, ...shapes.keys()]);
  for (const mark of marks) {
    const values = valuesIn(mark.expr);
    if (values.some((v) => !known.has(v))) return null;
    const before = evaluate(mark.expr);
    const written = parseNumber(mark.result.replace(/[^\d.,-]/g, ''));
    if (before === null || !Number.isFinite(written)) return null;
    const rel = relation(before, written);
    const after = evaluate(
      mark.expr.replace(NUMBER, (n) => String(map.get(parseNumber(n)) ?? parseNumber(n))),
    );
    if (rel === null || after === null) return null;
    const value = rel === 'exact' ? after : rel === 'floor' ? Math.floor(after) : Math.round(after);
    if (value < 0 !== written < 0) return null;
    if (Number.isInteger(written) && !Number.isInteger(value)) return null;
    const earlier = map.get(written);
    if (earlier !== undefined && earlier !== value) return null;
    map.set(written, value);
    known.add(written);
  }
  // Two different numbers must not become the same one (the twin would lose information).
  const targets = [...map.values()];
  if (new Set(targets).size !== targets.length) return null;
  return map;
}

/** A mapped number written the way the original was (thousands separators, decimals). */
function rewriteNumber(written: string, map: ReadonlyMap<number, number>): string {
  const to = map.get(parseNumber(written));
  if (to === undefined) return written;
  return formatLike(to, written) ?? String(to);
}

function nameMapping(texts: readonly string[], pools: TwinPools, rng: PythonRandom): Map<string, string> {
  const known = new Set(pools.names);
  const present = new Set<string>();
  for (const text of texts) for (const m of text.matchAll(WORD)) if (known.has(m[0])) present.add(m[0]);
  const map = new Map<string, string>();
  const taken = new Set(present);
  for (const name of [...present].sort()) {
    const choices = pools.names.filter((n) => !taken.has(n));
    if (choices.length === 0) break;
    const pick = choices[rng.randbelow(choices.length)]!;
    taken.add(pick);
    map.set(name, pick);
  }
  return map;
}

/** The twin of one record (`seed` makes it reproducible). */
export function perturbRecord<R>(record: R, pools: TwinPools, seed: number): Twin<R> {
  const rng = new PythonRandom(seed);
  const texts = recordTexts(record);
  const names = nameMapping(texts, pools, rng);
  let numbers: Map<number, number> | null = null;
  for (let attempt = 0; attempt < 8 && numbers === null; attempt++) numbers = numberMapping(texts, rng);
  const changedNumbers = numbers ? [...numbers].filter(([a, b]) => a !== b).length : 0;
  const rewrite = (text: string) => {
    const named = names.size ? text.replace(WORD, (w) => names.get(w) ?? w) : text;
    return numbers ? named.replace(NUMBER, (n) => rewriteNumber(n, numbers!)) : named;
  };
  return { record: mapStrings(record, rewrite), names: names.size, numbers: changedNumbers };
}
