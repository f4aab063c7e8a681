import { readSync } from 'node:fs';
import { type EncodedBlob, findEncodedBlobs } from './blobs.ts';
import { giveBack, type Matcher, type MatchFinding, takeMatcher } from './matcher.ts';
import type { NgramIndex } from './ngramIndex.ts';
import { MAX_TOKEN_BYTES, NgramStream } from './ngramStream.ts';

const BLOB_CHAR = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-=')
  BLOB_CHAR[c.charCodeAt(0)] = 1;

/** Where a blob that starts at `from` ends: base64/hex characters, with line breaks (raw or `\n`) between them. */
function blobExtent(buf: Uint8Array, from: number, to: number): number {
  let i = from;
  while (i < to) {
    const b = buf[i]!;
    if (BLOB_CHAR[b]) i++;
    else if (b === 0x0d && buf[i + 1] === 0x0a && i + 2 < to && BLOB_CHAR[buf[i + 2]!]) i += 2;
    else if ((b === 0x0a || b === 0x0d) && i + 1 < to && BLOB_CHAR[buf[i + 1]!]) i++;
    else if (b === 0x5c && buf[i + 1] === 0x6e && i + 2 < to && BLOB_CHAR[buf[i + 2]!]) i += 2;
    else break;
  }
  return i;
}

/** Newlines in buf[from, to). */
function newlines(buf: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = buf.indexOf(0x0a, from); i !== -1 && i < to; i = buf.indexOf(0x0a, i + 1)) n++;
  return n;
}

/** How a finding's place in its source is given. */
export type LocationKind = 'line' | 'row' | 'offset';
export type Location = { line: number } | { row: number } | { offset: number };

export function locationOf(kind: LocationKind, finding: MatchFinding): Location {
  if (kind === 'line') return { line: finding.record };
  if (kind === 'row') return { row: finding.record };
  return { offset: finding.start };
}

const CHUNK = 4 << 20;
/** Bytes kept before the unprocessed tail so that a match's text can still be read back. */
const LOOKBACK = 64 << 10;
const FULL_BUFFER = CHUNK + LOOKBACK + 2 * MAX_TOKEN_BYTES + 16;
/**
 * A full-size buffer left by an ended feeder, for the next one: a scan of many large files or of
 * a file's ranges would otherwise allocate (and garbage-collect) 4 MiB per source.
 */
let spareBuffer: Buffer | null = null;

/**
 * Feeds one source's bytes through the n-gram stream in large chunks with bounded memory: a fixed
 * buffer, cut after the last separator so that no token spans two calls.
 */
export class ByteFeeder {
  readonly matcher: Matcher;
  private readonly stream: NgramStream;
  private buf: Buffer;
  /** Bytes the buffer takes: one is always left for the sentinel space after the data. */
  private readonly capacity: number;
  /** Absolute offset of buf[0]; bytes in buf; processed up to. */
  private base = 0;
  private fill = 0;
  private pos = 0;
  bytes = 0;
  /** CSV: newlines inside quoted fields are blanked so that counted lines are rows (header = row 0). */
  private readonly csv: boolean;
  private inQuotes = false;
  /** Encoded blobs found (absolute offsets in this source), for the caller to decode and scan. */
  private readonly onBlob: ((blob: EncodedBlob) => void) | undefined;
  private readonly countLines: boolean;
  /** Blobs before this absolute offset were already reported. */
  private blobsDoneTo = 0;

  constructor(
    private readonly index: NgramIndex,
    onFinding: (f: MatchFinding) => void,
    opts: {
      countLines: boolean;
      csv?: boolean;
      onBlob?: (blob: EncodedBlob) => void;
      /** The whole source's size when known and small (a decoded blob): the buffer is made to fit. */
      sizeHint?: number;
    },
  ) {
    const size = opts.sizeHint !== undefined ? Math.min(FULL_BUFFER, opts.sizeHint + 32) : FULL_BUFFER;
    this.buf = size === FULL_BUFFER && spareBuffer ? spareBuffer : Buffer.allocUnsafe(size);
    if (this.buf === spareBuffer) spareBuffer = null;
    this.capacity = this.buf.length - 16;
    this.matcher = takeMatcher(index, onFinding);
    this.stream = new NgramStream(
      { escapes: true, countLines: opts.countLines || Boolean(opts.csv) },
      index,
      this.matcher,
    );
    this.csv = Boolean(opts.csv);
    if (this.csv) this.stream.record = 0;
    this.onBlob = opts.onBlob;
    this.countLines = opts.countLines && !opts.csv;
  }

  private blankQuotedNewlines(from: number, to: number): void {
    const buf = this.buf;
    let i = from;
    while (i < to) {
      const q = buf.subarray(i, to).indexOf(0x22);
      const stop = q < 0 ? to : i + q;
      if (this.inQuotes) for (let j = i; j < stop; j++) if (buf[j] === 0x0a) buf[j] = 0x20;
      if (q < 0) return;
      this.inQuotes = !this.inQuotes;
      i = stop + 1;
    }
  }

  /** Copy bytes in (decompressed streams). */
  write(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.fill === this.capacity) this.drain(false);
      const n = Math.min(chunk.length - off, this.capacity - this.fill);
      this.buf.set(chunk.subarray(off, off + n), this.fill);
      if (this.csv) this.blankQuotedNewlines(this.fill, this.fill + n);
      this.fill += n;
      off += n;
      this.bytes += n;
    }
    if (this.fill - this.pos >= CHUNK) this.drain(false);
  }

  /** Read a file descriptor straight into the buffer: all of it, or `length` bytes from `start`. */
  readFd(
    fd: number,
    onProgress?: (bytes: number) => void,
    start = -1,
    length = Number.POSITIVE_INFINITY,
  ): void {
    let position = start;
    let left = length;
    for (;;) {
      if (this.fill === this.capacity) this.drain(false);
      const want = Math.min(this.capacity - this.fill, left);
      if (want <= 0) break;
      const n = readSync(fd, this.buf, this.fill, want, position < 0 ? null : position);
      if (n === 0) break;
      if (position >= 0) position += n;
      left -= n;
      if (this.csv) this.blankQuotedNewlines(this.fill, this.fill + n);
      this.fill += n;
      this.bytes += n;
      if (this.fill === this.capacity) onProgress?.(this.bytes);
    }
  }

  /** Process what is buffered; when not final keep the cut-off tail, then make room. */
  private drain(final: boolean): void {
    const stop = final ? this.fill : this.stream.safeEnd(this.buf, this.pos, this.fill);
    this.buf[this.fill] = 0x20; // sentinel: a token running to the end stops here
    this.matcher.validFrom = this.base;
    this.pos = this.stream.process(this.buf, this.pos, stop, this.fill, this.base);
    if (final) this.pos = this.fill;
    this.matcher.sweep(this.stream.count);
    let keep = Math.max(0, this.pos - LOOKBACK);
    if (this.stream.blobRuns.length > 0 && this.onBlob) keep = Math.min(keep, this.reportBlobs(final));
    if (keep > 0) {
      this.buf.copyWithin(0, keep, this.fill);
      this.base += keep;
      this.pos -= keep;
      this.fill -= keep;
    }
  }

  /**
   * Decode the blobs around the glued runs the stream saw, each in a window from its run's start
   * to where base64/hex characters (and line breaks between them) stop. A blob that reaches the
   * end of the processed bytes may go on in the next chunk: it waits, and the buffer keeps it
   * (returns the first offset to keep).
   */
  private reportBlobs(final: boolean): number {
    const runs = this.stream.blobRuns;
    const runLines = this.stream.blobRunLines;
    this.stream.blobRuns = [];
    this.stream.blobRunLines = [];
    let keepFrom = this.pos;
    for (let r = 0; r < runs.length; r++) {
      const run = runs[r]!;
      const at = run - this.base;
      if (run < this.blobsDoneTo || at < 0) continue;
      const end = blobExtent(this.buf, at, this.pos);
      if (!final && end >= this.pos - 2 && this.pos - at < LOOKBACK) {
        // may continue: look again with the next chunk
        this.stream.blobRuns.push(run);
        this.stream.blobRunLines.push(runLines[r]!);
        keepFrom = Math.min(keepFrom, at);
        continue;
      }
      for (const blob of findEncodedBlobs(this.buf, Math.max(0, at - 4, this.blobsDoneTo - this.base), end)) {
        // The line of the blob's start, from its run's line (a blob may begin a little before
        // its run, or on a later line of a wrapped blob).
        const line =
          blob.offset >= at
            ? runLines[r]! + newlines(this.buf, at, blob.offset)
            : runLines[r]! - newlines(this.buf, blob.offset, at);
        this.onBlob!({
          ...blob,
          offset: this.base + blob.offset,
          end: this.base + blob.end,
          ...(this.countLines ? { line } : {}),
        });
        this.blobsDoneTo = this.base + blob.end;
      }
      this.blobsDoneTo = Math.max(this.blobsDoneTo, this.base + end);
    }
    return keepFrom;
  }

  /** Newlines read so far (line-counted sources). */
  get newlines(): number {
    return this.stream.record - 1;
  }

  /** End of the source: process the rest and report every open run. */
  end(): void {
    this.drain(true);
    this.matcher.flush();
    giveBack(this.index, this.matcher);
    if (this.buf.length === FULL_BUFFER) spareBuffer = this.buf;
  }
}

/**
 * Feeds table rows: each cell is a separate text (n-grams never span two cells' boundary
 * characters), the row number is the record.
 */
export class RowFeeder {
  readonly matcher: Matcher;
  private readonly stream: NgramStream;
  private offset = 0;
  bytes = 0;

  constructor(
    private readonly index: NgramIndex,
    onFinding: (f: MatchFinding) => void,
  ) {
    this.matcher = takeMatcher(index, onFinding);
    this.stream = new NgramStream({ escapes: true, countLines: false }, index, this.matcher);
  }

  /** Start a row (1-based). */
  row(n: number): void {
    this.stream.record = n;
  }

  private scratch = Buffer.allocUnsafe(1 << 16);

  private room(bytes: number): Buffer {
    if (this.scratch.length < bytes + 1)
      this.scratch = Buffer.allocUnsafe(Math.max(bytes + 1, this.scratch.length * 2));
    return this.scratch;
  }

  /** One cell's bytes (buf[from, to)), e.g. a string in an Arrow body. */
  cell(buf: Uint8Array, from: number, to: number): void {
    const n = to - from;
    const scratch = this.room(n);
    scratch.set(buf.subarray(from, to), 0);
    this.scan(scratch, n);
  }

  text(value: string): void {
    const scratch = this.room(Buffer.byteLength(value, 'utf8'));
    this.scan(scratch, scratch.write(value, 0, 'utf8'));
  }

  private scan(scratch: Buffer, n: number): void {
    scratch[n] = 0x20; // sentinel
    this.matcher.validFrom = this.offset;
    this.stream.process(scratch, 0, n, n, this.offset);
    this.matcher.settle(); // the scratch buffer holds the next cell next
    this.stream.boundary();
    this.offset += n + 1;
    this.bytes += n;
  }

  /** Between batches: close runs that cannot grow any more. */
  sweep(): void {
    this.matcher.sweep(this.stream.count);
  }

  end(): void {
    this.matcher.flush();
    giveBack(this.index, this.matcher);
  }
}
