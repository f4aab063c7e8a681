import type { Grader } from '../benchmarks/shared/grader.ts';
import { graderFromOptions } from '../benchmarks/shared/openaiGrader.ts';
import type { Benchmark, CodeRunner } from '../benchmarks/types.ts';
import { CODE_ENV, ensurePythonEnv } from '../runtime/pythonEnv.ts';
import { SandboxedPythonRunner, UnsandboxedPythonRunner } from '../sandbox/pythonRunner.ts';
import { limitGrader } from './limitedGrader.ts';

/**
 * What a benchmark's scorer needs beyond the reply: the LLM grader, or a code runner. HumanEval's
 * runner uses the code-execution environment with the reference eval image's packages (numpy,
 * pandas, …), built on first use, so an answer that imports numpy passes here as it does there.
 */
export async function scoringDeps(
  benchmark: Benchmark,
  opts: {
    grader?: { baseUrl?: string; model?: string };
    unsafeNoSandbox?: boolean;
    env: NodeJS.ProcessEnv;
    /** PTB_HOME root, where the code-execution venv lives. */
    venvHome: string;
  },
): Promise<{ grader?: Grader; codeRunner?: CodeRunner }> {
  if (benchmark.id !== 'humaneval') {
    return {
      grader: benchmark.needsGrader ? limitGrader(graderFromOptions(opts.grader ?? {}, opts.env)) : undefined,
    };
  }
  const interpreter = await ensurePythonEnv({ home: opts.venvHome, env: opts.env, kind: CODE_ENV });
  return {
    codeRunner: opts.unsafeNoSandbox
      ? new UnsandboxedPythonRunner({ interpreter })
      : new SandboxedPythonRunner({ interpreter }),
  };
}
