import { MIN_COVERAGE, MIN_MATCHES, NEVER_QUALIFIES, type NgramIndex, numbersOf } from './ngramIndex.ts';
import type { NgramSink } from './ngramStream.ts';

/**
 * Reporting rule, per text of an item: a run of hits, each within GAP tokens of the previous, is a
 * finding when it holds at least the text's `need` distinct n-grams of the text's level (six, or
 * all of a shorter text's) and covers at least MIN_COVERAGE of the text. Six eight-word n-grams at
 * level 2 (two item-specific words each) means at least 13 words in the item's order around its
 * own vocabulary, which text that merely shares the item's topic or phrasing does not produce.
 */
export { MIN_MATCHES };
/** Tokens allowed between two hits of one run (an item's question and answer in one record). */
export const GAP = 64;
/** Distinct n-grams remembered per pending run (before it qualifies). */
const PENDING_SLOTS = 32;
/** Bytes of matched text kept per finding. */
const SPAN_BYTES = 2048;
const SPAN_CHARS = 300;
const NEVER = -0x40000000;

export interface MatchFinding {
  /** Index of the item in the index. */
  item: number;
  /** Absolute byte offset (decompressed stream) where the match starts, and where it ends. */
  start: number;
  end: number;
  /** Line or row (as the source counts them) where the match starts. */
  record: number;
  /** Distinct n-grams of the item found. */
  matched: number;
  /** Best coverage of one of the item's texts: matched n-grams / its n-grams. */
  score: number;
  /** Index (into the item's texts) of the best-covered text. */
  text: number;
  /** The matched text (clipped, one line). */
  span: string;
}

/** A run that has qualified: tracked exactly from here on (rare: one per finding). */
class Run {
  lastToken: number;
  end: number;
  /** Distinct n-grams (slots) of the item hit. */
  matched = 0;
  /** Per unit of the item (from its first unit): distinct n-grams hit, and those at its level. */
  readonly unitCounts: Int32Array;
  readonly unitStrong: Int32Array;
  /** Units in the order they were first hit (ties in coverage go to the first). */
  readonly unitOrder: number[] = [];
  readonly spanParts: Buffer[] = [];
  spanBytes = 0;
  capturedTo: number;

  constructor(
    readonly item: number,
    token: number,
    readonly start: number,
    readonly record: number,
    /** Unique per matcher: the stamp of the (slot, unit) and (slot, item) pairs counted. */
    readonly id: number,
    readonly firstUnit: number,
    units: number,
  ) {
    this.lastToken = token;
    this.end = start;
    this.capturedTo = start;
    this.unitCounts = new Int32Array(units);
    this.unitStrong = new Int32Array(units);
  }
}

/**
 * Collects hits into runs and emits findings as runs close. Hits are frequent in text written like
 * the items (shared phrasing), so a run that has not qualified is a per-text record in typed arrays;
 * once one of an item's texts has enough hits, the item's run becomes a `Run` object.
 */
export class Matcher implements NgramSink {
  /** Absolute offset of the earliest byte still readable in the buffer handed to `hit`. */
  validFrom = 0;
  found = 0;
  private readonly lastToken: Int32Array;
  private readonly startOffset: Float64Array;
  private readonly startRecord: Int32Array;
  private readonly strong: Int32Array;
  private readonly slotCount: Int32Array;
  private readonly slots: Int32Array;
  /** The distinct hits at the unit's level so far (at most MIN_MATCHES are needed). */
  private readonly strongSlots: Int32Array;
  /** The qualified run of each item, and all of them. */
  private readonly runOf: Array<Run | undefined>;
  private readonly open: Run[] = [];
  private runs = 0;
  /**
   * Run stamps by posting position: a (slot, unit) pair is one position in the slot's posting
   * list, a (slot, item) pair the position of the item's first unit there (an item's units sit
   * together in a list).
   */
  private readonly unitStamp: Int32Array;
  private readonly itemStamp: Int32Array;
  /** The buffer of the last hit: qualified runs copy their text from it when it is about to change. */
  private buf: Uint8Array = new Uint8Array(0);
  private base = 0;
  /** Units with a pending run (may hold stale ones; pruned on sweep). */
  private readonly pending: number[] = [];

  constructor(
    private readonly index: NgramIndex,
    private emit: (finding: MatchFinding) => void,
  ) {
    const n = index.unitItem.length;
    this.lastToken = new Int32Array(n).fill(NEVER);
    this.startOffset = new Float64Array(n);
    this.startRecord = new Int32Array(n);
    this.strong = new Int32Array(n);
    this.slotCount = new Int32Array(n);
    this.slots = new Int32Array(n * PENDING_SLOTS);
    this.strongSlots = new Int32Array(n * MIN_MATCHES);
    this.runOf = new Array(index.items);
    this.unitStamp = new Int32Array(index.postings.length);
    this.itemStamp = new Int32Array(index.postings.length);
  }

  hit(
    slot: number,
    token: number,
    start: number,
    record: number,
    end: number,
    buf: Uint8Array,
    base: number,
  ): void {
    const index = this.index;
    this.buf = buf;
    this.base = base;
    const off = index.vals[slot]! - 1;
    const n = index.postings[off]!;
    let lastItem = -1;
    let first = 0;
    for (let k = 1; k <= n; k++) {
      const unit = index.postings[off + k]!;
      const item = index.unitItem[unit]!;
      if (item !== lastItem) {
        lastItem = item;
        first = off + k;
      }
      if (index.unitNeed[unit] === NEVER_QUALIFIES) continue;
      const run = this.runOf[item];
      if (run) {
        if (token - run.lastToken <= GAP) {
          run.lastToken = token;
          if (end > run.end) run.end = end;
          this.count(run, slot, unit, off + k, first);
          continue;
        }
        this.close(run);
      }
      this.pendingHit(unit, item, slot, token, start, record, end);
    }
  }

  private pendingHit(
    unit: number,
    item: number,
    slot: number,
    token: number,
    start: number,
    record: number,
    end: number,
  ): void {
    const index = this.index;
    const at = unit * PENDING_SLOTS;
    if (token - this.lastToken[unit]! > GAP) {
      if (this.lastToken[unit] === NEVER) this.pending.push(unit);
      this.startOffset[unit] = start;
      this.startRecord[unit] = record;
      this.strong[unit] = 0;
      this.slotCount[unit] = 0;
    }
    this.lastToken[unit] = token;
    // Remember hits for the replay while there is room (the score only; it is recounted exactly).
    const count = this.slotCount[unit]!;
    if (count < PENDING_SLOTS) {
      let seen = false;
      for (let k = 0; k < count; k++) if (this.slots[at + k] === slot) seen = true;
      if (!seen) {
        this.slots[at + count] = slot;
        this.slotCount[unit] = count + 1;
      }
    }
    if (index.level[slot]! < index.unitLevel[unit]!) return;
    const sat = unit * MIN_MATCHES;
    const strong = this.strong[unit]!;
    for (let k = 0; k < strong; k++) if (this.strongSlots[sat + k] === slot) return;
    if (strong === 0) {
      // A finding starts at its first hit of the text's level, not at stray weaker hits before it.
      this.startOffset[unit] = start;
      this.startRecord[unit] = record;
    }
    this.strongSlots[sat + strong] = slot;
    this.strong[unit] = strong + 1;
    if (strong + 1 < index.unitNeed[unit]!) return;
    // Enough hits: follow the item exactly from here, replaying what its texts saw so far.
    const first = index.itemFirstUnit[item]!;
    const last = item + 1 < index.items ? index.itemFirstUnit[item + 1]! : index.unitItem.length;
    const run = new Run(
      item,
      token,
      this.startOffset[unit]!,
      this.startRecord[unit]!,
      ++this.runs,
      first,
      last - first,
    );
    this.runOf[item] = run;
    this.open.push(run);
    for (let u = first; u < last; u++) {
      if (token - this.lastToken[u]! > GAP) continue;
      for (let k = 0; k < this.slotCount[u]!; k++) this.replay(run, this.slots[u * PENDING_SLOTS + k]!, u);
      for (let k = 0; k < this.strong[u]!; k++) this.replay(run, this.strongSlots[u * MIN_MATCHES + k]!, u);
      this.lastToken[u] = NEVER;
    }
    run.end = end;
  }

  /** Count a hit remembered while the run was pending: find its posting positions. */
  private replay(run: Run, slot: number, unit: number): void {
    const index = this.index;
    const off = index.vals[slot]! - 1;
    const n = index.postings[off]!;
    let first = -1;
    for (let k = 1; k <= n; k++) {
      const u = index.postings[off + k]!;
      if (first < 0 && index.unitItem[u] === run.item) first = off + k;
      if (u === unit) {
        this.count(run, slot, unit, off + k, first);
        return;
      }
    }
  }

  /** A hit of a qualified run: `at` is the (slot, unit) posting position, `first` the item's first there. */
  private count(run: Run, slot: number, unit: number, at: number, first: number): void {
    if (this.itemStamp[first] !== run.id) {
      this.itemStamp[first] = run.id;
      run.matched++;
    }
    if (this.unitStamp[at] === run.id) return;
    this.unitStamp[at] = run.id;
    const u = unit - run.firstUnit;
    if (run.unitCounts[u] === 0) run.unitOrder.push(unit);
    run.unitCounts[u]!++;
    if (this.index.level[slot]! >= this.index.unitLevel[unit]!) run.unitStrong[u]!++;
  }

  /** Copy qualified runs' text up to where they reached, before the buffer changes. */
  settle(): void {
    for (const run of this.open)
      if (run.end > run.capturedTo) this.capture(run, run.end, this.buf, this.base);
  }

  private capture(run: Run, end: number, buf: Uint8Array, base: number): void {
    if (run.spanBytes >= SPAN_BYTES) return;
    const from = Math.max(run.capturedTo, this.validFrom, base);
    const to = Math.min(end, from + SPAN_BYTES - run.spanBytes, base + buf.length);
    if (to > from) {
      if (run.spanParts.length > 0 && from > run.capturedTo) run.spanParts.push(Buffer.from(' … '));
      run.spanParts.push(Buffer.from(buf.subarray(from - base, to - base)));
      run.spanBytes += to - from;
    }
    run.capturedTo = Math.max(run.capturedTo, to);
  }

  /** Close runs that can no longer grow (called between chunks). */
  sweep(token: number): void {
    this.settle();
    for (const run of [...this.open]) if (token - run.lastToken > GAP) this.close(run);
    if (this.pending.length > 1024) {
      // forget stale pending runs so that the list stays short
      let w = 0;
      for (const unit of this.pending) {
        if (token - this.lastToken[unit]! > GAP) this.lastToken[unit] = NEVER;
        else if (this.lastToken[unit] !== NEVER) this.pending[w++] = unit;
      }
      this.pending.length = w;
    }
  }

  /** Take a new source: the runs of the last one were flushed. */
  reset(emit: (finding: MatchFinding) => void): void {
    this.emit = emit;
    this.validFrom = 0;
    this.found = 0;
  }

  /** Close every run (end of a source). */
  flush(): void {
    for (const run of [...this.open]) this.close(run);
    for (const unit of this.pending) this.lastToken[unit] = NEVER;
    this.pending.length = 0;
  }

  private close(run: Run): void {
    if (run.end > run.capturedTo) this.capture(run, run.end, this.buf, this.base);
    this.runOf[run.item] = undefined;
    this.open.splice(this.open.indexOf(run), 1);
    const index = this.index;
    const candidates: Array<{ unit: number; coverage: number }> = [];
    for (const unit of run.unitOrder) {
      const u = unit - run.firstUnit;
      const coverage = run.unitCounts[u]! / Math.max(1, index.unitNgrams[unit]!);
      const qualifies =
        run.unitStrong[u]! >= index.unitNeed[unit]! && coverage >= MIN_COVERAGE[index.unitLevel[unit]!]!;
      if (qualifies) candidates.push({ unit, coverage });
    }
    candidates.sort((a, b) => b.coverage - a.coverage);
    if (candidates.length === 0) return;
    const text = Buffer.concat(run.spanParts).toString('utf8');
    let numbers: string[] | null = null;
    // A formulaic text (worked answers) counts only with the item's own numbers in the copy.
    const best = candidates.find((c) => {
      const own = index.unitNumbers.get(c.unit);
      if (!own) return true;
      numbers ??= numbersOf(text);
      return sameNumbers(numbers, own);
    });
    if (!best) return;
    this.found++;
    this.emit({
      item: run.item,
      start: run.start,
      end: run.end,
      record: run.record,
      matched: run.matched,
      score: Math.round(Math.min(1, best.coverage) * 1000) / 1000,
      text: index.unitText[best.unit]!,
      span: spanText(text),
    });
  }
}

/**
 * Whether a copy carries the item's numbers: at least 3 numbers, and 60% of them among the item's
 * (a solution of a like problem shares the formula but not the figures).
 */
function sameNumbers(copy: string[], own: readonly string[]): boolean {
  if (copy.length < 3) return false;
  const pool = new Map<string, number>();
  for (const n of own) pool.set(n, (pool.get(n) ?? 0) + 1);
  let hits = 0;
  for (const n of copy) {
    const left = pool.get(n) ?? 0;
    if (left > 0) {
      hits++;
      pool.set(n, left - 1);
    }
  }
  return hits >= copy.length * 0.6;
}

/**
 * Matchers kept for reuse, per index: a matcher's arrays are sized by the index (hundreds of KB),
 * and a file full of small encoded blobs scans each blob with its own feeder. A flushed matcher
 * holds no state, so the next source can take it.
 */
const pool = new WeakMap<NgramIndex, Matcher[]>();

export function takeMatcher(index: NgramIndex, emit: (finding: MatchFinding) => void): Matcher {
  const free = pool.get(index)?.pop();
  if (!free) return new Matcher(index, emit);
  free.reset(emit);
  return free;
}

/** Return a matcher whose source has ended (after `flush`). */
export function giveBack(index: NgramIndex, matcher: Matcher): void {
  const free = pool.get(index) ?? [];
  if (free.length < 8) free.push(matcher);
  pool.set(index, free);
}

function spanText(captured: string): string {
  const text = captured.replace(/\s+/g, ' ').trim();
  return text.length > SPAN_CHARS ? `${text.slice(0, SPAN_CHARS - 1)}…` : text;
}
