import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildHumanEvalProgram } from '../../src/benchmarks/humaneval/program.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { readRecords } from '../../src/hub/records.ts';
import { isBwrapAvailable } from '../../src/sandbox/bwrap.ts';
import { SandboxedPythonRunner } from '../../src/sandbox/pythonRunner.ts';

// Real data (read-only, outside the repo); skipped where absent.
const dataDir = resolve(repoRoot, '../shared/data');
const humanevalGz = join(dataDir, 'humaneval/HumanEval.jsonl.gz');
const gpt4Outputs = join(dataDir, 'outputs/humaneval/humaneval-py..gz_simple_1_gpt-4_pass_at_k_1_py.jsonl');
const haveData = existsSync(humanevalGz) && existsSync(gpt4Outputs);

interface HumanEvalRow {
  task_id: string;
  prompt: string;
  canonical_solution: string;
  test: string;
  entry_point: string;
}

interface Gpt4Row extends HumanEvalRow {
  solution: string;
  is_solved: boolean;
}

// The reference scorer's per-problem limit (inspect_evals humaneval VERIFY_TIMEOUT).
const TIMEOUT_MS = 30_000;

describe.skipIf(!haveData || !isBwrapAvailable())(
  'HumanEval through the sandboxed runner (real data)',
  () => {
    const runner = new SandboxedPythonRunner();

    it('passes all 164 canonical solutions', async () => {
      const rows = (await readRecords(humanevalGz)) as unknown as HumanEvalRow[];
      expect(rows).toHaveLength(164);
      const results = await Promise.all(
        rows.map((row) =>
          runner.runPython(buildHumanEvalProgram(row, row.canonical_solution), { timeoutMs: TIMEOUT_MS }),
        ),
      );
      const failed = rows.filter((_, i) => !results[i]!.completed).map((row) => row.task_id);
      expect(failed).toEqual([]);
      expect(results.every((r) => r.enforced.memory === results[0]!.enforced.memory)).toBe(true);
    }, 600_000);

    it('agrees with the GPT-4 labels on 163/164; HumanEval/133 (mislabelled) scores incorrect: 140/164', async () => {
      const rows = (await readRecords(gpt4Outputs)) as unknown as Gpt4Row[];
      expect(rows).toHaveLength(164);
      const results = await Promise.all(
        rows.map((row) =>
          runner.runPython(buildHumanEvalProgram(row, row.solution), { timeoutMs: TIMEOUT_MS }),
        ),
      );
      const disagreements = rows
        .filter((row, i) => results[i]!.completed !== row.is_solved)
        .map((row) => row.task_id);
      expect(disagreements).toEqual(['HumanEval/133']);
      const at133 = rows.findIndex((row) => row.task_id === 'HumanEval/133');
      expect(rows[at133]!.is_solved).toBe(true);
      expect(results[at133]!.completed).toBe(false);
      expect(results[at133]!.stderr).toContain("NameError: name 'math' is not defined");
      expect(results.filter((r) => r.completed)).toHaveLength(140);
      // A slow wrong answer (HumanEval/39 here) may run into the time limit; it is labelled unsolved.
      expect(rows.filter((row, i) => results[i]!.timedOut && row.is_solved)).toEqual([]);
    }, 600_000);
  },
);
