import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { engineIsolation } from '../../src/eval/evaluate.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { ensureTinyModel, testPython, tinyChatTemplate, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/** Where `ptb eval` runs the engine by default, the explicit opt-out, and that the run records it. */

describe('engineIsolation (the default rule)', () => {
  it(
    'sandboxes a local checkpoint, leaves a hub id on the host, and says why',
    async () => {
      const local = engineIsolation(await ensureTinyModel(), { env: {}, engineGpus: [] });
      expect(local).toEqual({
        sandbox: 'bwrap',
        gpuIndices: [],
        reason: 'a local checkpoint is untrusted: its engine runs in the sandbox',
      });
      expect(engineIsolation('Qwen/Qwen3-1.7B-Base', { env: {} })).toMatchObject({
        sandbox: 'none',
        reason: expect.stringMatching(/hub model/),
      });
      expect(engineIsolation(await ensureTinyModel(), { env: {}, engineSandbox: 'none' })).toMatchObject({
        sandbox: 'none',
        reason: expect.stringMatching(/explicit opt-out/),
      });
      expect(
        engineIsolation(await ensureTinyModel(), { env: {}, engineSandbox: 'podman', engineImage: 'img' }),
      ).toMatchObject({ sandbox: 'podman', image: 'img' });
    },
    tinyModelTimeoutMs,
  );
});

describe('ptb eval --engine-sandbox none', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-eval-iso-'));
  let model: string;
  let python: string;
  beforeAll(async () => {
    [model, python] = await Promise.all([ensureTinyModel(), testPython()]);
    const rows = Array.from({ length: 12 }, (_, i) =>
      JSON.stringify({ question: `Bo has ${i} pens?`, answer: `#### ${i}` }),
    );
    writeFileSync(join(dir, 'test.jsonl'), rows.join('\n'));
    writeFileSync(join(dir, 'gsm8k.py'), 'MATH_PROMPT_TEMPLATE = """\n{prompt}\n""".strip()\n');
    writeFileSync(join(dir, 'tiny.jinja'), tinyChatTemplate);
  }, tinyModelTimeoutMs);

  it('runs the engine on the host and records the opt-out with the run', async () => {
    const home = tempHome();
    const run = await runCli(
      [
        'eval',
        '-m',
        model,
        '-b',
        'gsm8k',
        '-e',
        'hf',
        '--template',
        join(dir, 'tiny.jinja'),
        '--data',
        `test=${join(dir, 'test.jsonl')}`,
        '--data',
        `train=${join(dir, 'test.jsonl')}`,
        '--data',
        `prompt-source=${join(dir, 'gsm8k.py')}`,
        '--max-tokens',
        '4',
        '--limit',
        '2',
        '--protocol',
        'v1.0',
        '--offline',
        '--engine-sandbox',
        'none',
        '--json',
      ],
      { PTB_HOME: home, PTB_PYTHON: python },
    );
    expect(run.code, `${run.stderr}${run.stdout}`).toBe(0);
    const out = JSON.parse(run.stdout) as { out_dir: string; engine_isolation: unknown };
    const expected = { sandbox: 'none', reason: expect.stringMatching(/explicit opt-out/) };
    expect(out.engine_isolation).toMatchObject(expected);
    expect(JSON.parse(readFileSync(join(out.out_dir, 'eval.json'), 'utf8')).isolation).toMatchObject(
      expected,
    );
    // No sandbox ran, so no sandbox record either.
    expect(() => readFileSync(join(out.out_dir, 'engine_sandbox.jsonl'))).toThrow();
  }, 300_000);
});
