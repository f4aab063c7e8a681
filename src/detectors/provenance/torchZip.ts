import { type FileHandle, open } from 'node:fs/promises';
import { UserError } from '../../core/errors.ts';
import type { TensorEntry } from './safetensors.ts';

/**
 * Reading `pytorch_model.bin` (torch.save's zip format) without unpickling it: the archive's
 * central directory gives where each stored entry's bytes are; `data.pkl` is parsed by a small
 * symbolic pickle machine that builds values but never imports or calls anything — globals stay
 * names, and only the few calls torch.save writes for a state dict (_rebuild_tensor_v2,
 * _rebuild_parameter, OrderedDict) are interpreted. Tensor bytes are stored uncompressed in
 * `data/<key>`, so a tensor becomes a TensorEntry pointing into the .bin file like a safetensors one.
 */

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeader: number;
}

const hint = 're-save it with model.save_pretrained(dir, safe_serialization=True)';

function bad(file: string, problem: string): UserError {
  return new UserError(`${file}: ${problem}`, hint);
}

async function readAt(h: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await h.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}

const u64 = (b: Buffer, at: number) => Number(b.readBigUInt64LE(at));

/** The central directory of a zip file (zip64 included). */
async function zipEntries(file: string, h: FileHandle, size: number): Promise<ZipEntry[]> {
  const tailLength = Math.min(size, 65_557);
  const tail = await readAt(h, size - tailLength, tailLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0)
    throw bad(
      file,
      'not a zip archive (no end of central directory): a truncated file, or the legacy torch.save format',
    );
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  const locator = eocd - 20;
  if (locator >= 0 && tail.readUInt32LE(locator) === 0x07064b50) {
    const recordAt = u64(tail, locator + 8);
    const record = await readAt(h, recordAt, 56);
    if (record.length < 56 || record.readUInt32LE(0) !== 0x06064b50)
      throw bad(file, 'broken zip64 directory');
    count = u64(record, 32);
    cdSize = u64(record, 40);
    cdOffset = u64(record, 48);
  }
  if (cdOffset + cdSize > size) throw bad(file, 'truncated: the zip directory lies past the end of the file');
  const cd = await readAt(h, cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let at = 0;
  for (let k = 0; k < count; k++) {
    if (at + 46 > cd.length || cd.readUInt32LE(at) !== 0x02014b50) throw bad(file, 'broken zip directory');
    const method = cd.readUInt16LE(at + 10);
    let compressedSize = cd.readUInt32LE(at + 20);
    let entrySize = cd.readUInt32LE(at + 24);
    const nameLength = cd.readUInt16LE(at + 28);
    const extraLength = cd.readUInt16LE(at + 30);
    const commentLength = cd.readUInt16LE(at + 32);
    let localHeader = cd.readUInt32LE(at + 42);
    const name = cd.toString('utf8', at + 46, at + 46 + nameLength);
    // zip64 extra field: the 0xFFFFFFFF fields, in order, as 8-byte values.
    let extra = at + 46 + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = cd.readUInt16LE(extra);
      const len = cd.readUInt16LE(extra + 2);
      if (id === 0x0001) {
        let p = extra + 4;
        if (entrySize === 0xffffffff) {
          entrySize = u64(cd, p);
          p += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = u64(cd, p);
          p += 8;
        }
        if (localHeader === 0xffffffff) localHeader = u64(cd, p);
      }
      extra += 4 + len;
    }
    entries.push({ name, method, compressedSize, size: entrySize, localHeader });
    at = extraEnd + commentLength;
  }
  return entries;
}

async function dataStart(file: string, h: FileHandle, e: ZipEntry): Promise<number> {
  const local = await readAt(h, e.localHeader, 30);
  if (local.length < 30 || local.readUInt32LE(0) !== 0x04034b50)
    throw bad(file, `broken zip entry ${e.name}`);
  return e.localHeader + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
}

// ---------------------------------------------------------------- the symbolic pickle machine

type Value =
  | null
  | boolean
  | number
  | bigint
  | string
  | Buffer
  | Value[]
  | { kind: 'tuple'; items: Value[] }
  | { kind: 'dict'; map: Map<string, Value> }
  | { kind: 'global'; module: string; name: string }
  | { kind: 'storage'; dtype: string; key: string; numel: number }
  | {
      kind: 'tensor';
      storage: { dtype: string; key: string; numel: number };
      offset: number;
      shape: number[];
      stride: number[];
    }
  | { kind: 'opaque'; what: string };

const MARK = Symbol('mark');

/** torch storage class names → safetensors dtype names. */
const STORAGE_DTYPES: Record<string, string> = {
  BFloat16Storage: 'BF16',
  HalfStorage: 'F16',
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const isTuple = (v: unknown): v is { kind: 'tuple'; items: Value[] } =>
  typeof v === 'object' && v !== null && (v as { kind?: string }).kind === 'tuple';
const isGlobal = (v: unknown, module: string, name: string) =>
  typeof v === 'object' &&
  v !== null &&
  (v as { kind?: string }).kind === 'global' &&
  (v as { module: string }).module === module &&
  (v as { name: string }).name === name;

function ints(v: Value, what: string): number[] {
  const items = isTuple(v) ? v.items : Array.isArray(v) ? v : null;
  if (!items?.every((x) => typeof x === 'number')) throw new Error(`${what} is not a tuple of integers`);
  return items as number[];
}

/** Interpret one REDUCE: only the constructors a state dict needs; anything else stays opaque. */
function reduce(fn: Value, args: Value): Value {
  const a = isTuple(args) ? args.items : [];
  if (isGlobal(fn, 'torch._utils', '_rebuild_tensor_v2') || isGlobal(fn, 'torch._utils', '_rebuild_tensor')) {
    const storage = a[0] as Value;
    if (!storage || typeof storage !== 'object' || (storage as { kind?: string }).kind !== 'storage')
      throw new Error('a tensor without a storage');
    return {
      kind: 'tensor',
      storage: storage as { dtype: string; key: string; numel: number },
      offset: a[1] as number,
      shape: ints(a[2] as Value, 'size'),
      stride: ints(a[3] as Value, 'stride'),
    };
  }
  if (
    isGlobal(fn, 'torch._utils', '_rebuild_parameter') ||
    isGlobal(fn, 'torch._utils', '_rebuild_parameter_with_state')
  )
    return a[0] ?? null;
  if (isGlobal(fn, 'collections', 'OrderedDict')) return { kind: 'dict', map: new Map() };
  const g = fn as { module?: string; name?: string };
  return { kind: 'opaque', what: `${g.module ?? '?'}.${g.name ?? '?'}` };
}

function persistent(pid: Value): Value {
  // ('storage', <storage class>, key, location, numel)
  const t = isTuple(pid) ? pid.items : [];
  const cls = t[1] as { kind?: string; name?: string } | undefined;
  if (t[0] !== 'storage' || cls?.kind !== 'global') throw new Error('unknown persistent id');
  const dtype = STORAGE_DTYPES[cls.name ?? ''];
  if (!dtype) throw new Error(`unsupported storage type ${cls.name}`);
  return { kind: 'storage', dtype, key: String(t[2]), numel: Number(t[4]) };
}

/** Run the pickle program symbolically; returns the top-level value. */
export function parsePickle(data: Buffer): Value {
  const stack: (Value | typeof MARK)[] = [];
  const memo = new Map<number, Value>();
  let pos = 0;
  const need = (n: number) => {
    if (pos + n > data.length) throw new Error('truncated pickle');
  };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) throw new Error('truncated pickle');
    const s = data.toString('latin1', pos, end);
    pos = end + 1;
    return s;
  };
  const pop = (): Value => {
    const v = stack.pop();
    if (v === undefined || v === MARK) throw new Error('pickle stack underflow');
    return v;
  };
  const popMark = (): Value[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw new Error('pickle mark missing');
    const items = stack.splice(i) as Value[];
    items.shift();
    return items;
  };
  const top = (): Value => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw new Error('pickle stack underflow');
    return v;
  };
  const setItems = (target: Value, items: Value[]) => {
    if (!target || typeof target !== 'object' || (target as { kind?: string }).kind !== 'dict')
      throw new Error('SETITEM on something that is not a dict');
    for (let i = 0; i + 1 < items.length; i += 2)
      (target as { map: Map<string, Value> }).map.set(String(items[i]), items[i + 1]!);
  };
  for (;;) {
    need(1);
    const op = data[pos++]!;
    switch (op) {
      case 0x80: // PROTO
        need(1);
        pos += 1;
        break;
      case 0x95: // FRAME
        need(8);
        pos += 8;
        break;
      case 0x7d: // EMPTY_DICT
        stack.push({ kind: 'dict', map: new Map() });
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push({ kind: 'tuple', items: [] });
        break;
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x74: // TUPLE
        stack.push({ kind: 'tuple', items: popMark() });
        break;
      case 0x85:
      case 0x86:
      case 0x87: {
        const n = op - 0x84;
        const items: Value[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop());
        stack.push({ kind: 'tuple', items });
        break;
      }
      case 0x58: {
        // BINUNICODE
        need(4);
        const n = data.readUInt32LE(pos);
        pos += 4;
        need(n);
        stack.push(data.toString('utf8', pos, pos + n));
        pos += n;
        break;
      }
      case 0x8c: {
        // SHORT_BINUNICODE
        need(1);
        const n = data[pos++]!;
        need(n);
        stack.push(data.toString('utf8', pos, pos + n));
        pos += n;
        break;
      }
      case 0x8d: {
        // BINUNICODE8
        need(8);
        const n = u64(data, pos);
        pos += 8;
        need(n);
        stack.push(data.toString('utf8', pos, pos + n));
        pos += n;
        break;
      }
      case 0x43: // SHORT_BINBYTES
      case 0x42: {
        // BINBYTES
        const wide = op === 0x42;
        need(wide ? 4 : 1);
        const n = wide ? data.readUInt32LE(pos) : data[pos]!;
        pos += wide ? 4 : 1;
        need(n);
        stack.push(data.subarray(pos, pos + n));
        pos += n;
        break;
      }
      case 0x4a: // BININT
        need(4);
        stack.push(data.readInt32LE(pos));
        pos += 4;
        break;
      case 0x4b: // BININT1
        need(1);
        stack.push(data[pos++]!);
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(data.readUInt16LE(pos));
        pos += 2;
        break;
      case 0x8a: {
        // LONG1
        need(1);
        const n = data[pos++]!;
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[pos + i]!);
        if (n > 0 && data[pos + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        pos += n;
        stack.push(
          v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v,
        );
        break;
      }
      case 0x49: {
        // INT (text)
        const s = line();
        stack.push(s === '01' ? true : s === '00' ? false : Number(s));
        break;
      }
      case 0x47: // BINFLOAT
        need(8);
        stack.push(data.readDoubleBE(pos));
        pos += 8;
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x63: {
        // GLOBAL
        const module = line();
        const name = line();
        stack.push({ kind: 'global', module, name });
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        stack.push({ kind: 'global', module: String(module), name: String(name) });
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistent(pop()));
        break;
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop() as { module?: string; name?: string };
        void args;
        stack.push({ kind: 'opaque', what: `${cls.module ?? '?'}.${cls.name ?? '?'}` });
        break;
      }
      case 0x62: // BUILD: state is dropped (ptb needs no object state)
        pop();
        break;
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const list = top();
        if (Array.isArray(list)) list.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (Array.isArray(list)) list.push(...items);
        break;
      }
      case 0x71: // BINPUT
        need(1);
        memo.set(data[pos++]!, top());
        break;
      case 0x72: // LONG_BINPUT
        need(4);
        memo.set(data.readUInt32LE(pos), top());
        pos += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x70: // PUT
        memo.set(Number(line()), top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const wide = op === 0x6a;
        need(wide ? 4 : 1);
        const k = wide ? data.readUInt32LE(pos) : data[pos]!;
        pos += wide ? 4 : 1;
        if (!memo.has(k)) throw new Error(`pickle memo ${k} missing`);
        stack.push(memo.get(k)!);
        break;
      }
      case 0x67: {
        // GET
        const k = Number(line());
        if (!memo.has(k)) throw new Error(`pickle memo ${k} missing`);
        stack.push(memo.get(k)!);
        break;
      }
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x2e: // STOP
        return pop();
      default:
        throw new Error(`unsupported pickle opcode 0x${op.toString(16)} at byte ${pos - 1}`);
    }
  }
}

const DTYPE_WIDTH: Record<string, number> = {
  BF16: 2,
  F16: 2,
  F32: 4,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

function contiguous(shape: number[], stride: number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i]! > 1 && stride[i] !== expect) return false;
    expect *= shape[i]!;
  }
  return true;
}

/** Tensors of one `pytorch_model.bin` (torch.save zip format), as entries into the file. */
export async function readTorchZip(file: string): Promise<TensorEntry[]> {
  let h: FileHandle;
  try {
    h = await open(file, 'r');
  } catch (err) {
    throw new UserError(`cannot open ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    const size = (await h.stat()).size;
    const entries = await zipEntries(file, h, size);
    const pkl = entries.find((e) => e.name.endsWith('/data.pkl') || e.name === 'data.pkl');
    if (!pkl) throw bad(file, 'no data.pkl in the archive: not a torch.save file');
    const prefix = pkl.name.slice(0, pkl.name.length - 'data.pkl'.length);
    const byteorder = entries.find((e) => e.name === `${prefix}byteorder`);
    if (byteorder) {
      const order = (await readAt(h, await dataStart(file, h, byteorder), byteorder.size)).toString().trim();
      if (order !== 'little') throw bad(file, `byte order ${order} is not supported`);
    }
    if (pkl.method !== 0) throw bad(file, 'data.pkl is compressed');
    const pklBytes = await readAt(h, await dataStart(file, h, pkl), pkl.size);
    if (pklBytes.length < pkl.size) throw bad(file, 'truncated: data.pkl is cut short');
    let root: Value;
    try {
      root = parsePickle(pklBytes);
    } catch (err) {
      throw bad(file, `data.pkl cannot be read as a plain state dict (${(err as Error).message})`);
    }
    // A state dict, or a checkpoint dict wrapping one ({"state_dict": ...} / {"model": ...}).
    let dict = root as { kind?: string; map?: Map<string, Value> };
    for (const key of ['state_dict', 'model', 'module']) {
      const inner = dict.kind === 'dict' ? dict.map!.get(key) : undefined;
      if (inner && typeof inner === 'object' && (inner as { kind?: string }).kind === 'dict')
        dict = inner as typeof dict;
    }
    if (dict.kind !== 'dict') throw bad(file, 'data.pkl does not hold a dict of tensors');
    const byKey = new Map(entries.map((e) => [e.name, e]));
    const out: TensorEntry[] = [];
    const opaque: string[] = [];
    for (const [name, v] of dict.map!) {
      const t = v as Extract<Value, { kind: 'tensor' }> | { kind?: string; what?: string };
      if (!t || typeof t !== 'object' || t.kind !== 'tensor') {
        if (t && typeof t === 'object' && t.kind === 'opaque') opaque.push(`${name} (${t.what})`);
        continue;
      }
      const tensor = t as Extract<Value, { kind: 'tensor' }>;
      const width = DTYPE_WIDTH[tensor.storage.dtype]!;
      const numel = tensor.shape.reduce((a, b) => a * b, 1);
      if (!contiguous(tensor.shape, tensor.stride))
        throw bad(
          file,
          `tensor ${name} is a strided view (shape ${JSON.stringify(tensor.shape)}, stride ${JSON.stringify(tensor.stride)})`,
        );
      if (tensor.offset + numel > tensor.storage.numel)
        throw bad(file, `tensor ${name} lies outside its storage`);
      const entry = byKey.get(`${prefix}data/${tensor.storage.key}`);
      if (!entry) throw bad(file, `storage ${tensor.storage.key} of ${name} is missing from the archive`);
      if (entry.method !== 0) throw bad(file, `storage ${tensor.storage.key} is compressed`);
      const start = await dataStart(file, h, entry);
      const offset = start + tensor.offset * width;
      if (start + entry.size > size || offset + numel * width > start + entry.size)
        throw bad(file, `truncated: tensor ${name} ends past the end of the file`);
      out.push({
        name,
        dtype: tensor.storage.dtype,
        shape: tensor.shape,
        numel,
        file,
        offset,
        byteLength: numel * width,
      });
    }
    if (out.length === 0) {
      throw bad(
        file,
        opaque.length > 0
          ? `no plain tensors; it holds objects ptb does not construct: ${opaque.slice(0, 3).join(', ')}`
          : 'no tensors',
      );
    }
    return out.sort((a, b) => a.offset - b.offset);
  } finally {
    await h.close();
  }
}
