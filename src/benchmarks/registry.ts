import { UserError } from '../core/errors.ts';
import { BENCHMARK_IDS, type BenchmarkId } from '../core/schemas.ts';
import { aime2025Benchmark } from './aime2025/index.ts';
import { arenahardwritingBenchmark } from './arenahardwriting/index.ts';
import { bfclBenchmark } from './bfcl/index.ts';
import { gpqamainBenchmark } from './gpqamain/index.ts';
import { gsm8kBenchmark } from './gsm8k/index.ts';
import { healthbenchBenchmark } from './healthbench/index.ts';
import { humanevalBenchmark } from './humaneval/index.ts';
import type { Benchmark } from './types.ts';

export const BENCHMARKS: Readonly<Record<BenchmarkId, Benchmark>> = {
  aime2025: aime2025Benchmark,
  arenahardwriting: arenahardwritingBenchmark,
  bfcl: bfclBenchmark,
  gpqamain: gpqamainBenchmark,
  gsm8k: gsm8kBenchmark,
  healthbench: healthbenchBenchmark,
  humaneval: humanevalBenchmark,
};

export function getBenchmark(id: string): Benchmark {
  if ((BENCHMARK_IDS as readonly string[]).includes(id)) return BENCHMARKS[id as BenchmarkId];
  throw new UserError(`unknown benchmark "${id}"`, `Choose one of: ${BENCHMARK_IDS.join(', ')}.`);
}
