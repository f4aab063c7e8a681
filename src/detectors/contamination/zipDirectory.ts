/** One member of a zip archive, from its central directory (zip64 sizes and offsets included). */
export interface ZipEntry {
  name: string;
  method: number;
  encrypted: boolean;
  compressedSize: number;
  size: number;
  /** Offset of the member's local header. */
  localHeader: number;
}

/** Reads `length` bytes at `position` of the archive (short only at its end). */
export type ReadAt = (position: number, length: number) => Buffer;

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

function u64(buf: Buffer, at: number): number {
  return Number(buf.readBigUInt64LE(at));
}

/** The central directory of a zip archive of `size` bytes; throws when it is not a readable zip. */
export function readZipDirectory(readAt: ReadAt, size: number): ZipEntry[] {
  const tailLength = Math.min(size, 65_557);
  const tail = readAt(size - tailLength, tailLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive (no end of central directory)');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locatorAt = eocd - 20;
    if (locatorAt < 0 || tail.readUInt32LE(locatorAt) !== ZIP64_LOCATOR)
      throw new Error('zip64 archive without its locator');
    const recordAt = u64(tail, locatorAt + 8);
    const record = readAt(recordAt, 56);
    if (record.length < 56 || record.readUInt32LE(0) !== ZIP64_EOCD)
      throw new Error('bad zip64 directory record');
    count = u64(record, 32);
    cdSize = u64(record, 40);
    cdOffset = u64(record, 48);
  }
  if (cdOffset + cdSize > size) throw new Error('zip central directory lies past the end of the file');
  if (cdSize > 256 << 20) throw new Error(`zip central directory of ${cdSize} bytes is too large`);
  const cd = readAt(cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let k = 0; k < count; k++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL)
      throw new Error('corrupt zip central directory');
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    let compressedSize = cd.readUInt32LE(p + 20);
    let uncompressed = cd.readUInt32LE(p + 24);
    const nameLength = cd.readUInt16LE(p + 28);
    const extraLength = cd.readUInt16LE(p + 30);
    const commentLength = cd.readUInt16LE(p + 32);
    let localHeader = cd.readUInt32LE(p + 42);
    const name = cd.toString(flags & 0x800 ? 'utf8' : 'latin1', p + 46, p + 46 + nameLength);
    // zip64 extra field: the sizes and offset that overflowed 32 bits, in this order.
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (uncompressed === 0xffffffff) {
          uncompressed = u64(cd, q);
          q += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = u64(cd, q);
          q += 8;
        }
        if (localHeader === 0xffffffff) localHeader = u64(cd, q);
      }
      e += 4 + len;
    }
    entries.push({
      name,
      method,
      encrypted: (flags & 1) !== 0,
      compressedSize,
      size: uncompressed,
      localHeader,
    });
    p = extraEnd + commentLength;
  }
  return entries;
}

/** Offset of a member's data: after its local header, whose name and extra lengths may differ. */
export function memberDataOffset(readAt: ReadAt, entry: ZipEntry): number {
  const header = readAt(entry.localHeader, 30);
  if (header.length < 30 || header.readUInt32LE(0) !== LOCAL)
    throw new Error(`bad local header for ${entry.name}`);
  return entry.localHeader + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
}
