import { getBenchmark } from '../../benchmarks/registry.ts';
import type { BenchmarkId } from '../../core/schemas.ts';

/**
 * Where each benchmark's evaluation items can be downloaded from: Hugging Face dataset repos (with
 * the files that hold the evaluated split) and plain URLs. Used to recognise "pulled the test
 * split" in the download ledger. The pinned URLs ptb itself evaluates with are added from the
 * benchmark registry, so a pin change is picked up here.
 */
export interface TestDataSource {
  /** Hugging Face dataset repo id (case-insensitive). */
  repo?: string;
  /** Files of the repo holding evaluated items; absent = every data file of the repo. */
  files?: RegExp;
  /** A URL pattern (for sources outside the Hub). */
  url?: RegExp;
  note: string;
}

const TEST_FILE = /(^|\/)test[-_.]|(^|\/)test\//i;

export const BENCHMARK_TEST_DATA: Readonly<Record<BenchmarkId, readonly TestDataSource[]>> = {
  gsm8k: [
    { repo: 'openai/gsm8k', files: TEST_FILE, note: 'GSM8K test split (the train split is allowed)' },
    { repo: 'gsm8k', files: TEST_FILE, note: 'GSM8K test split (legacy id)' },
    { url: /github(usercontent)?\.com\/openai\/grade-school-math\/.*test\.jsonl/i, note: 'GSM8K test.jsonl' },
  ],
  humaneval: [
    { repo: 'openai/openai_humaneval', note: 'HumanEval (test split only)' },
    { repo: 'openai_humaneval', note: 'HumanEval (legacy id)' },
    { repo: 'evalplus/humanevalplus', note: 'HumanEval+ (the HumanEval problems with more tests)' },
    { url: /github(usercontent)?\.com\/openai\/human-eval\/.*HumanEval\.jsonl/i, note: 'HumanEval.jsonl' },
  ],
  bfcl: [
    {
      repo: 'gorilla-llm/Berkeley-Function-Calling-Leaderboard',
      files: /exec_simple/i,
      note: 'BFCL exec_simple (evaluated split; HF calls it train)',
    },
    {
      url: /github(usercontent)?\.com\/ShishirPatil\/gorilla\/.*BFCL_v\d_exec_simple/i,
      note: 'BFCL exec_simple from GitHub',
    },
  ],
  gpqamain: [
    { repo: 'Idavidrein/gpqa', note: 'GPQA (main, diamond and extended all contain the main items)' },
  ],
  aime2025: [
    { repo: 'math-ai/aime25', note: 'AIME 2025' },
    { repo: 'opencompass/AIME2025', note: 'AIME 2025' },
    { repo: 'yentinglin/aime_2025', note: 'AIME 2025' },
    { repo: 'MathArena/aime_2025', note: 'AIME 2025' },
    { repo: 'Pandores/aime-1983-2025', note: 'AIME 1983-2025 (includes 2025)' },
  ],
  arenahardwriting: [
    { repo: 'lmarena-ai/arena-hard-auto', files: /v2/i, note: 'Arena-Hard v2.0 questions' },
    { repo: 'CohereLabs/m-ArenaHard-v2.0', note: 'Arena-Hard v2.0 questions (translated, includes English)' },
    {
      url: /github(usercontent)?\.com\/lmarena\/arena-hard-auto\/.*arena-hard-v2\.0\/question\.jsonl/i,
      note: 'Arena-Hard v2.0 question.jsonl',
    },
  ],
  healthbench: [
    {
      url: /openaipublic\.blob\.core\.windows\.net\/simple-evals\/healthbench\//i,
      note: 'HealthBench from OpenAI simple-evals',
    },
  ],
};

/** Files that hold no items (cards, attributes, licences). */
const NON_DATA_FILE = /(^|\/)(README\.md|\.gitattributes|LICENSE[^/]*|.*\.py)$/i;

export interface TestDataMatch {
  note: string;
  /** Whether the match is the pinned file ptb itself evaluates with. */
  pinned: boolean;
}

function pinnedUrls(benchmark: BenchmarkId): string[] {
  try {
    return getBenchmark(benchmark)
      .assets.filter((a) => a.part === 'test' || (benchmark === 'bfcl' && a.part === 'train'))
      .map((a) => a.url);
  } catch {
    return [];
  }
}

/** Whether a download (repo + file, or URL) fetched the benchmark's evaluated items. */
export function matchTestData(
  benchmark: BenchmarkId,
  download: { kind: string; repo: string | null; file: string | null; url: string },
): TestDataMatch | null {
  if (pinnedUrls(benchmark).includes(download.url))
    return { note: 'the pinned evaluation file', pinned: true };
  for (const source of BENCHMARK_TEST_DATA[benchmark]) {
    if (source.url?.test(download.url)) return { note: source.note, pinned: false };
    if (!source.repo || !download.repo || download.kind !== 'dataset') continue;
    if (download.repo.toLowerCase() !== source.repo.toLowerCase()) continue;
    // Without a file the request was metadata (repo info, file listing), not items.
    const file = download.file ?? '';
    if (!file || NON_DATA_FILE.test(file)) continue;
    if (!source.files || source.files.test(file)) return { note: source.note, pinned: false };
  }
  return null;
}
