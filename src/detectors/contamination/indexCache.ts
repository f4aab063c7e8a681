import { createHash } from 'node:crypto';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { type ContaminationItem, INDEX_ARRAYS, type IndexData, NgramIndex } from './ngramIndex.ts';
import { WASM_BASE64 } from './scanKernelWasm.ts';

/**
 * Built n-gram indexes kept on disk, keyed by the sha256 of the items and the allowed texts: a
 * fresh `ptb scan` or audit loads the index of a benchmark it has seen in milliseconds instead of
 * building it (100 ms to seconds, most of a small scan's time). A cache that cannot be read or
 * written is never an error: the index is built as without one.
 *
 * INDEX_VERSION names the tokeniser and index rules: change it whenever they change (the kernel
 * is part of the key by itself). test/detectors/contaminationIndexCache.test.ts holds the digest
 * of a reference index and fails when the rules change under an unchanged version.
 */
export const INDEX_VERSION = '1';

const MAGIC = 'PTBNGIX1';
/** Indexes kept; the least recently used go first. */
const KEEP = 16;

type ArrayName = (typeof INDEX_ARRAYS)[number];
const ARRAY_TYPES = { Int32Array, Uint8Array } as const;

/** The cache key of an index built from these items and allowed texts with this code. */
export function indexKey(items: readonly ContaminationItem[], allowed: readonly string[]): string {
  const hash = createHash('sha256');
  hash.update(`${MAGIC}\0${INDEX_VERSION}\0${WASM_BASE64}\0`);
  hash.update(JSON.stringify(items.map((it) => [it.id, it.texts, it.formulaic ?? null])));
  hash.update(`\0${allowed.length}\0`);
  for (const text of allowed) hash.update(`${text.length}\0${text}`);
  return hash.digest('hex');
}

/** The index as one file: magic, header length, JSON header, then each typed array 8-aligned. */
export function serializeIndex(key: string, data: IndexData): Buffer {
  const arrays: Array<{ name: ArrayName; type: keyof typeof ARRAY_TYPES; length: number; offset: number }> =
    [];
  const plain = {
    filterShift: data.filterShift,
    tableShift: data.tableShift,
    itemIds: data.itemIds,
    ngrams: data.ngrams,
    allowedDropped: data.allowedDropped,
    unitNumbers: data.unitNumbers,
  };
  let offset = 0;
  for (const name of INDEX_ARRAYS) {
    const a = data[name];
    arrays.push({
      name,
      type: a instanceof Int32Array ? 'Int32Array' : 'Uint8Array',
      length: a.length,
      offset,
    });
    offset += (a.byteLength + 7) & ~7;
  }
  const header = Buffer.from(JSON.stringify({ key, arrays, plain }));
  const headerEnd = (MAGIC.length + 4 + header.length + 7) & ~7;
  const out = Buffer.alloc(headerEnd + offset);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(header.length, MAGIC.length);
  header.copy(out, MAGIC.length + 4);
  for (const { name, offset: at } of arrays) {
    const a = data[name];
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), headerEnd + at);
  }
  return out;
}

/** The index in `bytes`, or null when they are not a whole index file for `key`. */
export function deserializeIndex(key: string, bytes: Uint8Array): IndexData | null {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < MAGIC.length + 4 || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) return null;
  const headerLength = buf.readUInt32LE(MAGIC.length);
  const headerEnd = (MAGIC.length + 4 + headerLength + 7) & ~7;
  if (headerEnd > buf.length) return null;
  let header: {
    key: string;
    arrays: Array<{ name: ArrayName; type: keyof typeof ARRAY_TYPES; length: number; offset: number }>;
    plain: Omit<IndexData, ArrayName>;
  };
  try {
    header = JSON.parse(buf.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + headerLength));
  } catch {
    return null;
  }
  if (header.key !== key) return null;
  // Typed-array views need their element alignment: copy bytes that arrived unaligned.
  const base = buf.byteOffset % 8 === 0 ? buf : Buffer.from(buf);
  const arrays: Partial<Record<ArrayName, Int32Array | Uint8Array>> = {};
  for (const { name, type, length, offset } of header.arrays) {
    const Type = ARRAY_TYPES[type];
    if (!Type || !INDEX_ARRAYS.includes(name)) return null;
    const start = headerEnd + offset;
    if (start + length * Type.BYTES_PER_ELEMENT > base.length) return null;
    arrays[name] = new Type(base.buffer as ArrayBuffer, base.byteOffset + start, length);
  }
  if (INDEX_ARRAYS.some((name) => !arrays[name])) return null;
  return { ...header.plain, ...(arrays as Pick<IndexData, ArrayName>) };
}

/**
 * The index of these items and allowed texts: from `dir` when it holds one, else built (and kept
 * there when `dir` is given).
 */
export function cachedIndex(
  items: readonly ContaminationItem[],
  allowed: readonly string[],
  dir: string | null,
): NgramIndex {
  if (!dir) return new NgramIndex(items, allowed);
  const key = indexKey(items, allowed);
  const file = join(dir, `${key}.ngram-index`);
  try {
    const data = deserializeIndex(key, readFileSync(file));
    if (data) {
      touch(file);
      return NgramIndex.fromData(data);
    }
  } catch {
    // missing or unreadable: build it
  }
  const index = new NgramIndex(items, allowed);
  try {
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, serializeIndex(key, index.data()));
    renameSync(tmp, file);
    evict(dir);
  } catch {
    // a read-only or full disk: the next scan builds it again
  }
  return index;
}

function touch(file: string): void {
  try {
    const now = new Date();
    utimesSync(file, now, now);
  } catch {}
}

/** Keep the KEEP most recently used indexes. */
function evict(dir: string): void {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.ngram-index'))
    .map((name) => ({ path: join(dir, name), used: statSync(join(dir, name)).mtimeMs }))
    .sort((a, b) => b.used - a.used);
  for (const { path } of files.slice(KEEP)) rmSync(path, { force: true });
}
