import {
  ESCAPE_VARIANT,
  filterBits,
  filterKey,
  NGRAM,
  NUMBER_TOKEN,
  type ProbeTable,
  slotKey,
  textNgrams,
} from './ngramStream.ts';

/** One test item: its sample id and every text field a copy could carry. */
export interface ContaminationItem {
  id: string;
  texts: string[];
  /**
   * Texts written in a formula everyone uses (GSM8K's worked answers: "He has $2 in quarters
   * because 8 times .25 equals 2"): numbers masked, any solution of a like problem matches them.
   * A copy found only in such a text must also carry the item's own numbers.
   */
  formulaic?: number[];
}

/** Numbers of a text as written (`1,000.50` → `1000.50`), for the formulaic-text check. */
export function numbersOf(text: string): string[] {
  return [...text.matchAll(/\d[\d,]*(?:\.\d+)?|\.\d+/g)].map((m) =>
    m[0].replace(/,/g, '').replace(/^\./, '0.'),
  );
}

/** An n-gram shared by more items than this is boilerplate (templates, system prompts): ignored. */
export const MAX_ITEMS_PER_NGRAM = 4;
/** Texts with fewer n-grams than this (under ten words) cannot be told from chance: not indexed. */
export const MIN_UNIT_NGRAMS = 3;
/** Matched n-grams (at the text's level) that make a finding; texts with fewer need all of theirs. */
export const MIN_MATCHES = 6;
/**
 * A word is item-specific when at most this share of the items (and at least one) use it. An
 * n-gram's level is how many item-specific words it holds (0, 1, 2 or more). Each text counts only
 * hits at its level: the highest level at which it has MIN_MATCHES n-grams. Text written like the
 * items (shared phrasing around one shared name) matches many n-grams but few of level 2.
 */
export const SPECIFIC_WORD_SHARE = 0.05;
/**
 * Least share of a text's n-grams a finding must cover, by level: generic wording (levels 0 and 1)
 * must be copied in larger part than wording full of the item's own words.
 */
export const MIN_COVERAGE = [0.5, 0.35, 0.2] as const;
/** Longest text without item-specific words that is still indexed (then only as a whole). */
export const GENERIC_TEXT_MAX_NGRAMS = 12;

export const NEVER_QUALIFIES = 0x7fffffff;

/**
 * Backspace and form feed inside item text are nearly always a `\b`/`\f` LaTeX command eaten by
 * a JSON decoder (`\frac` → form feed + "rac"). Copies of such items carry the escape (`\f`),
 * which the scanner reads as a letter: index them the same way.
 */
function controlsAsEscapes(text: string): string {
  return text.replace(/\x08/g, '\\b').replace(/\x0c/g, '\\f');
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

class IntList {
  data: Int32Array;
  length = 0;
  constructor(capacity = 1024) {
    this.data = new Int32Array(capacity);
  }
  push(v: number): void {
    if (this.length === this.data.length) {
      const grown = new Int32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = v;
  }
}

/** A set of 64-bit n-gram keys (two 32-bit halves), open addressing over typed arrays. */
class PairSet {
  private keys1 = new Int32Array(1 << 12);
  private keys2 = new Int32Array(1 << 12);
  private used = new Uint8Array(1 << 12);
  size = 0;

  private slot(h1: number, h2: number): number {
    const mask = this.used.length - 1;
    let i = (slotKey(h1) ^ Math.imul(h2, 0x9e3779b1)) & mask;
    while (this.used[i] && !(this.keys1[i] === h1 && this.keys2[i] === h2)) i = (i + 1) & mask;
    return i;
  }

  add(h1: number, h2: number): void {
    if ((this.size + 1) * 2 > this.used.length) this.grow();
    const i = this.slot(h1, h2);
    if (this.used[i]) return;
    this.used[i] = 1;
    this.keys1[i] = h1;
    this.keys2[i] = h2;
    this.size++;
  }

  has(h1: number, h2: number): boolean {
    return this.used[this.slot(h1, h2)] === 1;
  }

  private grow(): void {
    const { keys1, keys2, used } = this;
    this.keys1 = new Int32Array(used.length * 2);
    this.keys2 = new Int32Array(used.length * 2);
    this.used = new Uint8Array(used.length * 2);
    this.size = 0;
    for (let i = 0; i < used.length; i++) if (used[i]) this.add(keys1[i]!, keys2[i]!);
  }
}

/** Typed arrays of an index, by field name (what `IndexData` holds besides plain values). */
export const INDEX_ARRAYS = [
  'filter',
  'keys1',
  'keys2',
  'vals',
  'postings',
  'unitItem',
  'unitNgrams',
  'unitText',
  'itemFirstUnit',
  'itemNgrams',
  'level',
  'unitLevel',
  'unitNeed',
  'itemIndexable',
] as const;

/** Everything an index holds, to rebuild it without the items (a cached index, a worker's copy). */
export type IndexData = Pick<NgramIndex, (typeof INDEX_ARRAYS)[number]> & {
  filterShift: number;
  tableShift: number;
  itemIds: string[];
  ngrams: number;
  allowedDropped: number;
  unitNumbers: Array<[number, string[]]>;
};

/**
 * Hash of every masked-number word n-gram of every item text → the texts ("units") holding it.
 * Open addressing over typed arrays (no per-entry objects), with a bit-array prefilter small
 * enough to stay in cache so that the scan loop rarely touches the table.
 */
export class NgramIndex implements ProbeTable {
  readonly filter: Int32Array;
  readonly filterShift: number;
  readonly keys1: Int32Array;
  readonly keys2: Int32Array;
  readonly vals: Int32Array;
  readonly tableShift: number;
  /** At vals[slot]-1: the number of units, then the unit ids. */
  readonly postings: Int32Array;
  /** Unit → item index; unit → distinct indexed n-grams. */
  readonly unitItem: Int32Array;
  readonly unitNgrams: Int32Array;
  /** Unit → index of its text in the item's `texts`. */
  readonly unitText: Int32Array;
  /** Item → first unit id (units of an item are consecutive). */
  readonly itemFirstUnit: Int32Array;
  readonly itemNgrams: Int32Array;
  /** Slot → the n-gram's level (item-specific words it holds, at most 2). */
  readonly level: Uint8Array;
  /** Unit → the level its hits must have, and how many distinct ones make a finding. */
  readonly unitLevel: Uint8Array;
  readonly unitNeed: Int32Array;
  /** Item → 1 when at least one of its texts can be found. */
  readonly itemIndexable: Uint8Array;
  readonly itemIds: string[];
  /** Distinct n-grams kept (not counting boilerplate ones). */
  readonly ngrams: number;

  /** N-grams dropped because the allowed training data holds them. */
  readonly allowedDropped: number;
  /** Unit → the numbers of its text, for formulaic texts only. */
  readonly unitNumbers = new Map<number, string[]>();

  /**
   * `allowed`: texts of data the agent may train on (GSM8K's train split): an n-gram found there
   * cannot show that test items were used (the allowed items share the test items' stock phrasing
   * and, numbers masked, their algebra), so it is not indexed.
   */
  constructor(items: readonly ContaminationItem[], allowed: Iterable<string> = []) {
    this.itemIds = items.map((it) => it.id);
    const h1s = new IntList(1 << 16);
    const h2s = new IntList(1 << 16);
    const owners = new IntList(1 << 16);
    const strengths = new IntList(1 << 16);
    const unitItem = new IntList();
    const unitText = new IntList();
    this.itemFirstUnit = new Int32Array(items.length);
    // Tokenise every text once; count in how many items each word occurs.
    const texts = items.map((item) =>
      item.texts.flatMap((text, textIndex) =>
        (ESCAPE_VARIANT.test(text) ? [false, true] : [false]).map((escapes) => ({
          textIndex,
          ...textNgrams(controlsAsEscapes(text), escapes),
        })),
      ),
    );
    const itemsUsing = new Map<number, number>();
    for (const units of texts) {
      const words = new Set<number>();
      for (const u of units) for (const t of u.tokens) words.add(t);
      for (const t of words) itemsUsing.set(t, (itemsUsing.get(t) ?? 0) + 1);
    }
    const specificMax = Math.max(1, Math.floor(items.length * SPECIFIC_WORD_SHARE));
    const specific = (t: number) => t !== NUMBER_TOKEN && (itemsUsing.get(t) ?? 0) <= specificMax;
    texts.forEach((units, itemIndex) => {
      this.itemFirstUnit[itemIndex] = unitItem.length;
      for (const { textIndex, h1, h2, tokens } of units) {
        if (h1.length === 0) continue;
        const unit = unitItem.length;
        unitItem.push(itemIndex);
        unitText.push(textIndex);
        if (items[itemIndex]!.formulaic?.includes(textIndex))
          this.unitNumbers.set(unit, numbersOf(items[itemIndex]!.texts[textIndex]!));
        const isSpecific = tokens.map(specific);
        for (let k = 0; k < h1.length; k++) {
          let n = 0;
          for (let j = k; j < k + NGRAM; j++) if (isSpecific[j]) n++;
          h1s.push(h1[k]!);
          h2s.push(h2[k]!);
          owners.push(unit);
          strengths.push(Math.min(2, n));
        }
      }
    });
    this.unitItem = unitItem.data.slice(0, unitItem.length);
    this.unitText = unitText.data.slice(0, unitText.length);

    const size = nextPow2(Math.max(64, h1s.length * 2));
    this.tableShift = 32 - Math.log2(size);
    this.keys1 = new Int32Array(size);
    this.keys2 = new Int32Array(size);
    this.vals = new Int32Array(size);
    // Linked lists of units per slot while building: head[slot] → entry, entry → next.
    const head = new Int32Array(size).fill(-1);
    const used = new Uint8Array(size);
    const rawH1 = new Int32Array(size);
    this.level = new Uint8Array(size);
    const next = new Int32Array(owners.length);
    const mask = size - 1;
    for (let e = 0; e < owners.length; e++) {
      const h1 = h1s.data[e]!;
      const key = h1 === 0 ? 1 : h1; // 0 marks an empty slot
      const h2 = h2s.data[e]!;
      let slot = slotKey(h1) >>> this.tableShift;
      while (used[slot] && !(this.keys1[slot] === key && this.keys2[slot] === h2)) slot = (slot + 1) & mask;
      if (!used[slot]) {
        used[slot] = 1;
        this.keys1[slot] = key;
        this.keys2[slot] = h2;
        rawH1[slot] = h1;
      }
      this.level[slot] = strengths.data[e]!; // the same words wherever the n-gram occurs
      // A unit's n-grams are inserted together, so a repeat within the unit sits at the head.
      if (head[slot] !== -1 && owners.data[head[slot]!] === owners.data[e]) continue;
      next[e] = head[slot]!;
      head[slot] = e;
    }

    const allowedSet = new PairSet();
    for (const text of allowed) {
      for (const escapes of ESCAPE_VARIANT.test(text) ? [false, true] : [false]) {
        const { h1, h2 } = textNgrams(controlsAsEscapes(text), escapes);
        for (let k = 0; k < h1.length; k++) allowedSet.add(h1[k]!, h2[k]!);
      }
    }
    let allowedDropped = 0;

    const postings = new IntList(1 << 16);
    this.unitNgrams = new Int32Array(this.unitItem.length);
    const byLevel = [0, 1, 2].map(() => new Int32Array(this.unitItem.length));
    this.itemNgrams = new Int32Array(items.length);
    const lastItemSeen = new Int32Array(items.length).fill(-1);
    let kept = 0;
    const units: number[] = [];
    for (let slot = 0; slot < size; slot++) {
      if (!used[slot]) continue;
      units.length = 0;
      let distinctItems = 0;
      for (let e = head[slot]!; e !== -1; e = next[e]!) {
        const u = owners.data[e]!;
        units.push(u);
        const item = this.unitItem[u]!;
        if (lastItemSeen[item] !== slot) {
          lastItemSeen[item] = slot;
          distinctItems++;
        }
      }
      if (distinctItems > MAX_ITEMS_PER_NGRAM) {
        this.vals[slot] = -1;
        continue;
      }
      if (allowedSet.size > 0 && allowedSet.has(rawH1[slot]!, this.keys2[slot]!)) {
        this.vals[slot] = -1;
        allowedDropped++;
        continue;
      }
      kept++;
      this.vals[slot] = postings.length + 1;
      postings.push(units.length);
      for (const u of units) {
        postings.push(u);
        this.unitNgrams[u]!++;
        for (let l = 0; l <= this.level[slot]!; l++) byLevel[l]![u]!++;
      }
      for (const u of units) {
        const item = this.unitItem[u]!;
        if (lastItemSeen[item] === slot) {
          lastItemSeen[item] = -2 - slot; // count each item once per slot
          this.itemNgrams[item]!++;
        }
      }
    }
    this.postings = postings.data.slice(0, postings.length);
    this.ngrams = kept;
    this.allowedDropped = allowedDropped;

    // Each text's level and the matches it needs.
    this.unitLevel = new Uint8Array(this.unitItem.length);
    this.unitNeed = new Int32Array(this.unitItem.length);
    this.itemIndexable = new Uint8Array(items.length);
    for (let u = 0; u < this.unitItem.length; u++) {
      let level = 2;
      while (level > 0 && byLevel[level]![u]! < MIN_MATCHES) level--;
      const available = byLevel[level]![u]!;
      const total = this.unitNgrams[u]!;
      this.unitLevel[u] = level;
      // A text without one item-specific word in any n-gram is generic (boilerplate, test asserts
      // once numbers are masked): found only when short and copied whole.
      this.unitNeed[u] =
        total < MIN_UNIT_NGRAMS || (level === 0 && total > GENERIC_TEXT_MAX_NGRAMS)
          ? NEVER_QUALIFIES
          : level === 0
            ? total
            : Math.min(MIN_MATCHES, available);
      if (this.unitNeed[u] !== NEVER_QUALIFIES) this.itemIndexable[this.unitItem[u]!] = 1;
    }

    // About 16 bits per n-gram, two per n-gram set: ~1.5% of clean n-grams reach the table.
    const words = Math.min(1 << 22, Math.max(1 << 10, nextPow2(Math.ceil(kept / 2))));
    this.filterShift = 32 - Math.log2(words);
    this.filter = new Int32Array(words);
    for (let slot = 0; slot < size; slot++) {
      if (!used[slot] || this.vals[slot]! <= 0) continue;
      const fk = filterKey(rawH1[slot]!);
      this.filter[fk >>> this.filterShift]! |= filterBits(fk);
    }
  }

  get items(): number {
    return this.itemIds.length;
  }

  /** The index as data (the typed arrays are shared, not copied). */
  data(): IndexData {
    const arrays = Object.fromEntries(INDEX_ARRAYS.map((name) => [name, this[name]]));
    return {
      ...(arrays as Pick<NgramIndex, (typeof INDEX_ARRAYS)[number]>),
      filterShift: this.filterShift,
      tableShift: this.tableShift,
      itemIds: this.itemIds,
      ngrams: this.ngrams,
      allowedDropped: this.allowedDropped,
      unitNumbers: [...this.unitNumbers],
    };
  }

  /** An index from `data()` of one built from items. */
  static fromData(data: IndexData): NgramIndex {
    const index = Object.create(NgramIndex.prototype) as NgramIndex;
    Object.assign(index, data, { unitNumbers: new Map(data.unitNumbers) });
    return index;
  }

  /** Items that cannot be found: every text under MIN_UNIT_NGRAMS n-grams (or all boilerplate). */
  unindexable(): string[] {
    return this.itemIds.filter((_, i) => !this.itemIndexable[i]);
  }

  /** Rough bytes held by the typed arrays. */
  get bytes(): number {
    return (
      this.filter.byteLength +
      this.keys1.byteLength * 3 +
      this.postings.byteLength +
      this.unitItem.byteLength * 3 +
      this.itemNgrams.byteLength * 2
    );
  }
}

export { NGRAM };
