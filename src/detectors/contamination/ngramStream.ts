/**
 * The one tokeniser both sides of contamination detection use: test items are indexed with it and
 * scanned bytes go through it, so a copy of an item yields the same n-gram hashes wherever it sits.
 *
 * Normalisation: lowercase, Unicode NFKC (only words holding non-ASCII bytes or `\uXXXX` escapes
 * take the slow path that applies it; ASCII is already NFKC-stable), every run of characters that
 * are not letters or digits is a separator. Tokens are letter runs and digit runs. Numbers are
 * masked: every digit run becomes the one token `#`; consecutive numbers with nothing but
 * separators between them (`1,000.50`, `48/2=24`) and letters glued to a number (`3rd`, `5kg`)
 * collapse into that token, so an item whose numbers were all changed hashes like the original.
 *
 * The scanner reads bytes as they are on disk, so it decodes the escapes of JSON and of string
 * literals in code (`\n`, `\"`, `\\`, `\uXXXX`) instead of reading them as text; items are indexed
 * both with backslashes as plain separators and with them read as escapes (see `ESCAPE_VARIANT`),
 * so an item holding LaTeX or code escapes is found both JSON-encoded and pasted into source code.
 *
 * Hashes: a rotate-xor word hash (32 bit); an n-gram's key is a rolling polynomial hash over its
 * N tokens, updated in O(1) per token, plus a second 32-bit half computed from mixed token hashes
 * only when the first half passes the index's prefilter (64 bits in all, no BigInt).
 */

import { DONE, EVENT_INTS, ScanKernel, SLOW, ST } from './scanKernel.ts';

/** Tokens per n-gram. Eight masked words: short items (a 20-word question) still give a dozen. */
export const NGRAM = 8;
const RING_MASK = 7; // NGRAM - 1; NGRAM must be a power of two
/** Tokens longer than this (bytes, no separator) are cut: base64 blobs, minified data. */
export const MAX_TOKEN_BYTES = 4096;
/** Glued letter/digit runs this long look like an encoded blob (base64, hex). */
export const BLOB_MIN_BYTES = 64;

const B1 = 0x9e3779b1 | 0;
const B2 = 0x85ebca77 | 0;
function power(base: number, n: number): number {
  let r = 1;
  for (let i = 0; i < n; i++) r = Math.imul(r, base);
  return r;
}
const B1N = power(B1, NGRAM);
/** The masked-number token `#`. */
export const NUMBER_TOKEN = 0x5a5a5a5a;
/** Far below any offset inside a buffer: "no token ended here". */
const NO_END = -0x40000000;

// Byte classes.
const SEP = 0;
const LETTER = 1;
const DIGIT = 2;
const NEWLINE = 3;
// classes from HIGH up may start the slow path
const HIGH = 4; // a byte of a multi-byte UTF-8 character
const BACKSLASH = 5;

function classTable(escapes: boolean, countLines: boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let b = 0; b < 256; b++) {
    if ((b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a)) t[b] = LETTER;
    else if (b >= 0x30 && b <= 0x39) t[b] = DIGIT;
    else if (b >= 0x80) t[b] = HIGH;
  }
  if (escapes) t[0x5c] = BACKSLASH;
  if (countLines) t[0x0a] = NEWLINE;
  return t;
}
const CLASS_TABLES = [
  classTable(false, false),
  classTable(false, true),
  classTable(true, false),
  classTable(true, true),
];

/** Escapes that stand for a separator character: `\n \t \r \" \\ \/ \'`. */
const SEPARATOR_ESCAPE = new Uint8Array(256);
for (const c of 'ntr"\\/\'') SEPARATOR_ESCAPE[c.charCodeAt(0)] = 1;

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const l = b | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/** `\uXXXX` at buf[i] (buf[i] is a backslash), within [i, to). */
function isUnicodeEscape(buf: Uint8Array, i: number, to: number): boolean {
  return (
    i + 5 < to &&
    buf[i + 1] === 0x75 &&
    hexValue(buf[i + 2]!) >= 0 &&
    hexValue(buf[i + 3]!) >= 0 &&
    hexValue(buf[i + 4]!) >= 0 &&
    hexValue(buf[i + 5]!) >= 0
  );
}

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b | 0);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35 | 0);
  return (h ^ (h >>> 16)) | 0;
}

/**
 * Word hash step: rotate by five and xor the letter's low five bits. Letters a–z (either case)
 * are 1–26 in their low five bits, so words up to six letters hash without collisions, case folds
 * for free, and the step is two cycles: the byte loop is the scanner's cost.
 */
function step(h: number, v: number): number {
  return ((h << 5) | (h >>> 27)) ^ v;
}

/** Second half of an n-gram's 64-bit hash, from its tokens (oldest first in ring order). */
function secondHash(ring: Int32Array, oldest: number): number {
  let h = 0;
  for (let k = 0; k < NGRAM; k++) h = (Math.imul(h, B2) + fmix32(ring[(oldest + k) & RING_MASK]!)) | 0;
  return h;
}

const TOKEN_CHAR = /[\p{L}\p{M}\p{N}]/u;
/** Scripts written without spaces: every character is a token. */
const IDEOGRAPH = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u;
/** A prefilter that passes everything (32 words for `filterShift` 27). */
const ALL_PASS = new Int32Array(32).fill(-1);

/** One kernel per index (its memory holds copies of the filter and keys), one for collecting. */
const kernels = new WeakMap<Int32Array, ScanKernel>();
let collectKernel: ScanKernel | null = null;

function kernelFor(table: ProbeTable | null): ScanKernel {
  const tables = { classes: CLASS_TABLES, separatorEscapes: SEPARATOR_ESCAPE };
  if (!table) {
    collectKernel ??= new ScanKernel(tables, ALL_PASS, 27, null);
    return collectKernel;
  }
  let kernel = kernels.get(table.filter);
  if (!kernel) {
    kernel = new ScanKernel(tables, table.filter, table.filterShift, table);
    kernels.set(table.filter, kernel);
  }
  return kernel;
}

/** Receives the n-grams found in the index. */
export interface NgramSink {
  /**
   * A table hit: `slot` is the n-gram's slot in the index; the n-gram starts at absolute offset
   * `start` (record `record`) and ends at `end`; `token` counts tokens so far (gaps between hits).
   */
  hit(
    slot: number,
    token: number,
    start: number,
    record: number,
    end: number,
    buf: Uint8Array,
    base: number,
  ): void;
}

/** The parts of an n-gram index the scan loop probes. */
export interface ProbeTable {
  /**
   * Prefilter: a register-blocked Bloom filter (two bits of one 32-bit word per n-gram, one load
   * per token); word = filterKey >>> filterShift, bits from the key's low ten bits.
   */
  filter: Int32Array;
  filterShift: number;
  /** First hash half (0 stored as 1); 0 = empty slot. */
  keys1: Int32Array;
  keys2: Int32Array;
  /** > 0 = postings offset + 1; < 0 = stop n-gram (too common among items). */
  vals: Int32Array;
  tableShift: number;
}

export function filterKey(h1: number): number {
  return Math.imul(h1 ^ (h1 >>> 15), 0x165667b1);
}
/** The two filter bits of a key, in its word. */
export function filterBits(fk: number): number {
  return (1 << (fk & 31)) | (1 << ((fk >>> 5) & 31));
}
export function slotKey(h1: number): number {
  return Math.imul(h1 ^ (h1 >>> 13), 0x2c1b3c6d);
}

export interface StreamOptions {
  /** Decode JSON/code escapes (scanner: always; index: the escape variant). */
  escapes: boolean;
  /** Count `\n` into `record` (line-oriented sources); off when the caller sets records itself. */
  countLines: boolean;
}

/**
 * Streaming tokeniser + rolling n-gram hasher. Without a table it collects every n-gram
 * (index building); with one it probes each n-gram and reports hits to the sink.
 *
 * `process` reads one byte past `stop` when a token runs up to it: callers leave a separator byte
 * (a space) at buf[to] whenever stop === to.
 */
export class NgramStream {
  private readonly cls: Uint8Array;
  /** Which of CLASS_TABLES `cls` is (the kernel holds copies). */
  private readonly classes: number;
  private readonly countLines: boolean;
  private kernel: ScanKernel | null = null;
  /** Token hashes of the current window. */
  private readonly ring = new Int32Array(NGRAM);
  /** Token start offsets: absolute between calls, relative to the buffer inside `process`. */
  private readonly ringStart = new Float64Array(NGRAM);
  private h1 = 0;
  /** Tokens pushed so far (masked stream). */
  count = 0;
  /** Current line (1-based) when counting lines, else the record the caller set. */
  record = 1;
  /** Absolute end offset of the last token (-1: none, or a separator followed it). */
  private lastEnd = -1;
  private lastWasNumber = false;
  /**
   * Where the current run of glued tokens started (absolute): letter and digit runs with nothing
   * or one `+` or `/` between them, as base64 and hex blobs are written. A run of BLOB_MIN_BYTES
   * or more is recorded in `blobRuns` (absolute offsets); the feeder decodes around them only, so
   * text without blobs costs nothing more.
   */
  private blobRunStart = -1;
  private lastBlobRun = -1;
  blobRuns: number[] = [];
  /** The line (or record) each blob run starts on. */
  blobRunLines: number[] = [];
  // collect mode
  readonly collected1: number[] = [];
  readonly collected2: number[] = [];
  /** Every token pushed (collect mode): n-gram k covers tokens k … k+NGRAM-1 of one text. */
  readonly tokens: number[] = [];

  constructor(
    opts: StreamOptions,
    private readonly table: ProbeTable | null = null,
    private readonly sink: NgramSink | null = null,
  ) {
    this.classes = (opts.escapes ? 2 : 0) + (opts.countLines ? 1 : 0);
    this.cls = CLASS_TABLES[this.classes]!;
    this.countLines = opts.countLines;
  }

  /** Break glue between records (a letter run after a number is glued only within one text). */
  boundary(): void {
    this.lastEnd = -1;
  }

  /**
   * Where a chunk may be cut: after its last separator byte, so that no token (or escape, or
   * multi-byte character) is split. Returns `to` when the chunk ends in one overlong token.
   */
  safeEnd(buf: Uint8Array, from: number, to: number): number {
    const cls = this.cls;
    for (let i = to - 1; i >= from; i--) {
      const c = cls[buf[i]!];
      if (c === SEP || c === NEWLINE) return i + 1;
      if (to - i > MAX_TOKEN_BYTES) return to;
    }
    return to - from > MAX_TOKEN_BYTES ? to : from;
  }

  /**
   * Tokenise buf[from, stop); bytes up to `to` may be read ahead (escapes). `base` is the absolute
   * offset of buf[0]. Returns where it stopped (== stop, or a little past it after an escape).
   *
   * The byte loop runs in the WebAssembly kernel (scanKernel.wat); this moves the stream's state
   * in and out around each call, looks up the n-grams that passed the prefilter and takes words
   * with non-ASCII characters or `\uXXXX` escapes on the slow path (`slowWord`).
   */
  process(buf: Uint8Array, from: number, stop: number, to: number, base: number): number {
    if (from >= stop) return from;
    this.kernel ??= kernelFor(this.table);
    const kernel = this.kernel;
    const win = kernel.load(buf, from, to);
    let i = from;
    for (;;) {
      this.toKernel(kernel.i32, base);
      const exit = kernel.run(win, i, stop, to, this.classes);
      const count0 = this.count;
      this.fromKernel(kernel.i32, base);
      this.dispatch(kernel, count0, buf, base);
      i = kernel.i32[ST.position]!;
      if (exit === SLOW) i = this.slowWord(buf, i, to, base);
      else if (exit === DONE) return i;
      if (i >= stop) return i;
    }
  }

  private toKernel(st: Int32Array, base: number): void {
    st[ST.h1] = this.h1;
    st[ST.count] = this.count | 0;
    st[ST.record] = this.record;
    st[ST.lastEnd] = this.lastEnd < base ? NO_END : this.lastEnd - base;
    st[ST.lastWasNumber] = this.lastWasNumber ? 1 : 0;
    st[ST.runStart] = this.blobRunStart < base ? NO_END : this.blobRunStart - base;
    st[ST.lastRun] = this.lastBlobRun < base ? NO_END : this.lastBlobRun - base;
    for (let k = 0; k < NGRAM; k++) {
      st[ST.ring + k] = this.ring[k]!;
      st[ST.ringStart + k] = Math.max(NO_END, this.ringStart[k]! - base);
    }
  }

  private fromKernel(st: Int32Array, base: number): void {
    this.h1 = st[ST.h1]!;
    this.count += (st[ST.count]! - (this.count | 0)) | 0;
    this.record = st[ST.record]!;
    const lastEnd = st[ST.lastEnd]!;
    this.lastEnd = lastEnd < 0 ? -1 : base + lastEnd;
    this.lastWasNumber = st[ST.lastWasNumber] !== 0;
    const runStart = st[ST.runStart]!;
    const lastRun = st[ST.lastRun]!;
    this.blobRunStart = runStart < 0 ? -1 : base + runStart;
    this.lastBlobRun = lastRun < 0 ? -1 : base + lastRun;
    for (let k = 0; k < NGRAM; k++) {
      this.ring[k] = st[ST.ring + k]!;
      this.ringStart[k] = base + st[ST.ringStart + k]!;
    }
  }

  /** The kernel's events (n-grams found, or every n-gram when collecting) and blob runs, in order. */
  private dispatch(kernel: ScanKernel, count0: number, buf: Uint8Array, base: number): void {
    const st = kernel.i32;
    const events = st[ST.events]!;
    const count0i = count0 | 0;
    const table = this.table;
    for (let e = 0, at = kernel.eventsIndex; e < events; e++, at += EVENT_INTS) {
      const count = count0 + ((st[at + 2]! - count0i) | 0);
      if (table) {
        if (count < NGRAM) continue;
        const start = base + st[at + 4]!;
        const end = base + st[at + 6]!;
        const line = st[at + 5]!;
        const record = line >= 0 ? line : this.recordAt(-1 - line, start, end, buf, base);
        this.sink!.hit(st[at + 7]!, count, start, record, end, buf, base);
      } else this.collect(st[at]!, st[at + 1]!, st[at + 3]!, count);
    }
    const runs = st[ST.blobRuns]!;
    for (let r = 0, at = kernel.blobRunsIndex; r < runs; r++, at += 2) {
      this.blobRuns.push(base + st[at]!);
      this.blobRunLines.push(st[at + 1]!);
    }
  }

  /** Index building: every token, and every n-gram's key. */
  private collect(h1: number, h2: number, t: number, count: number): void {
    this.tokens.push(t);
    if (count >= NGRAM) {
      this.collected1.push(h1);
      this.collected2.push(h2);
    }
  }

  /** An n-gram that passed the prefilter on the slow path: collect it, or look it up. */
  private found(
    h1: number,
    h2: number,
    t: number,
    count: number,
    start: number,
    record: number,
    end: number,
    buf: Uint8Array,
    base: number,
  ): void {
    const table = this.table;
    if (!table) {
      this.collect(h1, h2, t, count);
      return;
    }
    if (count < NGRAM) return;
    const mask = table.vals.length - 1;
    let slot = slotKey(h1) >>> table.tableShift;
    for (;;) {
      const v = table.vals[slot]!;
      if (v === 0) return;
      if (table.keys1[slot] === h1 && table.keys2[slot] === h2) {
        if (v > 0)
          this.sink!.hit(slot, count, start, this.recordAt(record, start, end, buf, base), end, buf, base);
        return;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** The record at `start`, given the record at `end` (lines counted between them, on a hit only). */
  private recordAt(record: number, start: number, end: number, buf: Uint8Array, base: number): number {
    if (!this.countLines) return record;
    let r = record;
    for (let k = Math.max(0, start - base); k < end - base && k < buf.length; k++) if (buf[k] === 0x0a) r--;
    return r;
  }

  /** Push one token on the slow path: the kernel's push, in JavaScript. */
  private pushToken(t: number, start: number, end: number, buf: Uint8Array, base: number): void {
    const p = this.count & RING_MASK;
    this.h1 = (Math.imul(this.h1, B1) + t - Math.imul(this.ring[p]!, B1N)) | 0;
    this.ring[p] = t;
    this.ringStart[p] = start;
    this.count++;
    const filter = this.table ? this.table.filter : ALL_PASS;
    const fk = filterKey(this.h1);
    const bits = filterBits(fk);
    if ((filter[fk >>> (this.table ? this.table.filterShift : 27)]! & bits) === bits) {
      const h2 = secondHash(this.ring, this.count);
      const first = this.ringStart[this.count & RING_MASK]!;
      this.found(this.h1, h2, t, this.count, first, this.record, end, buf, base);
    }
  }

  /**
   * A run of letters, non-ASCII bytes and `\uXXXX` escapes starting at s: decode, NFKC, lowercase,
   * then split into tokens by Unicode class. Returns the index after the run.
   */
  private slowWord(buf: Uint8Array, s: number, to: number, base: number): number {
    const cls = this.cls;
    let text = '';
    let j = s;
    let segment = s;
    while (j < to && j - s < MAX_TOKEN_BYTES) {
      const c = cls[buf[j]!];
      if (c === LETTER || c === HIGH) {
        j++;
      } else if (c === BACKSLASH && isUnicodeEscape(buf, j, to)) {
        if (j > segment)
          text += Buffer.from(buf.buffer, buf.byteOffset + segment, j - segment).toString('utf8');
        const unit =
          (hexValue(buf[j + 2]!) << 12) |
          (hexValue(buf[j + 3]!) << 8) |
          (hexValue(buf[j + 4]!) << 4) |
          hexValue(buf[j + 5]!);
        text += String.fromCharCode(unit);
        j += 6;
        segment = j;
      } else break;
    }
    if (j > segment) text += Buffer.from(buf.buffer, buf.byteOffset + segment, j - segment).toString('utf8');
    const norm = text.normalize('NFKC').toLowerCase();
    const start = base + s;
    let glued = start === this.lastEnd;
    let h = 0;
    let inWord = false;
    let inNumber = false;
    const endWord = () => {
      if (inWord) {
        // letters glued to a number belong to it
        if (!(this.lastWasNumber && glued)) {
          this.lastWasNumber = false;
          this.pushToken(h, start, base + j, buf, base);
        }
        glued = true;
        inWord = false;
      }
    };
    for (const ch of norm) {
      const cp = ch.codePointAt(0)!;
      if (cp >= 0x30 && cp <= 0x39) {
        endWord();
        if (!inNumber) {
          inNumber = true;
          if (!this.lastWasNumber) {
            this.lastWasNumber = true;
            this.pushToken(NUMBER_TOKEN, start, base + j, buf, base);
          }
        }
        glued = true;
      } else if (cp >= 0x2e80 && IDEOGRAPH.test(ch)) {
        endWord();
        inNumber = false;
        inWord = true;
        h = step(0, cp);
        endWord();
      } else if (cp < 0x80 ? cp >= 0x61 && cp <= 0x7a : TOKEN_CHAR.test(ch)) {
        inNumber = false;
        if (!inWord) {
          inWord = true;
          h = 0;
        }
        // ASCII letters hash as on the fast path; other characters by code point.
        h = step(h, cp < 0x80 ? cp & 31 : cp);
      } else {
        endWord();
        inNumber = false;
        glued = false;
      }
    }
    endWord();
    this.lastEnd = glued ? base + j : -1;
    return j;
  }
}

export interface TextNgrams {
  h1: number[];
  h2: number[];
  /** Masked tokens; n-gram k covers tokens[k … k+NGRAM-1]. */
  tokens: number[];
}

/** Tokenise one text for the index. */
export function textNgrams(text: string, escapes: boolean): TextNgrams {
  const stream = new NgramStream({ escapes, countLines: false });
  const buf = Buffer.from(`${text} `, 'utf8'); // trailing space: the sentinel `process` may read
  stream.process(buf, 0, buf.length - 1, buf.length - 1, 0);
  return { h1: stream.collected1, h2: stream.collected2, tokens: stream.tokens };
}

/** Index an item text also with escapes decoded when it holds backslashes (LaTeX, code). */
export const ESCAPE_VARIANT = /\\/;
