import {
  closeSync,
  existsSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { z } from 'zod';

/** Result of reading a harness-written JSON file: missing and malformed are different answers. */
export type JsonRead<T> =
  | { status: 'ok'; value: T }
  | { status: 'missing' }
  | { status: 'invalid'; message: string };

export function readJsonFile<T>(path: string, schema: z.ZodType<T>): JsonRead<T> {
  if (!existsSync(path)) return { status: 'missing' };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return { status: 'invalid', message: `not JSON: ${(err as Error).message}` };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) return { status: 'invalid', message: parsed.error.issues[0]?.message ?? 'bad shape' };
  return { status: 'ok', value: parsed.data };
}

export interface JsonLines<T> {
  exists: boolean;
  /** Valid events with their 1-based line number. */
  events: Array<{ line: number; event: T }>;
  /** Lines that were not valid JSON or not of the schema (a crash can truncate the last line). */
  invalid: number;
}

export function readJsonLines<T>(path: string, schema: z.ZodType<T>): JsonLines<T> {
  if (!existsSync(path)) return { exists: false, events: [], invalid: 0 };
  const events: JsonLines<T>['events'] = [];
  let invalid = 0;
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((text, i) => {
    if (text.trim() === '') return;
    try {
      const parsed = schema.safeParse(JSON.parse(text));
      if (parsed.success) events.push({ line: i + 1, event: parsed.data });
      else invalid++;
    } catch {
      invalid++;
    }
  });
  return { exists: true, events, invalid };
}

export interface WalkedFile {
  /** Path relative to the walked root, with `/` separators. */
  rel: string;
  abs: string;
  size: number;
}

/** Folders never worth reading for evidence (caches, environments, VCS internals). */
export const SKIPPED_DIRS = new Set([
  '.git',
  'node_modules',
  '__pycache__',
  'site-packages',
  '.venv',
  'venv',
  '.cache',
  'wandb',
]);

/** Every regular file under root (symlinks are not followed), sorted, at most maxFiles. */
export function walkFiles(
  root: string,
  opts: { maxFiles?: number; skipDirs?: ReadonlySet<string> } = {},
): WalkedFile[] {
  const maxFiles = opts.maxFiles ?? 50_000;
  const skip = opts.skipDirs ?? SKIPPED_DIRS;
  const out: WalkedFile[] = [];
  if (!existsSync(root)) return out;
  const visit = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (out.length >= maxFiles) return;
      const abs = join(dir, name);
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(abs);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (!skip.has(name)) visit(abs);
      } else if (st.isFile()) {
        out.push({ rel: relative(root, abs).split(sep).join('/'), abs, size: st.size });
      }
    }
  };
  visit(root);
  return out;
}

/** Weight and archive files: never read as text. */
const BINARY_EXT =
  /\.(safetensors|bin|pt|pth|ckpt|gguf|npy|npz|arrow|parquet|zip|gz|tar|tgz|xz|zst|png|jpe?g|gif|pdf|so|o|pyc|whl|h5|onnx|msgpack)$/i;

/** The file as text when it is small and not binary, else null. */
export function readTextIfSmall(path: string, maxBytes = 2_000_000): string | null {
  if (BINARY_EXT.test(path)) return null;
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return null;
  }
  if (size > maxBytes) return null;
  const buf = readFileSync(path);
  if (buf.subarray(0, 8192).includes(0)) return null;
  return buf.toString('utf8');
}

/** The first `maxBytes` of a file as text (for logs too large to read whole). */
export function readHead(path: string, maxBytes: number): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(maxBytes);
    const n = readSync(fd, buf, 0, maxBytes, 0);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Lines of a possibly large text file, read in full (solve_out.txt); '' when absent. */
export function readTextOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The reference prefixes every trace line with `[YYYY-MM-DDTHH:MM:SSZ] `; strip it. */
export function stripTimestamp(line: string): string {
  return line.replace(/^\[\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z\] /, '');
}
