import { readFileSync } from 'node:fs';
import { UserError } from '../../core/errors.ts';
import type { Metrics, Sample, Score } from '../../core/schemas.ts';
import { type AssetPin, githubRawUrl, huggingFaceDatasetUrl } from '../../hub/assetPin.ts';
import { readRecords } from '../../hub/records.ts';
import { pythonAssignedString } from '../shared/pythonText.ts';
import { accuracyMetrics } from '../shared/stats.ts';
import { stripThinkInspect } from '../shared/thinking.ts';
import {
  type Benchmark,
  type PreparedBenchmark,
  type ScoreContext,
  type SelectOptions,
  scoringRules,
} from '../types.ts';
import { buildHumanEvalProgram, extractCode, type HumanEvalProgramParts } from './program.ts';

export { buildHumanEvalProgram, extractCode, firstFencedBlock, removeSignature } from './program.ts';

const INSPECT_EVALS_COMMIT = '06001a83e6d7c709c2ede0570dce7f1031a0bad8';
const INSPECT_EVALS_SOURCE = 'src/inspect_evals/humaneval/humaneval.py';

/** inspect_evals' VERIFY_TIMEOUT: seconds one verification program may run. */
export const VERIFY_TIMEOUT_MS = 30_000;

/**
 * The instruction constant in the pinned humaneval.py. Read as Python reads it: the module-level
 * assignment matched by `^INSTRUCTION\s*(?::\s*str\s*)?=\s*` (multiline), then the string
 * literal after it (triple quotes, escapes such as `\n` decoded) — see pythonAssignedString.
 */
export const INSTRUCTION_CONSTANT = 'INSTRUCTION';

const TEST: AssetPin = {
  part: 'test',
  description: 'HumanEval test split (HF openai/openai_humaneval @ 7dce605, parquet)',
  url: huggingFaceDatasetUrl(
    'openai/openai_humaneval',
    '7dce6050a7d6d172f3cc5c32aa97f52fa1a2e544',
    'openai_humaneval/test-00000-of-00001.parquet',
  ),
  // 83,920 bytes; the same digest is recorded by several independent pinning projects.
  sha256: '2f2871a15fbc95b6c683043359f4ed8e144c5a1c4f24f25f66bc51f598dfcfb6',
  format: 'parquet',
  fileName: 'openai_humaneval-test.parquet',
  shape: { rows: 164, fields: ['task_id', 'prompt', 'canonical_solution', 'test', 'entry_point'] },
};

const PROMPT_SOURCE: AssetPin = {
  part: 'prompt-source',
  description: `inspect_evals humaneval.py @ ${INSPECT_EVALS_COMMIT.slice(0, 7)} (instruction prepended to each problem)`,
  url: githubRawUrl('UKGovernmentBEIS/inspect_evals', INSPECT_EVALS_COMMIT, INSPECT_EVALS_SOURCE),
  sha256: null,
  format: 'text',
  fileName: 'inspect_evals-humaneval.py',
  contains: [INSTRUCTION_CONSTANT],
  promptOnly: true,
};

interface HumanEvalRecord extends HumanEvalProgramParts {
  task_id: string;
  canonical_solution: string;
}

function asHumanEvalRecord(raw: Record<string, unknown>, index: number): HumanEvalRecord {
  for (const field of ['task_id', 'prompt', 'canonical_solution', 'test', 'entry_point']) {
    if (typeof raw[field] !== 'string') {
      throw new UserError(
        `HumanEval record #${index} has no string field "${field}"`,
        'The test split must be openai_humaneval (task_id, prompt, canonical_solution, test, entry_point).',
      );
    }
  }
  return raw as unknown as HumanEvalRecord;
}

/** The instruction inspect_evals prepends, read from its pinned source file. */
export function instructionFromSource(source: string): string {
  return pythonAssignedString(source, INSTRUCTION_CONSTANT);
}

/** inspect_evals `record_to_sample`: input = instruction + prompt, as one user message. */
export function humanevalPrompt(instruction: string, record: HumanEvalProgramParts): string {
  return instruction + record.prompt;
}

/**
 * Grade one reply as inspect_evals' `verify()` does. Under protocol v1.0 exit code 0 passes (so code
 * that calls `sys.exit(0)` before `check()` counts, as in the paper); under v1.1 "passed" needs the
 * runner's proof that the program reached its end, like the reference's final-eval scorer
 * (evaluate_final_eval.py @ 06b716e prints a secret token after check()).
 */
export async function scoreHumanEvalReply(
  record: HumanEvalProgramParts,
  replyText: string,
  ctx: Pick<ScoreContext, 'codeRunner' | 'signal' | 'scoring'>,
): Promise<Score> {
  if (!ctx.codeRunner) {
    throw new UserError(
      'HumanEval scoring needs a code runner to execute the generated programs',
      'Run it through ptb eval, which sets up the sandboxed Python runner.',
    );
  }
  const code = extractCode(stripThinkInspect(replyText));
  const program = buildHumanEvalProgram(record, code);
  const result = await ctx.codeRunner.runPython(program, {
    timeoutMs: VERIFY_TIMEOUT_MS,
    signal: ctx.signal,
  });
  const passed =
    scoringRules(ctx).humanevalPass === 'exit-zero'
      ? result.exitCode === 0 && !result.timedOut
      : result.completed;
  const reason = result.timedOut
    ? 'Verification timed out.'
    : result.exitCode === 0
      ? 'The program exited with code 0 before check() completed.'
      : result.stderr.slice(-4000);
  return {
    value: passed ? 1 : 0,
    answer: code,
    explanation: passed ? 'All tests passed.' : `The submission was incorrect.\n\n${reason}`,
    details: { exitCode: result.exitCode, timedOut: result.timedOut, durationMs: result.durationMs },
  };
}

function firstN(samples: Sample[], opts: SelectOptions): Sample[] {
  if (opts.limit === null || opts.limit === -1) return samples;
  return samples.slice(0, Math.max(0, opts.limit));
}

async function prepare(ctx: Parameters<Benchmark['prepare']>[0]): Promise<PreparedBenchmark> {
  const test = await ctx.asset('test');
  const instruction = ctx.scoringOnly
    ? null
    : instructionFromSource(readFileSync((await ctx.asset('prompt-source')).path, 'utf8'));
  // Format from the file name: the pinned parquet, or a local HumanEval.jsonl.gz imported instead.
  const records = (await readRecords(test.path)).map(asHumanEvalRecord);
  const samples: Sample[] = records.map((record) => ({
    id: record.task_id,
    record: record as unknown as Record<string, unknown>,
    target: record.canonical_solution,
  }));
  return {
    samples,
    request(sample) {
      const record = sample.record as unknown as HumanEvalRecord;
      if (instruction === null) return { messages: [] };
      return { messages: [{ role: 'user', content: humanevalPrompt(instruction, record) }] };
    },
    score(sample, reply, ctx) {
      return scoreHumanEvalReply(sample.record as unknown as HumanEvalRecord, reply.text, ctx);
    },
  };
}

/** HumanEval as inspect_evals `humaneval(sandbox="local")` runs it, pass@1 (spec §3.5). */
export const humanevalBenchmark: Benchmark = {
  id: 'humaneval',
  displayName: 'HumanEval',
  sampleId: 'the "task_id" ("HumanEval/0" … "HumanEval/163")',
  weight: 0.106148554819225,
  defaults: {
    maxTokensLadder: [4000, 3000, 2000],
    agentLimit: 150,
    referenceConcurrency: 1,
    concurrency: 64,
    gpuMemoryUtilization: 0.3,
    maxTokensFlag: '--max-tokens',
  },
  assets: [TEST, PROMPT_SOURCE],
  needsGrader: false,
  usesTools: false,
  prepare,
  select: firstN,
  aggregate(scored): Metrics {
    return accuracyMetrics(scored.map(({ score }) => score.value));
  },
};
