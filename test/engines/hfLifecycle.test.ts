import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import { checkModelDir, createHfEngine } from '../../src/engines/hf.ts';
import { ServerStartError } from '../../src/engines/processes.ts';
import { ensureTinyModel, testPython, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/** hf engine start-up checks, generation-config defaults, and a stop that leaves nothing behind. */

const scratch = mkdtempSync(join(tmpdir(), 'ptb-hf-life-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Pids of live (non-zombie) processes whose command line mentions `needle`. */
function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

function copyTiny(from: string, name: string): string {
  const dir = join(scratch, name);
  cpSync(from, dir, { recursive: true });
  return dir;
}

describe('checkModelDir', () => {
  let tiny: string;
  beforeAll(async () => {
    tiny = await ensureTinyModel();
  }, tinyModelTimeoutMs);

  const rejects = (dir: string, pattern: RegExp) => {
    let caught: unknown;
    try {
      checkModelDir(dir);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UserError);
    expect((caught as Error).message).toMatch(pattern);
  };

  it('accepts the tiny model', () => {
    expect(() => checkModelDir(tiny)).not.toThrow();
  });

  it('names what is wrong with a broken checkpoint folder', () => {
    rejects(join(scratch, 'nowhere'), /model folder not found/);
    const empty = join(scratch, 'empty');
    mkdirSync(empty);
    rejects(empty, /config\.json is missing/);

    const badJson = copyTiny(tiny, 'bad-json');
    writeFileSync(join(badJson, 'config.json'), '{"model_type": ');
    rejects(badJson, /config\.json is not valid JSON/);

    const noWeights = copyTiny(tiny, 'no-weights');
    rmSync(join(noWeights, 'model.safetensors'));
    rejects(noWeights, /has no weights/);

    const noTokenizer = copyTiny(tiny, 'no-tokenizer');
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) rmSync(join(noTokenizer, f));
    rejects(noTokenizer, /no tokenizer files/);

    const garbage = copyTiny(tiny, 'garbage');
    writeFileSync(join(garbage, 'model.safetensors'), Buffer.from('this is not a safetensors file at all'));
    rejects(garbage, /not a readable safetensors file: header length/);

    const truncated = copyTiny(tiny, 'truncated');
    const weights = readFileSync(join(truncated, 'model.safetensors'));
    writeFileSync(join(truncated, 'model.safetensors'), weights.subarray(0, weights.length - 100));
    rejects(truncated, /truncated: tensors need \d+ bytes, the file has \d+/);

    const missingShard = copyTiny(tiny, 'missing-shard');
    writeFileSync(
      join(missingShard, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { 'a.weight': 'model-00002-of-00002.safetensors' } }),
    );
    rejects(missingShard, /shard model-00002-of-00002\.safetensors .* is missing/);
  });

  it('makes engine.start fail before any Python runs', async () => {
    const engine = createHfEngine({ python: '/nonexistent/python' });
    await expect(
      engine.start({ model: join(scratch, 'empty'), logFile: join(scratch, 'x.log') }),
    ).rejects.toThrow(/config\.json is missing/);
  });
});

describe('hf engine lifecycle', { timeout: 120_000 }, () => {
  let tiny: string;
  let python: string;
  beforeAll(async () => {
    tiny = await ensureTinyModel();
    python = await testPython();
  }, tinyModelTimeoutMs);

  it('fails fast with the server log tail when the server cannot load the model', async () => {
    const unknownArch = copyTiny(tiny, 'unknown-arch');
    const config = JSON.parse(readFileSync(join(unknownArch, 'config.json'), 'utf8'));
    writeFileSync(
      join(unknownArch, 'config.json'),
      JSON.stringify({ ...config, model_type: 'ptb-no-such-arch' }),
    );
    const started = Date.now();
    const err = await createHfEngine({ python })
      .start({ model: unknownArch, logFile: join(scratch, 'unknown-arch.log'), healthTimeoutMs: 300_000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerStartError);
    expect((err as Error).message).toMatch(/exited with code \d+ before it became healthy/);
    expect((err as Error).message).toContain('ptb-no-such-arch');
    expect(Date.now() - started).toBeLessThan(300_000);
    expect(processesMentioning(unknownArch)).toEqual([]);
  });

  it("serves with the checkpoint's generation_config defaults, refuses tools without a parser, stops cleanly", async () => {
    const greedy = copyTiny(tiny, 'greedy-model');
    const genPath = join(greedy, 'generation_config.json');
    const gen = JSON.parse(readFileSync(genPath, 'utf8'));
    // Defaults the server must pick up: greedy decoding and at most 5 new tokens.
    writeFileSync(genPath, JSON.stringify({ ...gen, temperature: 0.0, max_new_tokens: 5 }));
    const handle = await createHfEngine({ python }).start({
      model: greedy,
      logFile: join(scratch, 'greedy.log'),
    });
    expect(processesMentioning(greedy).length).toBeGreaterThan(0);
    const post = (body: Record<string, unknown>) =>
      fetch(`${handle.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${handle.apiKey}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'count with me' }], ...body }),
      });
    const replies = [];
    for (let i = 0; i < 2; i++) {
      const res = await post({ ignore_eos: true });
      expect(res.status).toBe(200);
      replies.push(
        (await res.json()) as {
          choices: { message: { content: string } }[];
          usage: { completion_tokens: number };
        },
      );
    }
    expect(replies.map((r) => r.usage.completion_tokens)).toEqual([5, 5]);
    expect(replies[0]!.choices[0]!.message.content).toBe(replies[1]!.choices[0]!.message.content);

    const tools = [{ type: 'function', function: { name: 'f', parameters: {} } }];
    const refused = await post({ tools, max_tokens: 2 });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(
      /--enable-auto-tool-choice/,
    );
    expect((await post({ tools, tool_choice: 'none', max_tokens: 2 })).status).toBe(200);

    await handle.stop();
    expect(processesMentioning(greedy)).toEqual([]);
    await expect(fetch(`${handle.baseUrl.replace(/\/v1$/, '/health')}`)).rejects.toThrow();
    await handle.stop(); // idempotent
  });
});
