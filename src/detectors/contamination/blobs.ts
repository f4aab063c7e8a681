/**
 * Encoded blobs inside text: base64 (standard or URL-safe, also wrapped over lines or with `\n`
 * escapes inside a JSON string) and hex. A blob is kept when what it decodes to can hold text: it
 * starts with a known container or compression signature, or it is mostly printable UTF-8. The
 * scanner looks for blobs only in chunks where its byte loop saw a long run of glued letters and
 * digits, so ordinary text never pays for this pass.
 */
export interface EncodedBlob {
  /** Offset of the blob's first character in the searched buffer. */
  offset: number;
  /** Offset just past its last character. */
  end: number;
  encoding: 'base64' | 'hex';
  data: Buffer;
  /** Line of the blob's first character in its source (line-counted sources only). */
  line?: number;
}

/** Characters a blob takes (base64 of 48 bytes, hex of 64 bytes). */
export const MIN_BASE64_CHARS = 64;
export const MIN_HEX_CHARS = 128;

const B64 = '[A-Za-z0-9+/_-]';
/** A run of base64 characters, `=` padding, and line breaks (raw or `\n` escapes) between them. */
const BLOB = new RegExp(
  `${B64}(?:${B64}|=(?=[=\\s"',\\]})]|$)|\\r?\\n(?=${B64})|\\\\n(?=${B64})){${MIN_BASE64_CHARS - 1},}`,
  'g',
);

/** Signatures of content worth decoding further even when it is not text. */
const SIGNATURES: ReadonlyArray<readonly number[]> = [
  [0x1f, 0x8b], // gzip
  [0x42, 0x5a, 0x68], // bzip2
  [0xfd, 0x37, 0x7a, 0x58, 0x5a], // xz
  [0x28, 0xb5, 0x2f, 0xfd], // zstd
  [0x50, 0x4b, 0x03, 0x04], // zip
  [0x50, 0x41, 0x52, 0x31], // parquet
  [0x41, 0x52, 0x52, 0x4f, 0x57], // arrow
  [0x80], // pickle protocol 2+
  [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59], // npy
];

function hasSignature(data: Buffer): boolean {
  if (data.length >= 2 && (data[0]! & 0x0f) === 8 && ((data[0]! << 8) | data[1]!) % 31 === 0) return true; // zlib
  return SIGNATURES.some((sig) => sig.every((b, i) => data[i] === b));
}

/** Mostly printable: at least 90% of the first 4 KiB are text bytes (UTF-8 continuation bytes count). */
export function looksLikeText(data: Uint8Array): boolean {
  const n = Math.min(data.length, 4096);
  if (n === 0) return false;
  let text = 0;
  for (let i = 0; i < n; i++) {
    const b = data[i]!;
    if ((b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09 || b >= 0x80) text++;
  }
  return text >= n * 0.9;
}

function decodeCandidate(raw: string): { encoding: 'base64' | 'hex'; data: Buffer } | null {
  const compact = raw.replace(/\\n|[\r\n]/g, '');
  if (compact.length >= MIN_HEX_CHARS && compact.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(compact)) {
    const data = Buffer.from(compact, 'hex');
    if (looksLikeText(data) || hasSignature(data)) return { encoding: 'hex', data };
    return null;
  }
  if (compact.length < MIN_BASE64_CHARS) return null;
  // Mixed case or digits: a long lowercase identifier is not base64.
  if (!/[A-Z]/.test(compact) || !/[a-z0-9]/.test(compact)) return null;
  const data = Buffer.from(compact, 'base64');
  if (data.length < 32) return null;
  if (hasSignature(data) || looksLikeText(data)) return { encoding: 'base64', data };
  return null;
}

/** Blobs in buf[from, to) that decode to text or to a known format. */
export function findEncodedBlobs(buf: Uint8Array, from: number, to: number): EncodedBlob[] {
  const text = Buffer.from(buf.buffer, buf.byteOffset + from, to - from).toString('latin1');
  const out: EncodedBlob[] = [];
  BLOB.lastIndex = 0;
  for (let m = BLOB.exec(text); m; m = BLOB.exec(text)) {
    const decoded = decodeCandidate(m[0]);
    if (decoded) out.push({ offset: from + m.index, end: from + m.index + m[0].length, ...decoded });
  }
  return out;
}
