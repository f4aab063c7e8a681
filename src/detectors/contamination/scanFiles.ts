import {
  closeSync,
  createReadStream,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  statSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { readArrowStrings } from './arrowIpc.ts';
import { ByteFeeder, type Location, type LocationKind, locationOf, RowFeeder } from './feeder.ts';
import type { MatchFinding } from './matcher.ts';
import type { NgramIndex } from './ngramIndex.ts';

/** One test item found in one place. */
export interface ContaminationFinding {
  /** The file (as walked from the path given) or another named source. */
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
}

export interface ScanCallbacks {
  onFinding(finding: ContaminationFinding): void;
  /** A file that could not be read; the scan goes on. */
  onError?(source: string, message: string): void;
  /** A file not scanned on purpose (weights, binaries). */
  onSkip?(source: string, reason: string): void;
  /** Bytes of input done so far out of the total listed. */
  onProgress?(done: number, total: number): void;
}

export interface ScanSummary {
  files: number;
  bytes: number;
  findings: number;
  /** Distinct test items found. */
  items: number;
  skipped: number;
  errors: number;
  seconds: number;
}

export interface ListedFile {
  path: string;
  size: number;
}

/** Never scanned: model weights, archives, media, compiled code. */
const SKIP_EXTENSION =
  /\.(safetensors|bin|pt|pth|ckpt|gguf|ggml|onnx|h5|hdf5|msgpack|npy|npz|pkl|pickle|joblib|pyc|pyo|so|dylib|dll|exe|o|a|whl|egg|png|jpe?g|gif|bmp|webp|ico|tiff?|pdf|mp3|mp4|wav|flac|ogg|avi|mov|mkv|zip|tar|tgz|tbz2|xz|zst|bz2|7z|rar|eval)$/i;

/** Folders never worth scanning: VCS internals, package trees, Python byte code. */
const SKIP_DIRS = new Set([
  '.git',
  '.hg',
  '.svn',
  'node_modules',
  '__pycache__',
  'site-packages',
  'dist-packages',
]);

/**
 * Files under the given paths (recursive, sorted, symlinked directories not followed). Symlinked
 * files are followed and each real file is scanned once, under its most telling name (a Hugging
 * Face snapshot link rather than its blob).
 */
export function listFiles(paths: readonly string[]): { files: ListedFile[]; missing: string[] } {
  const byReal = new Map<string, ListedFile & { blob: boolean }>();
  const missing: string[] = [];
  const add = (path: string) => {
    let real: string;
    let size: number;
    try {
      real = realpathSync(path);
      const st = statSync(real);
      if (!st.isFile()) return;
      size = st.size;
    } catch {
      missing.push(path);
      return;
    }
    const blob = /(^|\/)blobs\//.test(path);
    const prev = byReal.get(real);
    if (!prev || (prev.blob && !blob)) byReal.set(real, { path, size, blob });
  };
  const visit = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      missing.push(dir);
      return;
    }
    // A virtual environment holds installed packages, not training data.
    if (names.includes('pyvenv.cfg')) return;
    for (const name of names) {
      const p = join(dir, name);
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(p);
      } catch {
        missing.push(p);
        continue;
      }
      if (st.isDirectory()) {
        if (!SKIP_DIRS.has(name)) visit(p);
      } else if (st.isFile() || st.isSymbolicLink()) add(p);
    }
  };
  for (const path of paths) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(path);
    } catch {
      missing.push(path);
      continue;
    }
    if (st.isDirectory()) visit(path);
    else add(path);
  }
  const files = [...byReal.values()].map(({ path, size }) => ({ path, size }));
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, missing };
}

type FileKind =
  | { kind: 'bytes'; location: LocationKind; csv: boolean }
  | { kind: 'parquet' }
  | { kind: 'arrow' }
  | { kind: 'gzip' }
  | { kind: 'skip'; reason: string };

function kindByName(name: string): FileKind | null {
  const lower = name.toLowerCase();
  if (lower.endsWith('.parquet')) return { kind: 'parquet' };
  if (lower.endsWith('.arrow') || lower.endsWith('.feather') || lower.endsWith('.ipc'))
    return { kind: 'arrow' };
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson'))
    return { kind: 'bytes', location: 'line', csv: false };
  if (lower.endsWith('.json')) return { kind: 'bytes', location: 'offset', csv: false };
  if (lower.endsWith('.csv') || lower.endsWith('.tsv')) return { kind: 'bytes', location: 'row', csv: true };
  return null;
}

/** What a file is: by its first bytes, then by its name. */
export function fileKind(path: string, head: Uint8Array): FileKind {
  const name = basename(path);
  if (head[0] === 0x1f && head[1] === 0x8b) return { kind: 'gzip' };
  if (SKIP_EXTENSION.test(name)) return { kind: 'skip', reason: 'model weights, archive or media file' };
  const ascii = Buffer.from(head.subarray(0, 8)).toString('latin1');
  if (ascii.startsWith('PAR1')) return { kind: 'parquet' };
  if (ascii.startsWith('ARROW1')) return { kind: 'arrow' };
  const byName = kindByName(name);
  if (byName && byName.kind !== 'bytes') {
    if (head.length === 0) return { kind: 'skip', reason: 'empty file' };
    return byName;
  }
  if (head[0] === 0xff && head[1] === 0xff && head[2] === 0xff && head[3] === 0xff) return { kind: 'arrow' };
  if (head.includes(0)) return { kind: 'skip', reason: 'binary file' };
  return byName ?? { kind: 'bytes', location: 'line', csv: false };
}

function readHead(path: string, bytes = 8192): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const n = readSync(fd, buf, 0, bytes, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

interface FileContext {
  index: NgramIndex;
  source: string;
  emit: (f: ContaminationFinding) => void;
  progress: (bytes: number) => void;
}

function findingFrom(ctx: FileContext, kind: LocationKind, f: MatchFinding): ContaminationFinding {
  return {
    source: ctx.source,
    location: locationOf(kind, f),
    item: ctx.index.itemIds[f.item]!,
    score: f.score,
    span: f.span,
    matched: f.matched,
    field: f.text,
  };
}

function scanBytesFile(ctx: FileContext, path: string, location: LocationKind, csv: boolean): void {
  const feeder = new ByteFeeder(ctx.index, (f) => ctx.emit(findingFrom(ctx, location, f)), {
    countLines: location === 'line',
    csv,
  });
  const fd = openSync(path, 'r');
  try {
    feeder.readFd(fd, ctx.progress);
  } finally {
    closeSync(fd);
  }
  feeder.end();
}

async function scanGzip(ctx: FileContext, path: string): Promise<FileKind> {
  const inner = path.replace(/\.gz$/i, '');
  let kind: FileKind | null = null;
  let feeder: ByteFeeder | null = null;
  let location: LocationKind = 'line';
  let compressed = 0;
  const input = createReadStream(path);
  input.on('data', (chunk) => {
    compressed += chunk.length;
  });
  const gunzip = input.pipe(createGunzip({ chunkSize: 1 << 20 }));
  input.on('error', (err) => gunzip.destroy(err));
  for await (const chunk of gunzip as AsyncIterable<Buffer>) {
    if (!kind) {
      kind = fileKind(inner, chunk.subarray(0, 8192));
      if (kind.kind === 'parquet' || kind.kind === 'arrow' || kind.kind === 'gzip') {
        input.destroy();
        throw new Error(`a gzipped ${kind.kind} file cannot be scanned; decompress it first`);
      }
      if (kind.kind === 'skip') {
        input.destroy();
        return kind;
      }
      location = kind.location;
      const loc = location;
      feeder = new ByteFeeder(ctx.index, (f) => ctx.emit(findingFrom(ctx, loc, f)), {
        countLines: loc === 'line',
        csv: kind.csv,
      });
    }
    feeder!.write(chunk);
    ctx.progress(compressed);
  }
  feeder?.end();
  return kind ?? { kind: 'skip', reason: 'empty file' };
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
          t.element.logical_type?.type === 'JSON')
      : t.children.some(isText);
  return tree.children.filter(isText).map((t) => t.element.name);
}

function eachString(value: unknown, visit: (s: string) => void): void {
  if (typeof value === 'string') visit(value);
  else if (Array.isArray(value)) for (const v of value) eachString(v, visit);
  else if (value && typeof value === 'object' && !(value instanceof Uint8Array)) {
    for (const v of Object.values(value)) eachString(v, visit);
  }
}

async function scanParquet(ctx: FileContext, path: string, size: number): Promise<void> {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  const file = await asyncBufferFromFile(path);
  const metadata = await parquetMetadataAsync(file);
  const columns = await parquetTextColumns(metadata);
  const feeder = new RowFeeder(ctx.index, (f) => ctx.emit(findingFrom(ctx, 'row', f)));
  let rowStart = 0;
  let read = 0;
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
      read += Number(group.total_compressed_size ?? 0);
      ctx.progress(Math.min(size, read));
    }
  }
  feeder.end();
  ctx.progress(size);
}

function scanArrow(ctx: FileContext, path: string, size: number): void {
  const feeder = new RowFeeder(ctx.index, (f) => ctx.emit(findingFrom(ctx, 'row', f)));
  let done = 0;
  readArrowStrings(path, (batch, firstRow, extra) => {
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
    done += batch.body.length;
    ctx.progress(Math.min(size, done));
  });
  feeder.end();
  ctx.progress(size);
}

/** Scan one file. Returns null when scanned, or why it was skipped. Throws when unreadable. */
export async function scanFile(
  index: NgramIndex,
  file: ListedFile,
  emit: (f: ContaminationFinding) => void,
  progress: (bytes: number) => void = () => {},
  source: string = file.path,
): Promise<string | null> {
  const ctx: FileContext = { index, source, emit, progress };
  const kind = fileKind(file.path, readHead(file.path));
  switch (kind.kind) {
    case 'skip':
      return kind.reason;
    case 'bytes':
      scanBytesFile(ctx, file.path, kind.location, kind.csv);
      return null;
    case 'gzip': {
      const inner = await scanGzip(ctx, file.path);
      return inner.kind === 'skip' ? inner.reason : null;
    }
    case 'parquet':
      await scanParquet(ctx, file.path, file.size);
      return null;
    case 'arrow':
      scanArrow(ctx, file.path, file.size);
      return null;
  }
}

/** Scan files and folders (recursive). Findings stream out through the callbacks. */
export async function scanPaths(
  index: NgramIndex,
  paths: readonly string[],
  cb: ScanCallbacks,
  opts: { label?: (path: string) => string } = {},
): Promise<ScanSummary> {
  const started = performance.now();
  const { files, missing } = listFiles(paths);
  for (const m of missing) cb.onError?.(m, 'no such file or folder, or not readable');
  const total = files.reduce((s, f) => s + f.size, 0);
  let done = 0;
  let findings = 0;
  let skipped = 0;
  let errors = missing.length;
  let scannedFiles = 0;
  let scannedBytes = 0;
  const items = new Set<string>();
  for (const file of files) {
    const source = opts.label ? opts.label(file.path) : file.path;
    try {
      const reason = await scanFile(
        index,
        file,
        (f) => {
          findings++;
          items.add(f.item);
          cb.onFinding(f);
        },
        (bytes) => cb.onProgress?.(done + bytes, total),
        source,
      );
      if (reason) {
        skipped++;
        cb.onSkip?.(source, reason);
      } else {
        scannedFiles++;
        scannedBytes += file.size;
      }
    } catch (err) {
      errors++;
      cb.onError?.(source, (err as Error).message);
    }
    done += file.size;
    cb.onProgress?.(done, total);
  }
  return {
    files: scannedFiles,
    bytes: scannedBytes,
    findings,
    items: items.size,
    skipped,
    errors,
    seconds: (performance.now() - started) / 1000,
  };
}
