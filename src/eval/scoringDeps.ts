import type { Grader } from '../benchmarks/shared/grader.ts';
import { graderFromOptions } from '../benchmarks/shared/openaiGrader.ts';
import type { Benchmark, CodeRunner } from '../benchmarks/types.ts';
import { SandboxedPythonRunner, UnsandboxedPythonRunner } from '../sandbox/pythonRunner.ts';
import { limitGrader } from './limitedGrader.ts';

/** What a benchmark's scorer needs beyond the reply: the LLM grader, or a code runner. */
export function scoringDeps(
  benchmark: Benchmark,
  opts: { grader?: { baseUrl?: string; model?: string }; unsafeNoSandbox?: boolean; env: NodeJS.ProcessEnv },
): { grader?: Grader; codeRunner?: CodeRunner } {
  return {
    grader: benchmark.needsGrader ? limitGrader(graderFromOptions(opts.grader ?? {}, opts.env)) : undefined,
    codeRunner:
      benchmark.id === 'humaneval'
        ? opts.unsafeNoSandbox
          ? new UnsandboxedPythonRunner()
          : new SandboxedPythonRunner()
        : undefined,
  };
}
