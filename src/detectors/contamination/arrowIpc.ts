import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** Bytes readable at any position: a file (by descriptor) or a buffer in memory. */
interface RandomAccess {
  size: number;
  read(position: number, length: number): Buffer;
}

function fileAccess(fd: number): RandomAccess {
  return { size: fstatSync(fd).size, read: (position, length) => readExact(fd, position, length) };
}

function bufferAccess(buf: Buffer): RandomAccess {
  return {
    size: buf.length,
    read(position, length) {
      if (position + length > buf.length)
        throw new Error(`unexpected end of Arrow data at byte ${buf.length}`);
      return buf.subarray(position, position + length);
    },
  };
}

/**
 * A minimal streaming reader of Arrow IPC files (the stream format Hugging Face `datasets` writes
 * its cache in, and the file format): one record batch in memory at a time, and out of each batch
 * only the byte ranges of its strings, grouped by top-level row. Nested strings (a `messages`
 * list of structs) are attributed to the row that holds them. Numbers, binaries and compressed
 * bodies are not decoded; a compressed batch is an error.
 */

// ---- FlatBuffers: just enough to read Arrow's Message/Schema/RecordBatch tables ----

class Table {
  constructor(
    readonly bb: Buffer,
    readonly pos: number,
  ) {}

  static root(bb: Buffer): Table {
    return new Table(bb, bb.readUInt32LE(0));
  }

  private field(index: number): number {
    const vtable = this.pos - this.bb.readInt32LE(this.pos);
    const vtableSize = this.bb.readUInt16LE(vtable);
    const at = 4 + index * 2;
    if (at >= vtableSize) return 0;
    const off = this.bb.readUInt16LE(vtable + at);
    return off === 0 ? 0 : this.pos + off;
  }

  uint8(index: number, dflt = 0): number {
    const p = this.field(index);
    return p ? this.bb.readUInt8(p) : dflt;
  }
  int16(index: number, dflt = 0): number {
    const p = this.field(index);
    return p ? this.bb.readInt16LE(p) : dflt;
  }
  int32(index: number, dflt = 0): number {
    const p = this.field(index);
    return p ? this.bb.readInt32LE(p) : dflt;
  }
  int64(index: number, dflt = 0): number {
    const p = this.field(index);
    return p ? Number(this.bb.readBigInt64LE(p)) : dflt;
  }
  table(index: number): Table | null {
    const p = this.field(index);
    return p ? new Table(this.bb, p + this.bb.readUInt32LE(p)) : null;
  }
  /** Vector: [position of first element, length]. */
  vector(index: number): [number, number] | null {
    const p = this.field(index);
    if (!p) return null;
    const v = p + this.bb.readUInt32LE(p);
    return [v + 4, this.bb.readUInt32LE(v)];
  }
  tables(index: number): Table[] {
    const v = this.vector(index);
    if (!v) return [];
    const out: Table[] = [];
    for (let k = 0; k < v[1]; k++) {
      const p = v[0] + k * 4;
      out.push(new Table(this.bb, p + this.bb.readUInt32LE(p)));
    }
    return out;
  }
}

// Arrow enums (Schema.fbs / Message.fbs).
const HEADER_SCHEMA = 1;
const HEADER_DICTIONARY = 2;
const HEADER_RECORD_BATCH = 3;
const T = {
  Null: 1,
  Binary: 4,
  Utf8: 5,
  List: 12,
  Struct: 13,
  Union: 14,
  FixedSizeList: 16,
  Map: 17,
  LargeBinary: 19,
  LargeUtf8: 20,
  LargeList: 21,
  RunEndEncoded: 22,
  BinaryView: 23,
  Utf8View: 24,
  ListView: 25,
  LargeListView: 26,
} as const;

interface FieldInfo {
  name: string;
  type: number;
  /** FixedSizeList size; Union mode (0 sparse, 1 dense). */
  param: number;
  /** Dictionary id when the column holds indices into a dictionary. */
  dictionary: { id: number; indexBits: number; indexSigned: boolean } | null;
  children: FieldInfo[];
}

function readField(t: Table): FieldInfo {
  const nameVec = t.vector(0);
  const name = nameVec ? t.bb.toString('utf8', nameVec[0], nameVec[0] + nameVec[1]) : '';
  const type = t.uint8(2);
  const typeTable = t.table(3);
  let param = 0;
  if (typeTable && type === T.FixedSizeList) param = typeTable.int32(0);
  if (typeTable && type === T.Union) param = typeTable.int16(0);
  const dict = t.table(4);
  let dictionary: FieldInfo['dictionary'] = null;
  if (dict) {
    const indexType = dict.table(1);
    dictionary = {
      id: dict.int64(0),
      indexBits: indexType ? indexType.int32(0, 32) : 32,
      indexSigned: indexType ? indexType.uint8(1) !== 0 : true,
    };
  }
  return { name, type, param, dictionary, children: t.tables(5).map(readField) };
}

/** Buffers a field of this type has in a record batch (not counting variadic view buffers). */
function bufferCount(f: FieldInfo, metadataVersion: number): number {
  if (f.dictionary) return 2;
  switch (f.type) {
    case T.Null:
    case T.RunEndEncoded:
      return 0;
    case T.Struct:
    case T.FixedSizeList:
      return 1;
    case T.Binary:
    case T.Utf8:
    case T.LargeBinary:
    case T.LargeUtf8:
    case T.ListView:
    case T.LargeListView:
      return 3;
    case T.Union: {
      const base = f.param === 1 ? 2 : 1;
      return metadataVersion < 4 ? base + 1 : base; // V4 and older also had a validity bitmap
    }
    default:
      return 2; // validity + values/offsets (primitives, List, LargeList, Map, views)
  }
}

/** Strings of one record batch: for row r, pieces [start, end) into `body`. */
export interface ArrowBatch {
  rows: number;
  body: Buffer;
  pieces: number[][];
}

interface DictionaryValues {
  body: Buffer;
  starts: Float64Array;
  ends: Float64Array;
}

class BatchDecoder {
  private node = 0;
  private buffer = 0;
  private variadic = 0;

  constructor(
    private readonly meta: Table,
    private readonly body: Buffer,
    private readonly metadataVersion: number,
    private readonly dictionaries: Map<number, DictionaryValues>,
  ) {}

  private nextNode(): number {
    const v = this.meta.vector(1)!;
    const p = v[0] + this.node++ * 16;
    return Number(this.meta.bb.readBigInt64LE(p));
  }

  private nextBuffer(): Buffer {
    const v = this.meta.vector(2)!;
    const p = v[0] + this.buffer++ * 16;
    const offset = Number(this.meta.bb.readBigInt64LE(p));
    const length = Number(this.meta.bb.readBigInt64LE(p + 8));
    if (offset + length > this.body.length) throw new Error('Arrow buffer runs past the message body');
    return this.body.subarray(offset, offset + length);
  }

  private nextVariadicCount(): number {
    const v = this.meta.vector(4);
    if (!v) return 0;
    return Number(this.meta.bb.readBigInt64LE(v[0] + this.variadic++ * 8));
  }

  /**
   * Walk one field (pre-order, as nodes and buffers are laid out), adding its strings to `pieces`.
   * rowOf[j] = top-level row of element j (null: identity).
   */
  walk(f: FieldInfo, rowOf: Int32Array | null, pieces: number[][]): void {
    const length = this.nextNode();
    const n = bufferCount(f, this.metadataVersion);
    const bufs: Buffer[] = [];
    for (let k = 0; k < n; k++) bufs.push(this.nextBuffer());
    const row = (j: number) => (rowOf ? rowOf[j]! : j);
    const add = (j: number, start: number, end: number) => {
      if (end > start) pieces[row(j)]?.push(start, end);
    };
    const bodyOffset = (b: Buffer) => b.byteOffset - this.body.byteOffset;

    if (f.dictionary) {
      const dict = this.dictionaries.get(f.dictionary.id);
      if (dict) {
        const idx = bufs[1]!;
        const width = f.dictionary.indexBits / 8;
        for (let j = 0; j < length; j++) {
          const p = j * width;
          if (p + width > idx.length) break;
          const k =
            width === 1
              ? idx.readUInt8(p)
              : width === 2
                ? idx.readUInt16LE(p)
                : width === 4
                  ? idx.readUInt32LE(p)
                  : Number(idx.readBigUInt64LE(p));
          if (k < dict.starts.length) this.dictionaryPieces.push([row(j), dict, k]);
        }
      }
      return;
    }
    switch (f.type) {
      case T.Utf8:
      case T.LargeUtf8: {
        const offsets = bufs[1]!;
        const data = bufs[2]!;
        const wide = f.type === T.LargeUtf8;
        const dataStart = bodyOffset(data);
        for (let j = 0; j < length; j++) {
          const a = wide ? Number(offsets.readBigInt64LE(j * 8)) : offsets.readInt32LE(j * 4);
          const b = wide ? Number(offsets.readBigInt64LE(j * 8 + 8)) : offsets.readInt32LE(j * 4 + 4);
          add(j, dataStart + a, dataStart + Math.min(b, data.length));
        }
        return;
      }
      case T.Utf8View:
      case T.BinaryView: {
        const count = this.nextVariadicCount();
        const dataBufs: Buffer[] = [];
        for (let k = 0; k < count; k++) dataBufs.push(this.nextBuffer());
        if (f.type === T.BinaryView) return;
        const views = bufs[1]!;
        for (let j = 0; j < length; j++) {
          const p = j * 16;
          const len = views.readInt32LE(p);
          if (len <= 12) add(j, bodyOffset(views) + p + 4, bodyOffset(views) + p + 4 + len);
          else {
            const data = dataBufs[views.readInt32LE(p + 8)];
            const at = views.readInt32LE(p + 12);
            if (data) add(j, bodyOffset(data) + at, bodyOffset(data) + at + len);
          }
        }
        return;
      }
      case T.Struct:
        for (const child of f.children) this.walk(child, rowOf, pieces);
        return;
      case T.List:
      case T.LargeList:
      case T.Map: {
        const offsets = bufs[1]!;
        const wide = f.type === T.LargeList;
        const at = (k: number) => (wide ? Number(offsets.readBigInt64LE(k * 8)) : offsets.readInt32LE(k * 4));
        const childLength = length > 0 ? at(length) : 0;
        const childRows = new Int32Array(Math.max(0, childLength)).fill(-1);
        for (let k = 0; k < length; k++) {
          const r = row(k);
          for (let j = at(k); j < at(k + 1) && j < childLength; j++) childRows[j] = r;
        }
        for (const child of f.children) this.walk(child, childRows, pieces);
        return;
      }
      case T.FixedSizeList: {
        const size = Math.max(1, f.param);
        const childRows = new Int32Array(length * size);
        for (let j = 0; j < childRows.length; j++) childRows[j] = row(Math.floor(j / size));
        for (const child of f.children) this.walk(child, childRows, pieces);
        return;
      }
      case T.Union:
        // Sparse: children align with the union's rows; dense children are skipped (rare in datasets).
        for (const child of f.children) this.walk(child, f.param === 0 ? rowOf : new Int32Array(0), pieces);
        return;
      default:
        // Primitives carry no text; RunEndEncoded and list views: strings inside are skipped.
        for (const child of f.children) this.walk(child, new Int32Array(0), pieces);
    }
  }

  /** Dictionary-encoded strings: [row, dictionary, value index]. */
  readonly dictionaryPieces: Array<[number, DictionaryValues, number]> = [];
}

function readExact(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw new Error(`unexpected end of Arrow file at byte ${position + done}`);
    done += n;
  }
  return buf;
}

const MAGIC = Buffer.from('ARROW1');

/** Message prefix at `pos`: [metadata length, bytes of prefix]; length 0 = end of stream. */
function messagePrefix(io: RandomAccess, pos: number, end: number): [number, number] {
  if (pos + 4 > end) return [0, 0];
  const first = io.read(pos, 4).readInt32LE(0);
  if (first !== -1) return [first, 4]; // pre-1.0 streams: no continuation marker
  if (pos + 8 > end) return [0, 4];
  return [io.read(pos + 4, 4).readInt32LE(0), 8];
}

/**
 * Read the batches of an Arrow IPC file or stream. `onBatch` gets each batch's string pieces by
 * row (plus dictionary strings, by row, as standalone buffers) and the rows before it.
 */
export function readArrowStrings(
  source: string | Buffer,
  onBatch: (batch: ArrowBatch, firstRow: number, extra: Array<[number, Buffer]>) => void,
): { rows: number; batches: number } {
  if (Buffer.isBuffer(source)) return readArrowFrom(bufferAccess(source), onBatch);
  const fd = openSync(source, 'r');
  try {
    return readArrowFrom(fileAccess(fd), onBatch);
  } finally {
    closeSync(fd);
  }
}

function readArrowFrom(
  io: RandomAccess,
  onBatch: (batch: ArrowBatch, firstRow: number, extra: Array<[number, Buffer]>) => void,
): { rows: number; batches: number } {
  {
    const size = io.size;
    let fields: FieldInfo[] | null = null;
    const dictionaries = new Map<number, DictionaryValues>();
    let rows = 0;
    let batches = 0;

    const onMessage = (message: Table, readBody: (length: number) => Buffer) => {
      const version = message.int16(0);
      const headerType = message.uint8(1);
      const header = message.table(2);
      const bodyLength = message.int64(3);
      if (!header) throw new Error('Arrow message without a header');
      if (headerType === HEADER_SCHEMA) {
        fields ??= header.tables(1).map(readField);
        return;
      }
      if (headerType !== HEADER_RECORD_BATCH && headerType !== HEADER_DICTIONARY) return;
      if (!fields) throw new Error('Arrow record batch before the schema');
      const body = readBody(bodyLength);
      if (headerType === HEADER_DICTIONARY) {
        const id = header.int64(0);
        const data = header.table(1);
        const field = findDictionaryField(fields, id);
        if (data && field && (field.type === T.Utf8 || field.type === T.LargeUtf8)) {
          if (data.table(3)) throw new Error('compressed Arrow IPC bodies are not supported');
          const decoder = new BatchDecoder(data, body, version, dictionaries);
          const count = data.int64(0);
          const pieces: number[][] = Array.from({ length: count }, () => []);
          decoder.walk({ ...field, dictionary: null }, null, pieces);
          const starts = new Float64Array(count);
          const ends = new Float64Array(count);
          pieces.forEach((p, k) => {
            starts[k] = p[0] ?? 0;
            ends[k] = p[1] ?? 0;
          });
          dictionaries.set(id, { body, starts, ends });
        }
        return;
      }
      if (header.table(3)) throw new Error('compressed Arrow IPC bodies are not supported');
      const count = header.int64(0);
      const pieces: number[][] = Array.from({ length: count }, () => []);
      const decoder = new BatchDecoder(header, body, version, dictionaries);
      for (const f of fields) decoder.walk(f, null, pieces);
      const extra: Array<[number, Buffer]> = decoder.dictionaryPieces.map(([row, dict, k]) => [
        row,
        dict.body.subarray(dict.starts[k]!, dict.ends[k]!),
      ]);
      onBatch({ rows: count, body, pieces }, rows, extra);
      rows += count;
      batches++;
    };

    if (size >= 16 && io.read(0, 6).equals(MAGIC)) {
      // File format: magic, padding, messages, footer (schema + block index), footer length, magic.
      const footerLength = io.read(size - 10, 4).readInt32LE(0);
      const footer = Table.root(io.read(size - 10 - footerLength, footerLength));
      const schema = footer.table(1);
      if (schema) fields = schema.tables(1).map(readField);
      const blocks = (index: number): Array<[number, number, number]> => {
        const v = footer.vector(index);
        if (!v) return [];
        const out: Array<[number, number, number]> = [];
        for (let k = 0; k < v[1]; k++) {
          const p = v[0] + k * 24; // Block: offset i64, metaDataLength i32 (+4 padding), bodyLength i64
          out.push([
            Number(footer.bb.readBigInt64LE(p)),
            footer.bb.readInt32LE(p + 8),
            Number(footer.bb.readBigInt64LE(p + 16)),
          ]);
        }
        return out;
      };
      for (const [offset, metaLength] of [...blocks(2), ...blocks(3)]) {
        const [length, prefix] = messagePrefix(io, offset, size);
        const message = Table.root(io.read(offset + prefix, length));
        onMessage(message, (bodyLength) => io.read(offset + metaLength, bodyLength));
      }
      return { rows, batches };
    }

    // Stream format: messages until the end-of-stream marker.
    let pos = 0;
    for (;;) {
      const [length, prefix] = messagePrefix(io, pos, size);
      if (length <= 0) break;
      const message = Table.root(io.read(pos + prefix, length));
      pos += prefix + length;
      const bodyStart = pos;
      pos += message.int64(3);
      onMessage(message, (bodyLength) => io.read(bodyStart, bodyLength));
    }
    return { rows, batches };
  }
}

function findDictionaryField(fields: FieldInfo[], id: number): FieldInfo | null {
  for (const f of fields) {
    if (f.dictionary?.id === id) return f;
    const inner = findDictionaryField(f.children, id);
    if (inner) return inner;
  }
  return null;
}
