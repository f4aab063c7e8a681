import { basename } from 'node:path';
import type { LocationKind } from './feeder.ts';

/**
 * What a file (or a decoded stream) is, by its first bytes and then its name. Everything that can
 * hold text is read: compressed streams and archives are decoded, tables are read by cell, and any
 * other file is read as raw bytes (pickles, Python byte code, joblib and numpy object arrays keep
 * their strings as plain bytes). Only content that cannot hold readable text is skipped, each with
 * its reason: model weights, compiled binaries, media.
 */
export type Format =
  | { kind: 'bytes'; location: LocationKind; csv: boolean }
  | { kind: 'compressed'; codec: Codec }
  | { kind: 'zip' }
  | { kind: 'tar' }
  | { kind: 'parquet' }
  | { kind: 'arrow' }
  | { kind: 'npy' }
  | { kind: 'safetensors'; headerBytes: number }
  | { kind: 'wide'; unit: 2 | 4; bigEndian: boolean; bom: number }
  | { kind: 'skip'; reason: string };

export type Codec = 'gzip' | 'zlib' | 'bzip2' | 'xz' | 'zstd';

/** Extensions a compressed stream's name carries: stripped to name what is inside. */
const CODEC_SUFFIX = /\.(gz|gzip|tgz|z|zz|zlib|bz2|tbz2?|xz|txz|lzma|zst|zstd)$/i;

export function innerName(name: string): string {
  const stripped = name.replace(CODEC_SUFFIX, '');
  if (/\.(tgz|tbz2?|txz)$/i.test(name)) return `${stripped}.tar`;
  return stripped;
}

/** Legacy weight files above this size are not read as bytes (a pickle of tensors, an HDF5 file). */
export const LARGE_WEIGHTS_BYTES = 64 << 20;
const WEIGHTS_EXTENSION = /\.(bin|pt|pth|ckpt|h5|hdf5|onnx|msgpack|pb|tflite|keras|mlmodel|params|npz)$/i;

function startsWith(head: Uint8Array, bytes: readonly number[], at = 0): boolean {
  if (head.length < at + bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (head[at + i] !== bytes[i]) return false;
  return true;
}

/** Whether `text` (ASCII) sits at `at` in head, compared in place (this runs once per decoded blob too). */
function hasText(head: Uint8Array, at: number, text: string): boolean {
  if (head.length < at + text.length) return false;
  for (let i = 0; i < text.length; i++) if (head[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

function isZlibHeader(head: Uint8Array): boolean {
  if (head.length < 2) return false;
  const cmf = head[0]!;
  const flg = head[1]!;
  return (cmf & 0x0f) === 8 && cmf >> 4 <= 7 && ((cmf << 8) | flg) % 31 === 0 && (flg & 0x20) === 0;
}

/** A safetensors file: an 8-byte little-endian header length, then a JSON header. */
function safetensorsHeader(head: Uint8Array, size: number): number | null {
  if (head.length < 9 || head[8] !== 0x7b) return null;
  const n = Buffer.from(head.subarray(0, 8)).readBigUInt64LE(0);
  if (n < 2n || n > BigInt(Math.min(size - 8, 100 << 20))) return null;
  return Number(n);
}

/** Text stored as UTF-16 without a byte-order mark: mostly zero bytes at every second position. */
function utf16Without(head: Uint8Array): { bigEndian: boolean } | null {
  const n = Math.min(head.length, 4096) & ~1;
  if (n < 64) return null;
  let evenZero = 0;
  let oddZero = 0;
  for (let i = 0; i < n; i += 2) {
    if (head[i] === 0) evenZero++;
    if (head[i + 1] === 0) oddZero++;
  }
  const pairs = n / 2;
  if (oddZero > pairs * 0.6 && evenZero < pairs * 0.05) return { bigEndian: false };
  if (evenZero > pairs * 0.6 && oddZero < pairs * 0.05) return { bigEndian: true };
  return null;
}

function byName(name: string): Format {
  const lower = name.toLowerCase();
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson'))
    return { kind: 'bytes', location: 'line', csv: false };
  if (lower.endsWith('.json')) return { kind: 'bytes', location: 'offset', csv: false };
  if (lower.endsWith('.csv') || lower.endsWith('.tsv')) return { kind: 'bytes', location: 'row', csv: true };
  return { kind: 'bytes', location: 'line', csv: false };
}

/** What content is, from its name, its first bytes (8 KiB or all of it) and its size. */
export function detectFormat(path: string, head: Uint8Array, size: number): Format {
  const name = basename(path);
  const lower = name.toLowerCase();
  if (head.length === 0) return { kind: 'skip', reason: 'empty' };
  // Compressed streams and archives.
  if (startsWith(head, [0x1f, 0x8b])) return { kind: 'compressed', codec: 'gzip' };
  if (startsWith(head, [0x42, 0x5a, 0x68]) && head[3]! >= 0x31 && head[3]! <= 0x39)
    return { kind: 'compressed', codec: 'bzip2' };
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return { kind: 'compressed', codec: 'xz' };
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd])) return { kind: 'compressed', codec: 'zstd' };
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04]) || startsWith(head, [0x50, 0x4b, 0x05, 0x06]))
    return { kind: 'zip' };
  if (hasText(head, 257, 'ustar')) return { kind: 'tar' };
  if (isZlibHeader(head) && !/\.(jsonl?|csv|tsv|txt|md|py)$/i.test(lower))
    return { kind: 'compressed', codec: 'zlib' };
  // Tables.
  if (hasText(head, 0, 'PAR1')) return { kind: 'parquet' };
  if (hasText(head, 0, 'ARROW1')) return { kind: 'arrow' };
  if (startsWith(head, [0xff, 0xff, 0xff, 0xff]) && head.length >= 8) return { kind: 'arrow' };
  if (startsWith(head, [0x93]) && hasText(head, 1, 'NUMPY')) return { kind: 'npy' };
  // Weights: only their text parts are read.
  const header = safetensorsHeader(head, size);
  if (header !== null) return { kind: 'safetensors', headerBytes: header };
  if (hasText(head, 0, 'GGUF')) return { kind: 'skip', reason: 'model weights (GGUF)' };
  // Compiled code and media: no readable text.
  if (startsWith(head, [0x7f, 0x45, 0x4c, 0x46])) return { kind: 'skip', reason: 'compiled binary (ELF)' };
  if (
    startsWith(head, [0xcf, 0xfa, 0xed, 0xfe]) ||
    startsWith(head, [0xca, 0xfe, 0xba, 0xbe]) ||
    (hasText(head, 0, 'MZ') && /\.(exe|dll|pyd)$/i.test(lower))
  )
    return { kind: 'skip', reason: 'compiled binary' };
  if (startsWith(head, [0x00, 0x61, 0x73, 0x6d]))
    return { kind: 'skip', reason: 'compiled binary (WebAssembly)' };
  if (startsWith(head, [0x89, 0x50, 0x4e, 0x47]) || startsWith(head, [0xff, 0xd8, 0xff]))
    return { kind: 'skip', reason: 'image' };
  if (hasText(head, 0, 'GIF8') || (hasText(head, 0, 'RIFF') && hasText(head, 8, 'WEBP')))
    return { kind: 'skip', reason: 'image' };
  if (hasText(head, 0, 'RIFF') || hasText(head, 0, 'OggS') || hasText(head, 0, 'fLaC'))
    return { kind: 'skip', reason: 'audio or video' };
  if (hasText(head, 0, 'ID3') || hasText(head, 4, 'ftyp')) return { kind: 'skip', reason: 'audio or video' };
  if (hasText(head, 0, '%PDF-'))
    return { kind: 'skip', reason: 'PDF document (compressed page streams are not read)' };
  if (startsWith(head, [0x89, 0x48, 0x44, 0x46]) && size > LARGE_WEIGHTS_BYTES)
    return { kind: 'skip', reason: 'HDF5 file (model weights or arrays)' };
  if (WEIGHTS_EXTENSION.test(lower) && size > LARGE_WEIGHTS_BYTES)
    return {
      kind: 'skip',
      reason: `model weights (${lower.slice(lower.lastIndexOf('.'))}, not a zip archive)`,
    };
  // Text in UTF-16 or UTF-32.
  if (startsWith(head, [0xff, 0xfe, 0x00, 0x00])) return { kind: 'wide', unit: 4, bigEndian: false, bom: 4 };
  if (startsWith(head, [0x00, 0x00, 0xfe, 0xff])) return { kind: 'wide', unit: 4, bigEndian: true, bom: 4 };
  if (startsWith(head, [0xff, 0xfe])) return { kind: 'wide', unit: 2, bigEndian: false, bom: 2 };
  if (startsWith(head, [0xfe, 0xff])) return { kind: 'wide', unit: 2, bigEndian: true, bom: 2 };
  const wide = utf16Without(head);
  if (wide) return { kind: 'wide', unit: 2, bigEndian: wide.bigEndian, bom: 0 };
  return byName(name);
}
