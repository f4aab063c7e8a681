import { UserError } from '../../core/errors.ts';
import { readRecords } from '../../hub/records.ts';
import type { ContaminationItem } from './ngramIndex.ts';

/**
 * Test items from any records file (`ptb scan --against FILE`). Its own module, apart from the
 * benchmarks' extractors in benchmarkItems.ts, so that a scan against a file does not load every
 * benchmark's code.
 */

/** Python `str()` of an integral JSON number, as the benchmark's sample ids are made. */
export function idString(v: unknown): string {
  if (typeof v === 'number' && Number.isInteger(v)) return v.toFixed(0);
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
}

const ID_FIELDS = ['id', 'task_id', 'uid', 'prompt_id', 'Record ID', 'question_id', 'sample_id'];

function allStrings(value: unknown, out: string[]): void {
  if (typeof value === 'string') {
    if (value.trim()) out.push(value);
  } else if (Array.isArray(value)) for (const v of value) allStrings(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) allStrings(v, out);
}

/**
 * Items from any records file (JSONL, JSON, CSV, Parquet): the id is the first of the usual id
 * fields, else the 1-based row number; the texts are every string in the row but the id.
 */
export async function fileItems(path: string): Promise<ContaminationItem[]> {
  const rows = await readRecords(path);
  if (rows.length === 0) {
    throw new UserError(`${path} holds no records`, 'Pass a JSONL file with one test item per line.');
  }
  return rows.map((row, i) => {
    const idField = ID_FIELDS.find((f) => typeof row[f] === 'string' || typeof row[f] === 'number');
    const out: string[] = [];
    for (const [key, value] of Object.entries(row)) if (key !== idField) allStrings(value, out);
    return { id: idField ? idString(row[idField]) : String(i + 1), texts: out };
  });
}
