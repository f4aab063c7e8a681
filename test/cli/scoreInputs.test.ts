import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/runCli.ts';

/** Issue 13: `ptb score` needs only the items and targets, and says what is wrong with its input. */
const dir = mkdtempSync(join(tmpdir(), 'ptb-score-inputs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
const test = file(
  'gsm8k-test.jsonl',
  [0, 1, 2].map((i) => JSON.stringify({ question: `q${i}`, answer: `#### ${i + 1}` })).join('\n'),
);
const score = (responses: string, ...extra: string[]) =>
  runCli(['score', '-b', 'gsm8k', '-r', responses, '--offline', '--data', `test=${test}`, ...extra]);

describe('ptb score inputs', () => {
  it('regrades with the test items alone: no few-shot split, no prompt source, offline', async () => {
    const replies = file(
      'replies.jsonl',
      '{"id": "0", "response": "ANSWER: 1"}\n{"id": "2", "response": "ANSWER: 9"}\n',
    );
    const run = await score(replies, '--json');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ n: 2, accuracy: 0.5 });
  });

  it('says what a sample id is when a reply names an unknown one', async () => {
    const run = await score(file('unknown.jsonl', '{"id": "gsm8k-7", "response": "x"}\n'));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('1 response id(s) are not samples of gsm8k: gsm8k-7');
    expect(run.stderr).toContain('A gsm8k sample id is the 0-based line number in the test split');
  });

  it('names a directory, a missing file and an empty file, without a stack trace', async () => {
    for (const [target, message] of [
      [dir, `${dir} is a directory, not a responses file`],
      [join(dir, 'nope.jsonl'), 'nope.jsonl does not exist'],
      [file('empty.jsonl', '\n\n'), 'empty.jsonl holds no responses'],
    ] as const) {
      const run = await score(target);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(message);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('says a line is too large instead of "cannot read"', async () => {
    const big = join(dir, 'big.jsonl');
    const fd = openSync(big, 'w');
    writeSync(fd, '{"id": "0", "response": "ANSWER: 1"}\n{"id": "1", "response": "');
    const chunk = Buffer.alloc(1 << 20, 'a');
    for (let i = 0; i < 65; i++) writeSync(fd, chunk);
    writeSync(fd, '"}\n');
    closeSync(fd);
    const run = await score(big);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${big}:2: line too large (over 64 MiB)`);
    expect(run.stderr).not.toContain('cannot read');
  });
});
