import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** Bytes read per chunk while indexing or searching. */
const CHUNK_BYTES = 4 * 1024 * 1024;
/** A returned line is cut at this many bytes: traces are hostile and a single line may be huge. */
export const MAX_LINE_BYTES = 16 * 1024;
/** Search looks at most this far into one line. */
const MAX_SEARCH_LINE_BYTES = 8 * 1024 * 1024;

/**
 * Byte offset of the start of every line of a text file, so a page of lines is one positioned read.
 *
 * The scan is resumable: `ensure(n)` reads only as far as the first n lines need (the first page of a
 * huge trace is served after one chunk), `ensureAll()` finishes it, and `completeInBackground()` finishes
 * it a chunk per event-loop turn so the server stays responsive. Trace and ledger files only grow, so a
 * larger file continues the scan where it stopped; a shrunk or replaced file starts over.
 */
export class LineIndex {
  /** starts[i] = byte offset of line i. A start equal to the file size is the empty "line" after a final newline. */
  private starts = new Float64Array(1024);
  private lines = 0;
  /** Bytes [0, scanned) have been scanned for newlines. */
  private scanned = 0;
  private size = 0;
  private mtimeMs = -1;
  private ino = -1;
  /** Bumped on every reset, so a background scan of an older version stops. */
  private generation = 0;
  private background: Promise<void> | null = null;

  constructor(readonly path: string) {}

  /** Whether every line of the file (as of the last refresh) is indexed. */
  get complete(): boolean {
    return this.scanned >= this.size;
  }

  /** Lines in the file; exact once `complete`, else a lower bound. */
  get count(): number {
    if (!this.complete) return Math.max(0, this.lines - 1);
    return this.lines > 0 && this.starts[this.lines - 1]! >= this.size ? this.lines - 1 : this.lines;
  }

  get bytes(): number {
    return this.size;
  }

  /** Notice growth or replacement of the file (one stat); scans nothing. */
  refresh(): void {
    const fd = openSync(this.path, 'r');
    try {
      const st = fstatSync(fd);
      if (st.size === this.size && st.mtimeMs === this.mtimeMs && st.ino === this.ino) return;
      // Append-only files only grow; anything else (shrunk, replaced, rewritten in place) starts over.
      const grown = st.ino === this.ino && st.size > this.size;
      if (!grown) {
        this.lines = 0;
        this.scanned = 0;
        this.generation++;
      }
      this.size = st.size;
      this.mtimeMs = st.mtimeMs;
      this.ino = st.ino;
      if (this.lines === 0 && this.size > 0) this.push(0);
    } finally {
      closeSync(fd);
    }
  }

  /** Index at least the first `n` lines (fewer when the file has fewer). */
  ensure(n: number): void {
    if (this.complete || this.count >= n) return;
    const fd = openSync(this.path, 'r');
    try {
      while (!this.complete && this.count < n) this.scanChunk(fd);
    } finally {
      closeSync(fd);
    }
  }

  ensureAll(): void {
    this.ensure(Number.POSITIVE_INFINITY);
  }

  /** Finish the scan one chunk per event-loop turn. */
  completeInBackground(): Promise<void> {
    if (this.background) return this.background;
    const generation = this.generation;
    this.background = (async () => {
      try {
        while (!this.complete && generation === this.generation) {
          const fd = openSync(this.path, 'r');
          try {
            this.scanChunk(fd);
          } finally {
            closeSync(fd);
          }
          await new Promise((resolve) => setImmediate(resolve));
        }
      } catch {
        // The file vanished or became unreadable: the next request reports it.
      } finally {
        this.background = null;
      }
    })();
    return this.background;
  }

  private push(offset: number): void {
    if (this.lines === this.starts.length) {
      const grown = new Float64Array(this.starts.length * 2);
      grown.set(this.starts);
      this.starts = grown;
    }
    this.starts[this.lines++] = offset;
  }

  private scanChunk(fd: number): void {
    const want = Math.min(CHUNK_BYTES, this.size - this.scanned);
    const buf = Buffer.allocUnsafe(want);
    const n = readSync(fd, buf, 0, want, this.scanned);
    if (n <= 0) {
      this.size = this.scanned; // the file is shorter than its stat said (truncated meanwhile)
      return;
    }
    const base = this.scanned;
    let i = buf.indexOf(10, 0);
    while (i !== -1 && i < n) {
      this.push(base + i + 1);
      i = buf.indexOf(10, i + 1);
    }
    this.scanned += n;
  }

  /** Byte range [start, end) of line `n`, without its newline. */
  private range(n: number): [number, number] {
    const start = this.starts[n]!;
    const end = n + 1 < this.lines ? this.starts[n + 1]! - 1 : this.size;
    return [start, Math.max(start, end)];
  }

  /** Lines [offset, offset + limit) as text; each cut at MAX_LINE_BYTES. */
  read(offset: number, limit: number): { n: number; text: string; bytes: number; truncated: boolean }[] {
    const first = Math.max(0, offset);
    this.ensure(first + Math.max(0, limit));
    const last = Math.min(this.count, first + Math.max(0, limit));
    if (first >= last) return [];
    const fd = openSync(this.path, 'r');
    try {
      const out: { n: number; text: string; bytes: number; truncated: boolean }[] = [];
      const spanStart = this.starts[first]!;
      const spanEnd = this.range(last - 1)[1];
      // Usual case: one read for the whole page. A page with giant lines reads line by line instead.
      const whole = spanEnd - spanStart <= CHUNK_BYTES ? Buffer.allocUnsafe(spanEnd - spanStart) : undefined;
      if (whole) readSync(fd, whole, 0, whole.length, spanStart);
      for (let n = first; n < last; n++) {
        const [start, end] = this.range(n);
        const len = end - start;
        const take = Math.min(len, MAX_LINE_BYTES);
        let bytes: Buffer;
        if (whole) {
          bytes = whole.subarray(start - spanStart, start - spanStart + take);
        } else {
          bytes = Buffer.allocUnsafe(take);
          readSync(fd, bytes, 0, take, start);
        }
        let text = bytes.toString('utf8');
        if (text.endsWith('\r')) text = text.slice(0, -1);
        out.push({ n, text, bytes: len, truncated: len > take });
      }
      return out;
    } finally {
      closeSync(fd);
    }
  }

  /** Line containing byte `offset` (binary search over the line starts). */
  private lineAt(offset: number): number {
    let lo = 0;
    let hi = this.lines - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * Case-insensitive substring search from line `from`, stopping after `cap` matching lines. Reads whole
   * lines in chunks of about CHUNK_BYTES. An ASCII query is matched on the chunk decoded as latin1 (one
   * character per byte, so a hit's position is its byte offset and the index gives its line); any other
   * query on the UTF-8 text, counting newlines up to each hit.
   */
  search(query: string, from: number, cap: number): SearchResult {
    const matches: number[] = [];
    const needle = query.replace(/[\r\n]/g, '');
    if (needle.length === 0) return { matches, nextFrom: null, scanned: 0 };
    this.ensureAll();
    const total = this.count;
    const ascii = /^[\x00-\x7f]*$/.test(needle);
    // A regular expression with the `i` flag folds case without copying the chunk to lower case.
    const re = new RegExp(needle.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'), 'gi');
    const fd = openSync(this.path, 'r');
    let line = Math.max(0, from);
    try {
      while (line < total) {
        const chunkStart = this.starts[line]!;
        let endLine = line + 1;
        while (endLine < total && this.range(endLine)[1] - chunkStart <= CHUNK_BYTES) endLine++;
        const chunkEnd = Math.min(this.range(endLine - 1)[1], chunkStart + MAX_SEARCH_LINE_BYTES);
        const buf = Buffer.allocUnsafe(chunkEnd - chunkStart);
        readSync(fd, buf, 0, buf.length, chunkStart);
        const text = buf.toString(ascii ? 'latin1' : 'utf8');
        let lineOfPos = line;
        let pos = 0;
        re.lastIndex = 0;
        for (let m = re.exec(text); m !== null; m = re.exec(text)) {
          let hitLine: number;
          let next: number;
          if (ascii) {
            hitLine = this.lineAt(chunkStart + m.index);
            next = hitLine + 1 < endLine ? this.starts[hitLine + 1]! - chunkStart : text.length;
          } else {
            let nl = text.indexOf('\n', pos);
            while (nl !== -1 && nl < m.index) {
              lineOfPos++;
              pos = nl + 1;
              nl = text.indexOf('\n', pos);
            }
            hitLine = lineOfPos;
            next = nl === -1 ? text.length : nl + 1;
          }
          matches.push(hitLine);
          if (matches.length >= cap) {
            const nextFrom = hitLine + 1 < total ? hitLine + 1 : null;
            return { matches, nextFrom, scanned: hitLine + 1 - from };
          }
          if (next >= text.length) break;
          re.lastIndex = next;
        }
        line = endLine;
      }
      return { matches, nextFrom: null, scanned: total - from };
    } finally {
      closeSync(fd);
    }
  }
}

export interface SearchResult {
  /** Line numbers (0-based) of matching lines, ascending. */
  matches: number[];
  /** Where to continue when the cap was reached; null when the file was searched to the end. */
  nextFrom: number | null;
  scanned: number;
}

/** Index cache: one LineIndex per path, refreshed on every use (append-only files grow incrementally). */
export class LineIndexCache {
  private readonly entries = new Map<string, LineIndex>();

  constructor(private readonly maxEntries = 32) {}

  /** The index of `path`, complete. */
  get(path: string): LineIndex {
    const index = this.lazy(path);
    index.ensureAll();
    return index;
  }

  /** The index of `path`, refreshed but scanned only as far as earlier calls needed. */
  lazy(path: string): LineIndex {
    let index = this.entries.get(path);
    if (index) {
      this.entries.delete(path);
    } else {
      index = new LineIndex(path);
    }
    this.entries.set(path, index); // most recently used last
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    index.refresh();
    return index;
  }
}
