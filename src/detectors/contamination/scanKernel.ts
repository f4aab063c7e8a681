import { WASM_BASE64 } from './scanKernelWasm.ts';

/**
 * The WebAssembly byte loop of the n-gram scanner (scanKernel.wat, assembled into the committed
 * scanKernelWasm.ts by scripts/buildWasm.mjs): it tokenises ASCII text, keeps the rolling n-gram
 * hash, checks each n-gram against the index's prefilter and looks those that pass up in the
 * table, two to three times faster than the same loop in JavaScript. ngramStream.ts owns the
 * semantics: it moves its state in and out around each call, hands the n-grams found to the
 * matcher and takes words with non-ASCII characters on its slow path. One kernel per index (its
 * memory holds copies of the filter and the table's keys and values, laid out as the index holds them
 * so that each is one copy; a miss touches one cache line, and only a first half that matches reads
 * the rest), created on first use; calls are never nested, so the streams of one index share it.
 */

/** Kernel exits. */
export const DONE = 0;
/** At a word for the slow path; its start is `position`. */
export const SLOW = 1;
/** The event buffer is full; resume at `position`. */
export const FULL = 2;

/** Int32 indices into the state block at address 0. */
export const ST = {
  h1: 0,
  count: 1,
  record: 2,
  lastEnd: 3,
  lastWasNumber: 4,
  runStart: 5,
  lastRun: 6,
  position: 7,
  events: 8,
  blobRuns: 9,
  ring: 16,
  ringStart: 24,
} as const;

/**
 * Int32s per event: h1 h2 count token start line end slot. The line is where the n-gram starts,
 * or -1 - the line where it ends when it starts before the window.
 */
export const EVENT_INTS = 8;
const CLASS_TABLES = 256;
const SEPARATOR_ESCAPES = 1280;
const HEX_DIGITS = 1536;
const LETTER_VALUES = 1792;
const EVENTS = 4096;
const EVENT_CAPACITY = 4096;
const EVENTS_END = EVENTS + EVENT_CAPACITY * EVENT_INTS * 4;
const PAGE = 65536;
/** Window capacity a kernel starts with (a feeder's 4 MiB chunk and its tail fit). */
const INITIAL_WINDOW = (4 << 20) + (96 << 10);

type ScanFn = (
  win: number,
  from: number,
  stop: number,
  to: number,
  cls: number,
  filter: number,
  shift: number,
  table: number,
  tableShift: number,
  tableMask: number,
  keys2: number,
  vals: number,
  lo: number,
  eventsEnd: number,
  blobs: number,
) => number;

let compiled: WebAssembly.Module | null = null;

function kernelModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'));
  return compiled;
}

/** Tables the kernel reads, as the JavaScript side defines them. */
export interface KernelTables {
  /** Four byte-class tables: plain, counting lines, decoding escapes, both. */
  classes: readonly Uint8Array[];
  separatorEscapes: Uint8Array;
}

export class ScanKernel {
  private readonly memory: WebAssembly.Memory;
  private readonly scanFn: ScanFn;
  private readonly filterAt: number;
  private readonly filterShift: number;
  private readonly tableAt: number;
  private readonly tableShift: number;
  private readonly tableMask: number;
  private readonly keys2At: number;
  private readonly valsAt: number;
  /** Where the window of scanned bytes starts (one guard byte sits before it), and its size. */
  private readonly windowAt: number;
  private windowCapacity = 0;
  private blobsAt = 0;
  u8!: Uint8Array;
  i32!: Int32Array;

  /**
   * Without `keys` the kernel reports every n-gram that passes the filter (index building, with a
   * filter that passes everything); with them, the n-grams found in the table.
   */
  constructor(
    tables: KernelTables,
    filter: Int32Array,
    filterShift: number,
    keys: { keys1: Int32Array; keys2: Int32Array; vals: Int32Array; tableShift: number } | null,
  ) {
    const instance = new WebAssembly.Instance(kernelModule(), {});
    this.memory = instance.exports.memory as WebAssembly.Memory;
    this.scanFn = instance.exports.scan as ScanFn;
    this.filterAt = EVENTS_END;
    this.filterShift = filterShift;
    this.tableAt = keys ? this.filterAt + filter.byteLength : 0;
    this.tableShift = keys?.tableShift ?? 0;
    this.tableMask = keys ? keys.keys1.length - 1 : 0;
    const slots = keys ? keys.keys1.length : 0;
    this.keys2At = this.tableAt + 4 * slots;
    this.valsAt = this.keys2At + 4 * slots;
    this.windowAt = this.filterAt + filter.byteLength + 12 * slots + 64;
    this.ensureWindow(INITIAL_WINDOW);
    for (let k = 0; k < 4; k++) this.u8.set(tables.classes[k]!, CLASS_TABLES + 256 * k);
    this.u8.set(tables.separatorEscapes, SEPARATOR_ESCAPES);
    for (const c of '0123456789abcdefABCDEF') this.u8[HEX_DIGITS + c.charCodeAt(0)] = 1;
    for (let b = 0; b < 256; b++)
      if ((b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a)) this.u8[LETTER_VALUES + b] = b & 31;
    this.u8.set(new Uint8Array(filter.buffer, filter.byteOffset, filter.byteLength), this.filterAt);
    if (keys) {
      this.i32.set(keys.keys1, this.tableAt >> 2);
      this.i32.set(keys.keys2, this.keys2At >> 2);
      this.i32.set(keys.vals, this.valsAt >> 2);
    }
  }

  /** Room for `bytes` in the window, and for the blob runs such a window can hold after it. */
  private ensureWindow(bytes: number): void {
    if (bytes <= this.windowCapacity) return;
    const capacity = Math.max(bytes, this.windowCapacity * 2);
    const blobsAt = (this.windowAt + capacity + 64) & ~3;
    const end = blobsAt + (Math.ceil(capacity / 64) + 4) * 8;
    const pages = Math.ceil(end / PAGE) - this.memory.buffer.byteLength / PAGE;
    if (pages > 0) this.memory.grow(pages);
    this.windowCapacity = capacity;
    this.blobsAt = blobsAt;
    this.u8 = new Uint8Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
  }

  /**
   * Copy buf[from - 1, to] into the window (a separator stands in for buf[to] past the buffer's
   * end, and follows the copy); returns the window address of buf[0].
   */
  load(buf: Uint8Array, from: number, to: number): number {
    const off = Math.max(0, from - 1);
    const end = Math.min(buf.length, to + 1);
    this.ensureWindow(end - off + 2);
    this.u8.set(buf.subarray(off, end), this.windowAt);
    const win = this.windowAt - off;
    this.u8[win + end] = 0x20;
    if (to >= buf.length) this.u8[win + to] = 0x20;
    return win;
  }

  /** Run over buf[from, stop) loaded at `win`; `classes` picks the byte-class table (0–3). */
  run(win: number, from: number, stop: number, to: number, classes: number): number {
    return this.scanFn(
      win,
      from,
      stop,
      to,
      CLASS_TABLES + 256 * classes,
      this.filterAt,
      this.filterShift,
      this.tableAt,
      this.tableShift,
      this.tableMask,
      this.keys2At,
      this.valsAt,
      this.windowAt,
      EVENTS_END,
      this.blobsAt,
    );
  }

  /** Int32 index of the first event. */
  get eventsIndex(): number {
    return EVENTS >> 2;
  }

  get blobRunsIndex(): number {
    return this.blobsAt >> 2;
  }
}
