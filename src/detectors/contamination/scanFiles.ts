import { lstatSync, readdirSync, readlinkSync, realpathSync, type Stats, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { type ContaminationFinding, DecodeLimitError, ScanJob, scanContent } from './decodeScan.ts';
import type { NgramIndex } from './ngramIndex.ts';

export type { ContaminationFinding } from './decodeScan.ts';

/**
 * Scanning files and folders for test items: every file under the paths is read (virtual
 * environments, caches, VCS internals and logs included; see decodeScan for what is decoded), and
 * whatever is not read is reported with its reason — nothing is left out silently.
 */
export interface ScanCallbacks {
  onFinding(finding: ContaminationFinding): void;
  /** Something that could not be read in full (unreadable, corrupt, over a limit): the scan is incomplete. */
  onError?(source: string, message: string): void;
  /** Something not read on purpose (weights, media, links out of the scanned folders), and why. */
  onSkip?(source: string, reason: string): void;
  /** Bytes of input done so far out of the total listed. */
  onProgress?(done: number, total: number): void;
  /** Every listed file once, with what became of it. */
  onFile?(record: FileRecord): void;
}

export interface FileRecord {
  source: string;
  bytes: number;
  status: 'scanned' | 'skipped' | 'error';
  /** Why it was skipped, or what went wrong. */
  reason?: string;
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

export interface ScanOptions {
  label?: (path: string) => string;
  /** Files larger than this are not read (reported as an error: the scan is then incomplete). */
  maxFileBytes?: number;
  /** Decoded bytes one file may expand to (default: decodeBudget of its size). */
  maxDecodedBytes?: number;
  /** Paths under the given folders that another scan covers (not listed, not reported). */
  exclude?: (path: string) => boolean;
}

/** Largest single file read by default: 64 GiB (about five minutes of scanning). */
export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 ** 3;

function isInside(path: string, roots: readonly string[]): boolean {
  return roots.some((root) => path === root || path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`));
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Files under the given paths (recursive, sorted). Symbolic links are followed only when they lead
 * to a file inside the scanned paths (a Hugging Face snapshot link to its blob); each real file is
 * read once, under its most telling name (the snapshot link rather than the blob). Links that lead
 * elsewhere, links to folders, and special files are listed in `skipped` with the reason.
 */
export function listFiles(
  paths: readonly string[],
  exclude: (path: string) => boolean = () => false,
): {
  files: ListedFile[];
  skipped: Array<{ path: string; reason: string }>;
  missing: string[];
} {
  const roots: string[] = [];
  for (const p of paths) {
    try {
      roots.push(realpathSync(p));
    } catch {}
  }
  const byReal = new Map<string, ListedFile & { blob: boolean }>();
  const skipped: Array<{ path: string; reason: string }> = [];
  const missing: string[] = [];
  const addFile = (path: string, real: string, size: number) => {
    const blob = /(^|\/)blobs\//.test(path);
    const prev = byReal.get(real);
    if (!prev || (prev.blob && !blob)) byReal.set(real, { path, size, blob });
  };
  const addLink = (path: string) => {
    let target = '?';
    try {
      target = readlinkSync(path);
      const real = realpathSync(path);
      const st = statSync(real);
      if (!isInside(real, roots))
        skipped.push({ path, reason: `link to ${target}, outside the scanned folders` });
      else if (st.isDirectory())
        skipped.push({ path, reason: `link to the folder ${target} (scanned where it is)` });
      else if (st.isFile()) addFile(path, real, st.size);
      else skipped.push({ path, reason: `link to ${kindOf(st)}` });
    } catch {
      skipped.push({ path, reason: `dangling link to ${target}` });
    }
  };
  const visit = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      missing.push(dir);
      return;
    }
    for (const name of names) {
      const p = join(dir, name);
      if (exclude(p)) continue;
      let st: Stats;
      try {
        st = lstatSync(p);
      } catch {
        missing.push(p);
        continue;
      }
      if (st.isDirectory()) visit(p);
      else if (st.isFile()) addFile(p, p, st.size);
      else if (st.isSymbolicLink()) addLink(p);
      else skipped.push({ path: p, reason: kindOf(st) });
    }
  };
  for (const path of paths) {
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch {
      missing.push(path);
      continue;
    }
    if (st.isDirectory()) visit(path);
    else if (st.isFile()) addFile(path, path, st.size);
    else if (st.isSymbolicLink()) {
      // A path named on purpose is followed wherever it leads.
      try {
        const real = realpathSync(path);
        const target = statSync(real);
        if (target.isDirectory()) {
          roots.push(real);
          visit(path);
        } else if (target.isFile()) addFile(path, real, target.size);
        else skipped.push({ path, reason: kindOf(target) });
      } catch {
        missing.push(path);
      }
    } else skipped.push({ path, reason: kindOf(st) });
  }
  const files = [...byReal.values()].map(({ path, size }) => ({ path, size }));
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, skipped, missing };
}

/** A file whose blocks cover under 1/16 of its length: mostly holes, too long to read for nothing. */
function isSparse(path: string, size: number): boolean {
  if (size < 1024 ** 3) return false;
  try {
    const st = statSync(path);
    return st.blocks * 512 < size / 16;
  } catch {
    return false;
  }
}

/** Scan files and folders (recursive). Findings stream out through the callbacks. */
export async function scanPaths(
  index: NgramIndex,
  paths: readonly string[],
  cb: ScanCallbacks,
  opts: ScanOptions = {},
): Promise<ScanSummary> {
  const started = performance.now();
  const { files, skipped: listSkips, missing } = listFiles(paths, opts.exclude);
  const label = opts.label ?? ((p: string) => p);
  const maxFileBytes = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  let errors = 0;
  let skipped = 0;
  for (const m of missing) {
    errors++;
    cb.onError?.(label(m), 'no such file or folder, or not readable');
    cb.onFile?.({ source: label(m), bytes: 0, status: 'error', reason: 'not readable' });
  }
  for (const s of listSkips) {
    skipped++;
    cb.onSkip?.(label(s.path), s.reason);
    cb.onFile?.({ source: label(s.path), bytes: 0, status: 'skipped', reason: s.reason });
  }
  const total = files.reduce((s, f) => s + f.size, 0);
  let done = 0;
  let findings = 0;
  let scannedFiles = 0;
  let scannedBytes = 0;
  const items = new Set<string>();
  for (const file of files) {
    const source = label(file.path);
    let problem: string | null = null;
    let skipReason: string | null = null;
    if (file.size > maxFileBytes)
      problem = `${file.size} bytes: larger than the scan limit of ${maxFileBytes} bytes; not read`;
    else if (isSparse(file.path, file.size))
      problem = `sparse file of ${file.size} bytes, mostly holes; not read`;
    else {
      const job = new ScanJob(
        {
          index,
          finding: (f) => {
            findings++;
            items.add(f.item);
            cb.onFinding(f);
          },
          skip: (what, reason) => {
            if (what === source) skipReason = reason;
            else {
              skipped++;
              cb.onSkip?.(what, reason);
            }
          },
          incomplete: (what, message) => {
            errors++;
            cb.onError?.(what, message);
          },
        },
        file.size,
        (bytes) => cb.onProgress?.(done + Math.min(bytes, file.size), total),
        opts.maxDecodedBytes,
      );
      try {
        await scanContent(
          job,
          { kind: 'file', path: file.path, start: 0, size: file.size },
          {
            label: source,
            name: file.path,
            via: [],
            depth: 0,
          },
        );
      } catch (err) {
        problem = err instanceof DecodeLimitError ? err.message : (err as Error).message;
      } finally {
        job.close();
      }
    }
    if (problem) {
      errors++;
      cb.onError?.(source, problem);
      cb.onFile?.({ source, bytes: file.size, status: 'error', reason: problem });
    } else if (skipReason) {
      skipped++;
      cb.onSkip?.(source, skipReason);
      cb.onFile?.({ source, bytes: file.size, status: 'skipped', reason: skipReason });
    } else {
      scannedFiles++;
      scannedBytes += file.size;
      cb.onFile?.({ source, bytes: file.size, status: 'scanned' });
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
