import { getBenchmark } from '../../benchmarks/registry.ts';
import type { PreparedBenchmark } from '../../benchmarks/types.ts';
import type { BenchmarkId, ChatMessage, Sample } from '../../core/schemas.ts';
import { buildTwinPools, perturbRecord } from './twins.ts';

/**
 * What the probe scores for a benchmark: the question as the benchmark asks it (the user turn of
 * its own request, few-shot system messages left out so every item costs the same few hundred
 * tokens) and, where the benchmark has one, the reference answer in the form its prompt asks for.
 * One entry per benchmark; a benchmark without an entry is probed on its questions only.
 */
export interface ProbeFormat {
  /** The text of the record that the user turn quotes (its span is what "question" scores). */
  question(record: Record<string, unknown>): string;
  /** The reference completion, or null when the benchmark has none to score. */
  answer(record: Record<string, unknown>, sample: Sample): string | null;
  /** The asset part of the split agents may train on, when there is one (reported, not tested). */
  trainPart?: string;
}

const str = (v: unknown) => (typeof v === 'string' ? v : v == null ? '' : String(v));

export const PROBE_FORMATS: Partial<Record<BenchmarkId, ProbeFormat>> = {
  // The few-shot examples' own format: worked reasoning, then "ANSWER: n".
  gsm8k: {
    trainPart: 'train',
    question: (r) => str(r.question),
    answer: (r) => {
      const pieces = str(r.answer).split('####');
      const target = (pieces.pop() ?? '').trim();
      return `${pieces.join('####').trim()}\n\nANSWER: ${target}`;
    },
  },
  aime2025: { question: (r) => str(r.problem), answer: (r) => `ANSWER: ${str(r.answer)}` },
  humaneval: { question: (r) => str(r.prompt), answer: (r) => str(r.canonical_solution) },
};

export interface ProbeItem {
  id: string;
  messages: ChatMessage[];
  /** The text whose tokens are the "question" part (located in the rendered prompt). */
  question: string;
  answer: string | null;
}

export interface ProbePair {
  id: string;
  test: ProbeItem;
  twin: ProbeItem;
  /** How many names and numbers the twin changed. */
  names: number;
  numbers: number;
}

function probeItem(
  prepared: PreparedBenchmark,
  sample: Sample,
  id: string,
  format: ProbeFormat | undefined,
): ProbeItem {
  const request = prepared.request(sample, { seed: 0 });
  const messages = request.messages.filter((m) => m.role !== 'system');
  const record = (sample.record ?? {}) as Record<string, unknown>;
  const lastUser = [...messages].reverse().find((m) => m.role === 'user');
  const userText = typeof lastUser?.content === 'string' ? lastUser.content : '';
  return {
    id,
    messages,
    question: format ? format.question(record) : userText,
    answer: format ? format.answer(record, sample) : null,
  };
}

/**
 * Each test item with its perturbed twin, both built through the benchmark's own request builder.
 * Items whose twin came out identical (no names, no re-computable numbers) are left out: they
 * carry no information. `limit` keeps an evenly spread subset (CPU runs on large benchmarks).
 */
export function probePairs(
  benchmark: BenchmarkId,
  prepared: PreparedBenchmark,
  opts: { limit?: number | null; seed?: number } = {},
): { pairs: ProbePair[]; skipped: number } {
  getBenchmark(benchmark); // unknown ids fail here, with the registry's message
  const format = PROBE_FORMATS[benchmark];
  const records = prepared.samples.map((s) => s.record);
  const pools = buildTwinPools(records);
  const seed = opts.seed ?? 0;
  let samples = prepared.samples;
  if (opts.limit && opts.limit > 0 && samples.length > opts.limit) {
    const step = samples.length / opts.limit;
    samples = Array.from({ length: opts.limit }, (_, i) => prepared.samples[Math.floor(i * step)]!);
  }
  const pairs: ProbePair[] = [];
  let skipped = 0;
  samples.forEach((sample, i) => {
    const twin = perturbRecord(sample.record, pools, seed * 1_000_003 + i);
    if (twin.names === 0 && twin.numbers === 0) {
      skipped++;
      return;
    }
    const twinSample: Sample = { ...sample, record: twin.record };
    pairs.push({
      id: sample.id,
      test: probeItem(prepared, sample, sample.id, format),
      twin: probeItem(prepared, twinSample, `${sample.id}~twin`, format),
      names: twin.names,
      numbers: twin.numbers,
    });
  });
  return { pairs, skipped };
}

/**
 * Items of the split agents may train on (GSM8K's train split), built like the test items, evenly
 * spread, at most `limit`. Their gain is reported beside the test items' as context: it is what
 * legitimate training on that split does to the model. It is not the test's comparison (a twin is:
 * see docs/audit.md, "Why perturbed twins").
 */
export function trainSplitItems(
  benchmark: BenchmarkId,
  prepared: PreparedBenchmark,
  records: readonly Record<string, unknown>[],
  limit: number,
): ProbeItem[] {
  const format = PROBE_FORMATS[benchmark];
  if (!format?.trainPart || records.length === 0 || limit <= 0) return [];
  const step = Math.max(1, records.length / limit);
  const picked = Array.from(
    { length: Math.min(limit, records.length) },
    (_, i) => records[Math.floor(i * step)]!,
  );
  return picked.map((record, i) =>
    probeItem(prepared, { id: `train-${i}`, record, target: '' }, `train-${i}`, format),
  );
}
