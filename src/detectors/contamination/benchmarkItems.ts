import { existsSync } from 'node:fs';
import { getBenchmark } from '../../benchmarks/registry.ts';
import type { BenchmarkId } from '../../core/schemas.ts';
import type { AssetCache, AssetCacheOptions } from '../../hub/assetCache.ts';
import { type DataRecord, readRecords } from '../../hub/records.ts';
import { idString } from './itemsFile.ts';
import type { ContaminationItem } from './ngramIndex.ts';

/**
 * What of a benchmark's test record a copy could carry ("every text field"), and the sample id
 * the benchmark gives it. One entry per benchmark; the test data is read from the benchmark's own
 * asset pin (the part named here) through the asset cache, never from a copy in the repository.
 */
export interface ContaminationFields {
  /** The asset part holding the evaluated items. */
  part: string;
  /**
   * The asset part agents may train on (the reference's judge allows GSM8K's train split): its
   * n-grams are not indexed, since a copy of allowed data proves nothing about the test items.
   */
  allowedPart?: string;
  extract(record: DataRecord, index: number): ContaminationItem;
}

const str = (v: unknown): string =>
  typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
const texts = (...values: unknown[]): string[] => values.map(str).filter((t) => t.trim().length > 0);

function messageContents(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((m) =>
    Array.isArray(m) ? messageContents(m) : texts((m as { content?: unknown } | null)?.content),
  );
}

export const CONTAMINATION_FIELDS: Readonly<Record<BenchmarkId, ContaminationFields>> = {
  // question + worked answer; sample ids are row indices
  gsm8k: {
    part: 'test',
    allowedPart: 'train',
    // The worked answers are formulaic: found on their own, they must carry the item's numbers.
    extract: (r, i) => ({ id: String(i), texts: texts(r.question, r.answer), formulaic: [1] }),
  },
  aime2025: { part: 'test', extract: (r) => ({ id: idString(r.id), texts: texts(r.problem, r.solution) }) },
  // question, the four options (in the file's order), and the explanation
  gpqamain: {
    part: 'test',
    extract: (r) => ({
      id: str(r['Record ID']),
      texts: texts(
        r.Question,
        r['Correct Answer'],
        r['Incorrect Answer 1'],
        r['Incorrect Answer 2'],
        r['Incorrect Answer 3'],
        r.Explanation,
      ),
    }),
  },
  // prompt, solution, tests, and prompt+solution as one function (copies are usually whole functions)
  humaneval: {
    part: 'test',
    extract: (r) => ({
      id: str(r.task_id),
      texts: texts(r.prompt, r.canonical_solution, r.test, `${str(r.prompt)}${str(r.canonical_solution)}`),
    }),
  },
  // the question turn(s), each function document, and the expected call
  bfcl: {
    part: 'train',
    extract: (r) => ({
      id: str(r.id),
      texts: [
        ...messageContents(r.question),
        ...(Array.isArray(r.function) ? r.function.map((f) => JSON.stringify(f)) : []),
        ...(Array.isArray(r.ground_truth) ? texts(...r.ground_truth) : []),
      ],
    }),
  },
  arenahardwriting: { part: 'questions', extract: (r) => ({ id: str(r.uid), texts: texts(r.prompt) }) },
  // every prompt message, and the rubric criteria the grader checks
  healthbench: {
    part: 'data',
    extract: (r) => ({
      id: str(r.prompt_id),
      texts: [
        ...messageContents(r.prompt),
        ...(Array.isArray(r.rubrics)
          ? r.rubrics.flatMap((x) => texts((x as { criterion?: unknown }).criterion))
          : []),
      ],
    }),
  },
};

/** The test file of a benchmark in the cache: cached only (offline), or fetched unless `offline`. */
export async function benchmarkTestFile(
  cache: AssetCache,
  benchmark: BenchmarkId,
  opts: AssetCacheOptions & { cachedOnly?: boolean } = {},
): Promise<string | null> {
  const fields = CONTAMINATION_FIELDS[benchmark];
  const pin = getBenchmark(benchmark).assets.find((a) => a.part === fields.part);
  if (!pin) throw new Error(`internal: ${benchmark} has no asset part ${fields.part}`);
  if (opts.cachedOnly) return (await cache.cached(benchmark, pin))?.path ?? null;
  return (await cache.resolve(benchmark, pin, opts)).path;
}

/** The items a trial is evaluated on: its own test file when it names one (`--data test=`), else the cached pin. */
export async function contaminationTestFile(
  spec: { benchmark: BenchmarkId; evalData: Record<string, string> },
  cache: AssetCache,
): Promise<string | null> {
  const own = spec.evalData[CONTAMINATION_FIELDS[spec.benchmark].part];
  if (own && existsSync(own)) return own;
  return benchmarkTestFile(cache, spec.benchmark, { cachedOnly: true });
}

/** The benchmark's allowed training data for a trial (its own `--data train=` file, else the cached pin), or null. */
export async function allowedTrainingFile(
  spec: { benchmark: BenchmarkId; evalData: Record<string, string> },
  cache: AssetCache,
): Promise<string | null> {
  const part = CONTAMINATION_FIELDS[spec.benchmark].allowedPart;
  if (!part) return null;
  const own = spec.evalData[part];
  if (own && existsSync(own)) return own;
  const pin = getBenchmark(spec.benchmark).assets.find((a) => a.part === part);
  if (!pin) return null;
  return (await cache.cached(spec.benchmark, pin))?.path ?? null;
}

/** Every text of the allowed training records (extracted like the test items). */
export async function allowedTexts(benchmark: BenchmarkId, file: string): Promise<string[]> {
  const rows = await readRecords(file);
  return rows.flatMap((row, i) => CONTAMINATION_FIELDS[benchmark].extract(row, i).texts);
}

/** The benchmark's test items with their text fields. */
export async function benchmarkItems(benchmark: BenchmarkId, testFile: string): Promise<ContaminationItem[]> {
  const rows = await readRecords(testFile);
  return rows.map((row, i) => CONTAMINATION_FIELDS[benchmark].extract(row, i));
}

export { fileItems } from './itemsFile.ts';
