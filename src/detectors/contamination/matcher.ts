import { MIN_ITEM_NGRAMS, type NgramIndex } from './ngramIndex.ts';
import type { NgramSink } from './ngramStream.ts';

/**
 * Reporting rule: a run of hits for one item, each within GAP tokens of the previous, is a finding
 * when it holds at least MIN_MATCHES distinct distinctive n-grams of that item (all of them for
 * items with fewer). Six eight-word n-grams, each with two words specific to the item, means at
 * least 13 words in the item's order around its own vocabulary, which text that merely shares the
 * item's topic or phrasing does not produce.
 */
export const MIN_MATCHES = 6;
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
  readonly slots = new Set<number>();
  /** `slot * 4096 + unit-within-item` already counted. */
  readonly unitSlots = new Set<number>();
  readonly unitCounts = new Map<number, number>();
  readonly spanParts: Buffer[] = [];
  spanBytes = 0;
  capturedTo: number;

  constructor(
    readonly item: number,
    token: number,
    readonly start: number,
    readonly record: number,
  ) {
    this.lastToken = token;
    this.end = start;
    this.capturedTo = start;
  }
}

/**
 * Collects hits into per-item runs and emits findings as runs close. Hits are frequent in text
 * written like the items (shared phrasing), so a run that has not qualified lives in typed arrays
 * only; it becomes a `Run` object once it qualifies.
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
  private readonly need: Int32Array;
  private readonly qualified = new Map<number, Run>();
  /** Items with a pending run (may hold stale ones; checked on sweep). */
  private readonly pending: number[] = [];

  constructor(
    private readonly index: NgramIndex,
    private readonly emit: (finding: MatchFinding) => void,
  ) {
    const n = index.items;
    this.lastToken = new Int32Array(n).fill(NEVER);
    this.startOffset = new Float64Array(n);
    this.startRecord = new Int32Array(n);
    this.strong = new Int32Array(n);
    this.slotCount = new Int32Array(n);
    this.slots = new Int32Array(n * PENDING_SLOTS);
    this.need = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const d = index.itemDistinctive[i]!;
      this.need[i] = d < MIN_ITEM_NGRAMS ? 0x7fffffff : Math.min(MIN_MATCHES, d);
    }
  }

  hit(slot: number, token: number, start: number, record: number, end: number, buf: Uint8Array, base: number): void {
    const index = this.index;
    const off = index.vals[slot]! - 1;
    const n = index.postings[off]!;
    for (let k = 1; k <= n; k++) {
      const unit = index.postings[off + k]!;
      const item = index.unitItem[unit]!;
      if (this.need[item] === 0x7fffffff) continue;
      const run = this.qualified.get(item);
      if (run) {
        if (token - run.lastToken <= GAP) {
          this.extend(run, slot, unit, token, end, buf, base);
          continue;
        }
        this.close(run);
      }
      this.pendingHit(item, slot, token, start, record, end, buf, base);
    }
  }

  private pendingHit(
    item: number,
    slot: number,
    token: number,
    start: number,
    record: number,
    end: number,
    buf: Uint8Array,
    base: number,
  ): void {
    const at = item * PENDING_SLOTS;
    if (token - this.lastToken[item]! > GAP) {
      // a new run
      if (this.lastToken[item] === NEVER) this.pending.push(item);
      this.startOffset[item] = start;
      this.startRecord[item] = record;
      this.strong[item] = 0;
      this.slotCount[item] = 0;
    }
    this.lastToken[item] = token;
    const count = this.slotCount[item]!;
    for (let k = 0; k < count; k++) if (this.slots[at + k] === slot) return;
    if (count === PENDING_SLOTS) return; // cannot tell repeats from new ones any more
    this.slots[at + count] = slot;
    this.slotCount[item] = count + 1;
    if (this.index.distinctive[slot] && ++this.strong[item]! >= this.need[item]!) {
      // Qualified: follow it exactly from here, replaying the n-grams seen so far.
      const run = new Run(item, token, this.startOffset[item]!, this.startRecord[item]!);
      this.lastToken[item] = NEVER;
      this.qualified.set(item, run);
      for (let k = 0; k <= count; k++) {
        const s = this.slots[at + k]!;
        const off = this.index.vals[s]! - 1;
        for (let j = 1; j <= this.index.postings[off]!; j++) {
          const u = this.index.postings[off + j]!;
          if (this.index.unitItem[u] === item) this.countUnit(run, s, u);
        }
      }
      this.capture(run, end, buf, base);
      run.end = end;
    }
  }

  private countUnit(run: Run, slot: number, unit: number): void {
    run.slots.add(slot);
    const key = slot * 4096 + Math.min(4095, unit - this.index.itemFirstUnit[run.item]!);
    if (run.unitSlots.has(key)) return;
    run.unitSlots.add(key);
    run.unitCounts.set(unit, (run.unitCounts.get(unit) ?? 0) + 1);
  }

  private extend(run: Run, slot: number, unit: number, token: number, end: number, buf: Uint8Array, base: number): void {
    run.lastToken = token;
    if (end > run.end) {
      this.capture(run, end, buf, base);
      run.end = end;
    }
    this.countUnit(run, slot, unit);
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
    for (const run of [...this.qualified.values()]) if (token - run.lastToken > GAP) this.close(run);
    if (this.pending.length > 1024) {
      // forget stale pending runs so that the list stays short
      let w = 0;
      for (const item of this.pending) {
        if (token - this.lastToken[item]! > GAP) this.lastToken[item] = NEVER;
        else this.pending[w++] = item;
      }
      this.pending.length = w;
    }
  }

  /** Close every run (end of a source). */
  flush(): void {
    for (const run of [...this.qualified.values()]) this.close(run);
    for (const item of this.pending) this.lastToken[item] = NEVER;
    this.pending.length = 0;
  }

  private close(run: Run): void {
    this.qualified.delete(run.item);
    const index = this.index;
    let best = 0;
    let bestUnit = -1;
    for (const [unit, count] of run.unitCounts) {
      const coverage = count / Math.max(1, index.unitNgrams[unit]!);
      if (coverage > best) {
        best = coverage;
        bestUnit = unit;
      }
    }
    this.found++;
    this.emit({
      item: run.item,
      start: run.start,
      end: run.end,
      record: run.record,
      matched: run.slots.size,
      score: Math.round(Math.min(1, best) * 1000) / 1000,
      text: bestUnit >= 0 ? index.unitText[bestUnit]! : 0,
      span: spanText(Buffer.concat(run.spanParts)),
    });
  }
}

function spanText(bytes: Buffer): string {
  const text = bytes.toString('utf8').replace(/\s+/g, ' ').trim();
  return text.length > SPAN_CHARS ? `${text.slice(0, SPAN_CHARS - 1)}…` : text;
}
