import { spawn } from 'node:child_process';
import { closeSync, createReadStream, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  createGunzip,
  createInflate,
  createInflateRaw,
  inflateSync,
  constants as zlibConstants,
} from 'node:zlib';
import { readArrowStrings } from './arrowIpc.ts';
import type { EncodedBlob } from './blobs.ts';
import { ByteReader } from './byteReader.ts';
import { ByteFeeder, type Location, type LocationKind, locationOf, RowFeeder } from './feeder.ts';
import { type Codec, detectFormat, type Format, innerName } from './formats.ts';
import type { MatchFinding } from './matcher.ts';
import type { NgramIndex } from './ngramIndex.ts';
import { memberDataOffset, readZipDirectory, type ZipEntry } from './zipDirectory.ts';

/**
 * Reads one source of any format and feeds its text to the n-gram matcher, decoding as it goes:
 * gzip, zlib, bzip2, xz and zstd streams, zip and tar archives (members of members too), Parquet
 * and Arrow tables, numpy arrays, UTF-16/32 text, safetensors headers, and base64 or hex blobs
 * inside text. Nothing is unpickled or executed: pickles, byte code and object arrays are read as
 * raw bytes, where their strings sit as plain UTF-8.
 *
 * Limits keep a hostile file from stalling the audit: nesting depth, decoded bytes per top-level
 * file (a decompression bomb), blobs kept in memory. A limit reached is reported as an incomplete
 * scan (the verdict becomes unverified), never as a clean one.
 */

/** One test item found in one place. */
export interface ContaminationFinding {
  /** The file, or the member inside it (`archive.zip!data/train.jsonl`, `notes.txt!base64@120`). */
  source: string;
  location: Location;
  /** The test item's sample id. */
  item: string;
  /** Coverage of the item's best-matched text field, 0–1. */
  score: number;
  /** The matched text, clipped. */
  span: string;
  /** Distinct n-grams of the item found. */
  matched: number;
  /** Index of the best-matched text field of the item. */
  field: number;
  /** Decoders applied to reach the text (`gzip`, `tar`, `base64`…); empty for plain files. */
  via: string[];
  /** For text inside an encoded blob: where the blob sits in the file (the location is inside the blob). */
  container?: Location;
}

/** What the scan of one top-level source reports besides findings. */
export interface ScanSink {
  index: NgramIndex;
  finding(f: ContaminationFinding): void;
  /** Content not read on purpose (weights, media), with its size when known. */
  skip(label: string, reason: string, bytes: number): void;
  /** Content that could not be read (corrupt, unsupported, over a limit): the scan is incomplete. */
  incomplete(label: string, message: string): void;
}

export type Content =
  | { kind: 'file'; path: string; start: number; size: number }
  | { kind: 'buffer'; buf: Buffer };

export interface Place {
  /** How findings and reports name this content. */
  label: string;
  /** Where the outermost encoded blob holding this content sits in its file. */
  container?: Location;
  /** Its file name (formats are also told by name). */
  name: string;
  via: string[];
  depth: number;
}

/** Archives inside archives (or blobs inside them) deeper than this are not opened. */
export const MAX_DEPTH = 6;
/** Decoded content larger than this is spilled to a temporary file instead of held in memory. */
const MEMORY_BYTES = 64 << 20;
/** Decoded blobs held per source before they are scanned. */
const BLOB_MEMORY = 256 << 20;
const HEAD = 8192;

export class DecodeLimitError extends Error {}

/** Decoded bytes a top-level file may expand to: 100× its size, at least 256 MiB, at most 16 GiB. */
export function decodeBudget(size: number): number {
  return Math.min(16 * 1024 ** 3, Math.max(256 << 20, size * 100));
}

export class ScanJob {
  private tmp: string | null = null;
  decodedLeft: number;
  /** Newlines in the top-level content, once it has been read as lines (a range's line count). */
  topNewlines: number | null = null;

  private readonly budget: number;

  constructor(
    readonly sink: ScanSink,
    topSize: number,
    readonly onProgress: (bytes: number) => void = () => {},
    budget?: number,
  ) {
    this.budget = budget ?? decodeBudget(topSize);
    this.decodedLeft = this.budget;
  }

  spend(bytes: number, label: string): void {
    this.decodedLeft -= bytes;
    if (this.decodedLeft < 0) {
      throw new DecodeLimitError(
        `decoded content of ${label} passed ${this.budget} bytes (possible decompression bomb); the rest was not scanned`,
      );
    }
  }

  tempFile(): string {
    this.tmp ??= mkdtempSync(join(tmpdir(), 'ptb-scan-'));
    return join(this.tmp, `spill-${Math.random().toString(36).slice(2)}`);
  }

  close(): void {
    if (this.tmp) rmSync(this.tmp, { recursive: true, force: true });
    this.tmp = null;
  }
}

function sizeOf(content: Content): number {
  return content.kind === 'file' ? content.size : content.buf.length;
}

function readAt(content: Content, position: number, length: number): Buffer {
  if (content.kind === 'buffer')
    return content.buf.subarray(position, Math.min(content.buf.length, position + length));
  const want = Math.max(0, Math.min(length, content.size - position));
  const buf = Buffer.allocUnsafe(want);
  const fd = openSync(content.path, 'r');
  try {
    let done = 0;
    while (done < want) {
      const n = readSync(fd, buf, done, want - done, content.start + position + done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

function slice(content: Content, start: number, size: number): Content {
  if (content.kind === 'buffer') return { kind: 'buffer', buf: content.buf.subarray(start, start + size) };
  return { kind: 'file', path: content.path, start: content.start + start, size };
}

function contentStream(content: Content): Readable {
  if (content.kind === 'buffer') return Readable.from([content.buf]);
  if (content.size === 0) return Readable.from([]);
  return createReadStream(content.path, {
    start: content.start,
    end: content.start + content.size - 1,
    highWaterMark: 1 << 20,
  });
}

function findingFrom(
  index: NgramIndex,
  place: Place,
  kind: LocationKind,
  f: MatchFinding,
): ContaminationFinding {
  return {
    source: place.label,
    location: locationOf(kind, f),
    item: index.itemIds[f.item]!,
    score: f.score,
    span: f.span,
    matched: f.matched,
    field: f.text,
    via: place.via,
    ...(place.container ? { container: place.container } : {}),
  };
}

/** Blobs found by a byte feeder, decoded and scanned once the feeder is done. */
class BlobQueue {
  readonly blobs: EncodedBlob[] = [];
  private bytes = 0;
  private overflow = false;
  constructor(
    private readonly job: ScanJob,
    private readonly place: Place,
  ) {}

  add = (blob: EncodedBlob): void => {
    if (this.place.depth >= MAX_DEPTH) return;
    if (this.bytes + blob.data.length > BLOB_MEMORY) {
      this.overflow = true;
      return;
    }
    this.bytes += blob.data.length;
    this.blobs.push(blob);
  };

  async scan(): Promise<void> {
    if (this.overflow) {
      this.job.sink.incomplete(
        this.place.label,
        `more than ${BLOB_MEMORY} bytes of encoded blobs; the rest were not decoded`,
      );
    }
    for (const blob of this.blobs) {
      this.job.spend(blob.data.length, this.place.label);
      await scanContent(
        this.job,
        { kind: 'buffer', buf: blob.data },
        {
          label: `${this.place.label}!${blob.encoding}@${blob.offset}`,
          name: '',
          via: [...this.place.via, blob.encoding],
          depth: this.place.depth + 1,
          container:
            this.place.container ?? (blob.line !== undefined ? { line: blob.line } : { offset: blob.offset }),
        },
      );
    }
  }
}

function byteFeeder(
  job: ScanJob,
  place: Place,
  fmt: { location: LocationKind; csv: boolean },
  blobs: BlobQueue,
  sizeHint?: number,
) {
  return new ByteFeeder(
    job.sink.index,
    (f) => job.sink.finding(findingFrom(job.sink.index, place, fmt.location, f)),
    {
      countLines: fmt.location === 'line',
      csv: fmt.csv,
      onBlob: blobs.add,
      ...(sizeHint !== undefined ? { sizeHint } : {}),
    },
  );
}

async function scanBytes(
  job: ScanJob,
  content: Content,
  place: Place,
  fmt: { location: LocationKind; csv: boolean },
) {
  const blobs = new BlobQueue(job, place);
  // A buffer the size of the content (many small files or decoded blobs), at most a chunk.
  const feeder = byteFeeder(job, place, fmt, blobs, sizeOf(content));
  if (content.kind === 'buffer') feeder.write(content.buf);
  else {
    const fd = openSync(content.path, 'r');
    try {
      feeder.readFd(fd, place.depth === 0 ? job.onProgress : undefined, content.start, content.size);
    } finally {
      closeSync(fd);
    }
  }
  feeder.end();
  if (place.depth === 0 && fmt.location === 'line' && !fmt.csv) job.topNewlines = feeder.newlines;
  await blobs.scan();
}

/** UTF-16/32 to UTF-8, chunk by chunk (a code unit split between chunks is carried over). */
class WideDecoder {
  private carry = Buffer.alloc(0);
  private readonly decoder: TextDecoder | null;
  constructor(
    private readonly unit: 2 | 4,
    private readonly bigEndian: boolean,
  ) {
    this.decoder = unit === 2 ? new TextDecoder(bigEndian ? 'utf-16be' : 'utf-16le') : null;
  }
  decode(chunk: Buffer, final = false): Buffer {
    const data = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    const usable = data.length - (data.length % this.unit);
    this.carry = Buffer.from(data.subarray(usable));
    if (this.decoder)
      return Buffer.from(this.decoder.decode(data.subarray(0, usable), { stream: !final }), 'utf8');
    const parts: string[] = [];
    for (let i = 0; i < usable; i += 4) {
      const cp = this.bigEndian ? data.readUInt32BE(i) : data.readUInt32LE(i);
      parts.push(cp === 0 ? ' ' : cp <= 0x10ffff ? String.fromCodePoint(cp) : ' ');
    }
    return Buffer.from(parts.join(''), 'utf8');
  }
}

async function scanWide(
  job: ScanJob,
  content: Content,
  place: Place,
  unit: 2 | 4,
  bigEndian: boolean,
  skip: number,
) {
  const blobs = new BlobQueue(job, place);
  const feeder = byteFeeder(job, place, { location: 'offset', csv: false }, blobs);
  const wide = new WideDecoder(unit, bigEndian);
  const size = sizeOf(content);
  for (let pos = skip; pos < size; pos += 4 << 20) {
    const chunk = readAt(content, pos, 4 << 20);
    feeder.write(wide.decode(chunk, pos + chunk.length >= size));
  }
  feeder.end();
  await blobs.scan();
}

/** A stream of decoded bytes and a promise that rejects when the decoder failed. */
interface Decoded {
  chunks: AsyncIterable<Buffer>;
  finished: Promise<void>;
  stop(): void;
}

const TOOLS: Record<Exclude<Codec, 'gzip' | 'zlib'>, string> = { bzip2: 'bzip2', xz: 'xz', zstd: 'zstd' };

function decodeStream(input: Readable, codec: Codec): Decoded {
  if (codec === 'gzip' || codec === 'zlib') {
    const z = codec === 'gzip' ? createGunzip({ chunkSize: 1 << 20 }) : createInflate({ chunkSize: 1 << 20 });
    input.on('error', (err) => z.destroy(err));
    input.pipe(z);
    return {
      chunks: z,
      finished: Promise.resolve(),
      stop: () => {
        input.destroy();
        z.destroy();
      },
    };
  }
  // bzip2, xz, zstd: the system's decompressor, reading from a pipe (nothing runs the file's content).
  const child = spawn(TOOLS[codec], ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let stopped = false;
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 2000) stderr += d.toString();
  });
  child.stdin.on('error', () => {}); // the tool may exit before reading everything
  input.on('error', () => child.kill('SIGKILL'));
  input.pipe(child.stdin);
  const finished = new Promise<void>((resolve, reject) => {
    child.once('error', (err) =>
      reject(
        new Error(
          `cannot decode ${codec}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `${TOOLS[codec]} is not installed` : err.message}`,
        ),
      ),
    );
    child.once('close', (code) => {
      if (code === 0 || stopped) resolve();
      else reject(new Error(`${codec} stream is corrupt: ${stderr.trim().split('\n')[0] || `exit ${code}`}`));
    });
  });
  finished.catch(() => {});
  return {
    chunks: child.stdout,
    finished,
    stop: () => {
      stopped = true;
      input.destroy();
      child.kill('SIGKILL');
    },
  };
}

/** zlib is told by two header bytes that plain text can also start with: check that it inflates. */
function inflatesAsZlib(head: Buffer): boolean {
  try {
    inflateSync(head, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    return true;
  } catch {
    return false;
  }
}

async function* prepend(head: Buffer, rest: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  if (head.length > 0) yield head;
  yield* rest;
}

/** Hold a decoded stream whole (in memory, or in a temporary file when large) for a format that needs random access. */
async function materialize(job: ScanJob, chunks: AsyncIterable<Buffer>, label: string): Promise<Content> {
  const parts: Buffer[] = [];
  let size = 0;
  let file: { path: string; fd: number } | null = null;
  try {
    for await (const chunk of chunks) {
      job.spend(chunk.length, label);
      size += chunk.length;
      if (!file && size > MEMORY_BYTES) {
        const path = job.tempFile();
        file = { path, fd: openSync(path, 'w') };
        for (const p of parts) writeSync(file.fd, p);
        parts.length = 0;
      }
      if (file) writeSync(file.fd, chunk);
      else parts.push(Buffer.from(chunk));
    }
  } finally {
    if (file) closeSync(file.fd);
  }
  return file
    ? { kind: 'file', path: file.path, start: 0, size }
    : { kind: 'buffer', buf: Buffer.concat(parts) };
}

/** Scan a stream of decoded bytes (a decompressed file, a tar or zip member). */
async function scanStream(
  job: ScanJob,
  chunks: AsyncIterable<Buffer>,
  place: Place,
  stop: () => void = () => {},
) {
  const reader = new ByteReader(chunks);
  const head = await reader.read(HEAD);
  const rest = reader.take(Number.MAX_SAFE_INTEGER).chunks;
  const all = prepend(head, rest);
  let format = detectFormat(place.name, head, Number.MAX_SAFE_INTEGER);
  if (format.kind === 'compressed' && format.codec === 'zlib' && !inflatesAsZlib(head))
    format = { kind: 'bytes', location: 'line', csv: false };
  switch (format.kind) {
    case 'skip':
      job.sink.skip(place.label, format.reason, -1);
      if (head.length > 0) {
        stop(); // the rest is not needed (an empty stream is left to end and report its own errors)
        await reader.close();
      }
      return;
    case 'bytes': {
      const blobs = new BlobQueue(job, place);
      const feeder = byteFeeder(job, place, format, blobs);
      for await (const chunk of all) {
        job.spend(chunk.length, place.label);
        feeder.write(chunk);
      }
      feeder.end();
      await blobs.scan();
      return;
    }
    case 'wide': {
      const blobs = new BlobQueue(job, place);
      const feeder = byteFeeder(job, place, { location: 'offset', csv: false }, blobs);
      const wide = new WideDecoder(format.unit, format.bigEndian);
      let skip = format.bom;
      for await (const chunk of all) {
        job.spend(chunk.length, place.label);
        const body = skip > 0 ? chunk.subarray(Math.min(skip, chunk.length)) : chunk;
        skip = Math.max(0, skip - chunk.length);
        feeder.write(wide.decode(body));
      }
      feeder.write(wide.decode(Buffer.alloc(0), true));
      feeder.end();
      await blobs.scan();
      return;
    }
    case 'tar':
      await scanTar(job, new ByteReader(all), place);
      return;
    case 'compressed':
      await scanDecoded(job, Readable.from(all), place, format.codec);
      return;
    default:
      await scanContent(job, await materialize(job, all, place.label), place, format);
  }
}

async function scanDecoded(job: ScanJob, input: Readable, place: Place, codec: Codec): Promise<void> {
  if (place.depth >= MAX_DEPTH) {
    job.sink.incomplete(
      place.label,
      `compressed content nested deeper than ${MAX_DEPTH} levels was not opened`,
    );
    input.destroy();
    return;
  }
  const decoded = decodeStream(input, codec);
  const inner: Place = {
    label: place.label,
    name: innerName(place.name),
    via: [...place.via, codec],
    depth: place.depth + 1,
  };
  try {
    await scanStream(job, decoded.chunks, inner, decoded.stop);
    await decoded.finished;
  } finally {
    decoded.stop();
  }
}

function cString(buf: Buffer, from: number, length: number): string {
  const end = buf.indexOf(0, from);
  return buf.toString('utf8', from, end < 0 || end > from + length ? from + length : end);
}

/** Tar sizes: octal, or base-256 with the high bit set (GNU, for members over 8 GiB). */
function tarSize(field: Buffer): number {
  if (field[0]! & 0x80) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const text = cString(field, 0, field.length).trim();
  return text ? Number.parseInt(text, 8) : 0;
}

function paxPath(records: Buffer): string | null {
  const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(records.toString('utf8'));
  return m ? m[1]! : null;
}

async function scanTar(job: ScanJob, reader: ByteReader, place: Place): Promise<void> {
  if (place.depth >= MAX_DEPTH) {
    job.sink.incomplete(place.label, `archive nested deeper than ${MAX_DEPTH} levels was not opened`);
    return;
  }
  let longName: string | null = null;
  let pax: string | null = null;
  let members = 0;
  for (;;) {
    const header = await reader.read(512);
    if (header.length < 512) break;
    if (header.every((b) => b === 0)) continue; // end-of-archive blocks (or padding)
    const size = tarSize(header.subarray(124, 136));
    if (!Number.isFinite(size) || size < 0) throw new Error(`corrupt tar header after ${members} members`);
    const padded = Math.ceil(size / 512) * 512;
    const type = String.fromCharCode(header[156]!);
    if (type === 'L' || type === 'x' || type === 'g') {
      const body = await reader.read(Math.min(padded, 1 << 20));
      if (padded > 1 << 20) await reader.take(padded - (1 << 20)).rest();
      if (type === 'L') longName = cString(body, 0, size);
      else if (type === 'x') pax = paxPath(body.subarray(0, size));
      continue;
    }
    const prefix = header.toString('latin1', 257, 262) === 'ustar' ? cString(header, 345, 155) : '';
    const name =
      pax ?? longName ?? (prefix ? `${prefix}/${cString(header, 0, 100)}` : cString(header, 0, 100));
    pax = null;
    longName = null;
    const member = reader.take(padded);
    if (type === '0' || type === '\0' || type === '7') {
      members++;
      const label = `${place.label}!${name}`;
      await scanStream(job, limitTo(member.chunks, size), {
        label,
        name,
        via: [...place.via, 'tar'],
        depth: place.depth + 1,
      }).catch((err: Error) => {
        if (err instanceof DecodeLimitError) throw err;
        job.sink.incomplete(label, err.message);
      });
    }
    await member.rest();
  }
}

/** The first `n` bytes of a stream of chunks (a tar member without its padding). */
async function* limitTo(chunks: AsyncIterable<Buffer>, n: number): AsyncGenerator<Buffer> {
  let left = n;
  for await (const chunk of chunks) {
    if (left <= 0) return;
    const out = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= out.length;
    yield out;
    if (left <= 0) return;
  }
}

/** PyTorch checkpoints are zips whose `…/data/<n>` members hold raw tensor storage. */
function tensorStorage(entries: readonly ZipEntry[]): (name: string) => boolean {
  const roots = new Set(
    entries.filter((e) => /(^|\/)data\.pkl$/.test(e.name)).map((e) => e.name.replace(/data\.pkl$/, '')),
  );
  if (roots.size === 0) return () => false;
  return (name) => {
    const m = /^(.*?)data\/\d+$/.exec(name);
    return m !== null && roots.has(m[1]!);
  };
}

async function scanZip(job: ScanJob, content: Content, place: Place): Promise<void> {
  if (place.depth >= MAX_DEPTH) {
    job.sink.incomplete(place.label, `archive nested deeper than ${MAX_DEPTH} levels was not opened`);
    return;
  }
  const read = (position: number, length: number) => readAt(content, position, length);
  const entries = readZipDirectory(read, sizeOf(content));
  const isStorage = tensorStorage(entries);
  let storage = 0;
  let storageBytes = 0;
  for (const entry of entries) {
    if (entry.name.endsWith('/')) continue;
    const label = `${place.label}!${entry.name}`;
    if (isStorage(entry.name)) {
      storage++;
      storageBytes += entry.size;
      continue;
    }
    const inner: Place = { label, name: entry.name, via: [...place.via, 'zip'], depth: place.depth + 1 };
    try {
      if (entry.encrypted) throw new Error('encrypted zip member');
      const data = slice(content, memberDataOffset(read, entry), entry.compressedSize);
      if (entry.method === 0) await scanContent(job, data, inner);
      else if (entry.method === 8)
        await scanStream(job, contentStream(data).pipe(createInflateRaw({ chunkSize: 1 << 20 })), inner);
      else throw new Error(`zip compression method ${entry.method} is not supported`);
    } catch (err) {
      if (err instanceof DecodeLimitError) throw err;
      job.sink.incomplete(label, (err as Error).message);
    }
  }
  if (storage > 0) {
    job.sink.skip(
      `${place.label}!*/data/*`,
      `model weights: ${storage} tensor storage members of a PyTorch checkpoint (its pickle was scanned)`,
      storageBytes,
    );
  }
}

/** numpy .npy: text arrays (`U`: UTF-32, `S`: bytes, `O`: pickled objects) are read; numbers are not text. */
async function scanNpy(job: ScanJob, content: Content, place: Place): Promise<void> {
  const head = readAt(content, 0, 12);
  const major = head[6]!;
  const headerLength = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  const dataStart = (major === 1 ? 10 : 12) + headerLength;
  const header = readAt(content, major === 1 ? 10 : 12, Math.min(headerLength, 1 << 16)).toString('latin1');
  const descr = /'descr':\s*('([^']*)'|\[)/.exec(header);
  const data = slice(content, dataStart, Math.max(0, sizeOf(content) - dataStart));
  const type = descr?.[2];
  if (type && /^[<>=|]?U\d+$/.test(type)) {
    await scanWide(job, data, place, 4, type.startsWith('>'), 0);
    return;
  }
  if (type && /^[<>=|]?[biufcmM?]\d*(\[\w+\])?$/.test(type)) {
    job.sink.skip(place.label, `numeric array (${type}): no text`, sizeOf(content));
    return;
  }
  // Byte strings, objects (a pickle) and structured records: read the raw bytes.
  await scanBytes(job, data, place, { location: 'offset', csv: false });
}

/** A Parquet reader's view of content: hyparquet's AsyncBuffer. */
function parquetBuffer(content: Content) {
  return {
    byteLength: sizeOf(content),
    slice(start: number, end?: number): ArrayBuffer {
      const buf = readAt(content, start, (end ?? sizeOf(content)) - start);
      return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer;
    },
  };
}

/** Top-level Parquet columns that hold text (string leaves at any depth). */
async function parquetTextColumns(metadata: unknown): Promise<string[]> {
  const { parquetSchema } = await import('hyparquet');
  type Tree = {
    element: { name: string; type?: string; converted_type?: string; logical_type?: { type: string } };
    children: Tree[];
  };
  const tree = parquetSchema(metadata as Parameters<typeof parquetSchema>[0]) as unknown as Tree;
  const isText = (t: Tree): boolean =>
    t.children.length === 0
      ? t.element.type === 'BYTE_ARRAY' &&
        (t.element.converted_type === 'UTF8' ||
          t.element.converted_type === 'JSON' ||
          t.element.logical_type?.type === 'STRING' ||
          t.element.logical_type?.type === 'JSON' ||
          t.element.converted_type === undefined)
      : t.children.some(isText);
  return tree.children.filter(isText).map((t) => t.element.name);
}

function eachString(value: unknown, visit: (s: string) => void): void {
  if (typeof value === 'string') visit(value);
  else if (value instanceof Uint8Array) visit(Buffer.from(value).toString('utf8'));
  else if (Array.isArray(value)) for (const v of value) eachString(v, visit);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) eachString(v, visit);
}

async function scanParquet(job: ScanJob, content: Content, place: Place): Promise<void> {
  const { parquetMetadataAsync, parquetReadObjects } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  const file = parquetBuffer(content);
  const metadata = await parquetMetadataAsync(file);
  const columns = await parquetTextColumns(metadata);
  const index = job.sink.index;
  const feeder = new RowFeeder(index, (f) => job.sink.finding(findingFrom(index, place, 'row', f)));
  let rowStart = 0;
  if (columns.length > 0) {
    // One row group in memory at a time.
    for (const group of metadata.row_groups) {
      const n = Number(group.num_rows);
      const rows = await parquetReadObjects({
        file,
        metadata,
        columns,
        rowStart,
        rowEnd: rowStart + n,
        compressors,
      });
      rows.forEach((row, r) => {
        feeder.row(rowStart + r + 1);
        eachString(row, (s) => feeder.text(s));
      });
      feeder.sweep();
      rowStart += n;
    }
  }
  feeder.end();
}

function scanArrow(job: ScanJob, content: Content, place: Place): void {
  const index = job.sink.index;
  const feeder = new RowFeeder(index, (f) => job.sink.finding(findingFrom(index, place, 'row', f)));
  const whole =
    content.kind === 'file' && content.start === 0 ? content.path : readAt(content, 0, sizeOf(content));
  readArrowStrings(whole, (batch, firstRow, extra) => {
    const extraByRow = new Map<number, Buffer[]>();
    for (const [row, buf] of extra) {
      const list = extraByRow.get(row) ?? [];
      list.push(buf);
      extraByRow.set(row, list);
    }
    for (let r = 0; r < batch.rows; r++) {
      feeder.row(firstRow + r + 1);
      const pieces = batch.pieces[r]!;
      for (let k = 0; k < pieces.length; k += 2) feeder.cell(batch.body, pieces[k]!, pieces[k + 1]!);
      for (const buf of extraByRow.get(r) ?? []) feeder.cell(buf, 0, buf.length);
    }
    feeder.sweep();
  });
  feeder.end();
}

/**
 * safetensors: the JSON header (metadata strings) and every byte-typed tensor (text stored as
 * uint8 or int8 values) are read; number tensors are weights.
 */
async function scanSafetensors(
  job: ScanJob,
  content: Content,
  place: Place,
  headerBytes: number,
): Promise<void> {
  await scanBytes(job, slice(content, 8, headerBytes), place, { location: 'offset', csv: false });
  let header: Record<string, { dtype?: string; data_offsets?: [number, number] }>;
  try {
    header = JSON.parse(readAt(content, 8, headerBytes).toString('utf8'));
  } catch {
    throw new Error('safetensors header is not JSON');
  }
  const dataStart = 8 + headerBytes;
  let weights = 0;
  for (const [name, tensor] of Object.entries(header)) {
    if (name === '__metadata__' || !tensor || !Array.isArray(tensor.data_offsets)) continue;
    const [from, to] = tensor.data_offsets;
    if (tensor.dtype === 'U8' || tensor.dtype === 'I8') {
      await scanBytes(
        job,
        slice(content, dataStart + from, Math.max(0, to - from)),
        { ...place, label: `${place.label}!${name}` },
        { location: 'offset', csv: false },
      );
    } else weights += Math.max(0, to - from);
  }
  job.sink.skip(
    place.label,
    'model weights: safetensors number tensors (its header and byte tensors were scanned)',
    weights,
  );
}

/**
 * Scan content of any format. Errors of nested members are reported and the scan goes on; an
 * error of the content itself is thrown to the caller (who reports it under its own label).
 */
export async function scanContent(
  job: ScanJob,
  content: Content,
  place: Place,
  known?: Format,
): Promise<void> {
  const size = sizeOf(content);
  const head = readAt(content, 0, HEAD);
  let format = known ?? detectFormat(place.name, head, size);
  if (format.kind === 'compressed' && format.codec === 'zlib' && !inflatesAsZlib(head))
    format = { kind: 'bytes', location: 'line', csv: false };
  switch (format.kind) {
    case 'skip':
      job.sink.skip(place.label, format.reason, size);
      return;
    case 'bytes':
      await scanBytes(job, content, place, format);
      return;
    case 'wide':
      await scanWide(job, content, place, format.unit, format.bigEndian, format.bom);
      return;
    case 'compressed': {
      const input = contentStream(content);
      if (place.depth === 0) {
        let read = 0;
        input.on('data', (chunk: Buffer) => {
          read += chunk.length;
          job.onProgress(read);
        });
      }
      await scanDecoded(job, input, place, format.codec);
      return;
    }
    case 'zip':
      await scanZip(job, content, place);
      return;
    case 'tar':
      await scanTar(job, new ByteReader(contentStream(content)), place);
      return;
    case 'parquet':
      await scanParquet(job, content, place);
      return;
    case 'arrow':
      scanArrow(job, content, place);
      return;
    case 'npy':
      await scanNpy(job, content, place);
      return;
    case 'safetensors':
      await scanSafetensors(job, content, place, format.headerBytes);
      return;
  }
}
