/**
 * Cost of the HumanEval sandbox: all 164 canonical solutions executed by SandboxedPythonRunner
 * (bubblewrap, cgroups, seccomp, marker verdict) versus UnsandboxedPythonRunner (plain subprocess, same
 * wrapper and verdict), at the same concurrency, in one run. Rounds alternate between the two so drift
 * on a shared machine hits both. Target: sandboxed / unsandboxed wall time ≤ 2.
 *
 *   npx tsx bench/humanevalSandbox.ts [rounds=3] [concurrency=2×cores] [path/to/HumanEval.jsonl.gz]
 */
import { availableParallelism, cpus, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { buildHumanEvalProgram } from '../src/benchmarks/humaneval/program.ts';
import type { CodeRunner } from '../src/benchmarks/types.ts';
import { repoRoot } from '../src/core/paths.ts';
import { readRecords } from '../src/hub/records.ts';
import { SandboxedPythonRunner, UnsandboxedPythonRunner } from '../src/sandbox/pythonRunner.ts';

const rounds = Number(process.argv[2] ?? 3);
const concurrency = Number(process.argv[3] ?? 2 * availableParallelism());
const dataPath = process.argv[4] ?? resolve(repoRoot, '../shared/data/humaneval/HumanEval.jsonl.gz');

interface Row {
  task_id: string;
  prompt: string;
  canonical_solution: string;
  test: string;
  entry_point: string;
}

async function timeAll(runner: CodeRunner, programs: string[]): Promise<{ seconds: number; passed: number }> {
  const started = performance.now();
  const results = await Promise.all(
    programs.map((program) => runner.runPython(program, { timeoutMs: 30_000 })),
  );
  return { seconds: (performance.now() - started) / 1000, passed: results.filter((r) => r.completed).length };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const rows = (await readRecords(dataPath)) as unknown as Row[];
const programs = rows.map((row) => buildHumanEvalProgram(row, row.canonical_solution));
const sandboxed = new SandboxedPythonRunner({ concurrency });
const unsandboxed = new UnsandboxedPythonRunner({ concurrency });

// Warm-up: the sandboxed runner's first call checks bwrap and the interpreter; both warm the page cache.
await sandboxed.runPython('pass', { timeoutMs: 30_000 });
await unsandboxed.runPython('pass', { timeoutMs: 30_000 });

console.log(
  `machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores, ` +
    `${Math.round(totalmem() / 2 ** 30)} GiB; ${programs.length} programs, concurrency ${concurrency}, ${rounds} rounds`,
);
const plainTimes: number[] = [];
const sandboxTimes: number[] = [];
for (let round = 1; round <= rounds; round++) {
  const plain = await timeAll(unsandboxed, programs);
  const boxed = await timeAll(sandboxed, programs);
  plainTimes.push(plain.seconds);
  sandboxTimes.push(boxed.seconds);
  console.log(
    `round ${round}: unsandboxed ${plain.seconds.toFixed(2)} s (${plain.passed} passed), ` +
      `sandboxed ${boxed.seconds.toFixed(2)} s (${boxed.passed} passed), ratio ${(boxed.seconds / plain.seconds).toFixed(2)}`,
  );
}
const ratio = median(sandboxTimes) / median(plainTimes);
console.log(
  `median: unsandboxed ${median(plainTimes).toFixed(2)} s, sandboxed ${median(sandboxTimes).toFixed(2)} s, ` +
    `ratio ${ratio.toFixed(2)} (target ≤ 2) ${ratio <= 2 ? 'OK' : 'OVER TARGET'}`,
);
