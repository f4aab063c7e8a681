import { readFileSync } from 'node:fs';
import { UserError } from '../core/errors.ts';
import type { AssetCache } from '../hub/assetCache.ts';
import type { AssetPin } from '../hub/assetPin.ts';
import { checkDataFile } from '../hub/dataFile.ts';
import { type DataRecord, formatFromName, readRecords } from '../hub/records.ts';
import { sha256File } from '../hub/sha256.ts';

/**
 * `ptb data import GROUP FILE`: a local copy of a pinned file, checked against what the benchmark
 * reads before it is registered. A file the benchmark could not load (not parseable, a field
 * missing, a prompt constant absent, empty) is refused; a file whose row count differs from the
 * pinned one, or that would replace data verified against the pin, needs `--force`. The copy it
 * replaces is kept (AssetCache moves it to `previous/`).
 */

export interface DataImportResult {
  group: string;
  part: string;
  path: string;
  sha256: string;
  rows: number | null;
  /** The file's sha256 is the pinned one. */
  verified: boolean;
  /** Already registered with the same content: nothing changed. */
  unchanged: boolean;
  /** Where the copy it replaced was kept. */
  previous: string | null;
  /** What --force let through. */
  forced: string[];
}

interface Inspection {
  rows: number | null;
  /** Overridable with --force. */
  mismatches: string[];
}

async function inspectRecords(file: string, pin: AssetPin, label: string): Promise<Inspection> {
  const format = formatFromName(file) === 'text' ? pin.format : formatFromName(file);
  let rows: DataRecord[];
  try {
    rows = await readRecords(file, format);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(
      `${file} cannot be read as ${format} records (${(err as Error).message})`,
      `${label} is ${pin.description}, in the upstream format (JSON, JSON Lines, CSV or Parquet).`,
    );
  }
  if (rows.length === 0) throw new UserError(`${file} holds no records`, `${label} is ${pin.description}.`);
  const fields = pin.shape?.fields ?? [];
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    const missing =
      row === null || typeof row !== 'object' || Array.isArray(row)
        ? 'an object'
        : fields.find((f) => (row as DataRecord)[f] === undefined);
    if (missing !== undefined) {
      throw new UserError(
        `${file}: record ${i + 1} ${missing === 'an object' ? 'is not an object' : `has no field "${missing}"`}; ${label} is not in the upstream schema`,
        `${label} needs the fields ${fields.map((f) => `"${f}"`).join(', ')} in every record (${pin.description}).`,
      );
    }
  }
  const expected = pin.shape?.rows ?? null;
  const mismatches =
    expected !== null && rows.length !== expected
      ? [`it has ${rows.length} records; the pinned ${label} has ${expected}`]
      : [];
  return { rows: rows.length, mismatches };
}

function inspectText(file: string, pin: AssetPin, label: string): Inspection {
  const text = readFileSync(file, 'utf8');
  const absent = (pin.contains ?? []).filter((needle) => !text.includes(needle));
  if (absent.length > 0) {
    throw new UserError(
      `${file} does not contain ${absent.join(', ')}, which the benchmark reads from ${label}`,
      `${label} is ${pin.description}.`,
    );
  }
  return { rows: null, mismatches: [] };
}

export async function importDataFile(
  cache: AssetCache,
  group: string,
  pin: AssetPin,
  file: string,
  opts: { force?: boolean } = {},
): Promise<DataImportResult> {
  const label = `${group}/${pin.part}`;
  checkDataFile(file, pin, label);
  const inspection =
    pin.format === 'text' ? inspectText(file, pin, label) : await inspectRecords(file, pin, label);
  const sha256 = await sha256File(file);
  const verified = pin.sha256 !== null && pin.sha256 === sha256;
  const current = cache.entry(group, pin.part);
  const base = { group, part: pin.part, sha256, rows: inspection.rows, verified };
  if (current && current.sha256 === sha256) {
    const resolved = await cache.cached(group, pin);
    if (resolved) return { ...base, path: resolved.path, unchanged: true, previous: null, forced: [] };
  }
  const mismatches = [...inspection.mismatches];
  if (current?.verified && !verified) {
    mismatches.push(
      `it would replace ${current.source === 'pinned' ? 'the pinned file' : 'a copy'} verified against the pin (sha256 ${current.sha256.slice(0, 12)}…) with one that differs (${sha256.slice(0, 12)}…)`,
    );
  }
  if (mismatches.length > 0 && !opts.force) {
    throw new UserError(
      `not importing ${file} as ${label}: ${mismatches.join('; ')}`,
      `Pass --force to import it anyway (results record it as local data with its sha256${current ? '; the current copy is kept' : ''}).`,
    );
  }
  const got = await cache.import(group, pin, file);
  return { ...base, path: got.path, unchanged: false, previous: got.previous, forced: mismatches };
}
