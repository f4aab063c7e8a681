import { createHash } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomicWrite.ts';

/**
 * How `ptb export` writes into a folder that may already hold files: it never deletes or overwrites
 * a file it did not write. Each folder it writes gets `ptb_export.json`, the sha256 of every file
 * it wrote there; a later export may replace or remove exactly those files, and only while they
 * still have that content. Anything else in the way is a conflict, found for the whole export
 * before the first byte is written.
 */

export const EXPORT_MANIFEST = 'ptb_export.json';

export type FileSource =
  | { copyFrom: string }
  | {
      text: string;
      /** The existing file says the same thing in other words (e.g. the same accuracy). */
      equivalent?: (existing: string) => boolean;
    };

export interface FolderPlan {
  dir: string;
  files: Map<string, FileSource>;
  /**
   * What other entries in the folder mean: 'own' — the trial's own record (an imported run folder
   * exported onto its tree), kept as they are; 'shared' — unrelated files that may sit beside
   * ours (a baseline folder); 'exclusive' — the folder must hold nothing but our files, or it is
   * another run.
   */
  others: 'own' | 'shared' | 'exclusive';
}

export interface FolderCheck {
  plan: FolderPlan;
  conflicts: string[];
  /** Planned files whose current content is already right. */
  unchanged: Set<string>;
  /** Files an earlier export wrote that this one does not (stale judgements, say): removed. */
  stale: string[];
  /** What the manifest keeps from before (files this export leaves in place as they are). */
  kept: Record<string, string>;
}

interface Manifest {
  written_by: 'ptb export';
  files: Record<string, string>;
}

function readManifest(dir: string): Record<string, string> {
  try {
    const parsed = JSON.parse(readFileSync(join(dir, EXPORT_MANIFEST), 'utf8')) as Partial<Manifest>;
    return parsed && typeof parsed.files === 'object' && parsed.files !== null ? parsed.files : {};
  } catch {
    return {};
  }
}

export function sha256OfFile(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

function sha256OfText(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function sourceHash(source: FileSource): string {
  return 'copyFrom' in source ? sha256OfFile(source.copyFrom) : sha256OfText(source.text);
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export function checkFolder(plan: FolderPlan): FolderCheck {
  const check: FolderCheck = { plan, conflicts: [], unchanged: new Set(), stale: [], kept: {} };
  if (!existsSync(plan.dir)) return check;
  if (!statSync(plan.dir).isDirectory()) {
    check.conflicts.push(`${plan.dir}: a file is where this run's folder goes`);
    return check;
  }
  const manifest = readManifest(plan.dir);
  const foreign: string[] = [];
  for (const name of readdirSync(plan.dir).sort()) {
    if (name === EXPORT_MANIFEST) continue;
    const path = join(plan.dir, name);
    const planned = plan.files.get(name);
    const current = isFile(path) ? sha256OfFile(path) : null;
    const ours = current !== null && manifest[name] === current;
    if (planned) {
      if (current !== null && current === sourceHash(planned)) check.unchanged.add(name);
      else if (current !== null && 'text' in planned && planned.equivalent?.(readFileSync(path, 'utf8')))
        check.unchanged.add(name);
      else if (!ours) {
        check.conflicts.push(
          `${path}: ${manifest[name] ? 'changed since ptb export wrote it' : 'exists, and ptb export did not write it'}`,
        );
      }
      if (ours && check.unchanged.has(name)) check.kept[name] = current!;
    } else if (ours) check.stale.push(name);
    else if (manifest[name]) check.conflicts.push(`${path}: changed since ptb export wrote it`);
    else foreign.push(name);
  }
  if (foreign.length > 0 && plan.others === 'exclusive') {
    const shown =
      foreign.slice(0, 4).join(', ') + (foreign.length > 4 ? ` and ${foreign.length - 4} more` : '');
    check.conflicts.push(`${plan.dir}: holds another run's files (${shown})`);
  }
  return check;
}

/** Write a checked folder: planned files (atomically), stale ones removed, then the manifest. */
export function writeFolder(check: FolderCheck): void {
  const { plan } = check;
  mkdirSync(plan.dir, { recursive: true });
  const written: Record<string, string> = { ...check.kept };
  for (const [name, source] of plan.files) {
    if (check.unchanged.has(name)) continue;
    const target = join(plan.dir, name);
    if ('copyFrom' in source) {
      const tmp = `${target}.ptb-tmp-${process.pid}`;
      copyFileSync(source.copyFrom, tmp);
      renameSync(tmp, target);
    } else {
      writeFileAtomic(target, source.text);
    }
    written[name] = sha256OfFile(target);
  }
  for (const name of check.stale) rmSync(join(plan.dir, name), { force: true });
  const manifest: Manifest = { written_by: 'ptb export', files: written };
  if (Object.keys(written).length > 0 || existsSync(join(plan.dir, EXPORT_MANIFEST))) {
    writeJsonAtomic(join(plan.dir, EXPORT_MANIFEST), manifest);
  }
}
