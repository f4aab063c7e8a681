import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHfEngine } from '../../src/engines/hf.ts';
import type { EngineHandle } from '../../src/engines/types.ts';
import { ensureTinyModel, testPython, tinyChatTemplate, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/** The hf engine end to end on CPU: the real server, the tiny model, real HTTP. */

const scratch = mkdtempSync(join(tmpdir(), 'ptb-hf-'));
const logFile = join(scratch, 'server.log');
let handle: EngineHandle;
let model: string;

interface Completion {
  choices: { message: { content: string | null; tool_calls: unknown[] }; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

async function post(body: Record<string, unknown>, key: string | null = handle.apiKey): Promise<Response> {
  return await fetch(`${handle.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      ...(key === null ? {} : { Authorization: `Bearer ${key}` }),
    },
    body: JSON.stringify({ model: handle.modelName, ...body }),
  });
}

async function chat(body: Record<string, unknown>): Promise<Completion> {
  const res = await post(body);
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as Completion;
}

const hello = [
  { role: 'user', content: 'Ava has 3 apples and gets 4 more. How many apples does Ava have now?' },
];

beforeAll(async () => {
  model = await ensureTinyModel();
  const templatePath = join(scratch, 'tiny.jinja');
  writeFileSync(templatePath, tinyChatTemplate);
  const engine = createHfEngine({ python: await testPython(), extraArgs: ['--batch-wait-ms', '50'] });
  handle = await engine.start({
    model,
    chatTemplatePath: templatePath,
    toolCallParser: 'hermes',
    logFile,
    maxBatchSize: 8,
  });
}, tinyModelTimeoutMs);

afterAll(async () => {
  await handle?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

describe('hf engine on the tiny model', { timeout: 120_000 }, () => {
  it('is healthy, lists the model under its path and logs where it runs', async () => {
    expect(handle.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    expect((await fetch(handle.baseUrl.replace(/\/v1$/, '/health'))).status).toBe(200);
    const models = await fetch(`${handle.baseUrl}/models`, {
      headers: { Authorization: `Bearer ${handle.apiKey}` },
    });
    const listed = (await models.json()) as { data: { id: string; max_model_len: number }[] };
    expect(listed.data[0]).toMatchObject({ id: model, max_model_len: 2048 });
    expect(readFileSync(logFile, 'utf8')).toMatch(
      /ptb-hf-server ready .*device=cpu dtype=float32 max_model_len=2048/,
    );
  });

  it('answers a chat completion with usage counts and stops at max_tokens', async () => {
    const out = await chat({ messages: hello, max_tokens: 7, temperature: 0, ignore_eos: true });
    expect(out.choices[0]!.finish_reason).toBe('length');
    expect(out.usage.completion_tokens).toBe(7);
    expect(out.usage.prompt_tokens).toBeGreaterThan(15);
    expect(out.usage.total_tokens).toBe(out.usage.prompt_tokens + 7);
    expect(typeof out.choices[0]!.message.content).toBe('string');
  });

  it('is deterministic at temperature 0 and with a fixed seed', async () => {
    const a = await chat({ messages: hello, max_tokens: 12, temperature: 0, ignore_eos: true });
    const b = await chat({ messages: hello, max_tokens: 12, temperature: 0, ignore_eos: true });
    expect(a.choices[0]!.message.content).toBe(b.choices[0]!.message.content);
    const s1 = await chat({ messages: hello, max_tokens: 12, temperature: 1, seed: 5, ignore_eos: true });
    const s2 = await chat({ messages: hello, max_tokens: 12, temperature: 1, seed: 5, ignore_eos: true });
    expect(s1.choices[0]!.message.content).toBe(s2.choices[0]!.message.content);
  });

  it('batches requests with different seeds together, each sampling with its own generator (as vLLM)', async () => {
    const stats = async () =>
      (await (await fetch(handle.baseUrl.replace(/\/v1$/, '/stats'))).json()) as {
        recent_batch_sizes: number[];
      };
    const seeds = [11, 12, 13, 14];
    const round = async () => {
      const before = (await stats()).recent_batch_sizes.length;
      const outs = await Promise.all(
        seeds.map((seed) =>
          chat({ messages: hello, max_tokens: 10, temperature: 1, seed, ignore_eos: true }),
        ),
      );
      return {
        texts: outs.map((o) => o.choices[0]!.message.content),
        sizes: (await stats()).recent_batch_sizes.slice(before),
      };
    };
    const first = await round();
    // per-request seeds no longer split a batch: the four ran in fewer than four generate() calls
    expect(Math.max(...first.sizes)).toBeGreaterThan(1);
    // the same prompt under four seeds: not one shared stream (vLLM 0.11's collapse with one seed for all)
    expect(new Set(first.texts).size).toBeGreaterThan(1);
    // and reproducible: the same seeds give the same replies again
    const second = await round();
    expect(second.texts).toEqual(first.texts);
  });

  it('batches concurrent requests, each stopping at its own max_tokens', async () => {
    const stats = async () =>
      (await (await fetch(handle.baseUrl.replace(/\/v1$/, '/stats'))).json()) as {
        batches: number;
        recent_batch_sizes: number[];
      };
    const before = await stats();
    const limits = [3, 5, 8, 13, 21, 4];
    const outs = await Promise.all(
      limits.map((n, i) =>
        chat({
          messages: [{ role: 'user', content: `question ${i}` }],
          max_tokens: n,
          temperature: 0,
          ignore_eos: true,
        }),
      ),
    );
    expect(outs.map((o) => o.usage.completion_tokens)).toEqual(limits);
    const after = await stats();
    const sizes = after.recent_batch_sizes.slice(before.recent_batch_sizes.length);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(limits.length);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(after.batches - before.batches).toBeLessThan(limits.length);
  });

  it('refuses prompt + max_tokens beyond the context with an OpenAI-style 400', async () => {
    const res = await post({ messages: hello, max_tokens: 5000 });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string; type: string; code: number } };
    expect(body.error.type).toBe('BadRequestError');
    expect(body.error.message).toMatch(
      /maximum context length is 2048 tokens and your request has \d+ input tokens/,
    );
    const long = await post({ messages: [{ role: 'user', content: 'word '.repeat(3000) }] });
    expect(long.status).toBe(400);
  });

  it('enforces the API key on /v1 routes', async () => {
    expect((await post({ messages: hello, max_tokens: 1 }, null)).status).toBe(401);
    expect((await post({ messages: hello, max_tokens: 1 }, 'wrong-key')).status).toBe(401);
    expect((await fetch(`${handle.baseUrl}/models`)).status).toBe(401);
  });

  it('renders tools through the template and runs the hermes parser on auto tool choice', async () => {
    const tools = [
      {
        type: 'function',
        function: {
          name: 'add',
          description: 'add two numbers',
          parameters: { type: 'object', properties: {} },
        },
      },
    ];
    const plain = await chat({ messages: hello, max_tokens: 4, temperature: 0 });
    const withTools = await chat({
      messages: hello,
      tools,
      tool_choice: 'auto',
      max_tokens: 4,
      temperature: 0,
    });
    expect(withTools.usage.prompt_tokens).toBeGreaterThan(plain.usage.prompt_tokens + 20);
    // Random weights rarely write a well-formed call: whatever came out, the reply is consistent.
    const calls = withTools.choices[0]!.message.tool_calls;
    expect(withTools.choices[0]!.finish_reason).toBe(
      calls.length > 0 ? 'tool_calls' : withTools.choices[0]!.finish_reason,
    );
    const rejected = await post({
      messages: hello,
      tools,
      tool_choice: { type: 'function', function: { name: 'add' } },
    });
    expect(rejected.status).toBe(400);
  });

  it('rejects streaming, n > 1 and an unknown model name', async () => {
    expect((await post({ messages: hello, stream: true })).status).toBe(400);
    expect((await post({ messages: hello, n: 2 })).status).toBe(400);
    expect((await post({ messages: hello, model: 'other-model' })).status).toBe(404);
  });
});
