import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChatRequest, ToolSpec } from '../../src/core/schemas.ts';
import {
  chatCompletionBody,
  EngineRequestError,
  httpError,
  isContextLengthMessage,
  openAIChatClient,
} from '../../src/engines/openaiClient.ts';
import { freePort } from '../../src/engines/processes.ts';
import { rejection } from '../helpers/processes.ts';
import { type StandInEngine, startStandInEngine } from '../helpers/standInEngine.ts';

const question: ChatRequest = {
  messages: [
    { role: 'system', content: 'Answer with ANSWER: n.' },
    {
      role: 'user',
      content: 'Natalia sold 48 clips in April and half as many in May. How many in total? 72 is wrong',
    },
  ],
};

const weatherTool: ToolSpec = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather for a city on a day',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, day: { type: 'integer' } },
      required: ['city', 'day'],
    },
  },
};

let engine: StandInEngine;
beforeEach(async () => {
  engine = await startStandInEngine({ modelName: '/models/final_model' });
});
afterEach(async () => {
  await engine.close();
});

describe('openAIChatClient request', () => {
  it('sends model, messages and max_tokens with the bearer key and no sampling fields by default', async () => {
    const client = openAIChatClient(engine);
    const reply = await client.chat(question, { maxTokens: 4000 });
    expect(reply.text).toBe('ANSWER: 72');
    expect(reply.toolCalls).toEqual([]);
    expect(reply.finishReason).toBe('stop');
    expect(reply.completionTokens).toBe(2);
    expect(reply.promptTokens).toBeGreaterThan(10);
    expect(reply.latencyMs).toBeGreaterThan(0);

    expect(engine.received).toHaveLength(1);
    const sent = engine.received[0]!;
    expect(sent.authorization).toBe(`Bearer ${engine.apiKey}`);
    expect(sent.path).toBe('/v1/chat/completions');
    // Exactly these keys: any sampling default would override the checkpoint's generation config.
    expect(Object.keys(sent.body).sort()).toEqual(['max_tokens', 'messages', 'model']);
    expect(sent.body.model).toBe('/models/final_model');
    expect(sent.body.max_tokens).toBe(4000);
    expect(sent.body.messages).toEqual(question.messages);
  });

  it('sends only the sampling fields that are set, zero included', async () => {
    const client = openAIChatClient(engine);
    await client.chat(question, { maxTokens: 10, sampling: { temperature: 0, seed: 7 } });
    const body = engine.received[0]!.body;
    expect(body.temperature).toBe(0);
    expect(body.seed).toBe(7);
    expect('top_p' in body).toBe(false);
    expect('top_k' in body).toBe(false);
  });

  it('builds the same body without a server', () => {
    const body = chatCompletionBody(
      'm',
      { ...question, tools: [weatherTool], toolChoice: 'auto' },
      { maxTokens: 5 },
    );
    expect(body).toEqual({
      model: 'm',
      messages: question.messages,
      max_tokens: 5,
      tools: [weatherTool],
      tool_choice: 'auto',
    });
    expect(chatCompletionBody('m', { ...question, tools: [] }, { maxTokens: 5 })).not.toHaveProperty('tools');
  });

  it('sends tools and tool_choice and parses the tool calls of the reply', async () => {
    const client = openAIChatClient(engine);
    const reply = await client.chat(
      {
        messages: [{ role: 'user', content: 'Weather in Paris on day 3?' }],
        tools: [weatherTool],
        toolChoice: 'auto',
      },
      { maxTokens: 100 },
    );
    expect(engine.received[0]!.body.tools).toEqual([weatherTool]);
    expect(engine.received[0]!.body.tool_choice).toBe('auto');
    expect(reply.text).toBe('');
    expect(reply.finishReason).toBe('tool_calls');
    expect(reply.toolCalls).toHaveLength(1);
    const call = reply.toolCalls[0]!;
    expect(call.type).toBe('function');
    expect(call.id).toMatch(/^chatcmpl-tool-/);
    expect(call.function.name).toBe('get_weather');
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'stand-in', day: 3 });
  });

  it('reports a truncated reply as finish_reason length, not as an error', async () => {
    const reply = await openAIChatClient(engine).chat(question, { maxTokens: 1 });
    expect(reply.finishReason).toBe('length');
    expect(reply.text).toBe('ANSWER:');
  });

  it('keeps many requests in flight at once (no client-side pool limit)', async () => {
    await engine.close();
    engine = await startStandInEngine({ latencyMs: 100 });
    const client = openAIChatClient(engine);
    const started = Date.now();
    const replies = await Promise.all(
      Array.from({ length: 48 }, (_, i) =>
        client.chat({ messages: [{ role: 'user', content: `item ${i}` }] }, { maxTokens: 8 }),
      ),
    );
    expect(replies.map((r) => r.text)).toEqual(Array.from({ length: 48 }, (_, i) => `ANSWER: ${i}`));
    expect(engine.stats.maxInFlight).toBe(48);
    expect(Date.now() - started).toBeLessThan(48 * 100);
  });
});

describe('openAIChatClient errors and retries', () => {
  it('classifies vLLM context-length 400s and never retries them', async () => {
    await engine.close();
    engine = await startStandInEngine({ contextWindow: 40 });
    const client = openAIChatClient(engine, { retries: 3, backoffMs: 1 });
    const err = await rejection(client.chat(question, { maxTokens: 4000 }));
    expect(err).toBeInstanceOf(EngineRequestError);
    const e = err as EngineRequestError;
    expect(e.kind).toBe('context_length');
    expect(e.status).toBe(400);
    expect(e.transient).toBe(false);
    expect(e.attempts).toBe(1);
    expect(e.contextWindow).toBe(40);
    expect(e.promptTokens).toBeGreaterThan(10);
    expect(e.body).toContain("'max_tokens' or 'max_completion_tokens' is too large: 4000");
    expect(engine.stats.chatRequests).toBe(1);

    // A smaller budget fits: what the eval's max-token ladder relies on.
    const reply = await client.chat(question, { maxTokens: 8 });
    expect(reply.text).toBe('ANSWER: 72');
  });

  it('classifies a prompt longer than the window as context_length too', async () => {
    await engine.close();
    engine = await startStandInEngine({ contextWindow: 5 });
    const err = (await rejection(
      openAIChatClient(engine).chat(question, { maxTokens: 1 }),
    )) as EngineRequestError;
    expect(err.kind).toBe('context_length');
    expect(err.message).toContain('However, your request has');
  });

  it('retries 500s with backoff and then succeeds', async () => {
    engine.injectFaults({ kind: 'status', status: 500 }, { kind: 'status', status: 503 });
    const reply = await openAIChatClient(engine, { backoffMs: 1 }).chat(question, { maxTokens: 10 });
    expect(reply.text).toBe('ANSWER: 72');
    expect(engine.stats.chatRequests).toBe(3);
  });

  it('gives up after the configured retries with kind server and the attempt count', async () => {
    engine.injectFaults(...Array.from({ length: 5 }, () => ({ kind: 'status' as const, status: 500 })));
    const err = (await rejection(
      openAIChatClient(engine, { retries: 2, backoffMs: 1 }).chat(question, { maxTokens: 10 }),
    )) as EngineRequestError;
    expect(err.kind).toBe('server');
    expect(err.status).toBe(500);
    expect(err.attempts).toBe(3);
    expect(engine.stats.chatRequests).toBe(3);
  });

  it('retries 429 but not other 4xx', async () => {
    engine.injectFaults({ kind: 'status', status: 429 });
    await openAIChatClient(engine, { backoffMs: 1 }).chat(question, { maxTokens: 10 });
    expect(engine.stats.chatRequests).toBe(2);

    engine.injectFaults({ kind: 'status', status: 422, body: '{"detail":"bad field"}' });
    const err = (await rejection(
      openAIChatClient(engine, { backoffMs: 1 }).chat(question, { maxTokens: 10 }),
    )) as EngineRequestError;
    expect(err.kind).toBe('bad_request');
    expect(err.message).toContain('bad field');
    expect(engine.stats.chatRequests).toBe(3);
  });

  it('treats a wrong key or an unknown model as bad_request without retrying', async () => {
    const wrongKey = openAIChatClient({ ...engine, apiKey: 'nope' }, { backoffMs: 1 });
    const keyErr = (await rejection(wrongKey.chat(question, { maxTokens: 10 }))) as EngineRequestError;
    expect(keyErr.kind).toBe('bad_request');
    expect(keyErr.status).toBe(401);

    const wrongModel = openAIChatClient({ ...engine, modelName: 'other' }, { backoffMs: 1 });
    const modelErr = (await rejection(wrongModel.chat(question, { maxTokens: 10 }))) as EngineRequestError;
    expect(modelErr.kind).toBe('bad_request');
    expect(modelErr.status).toBe(404);
    expect(modelErr.message).toContain('does not exist');
    expect(engine.stats.chatRequests).toBe(1); // the 401 never reached the chat route
  });

  it('retries a dropped connection as a network error', async () => {
    engine.injectFaults({ kind: 'drop' });
    const reply = await openAIChatClient(engine, { backoffMs: 1 }).chat(question, { maxTokens: 10 });
    expect(reply.text).toBe('ANSWER: 72');
    expect(engine.stats.chatRequests).toBe(2);
  });

  it('resends at once, outside the retry budget, when a kept-alive socket turns out closed', async () => {
    const client = openAIChatClient(engine, { retries: 0, backoffMs: 60_000 });
    await client.chat(question, { maxTokens: 10 }); // leaves a kept-alive socket in the pool
    engine.injectFaults({ kind: 'drop' }); // the server closes that socket on its next use
    const before = Date.now();
    const reply = await client.chat(question, { maxTokens: 10 });
    expect(reply.text).toBe('ANSWER: 72');
    expect(Date.now() - before).toBeLessThan(2_000);
    expect(engine.stats.chatRequests).toBe(3);
  });

  it('reports a refused connection as network after its retries', async () => {
    const port = await freePort();
    const client = openAIChatClient(
      { baseUrl: `http://127.0.0.1:${port}/v1`, apiKey: 'k', modelName: 'm' },
      { retries: 1, backoffMs: 1 },
    );
    const err = (await rejection(client.chat(question, { maxTokens: 10 }))) as EngineRequestError;
    expect(err.kind).toBe('network');
    expect(err.message).toContain('ECONNREFUSED');
    expect(err.attempts).toBe(2);
  });

  it('times out a hanging request and retries it', async () => {
    engine.injectFaults({ kind: 'hang' });
    const client = openAIChatClient(engine, { timeoutMs: 300, backoffMs: 1 });
    const reply = await client.chat(question, { maxTokens: 10 });
    expect(reply.text).toBe('ANSWER: 72');
    expect(engine.stats.chatRequests).toBe(2);

    engine.injectFaults({ kind: 'hang' });
    const noRetry = openAIChatClient(engine, { timeoutMs: 300, retries: 0 });
    const err = (await rejection(noRetry.chat(question, { maxTokens: 10 }))) as EngineRequestError;
    expect(err.kind).toBe('timeout');
    expect(err.status).toBeNull();
  });

  it('treats a 200 that is not a chat completion as a server error', async () => {
    engine.injectFaults({ kind: 'garbage' });
    const err = (await rejection(
      openAIChatClient(engine, { retries: 0 }).chat(question, { maxTokens: 10 }),
    )) as EngineRequestError;
    expect(err.kind).toBe('server');
    expect(err.body).toBe('{"not":"a completion"}');
  });

  it("propagates the caller's abort without retrying or wrapping it", async () => {
    engine.injectFaults({ kind: 'hang' });
    const controller = new AbortController();
    const pending = openAIChatClient(engine, { backoffMs: 1 }).chat(question, {
      maxTokens: 10,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 100);
    const err = await rejection(pending);
    expect(err).not.toBeInstanceOf(EngineRequestError);
    expect((err as Error).name).toBe('AbortError');
    expect(engine.stats.chatRequests).toBe(1);
  });
});

describe('openAIChatClient abort handling', () => {
  it('stops waiting during the backoff pause when aborted', async () => {
    engine.injectFaults({ kind: 'status', status: 503 });
    const controller = new AbortController();
    const before = Date.now();
    const pending = openAIChatClient(engine, { backoffMs: 10_000 }).chat(question, {
      maxTokens: 10,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 150);
    const err = await rejection(pending);
    expect((err as Error).name).toBe('AbortError');
    expect(Date.now() - before).toBeLessThan(5_000);
    expect(engine.stats.chatRequests).toBe(1);
  });

  it('leaves no listener behind on a long-lived signal', async () => {
    const controller = new AbortController();
    const client = openAIChatClient(engine);
    await Promise.all(
      Array.from({ length: 20 }, () => client.chat(question, { maxTokens: 10, signal: controller.signal })),
    );
    engine.injectFaults({ kind: 'status', status: 400, body: '{"error":{"message":"nope"}}' });
    await rejection(client.chat(question, { maxTokens: 10, signal: controller.signal }));
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('error classification', () => {
  const vllm = (message: string) =>
    JSON.stringify({ error: { message, type: 'BadRequestError', param: null, code: 400 } });

  it('recognises the context messages of vLLM and OpenAI', () => {
    const tooLarge = httpError(
      400,
      vllm(
        "'max_tokens' or 'max_completion_tokens' is too large: 16000. This model's maximum context length is 4096 tokens and your request has 50 input tokens (16000 > 4096 - 50). None",
      ),
    );
    expect(tooLarge.kind).toBe('context_length');
    expect([tooLarge.contextWindow, tooLarge.promptTokens]).toEqual([4096, 50]);

    const longPrompt = httpError(
      400,
      vllm('The decoder prompt (length 5000) is longer than the maximum model length of 4096.'),
    );
    expect(longPrompt.kind).toBe('context_length');
    expect([longPrompt.contextWindow, longPrompt.promptTokens]).toEqual([4096, 5000]);

    // Older vLLM: top-level message.
    const older = httpError(
      400,
      JSON.stringify({
        object: 'error',
        message:
          "This model's maximum context length is 2048 tokens. However, you requested 4100 tokens (100 in the messages, 4000 in the completion).",
      }),
    );
    expect(older.kind).toBe('context_length');
    expect([older.contextWindow, older.promptTokens]).toEqual([2048, 100]);

    const openai = httpError(
      400,
      JSON.stringify({
        error: { message: 'too long', code: 'context_length_exceeded', type: 'invalid_request_error' },
      }),
    );
    expect(openai.kind).toBe('context_length'); // recognised by its code
  });

  it('does not mistake other errors for context errors', () => {
    expect(isContextLengthMessage('Rate limit reached for requests')).toBe(false);
    expect(isContextLengthMessage('temperature must be non-negative')).toBe(false);
    expect(httpError(400, vllm('temperature must be non-negative')).kind).toBe('bad_request');
    expect(httpError(500, vllm("This model's maximum context length is 10 tokens")).kind).toBe('server');
    expect(httpError(502, '<html>Bad Gateway</html>').kind).toBe('server');
    expect(httpError(408, '').kind).toBe('timeout');
  });
});
