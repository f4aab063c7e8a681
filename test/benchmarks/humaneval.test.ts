import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildHumanEvalProgram,
  extractCode,
  firstFencedBlock,
  humanevalBenchmark,
  humanevalPrompt,
  instructionFromSource,
  removeSignature,
  scoreHumanEvalReply,
  VERIFY_TIMEOUT_MS,
} from '../../src/benchmarks/humaneval/index.ts';
import type { CodeRunner, CodeRunResult } from '../../src/benchmarks/types.ts';
import { UserError } from '../../src/core/errors.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { PROTOCOLS } from '../../src/core/protocols.ts';
import { parseJsonLines } from '../../src/hub/records.ts';
import {
  fixtureDir,
  jsonLines,
  localAssets,
  textReply,
  writeAssetFiles,
  writeFixture,
} from '../helpers/benchmarkFixtures.ts';
import { hasPython } from '../helpers/python.ts';

// Synthetic problems in the openai_humaneval schema (not taken from the dataset).
const DOUBLE = {
  task_id: 'Synthetic/0',
  prompt: 'def double(x):\n    """Return twice x.\n    >>> double(2)\n    4\n    """\n',
  canonical_solution: '    return 2 * x\n',
  test: 'def check(candidate):\n    assert candidate(3) == 6\n    assert candidate(-1) == -2\n',
  entry_point: 'double',
};
const SHOUT = {
  task_id: 'Synthetic/1',
  prompt: 'def shout(s: str) -> str:\n    """Upper-case s and add "!"."""\n',
  canonical_solution: '    return s.upper() + "!"\n',
  test: 'def check(candidate):\n    assert candidate("hi") == "HI!"\n',
  entry_point: 'shout',
};

// A source file shaped like inspect_evals' humaneval.py, with made-up instruction text.
const SYNTHETIC_SOURCE = `"""Docstring of the module."""

import re

# timeout for verification/scoring
VERIFY_TIMEOUT = 30

# instruction prepended to code problem
INSTRUCTION = """
Write the body of the function below. Reply with
code only.\\n
"""


def humaneval(instruction_prompt: str = INSTRUCTION):
    pass
`;

describe('extractCode (inspect_evals find_code)', () => {
  it('takes a ```python block and drops the restated signature', () => {
    expect(extractCode('Here:\n```python\ndef f(x):\n    return x + 1\n```\nDone.')).toBe(
      '    return x + 1\n',
    );
  });

  it('takes a bare ``` block the same way', () => {
    expect(extractCode('```\ndef f(x):\n    return x\n```')).toBe('    return x\n');
  });

  it('takes the first of several python blocks', () => {
    const text = '```python\ndef a():\n    return 1\n```\nor\n```python\ndef b():\n    return 2\n```';
    expect(extractCode(text)).toBe('    return 1\n');
  });

  it('prefers any python-tagged block over an earlier bare one (two findall passes)', () => {
    const text = '```\ndef bare():\n    return 0\n```\n```python\ndef tagged():\n    return 1\n```';
    expect(firstFencedBlock(text)).toBe('def tagged():\n    return 1\n');
    expect(extractCode(text)).toBe('    return 1\n');
  });

  it('does not recognise other language tags, so the whole reply is returned', () => {
    const text = '```py\ndef f():\n    return 1\n```\n';
    expect(firstFencedBlock(text)).toBeNull();
    expect(extractCode(text)).toBe(text);
  });

  it('returns a reply without fences unchanged (no signature removal)', () => {
    const text = 'def f(x):\n    return x * 3\n';
    expect(extractCode(text)).toBe(text);
  });

  it('keeps the reference quirk: a block without ":\\n    " loses its first character', () => {
    expect(removeSignature('return 5\n')).toBe('eturn 5\n');
    expect(extractCode('```python\n    return 5\n```')).toBe('   return 5\n');
  });

  it('cuts at the first ":\\n    " even when it is not the signature', () => {
    expect(removeSignature('import os\nif True:\n    x = 1\n')).toBe('    x = 1\n');
  });
});

describe('buildHumanEvalProgram', () => {
  it('joins prompt + code + "\\n" + test + "\\n" + check(entry_point)', () => {
    const program = buildHumanEvalProgram(DOUBLE, '    return 2 * x\n');
    expect(program).toBe(`${DOUBLE.prompt}    return 2 * x\n\n${DOUBLE.test}\ncheck(double)`);
    expect(program.endsWith('\n')).toBe(false);
  });
});

describe('instruction from the pinned source', () => {
  it('reads the INSTRUCTION constant with Python escapes decoded', () => {
    expect(instructionFromSource(SYNTHETIC_SOURCE)).toBe(
      '\nWrite the body of the function below. Reply with\ncode only.\n\n',
    );
  });

  it('fails clearly when the constant is missing', () => {
    expect(() => instructionFromSource('X = 1\n')).toThrow(/INSTRUCTION/);
  });

  it('prepends the instruction to the prompt', () => {
    expect(humanevalPrompt('Do it:\n', DOUBLE)).toBe(`Do it:\n${DOUBLE.prompt}`);
  });
});

/** Runs programs with the local python3 and a random end marker, like the sandbox runner's contract. */
function localRunner(log: Array<{ program: string; timeoutMs: number }>): CodeRunner {
  return {
    async runPython(program, opts) {
      log.push({ program, timeoutMs: opts.timeoutMs });
      const token = randomBytes(8).toString('hex');
      const started = Date.now();
      const out = spawnSync('python3', ['-c', `${program}\nprint(${JSON.stringify(token)})\n`], {
        encoding: 'utf8',
        timeout: opts.timeoutMs,
      });
      const result: CodeRunResult = {
        completed: out.status === 0 && out.stdout.includes(token),
        exitCode: out.status,
        timedOut: out.error !== undefined,
        stdout: out.stdout,
        stderr: out.stderr,
        durationMs: Date.now() - started,
      };
      return result;
    },
  };
}

describe('humanevalBenchmark', () => {
  const ctx = localAssets(
    writeAssetFiles('humaneval', {
      test: ['humaneval.jsonl', jsonLines([DOUBLE, SHOUT])],
      'prompt-source': ['humaneval.py', SYNTHETIC_SOURCE],
    }),
  );

  it('has the reference defaults', () => {
    expect(humanevalBenchmark.defaults).toMatchObject({
      maxTokensLadder: [4000, 3000, 2000],
      agentLimit: 150,
      referenceConcurrency: 1,
      gpuMemoryUtilization: 0.3,
      maxTokensFlag: '--max-tokens',
    });
    expect(humanevalBenchmark.weight).toBe(0.106148554819225);
    expect(humanevalBenchmark.assets.map((a) => a.part)).toEqual(['test', 'prompt-source']);
    const source = humanevalBenchmark.assets.find((a) => a.part === 'prompt-source')!;
    expect(source.url).toContain(
      '06001a83e6d7c709c2ede0570dce7f1031a0bad8/src/inspect_evals/humaneval/humaneval.py',
    );
  });

  it('loads samples keyed by task_id and builds one user message', async () => {
    const prepared = await humanevalBenchmark.prepare(ctx);
    expect(prepared.samples.map((s) => s.id)).toEqual(['Synthetic/0', 'Synthetic/1']);
    const request = prepared.request(prepared.samples[1]!, { seed: null });
    expect(request.messages).toEqual([
      {
        role: 'user',
        content: `\nWrite the body of the function below. Reply with\ncode only.\n\n${SHOUT.prompt}`,
      },
    ]);
    expect(request.tools).toBeUndefined();
  });

  it('refuses to score without a code runner', async () => {
    const prepared = await humanevalBenchmark.prepare(ctx);
    const sample = prepared.samples[0]!;
    const request = prepared.request(sample, { seed: null });
    await expect(prepared.score(sample, textReply('x'), { request })).rejects.toBeInstanceOf(UserError);
  });

  it('sends the assembled program with the 30 s timeout, after stripping the think block', async () => {
    const log: Array<{ program: string; timeoutMs: number }> = [];
    const runner: CodeRunner = {
      async runPython(program, opts) {
        log.push({ program, timeoutMs: opts.timeoutMs });
        return {
          completed: false,
          exitCode: 1,
          timedOut: false,
          stdout: '',
          stderr: 'AssertionError',
          durationMs: 1,
        };
      },
    };
    const text =
      '<think>```python\ndef double(x):\n    return 0\n```</think>\n```python\ndef double(x):\n    return x + x\n```';
    const score = await scoreHumanEvalReply(DOUBLE, text, { codeRunner: runner });
    expect(log).toEqual([
      { program: buildHumanEvalProgram(DOUBLE, '    return x + x\n'), timeoutMs: VERIFY_TIMEOUT_MS },
    ]);
    expect(VERIFY_TIMEOUT_MS).toBe(30_000);
    expect(score.value).toBe(0);
    expect(score.answer).toBe('    return x + x\n');
    expect(score.explanation).toContain('AssertionError');
  });

  it.skipIf(!hasPython)(
    'passes a correct body and fails a wrong one or an early exit',
    async () => {
      const prepared = await humanevalBenchmark.prepare(ctx);
      const [double, shout] = prepared.samples as [
        (typeof prepared.samples)[0],
        (typeof prepared.samples)[0],
      ];
      const log: Array<{ program: string; timeoutMs: number }> = [];
      const scoreCtx = (s: typeof double) => ({
        request: prepared.request(s, { seed: null }),
        codeRunner: localRunner(log),
      });
      const good = await prepared.score(
        double,
        textReply('```python\ndef double(x):\n    return 2 * x\n```'),
        scoreCtx(double),
      );
      const bare = await prepared.score(shout, textReply('    return s.upper() + "!"\n'), scoreCtx(shout));
      const wrong = await prepared.score(
        double,
        textReply('```python\ndef double(x):\n    return x\n```'),
        scoreCtx(double),
      );
      const exits = await prepared.score(
        double,
        textReply('```python\ndef double(x):\n    import sys; sys.exit(0)\n```'),
        scoreCtx(double),
      );
      expect([good.value, bare.value, wrong.value, exits.value]).toEqual([1, 1, 0, 0]);
      // Protocol v1.0 (the paper's inspect_evals verify()): exit code 0 passes, even before check().
      const paper = { ...scoreCtx(double), scoring: PROTOCOLS['v1.0'].scoring };
      const exitsPaper = await prepared.score(
        double,
        textReply('```python\ndef double(x):\n    import sys; sys.exit(0)\n```'),
        paper,
      );
      const wrongPaper = await prepared.score(
        double,
        textReply('```python\ndef double(x):\n    return x\n```'),
        paper,
      );
      expect([exitsPaper.value, wrongPaper.value]).toEqual([1, 0]);
      const metrics = humanevalBenchmark.aggregate(
        [good, bare, wrong, exits].map((score) => ({ sample: double, score })),
      );
      expect(metrics.accuracy).toBe(0.5);
      expect(metrics.stderr).toBeCloseTo(Math.sqrt(1 / 3) / 2, 12);
    },
    30_000,
  );

  it('selects the first N samples, all for -1 or null', async () => {
    const prepared = await humanevalBenchmark.prepare(ctx);
    expect(humanevalBenchmark.select(prepared.samples, { limit: 1 }).map((s) => s.id)).toEqual([
      'Synthetic/0',
    ]);
    expect(humanevalBenchmark.select(prepared.samples, { limit: -1 })).toHaveLength(2);
    expect(humanevalBenchmark.select(prepared.samples, { limit: null })).toHaveLength(2);
  });
});

// Real data (read-only, outside the repo); skipped where absent.
const dataDir = resolve(repoRoot, '../shared/data');
const humanevalGz = join(dataDir, 'humaneval/HumanEval.jsonl.gz');
const gpt4Outputs = join(dataDir, 'outputs/humaneval/humaneval-py..gz_simple_1_gpt-4_pass_at_k_1_py.jsonl');

describe.skipIf(!existsSync(humanevalGz) || !existsSync(gpt4Outputs))(
  'HumanEval validation on the real files',
  () => {
    it('loads the 164 problems from a local HumanEval.jsonl.gz in dataset order', async () => {
      const source = writeFixture(fixtureDir('humaneval-real'), 'humaneval.py', SYNTHETIC_SOURCE);
      const prepared = await humanevalBenchmark.prepare(
        localAssets({ test: humanevalGz, 'prompt-source': source }),
      );
      expect(prepared.samples).toHaveLength(164);
      expect(prepared.samples.slice(0, 3).map((s) => s.id)).toEqual([
        'HumanEval/0',
        'HumanEval/1',
        'HumanEval/2',
      ]);
      expect(humanevalBenchmark.select(prepared.samples, { limit: 150 })).toHaveLength(150);
    });

    it.skipIf(!hasPython)(
      'reproduces the labels of real GPT-4 solutions sent back in a fenced block',
      async () => {
        const all = parseJsonLines(readFileSync(gpt4Outputs, 'utf8'), gpt4Outputs);
        // Six solved and six unsolved tasks, so both outcomes are checked (HumanEval/39's answer runs
        // into the 30 s timeout, too slow for a unit test).
        const unsolved = all.filter((r) => !r.is_solved && r.task_id !== 'HumanEval/39');
        const rows = [...all.filter((r) => r.is_solved).slice(0, 6), ...unsolved.slice(0, 6)];
        const runner = localRunner([]);
        const results = [];
        for (const row of rows) {
          const text = `Here is the implementation:\n\`\`\`python\n${row.solution as string}\n\`\`\`\n`;
          const score = await scoreHumanEvalReply(row as unknown as typeof DOUBLE, text, {
            codeRunner: runner,
          });
          results.push(score.value === 1);
        }
        expect(results).toEqual(rows.map((r) => r.is_solved));
        expect(results.filter(Boolean)).toHaveLength(6);
      },
      60_000,
    );
  },
);
