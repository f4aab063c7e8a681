import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { UserError } from '../core/errors.ts';
import type { RecordFormat } from './assetPin.ts';

export type DataRecord = Record<string, unknown>;

/** Guess a file's record format from its name (`.jsonl.gz` and `.json.gz` are unzipped first). */
export function formatFromName(path: string): RecordFormat {
  const name = path.toLowerCase().replace(/\.gz$/, '');
  if (name.endsWith('.jsonl') || name.endsWith('.ndjson')) return 'jsonl';
  if (name.endsWith('.json')) return 'json';
  if (name.endsWith('.parquet')) return 'parquet';
  if (name.endsWith('.csv')) return 'csv';
  return 'text';
}

function readBytes(path: string): Buffer {
  const raw = readFileSync(path);
  return path.toLowerCase().endsWith('.gz') || (raw[0] === 0x1f && raw[1] === 0x8b) ? gunzipSync(raw) : raw;
}

/**
 * Read a table of records in the upstream schema. JSON may be an array or JSON Lines (BFCL ships
 * JSON Lines under a `.json` name); Parquet goes through hyparquet.
 */
export async function readRecords(
  path: string,
  format: RecordFormat = formatFromName(path),
): Promise<DataRecord[]> {
  if (format === 'parquet') return readParquet(path);
  const text = readBytes(path).toString('utf8');
  if (format === 'csv') return parseCsv(text);
  if (format === 'json') {
    const trimmed = text.trimStart();
    if (trimmed.startsWith('[')) {
      const parsed = JSON.parse(trimmed) as unknown;
      if (!Array.isArray(parsed)) throw new UserError(`${path}: expected a JSON array of records`);
      return parsed as DataRecord[];
    }
    return parseJsonLines(text, path);
  }
  if (format === 'jsonl') return parseJsonLines(text, path);
  throw new UserError(
    `${path}: cannot read records from a ${format} file`,
    'Use JSON, JSONL, CSV or Parquet.',
  );
}

export function parseJsonLines(text: string, source: string): DataRecord[] {
  const out: DataRecord[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.length === 0) continue;
    try {
      out.push(JSON.parse(line) as DataRecord);
    } catch (err) {
      throw new UserError(
        `${source}: line ${i + 1} is not valid JSON (${(err as Error).message})`,
        'Check that the file is JSON Lines: one JSON object per line.',
      );
    }
  }
  return out;
}

async function readParquet(path: string): Promise<DataRecord[]> {
  const { parquetReadObjects } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  const buf = readFileSync(path);
  const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  return (await parquetReadObjects({ file, compressors })) as DataRecord[];
}

/** RFC 4180 CSV with a header row (quoted fields, doubled quotes, newlines inside quotes). */
export function parseCsv(text: string): DataRecord[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field.length > 0 || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  const [header, ...body] = rows.filter((r) => !(r.length === 1 && r[0] === ''));
  if (!header) return [];
  return body.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] ?? ''])));
}
