import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHfEngine } from '../../src/engines/hf.ts';
import { ensureTinyModel, testPython, tinyChatTemplate, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/**
 * A final_model saved as pytorch_model.bin (a pickle, which vLLM loads as well as safetensors) is
 * served by the hf engine and evaluated, like the reference would; the pickle is read with
 * weights_only, so a checkpoint whose pickle carries code cannot run it.
 */

const scratch = mkdtempSync(join(tmpdir(), 'ptb-hf-bin-'));
let python: string;
let binModel: string;
const template = join(scratch, 'tiny.jinja');

function runPython(code: string, args: string[]): void {
  const out = spawnSync(python, ['-c', code, ...args], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(out.stderr);
}

/** The tiny model with its weights re-saved as a torch pickle and the safetensors removed. */
function pickledCopy(dir: string): string {
  cpSync(binModel === undefined ? '' : binModel, dir, { recursive: true });
  return dir;
}

beforeAll(async () => {
  const tiny = await ensureTinyModel();
  python = await testPython();
  writeFileSync(template, tinyChatTemplate);
  binModel = join(scratch, 'final_model');
  cpSync(tiny, binModel, { recursive: true });
  runPython(
    'import sys, torch\nfrom safetensors.torch import load_file\nd = sys.argv[1]\ntorch.save(load_file(d + "/model.safetensors"), d + "/pytorch_model.bin")',
    [binModel],
  );
  rmSync(join(binModel, 'model.safetensors'));
}, tinyModelTimeoutMs);

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

describe('a final_model saved as pytorch_model.bin', () => {
  it('is served by the hf engine and answers', async () => {
    const engine = createHfEngine({ python });
    const handle = await engine.start({
      model: binModel,
      chatTemplatePath: template,
      logFile: join(scratch, 'bin.log'),
      maxBatchSize: 2,
    });
    try {
      const res = await fetch(`${handle.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${handle.apiKey}` },
        body: JSON.stringify({
          model: handle.modelName,
          messages: [{ role: 'user', content: 'Ava has 3 apples. How many?' }],
          max_tokens: 4,
        }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { choices: { message: { content: string } }[] };
      expect(typeof body.choices[0]!.message.content).toBe('string');
    } finally {
      await handle.stop();
    }
  }, 180_000);

  it('is loaded with weights_only: a pickle that carries code is refused, and the code never runs', async () => {
    const hostile = pickledCopy(join(scratch, 'hostile_model'));
    const marker = join(scratch, 'pickle-ran');
    runPython(
      'import os, sys, pickle, torch\nclass Boom:\n    def __reduce__(self):\n        return (os.system, ("touch " + sys.argv[2],))\nsd = torch.load(sys.argv[1] + "/pytorch_model.bin", weights_only=True)\nsd["boom"] = Boom()\ntorch.save(sd, sys.argv[1] + "/pytorch_model.bin")',
      [hostile, marker],
    );
    const engine = createHfEngine({ python });
    await expect(
      engine.start({
        model: hostile,
        chatTemplatePath: template,
        logFile: join(scratch, 'hostile.log'),
        healthTimeoutMs: 120_000,
      }),
    ).rejects.toThrow();
    expect(existsSync(marker)).toBe(false);
  }, 180_000);
});
