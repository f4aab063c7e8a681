import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';

/** Issue 13: `ptb data import` checks a file against the benchmark and never loses the copy it replaces. */
const dir = mkdtempSync(join(tmpdir(), 'ptb-data-import-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
function gsm8kRows(n: number, answerField = 'answer'): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({ question: `q${i}`, [answerField]: `#### ${i}` }),
  ).join('\n');
}
const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at /);

describe('ptb data import', () => {
  it('refuses a directory, a missing file, an empty file, with what the part is', async () => {
    const home = tempHome();
    for (const [target, message] of [
      [tmpdir(), `gsm8k/test file ${tmpdir()} is a directory, not a file`],
      [join(dir, 'nope.jsonl'), 'nope.jsonl does not exist'],
      [file('empty.jsonl', ''), 'empty.jsonl is empty'],
    ] as const) {
      const run = await runCli(['data', 'import', 'gsm8k', target], { PTB_HOME: home });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(message);
      expect(run.stderr).toContain('GSM8K test split');
      noStack(run.stderr);
    }
    expect(existsSync(join(home, 'cache', 'data', 'gsm8k', 'test', 'source.json'))).toBe(false);
  });

  it('refuses a file in the wrong schema even with --force', async () => {
    const home = tempHome();
    const wrong = file('wrong.jsonl', gsm8kRows(1319, 'solution'));
    for (const extra of [[], ['--force']]) {
      const run = await runCli(['data', 'import', 'gsm8k', wrong, ...extra], { PTB_HOME: home });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('record 1 has no field "answer"');
      expect(run.stderr).toContain('needs the fields "question", "answer"');
    }
    const notJson = await runCli(['data', 'import', 'gsm8k', file('bad.jsonl', '{"question": "a"\n')], {
      PTB_HOME: home,
    });
    expect(notJson.stderr).toMatch(/line 1 is not valid JSON/);
    const noConstant = await runCli(
      ['data', 'import', 'gsm8k', '--part', 'prompt-source', file('gsm8k.py', 'PROMPT = "x"\n')],
      { PTB_HOME: home },
    );
    expect(noConstant.code).toBe(1);
    expect(noConstant.stderr).toContain('does not contain MATH_PROMPT_TEMPLATE');
  });

  it('needs --force for a row count other than the pinned one', async () => {
    const home = tempHome();
    const small = file('small.jsonl', gsm8kRows(12));
    const refused = await runCli(['data', 'import', 'gsm8k', small], { PTB_HOME: home });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('it has 12 records; the pinned gsm8k/test has 1319');
    expect(refused.stderr).toContain('→ Pass --force to import it anyway');
    const forced = await runCli(['data', 'import', 'gsm8k', small, '--force', '--json'], { PTB_HOME: home });
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ rows: 12, verified: false, previous: null });
    expect(forced.stderr).toContain('imported with --force although it has 12 records');
    const again = await runCli(['data', 'import', 'gsm8k', small], { PTB_HOME: home });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already registered as gsm8k/test');
  });

  it('keeps verified data unless forced, and keeps the replaced copy when forced', async () => {
    const home = tempHome();
    // The cache as `ptb data pull` leaves it for a file whose sha256 matched the pin.
    const part = join(home, 'cache', 'data', 'gsm8k', 'test');
    mkdirSync(part, { recursive: true });
    const pinned = gsm8kRows(1319);
    writeFileSync(join(part, 'test.jsonl'), pinned);
    const { createHash } = await import('node:crypto');
    const sha256 = createHash('sha256').update(pinned).digest('hex');
    writeFileSync(
      join(part, 'source.json'),
      JSON.stringify({
        source: 'pinned',
        origin: 'https://x',
        sha256,
        verified: true,
        storedAt: 'then',
        fileName: 'test.jsonl',
      }),
    );
    const other = file('other.jsonl', gsm8kRows(1319).replace('q0', 'changed'));
    const refused = await runCli(['data', 'import', 'gsm8k', other], { PTB_HOME: home });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('it would replace the pinned file verified against the pin');
    expect(readFileSync(join(part, 'test.jsonl'), 'utf8')).toBe(pinned);
    const forced = await runCli(['data', 'import', 'gsm8k', other, '--force'], { PTB_HOME: home });
    expect(forced.code).toBe(0);
    const kept = /the copy it replaces is kept in (\S+)/.exec(forced.stderr)?.[1];
    expect(kept).toContain(join(part, 'previous'));
    expect(readFileSync(join(kept!, 'test.jsonl'), 'utf8')).toBe(pinned);
    expect(JSON.parse(readFileSync(join(kept!, 'source.json'), 'utf8')).verified).toBe(true);
    expect(readdirSync(part).sort()).toEqual(['local-other.jsonl', 'previous', 'source.json']);
  });

  it('verifies the real AIME file against its pin (validation data, when present)', async (t) => {
    const real = resolve(repoRoot, '../shared/data/aime2025/test.jsonl');
    if (!existsSync(real)) t.skip();
    const run = await runCli(['data', 'import', 'aime2025', real, '--json'], { PTB_HOME: tempHome() });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ rows: 30, verified: true });
  });
});
