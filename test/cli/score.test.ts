import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';

const shared = resolve(repoRoot, '../shared/data');
const dir = mkdtempSync(join(tmpdir(), 'ptb-score-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** `ptb score -b BENCHMARK -r <file with these replies> ...extra`. */
function scoreReplies(benchmark: string, name: string, replies: string, ...extra: string[]) {
  return runCli(['score', '-b', benchmark, '-r', file(name, replies), ...extra]);
}

/** A synthetic GSM8K split and prompt source in the upstream shapes (no real data). */
function gsm8kFixture() {
  const rows = Array.from({ length: 12 }, (_, i) => ({
    question: `What is ${i} + 1?`,
    answer: `${i} + 1 = ${i + 1}\n#### ${i + 1}`,
  }));
  return {
    test: file('gsm8k-test.jsonl', rows.map((r) => JSON.stringify(r)).join('\n')),
    promptSource: file(
      'gsm8k.py',
      'MATH_PROMPT_TEMPLATE = """\nSolve.\n\n{prompt}\n\nReasoning:\n""".strip()\n',
    ),
  };
}

describe('ptb score', () => {
  it('regrades replies and prints accuracy, n and per-sample scores as JSON', async () => {
    const f = gsm8kFixture();
    const responses = file(
      'replies.jsonl',
      [
        { id: 0, response: 'so ANSWER: 1' },
        { id: '1', response: 'ANSWER: 3' },
        { id: '2', response: '<think>maybe 9</think>ANSWER: 3' },
        { id: '3', response: 'no idea' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const run = await runCli([
      'score',
      '-b',
      'gsm8k',
      '-r',
      responses,
      '--json',
      '--offline',
      '--data',
      `test=${f.test}`,
      '--data',
      `train=${f.test}`,
      '--data',
      `prompt-source=${f.promptSource}`,
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out).toMatchObject({ accuracy: 0.5, n: 4 });
    expect(out.samples.map((s: { id: string; score: number }) => [s.id, s.score])).toEqual([
      ['0', 1],
      ['1', 0],
      ['2', 1],
      ['3', 0],
    ]);
  });

  it('names the bad line of a malformed responses file, and unknown sample ids', async () => {
    const f = gsm8kFixture();
    const data = [
      '--data',
      `test=${f.test}`,
      '--data',
      `train=${f.test}`,
      '--data',
      `prompt-source=${f.promptSource}`,
    ];
    const bad = await runCli([
      'score',
      '-b',
      'gsm8k',
      '-r',
      file('bad.jsonl', '{"id": 0, "response": "x"}\n{oops\n'),
      ...data,
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/bad\.jsonl:2: not valid JSON/);
    const unknown = await runCli([
      'score',
      '-b',
      'gsm8k',
      '-r',
      file('unk.jsonl', '{"id": 999, "response": "x"}\n'),
      ...data,
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/not samples of gsm8k: 999/);
  });

  it('refuses to regrade GPQA replies whose choice order is unknown', async () => {
    const run = await scoreReplies(
      'gpqamain',
      'g.jsonl',
      '{"id":"rec1","response":"ANSWER: A"}',
      '--unseeded',
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/choice order is unknown/);
  });

  it('rejects an unknown benchmark with the list of valid ids', async () => {
    const run = await scoreReplies('mmlu', 'x.jsonl', '{"id":1,"response":""}');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/unknown benchmark "mmlu"/);
    expect(run.stderr).toMatch(/gsm8k/);
  });

  it('offline without cached data names the missing file and the commands that fetch it', async () => {
    const run = await scoreReplies('gsm8k', 'y.jsonl', '{"id":1,"response":""}', '--offline');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/not in the cache/);
    expect(run.stderr).toMatch(/ptb data pull gsm8k/);
  });

  it.skipIf(!existsSync(join(shared, 'bfcl')))(
    'scores the real BFCL ground truth through `ptb data import` + `ptb score`: 100%',
    async () => {
      const home = tempHome();
      const imported = await runCli(
        ['data', 'import', 'bfcl', join(shared, 'bfcl/BFCL_v3_exec_simple.json'), '--part', 'train'],
        { PTB_HOME: home },
      );
      expect(imported.code).toBe(0);
      expect(imported.stdout).toMatch(/imported .* as bfcl\/train/);
      const rows = readFileSync(join(shared, 'bfcl/BFCL_v3_exec_simple.json'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      // Turn each ground-truth call `f(a=1, b="x")` into an OpenAI tool call with Python's own parser.
      const { execFileSync } = await import('node:child_process');
      const calls = JSON.parse(
        execFileSync(
          'python3',
          [
            '-c',
            `
import ast, json, sys
out = []
for gt in json.load(sys.stdin):
    call = ast.parse(gt, mode="eval").body
    name = ast.unparse(call.func)
    args = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    out.append({"name": name, "arguments": json.dumps(args)})
print(json.dumps(out))
`,
          ],
          { input: JSON.stringify(rows.map((r) => r.ground_truth[0])) },
        ).toString(),
      ) as Array<{ name: string; arguments: string }>;
      const replies = rows.map((r, i) =>
        JSON.stringify({ id: r.id, response: '', tool_calls: [{ type: 'function', function: calls[i] }] }),
      );
      const run = await runCli(
        ['score', '-b', 'bfcl', '-r', file('bfcl.jsonl', replies.join('\n')), '--json', '--offline'],
        { PTB_HOME: home },
      );
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ accuracy: 1, n: 100 });
    },
  );
});
