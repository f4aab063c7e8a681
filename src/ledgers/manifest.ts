/**
 * File manifests of a workspace: every file's path, size and sha256, taken at the start and the end of
 * the agent phase so detectors can see what was added, removed or changed (a template edited, an
 * evaluation script replaced). Files are hashed as streams, so multi-gigabyte weights cost no memory.
 * Symbolic links are recorded, never followed (the agent may point one anywhere): their `sha256` field
 * reads `symlink:<target>`. Sockets, FIFOs and devices are recorded as `special:<type>` and not opened.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, opendir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ManifestEntry } from '../core/trial.ts';

export interface ManifestOptions {
  /** Leave out a path (relative, `/`-separated); a skipped directory is not entered. */
  skip?: (relativePath: string, isDirectory: boolean) => boolean;
  /** Files hashed at once (default 4). */
  concurrency?: number;
}

export const SYMLINK_PREFIX = 'symlink:';
export const SPECIAL_PREFIX = 'special:';

function hashFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const stream = createReadStream(path);
    stream.on('data', (chunk) => hash.update(chunk));
    stream.on('error', reject);
    stream.on('end', () => resolve(hash.digest('hex')));
  });
}

function specialKind(stat: Awaited<ReturnType<typeof lstat>>): string {
  if (stat.isFIFO()) return 'fifo';
  if (stat.isSocket()) return 'socket';
  if (stat.isCharacterDevice()) return 'char-device';
  if (stat.isBlockDevice()) return 'block-device';
  return 'unknown';
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

/** Every file under `dir`, sorted by path. Entries that vanish during the walk are left out. */
export async function buildManifest(dir: string, options: ManifestOptions = {}): Promise<ManifestEntry[]> {
  const entries: ManifestEntry[] = [];
  const files: Array<{ path: string; absolute: string; size: number }> = [];

  async function walk(absolute: string, relative: string): Promise<void> {
    let handle: Awaited<ReturnType<typeof opendir>>;
    try {
      handle = await opendir(absolute);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    for await (const dirent of handle) {
      const childRelative = relative ? `${relative}/${dirent.name}` : dirent.name;
      const childAbsolute = join(absolute, dirent.name);
      let stat: Awaited<ReturnType<typeof lstat>>;
      try {
        stat = await lstat(childAbsolute);
      } catch (err) {
        if (isMissing(err)) continue;
        throw err;
      }
      if (options.skip?.(childRelative, stat.isDirectory())) continue;
      if (stat.isDirectory()) await walk(childAbsolute, childRelative);
      else if (stat.isSymbolicLink()) {
        let target: string;
        try {
          target = await readlink(childAbsolute);
        } catch (err) {
          if (isMissing(err)) continue;
          throw err;
        }
        entries.push({
          path: childRelative,
          size: Buffer.byteLength(target),
          sha256: `${SYMLINK_PREFIX}${target}`,
        });
      } else if (stat.isFile()) files.push({ path: childRelative, absolute: childAbsolute, size: stat.size });
      else entries.push({ path: childRelative, size: 0, sha256: `${SPECIAL_PREFIX}${specialKind(stat)}` });
    }
  }
  await walk(dir, '');

  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const file = files[next++]!;
      try {
        entries.push({ path: file.path, size: file.size, sha256: await hashFile(file.absolute) });
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export interface ManifestDiff {
  added: ManifestEntry[];
  removed: ManifestEntry[];
  changed: Array<{ path: string; before: ManifestEntry; after: ManifestEntry }>;
  unchanged: number;
}

/** What changed from manifest `before` to manifest `after` (each list sorted by path). */
export function diffManifests(
  before: readonly ManifestEntry[],
  after: readonly ManifestEntry[],
): ManifestDiff {
  const old = new Map(before.map((entry) => [entry.path, entry]));
  const diff: ManifestDiff = { added: [], removed: [], changed: [], unchanged: 0 };
  const seen = new Set<string>();
  for (const entry of after) {
    seen.add(entry.path);
    const previous = old.get(entry.path);
    if (!previous) diff.added.push(entry);
    else if (previous.sha256 !== entry.sha256 || previous.size !== entry.size)
      diff.changed.push({ path: entry.path, before: previous, after: entry });
    else diff.unchanged += 1;
  }
  for (const entry of before) if (!seen.has(entry.path)) diff.removed.push(entry);
  const byPath = (a: { path: string }, b: { path: string }) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
  diff.added.sort(byPath);
  diff.removed.sort(byPath);
  diff.changed.sort(byPath);
  return diff;
}
