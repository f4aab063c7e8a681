import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { callJudge } from '../../src/benchmarks/arenahardwriting/judge.ts';
import {
  clientRetryDelayMs,
  createOpenAiGrader,
  DEFAULT_GRADER_BASE_URL,
  DEFAULT_GRADER_MODEL,
  GraderHttpError,
  graderFromOptions,
  isFatalGraderError,
  realSleep,
  type Sleep,
} from '../../src/benchmarks/shared/openaiGrader.ts';
import { UserError } from '../../src/core/errors.ts';
import { type StandInGrader, startStandInGrader } from '../helpers/standInGrader.ts';

let server: StandInGrader;

function recordingSleep(): { sleep: Sleep; pauses: number[] } {
  const pauses: number[] = [];
  return { sleep: async (ms) => void pauses.push(ms), pauses };
}

function thrownBy(fn: () => unknown): UserError {
  try {
    fn();
  } catch (err) {
    return err as UserError;
  }
  throw new Error('expected a throw');
}

beforeEach(async () => {
  server = await startStandInGrader({
    responder: (body) => `echo:${body.messages?.map((m) => m.content).join('|')}`,
  });
});
afterEach(async () => {
  await server.close();
});

describe('createOpenAiGrader', () => {
  it('posts one chat completion with the model, key and only the parameters asked for', async () => {
    const grader = createOpenAiGrader({
      baseUrl: `${server.baseUrl}/`,
      apiKey: server.apiKey,
      model: 'judge-x',
    });
    const text = await grader.complete({
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'hi' },
      ],
      reasoningEffort: 'medium',
      maxCompletionTokens: 49152,
    });
    expect(text).toBe('echo:sys|hi');
    expect(server.requests).toHaveLength(1);
    const [req] = server.requests;
    expect(req!.path).toBe('/v1/chat/completions');
    expect(req!.authorization).toBe(`Bearer ${server.apiKey}`);
    expect(req!.body).toEqual({
      model: 'judge-x',
      messages: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'hi' },
      ],
      reasoning_effort: 'medium',
      max_completion_tokens: 49152,
    });
    expect(grader.model).toBe('judge-x');
    expect(grader.baseUrl).toBe(server.baseUrl);
  });

  it('sends temperature and max_tokens for non-reasoning requests', async () => {
    const grader = createOpenAiGrader({ baseUrl: server.baseUrl, apiKey: server.apiKey, model: 'gpt-4.1' });
    await grader.complete({ messages: [{ role: 'user', content: 'q' }], temperature: 0, maxTokens: 512 });
    expect(server.requests[0]!.body).toEqual({
      model: 'gpt-4.1',
      messages: [{ role: 'user', content: 'q' }],
      temperature: 0,
      max_tokens: 512,
    });
  });

  it('throws a GraderHttpError with status and API message once the client retries are spent', async () => {
    const { sleep, pauses } = recordingSleep();
    const grader = createOpenAiGrader({ baseUrl: server.baseUrl, apiKey: server.apiKey, model: 'm', sleep });
    server.failNext(3, 503, JSON.stringify({ error: { message: 'overloaded right now' } }));
    const err = await grader
      .complete({ messages: [{ role: 'user', content: 'q' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraderHttpError);
    expect((err as GraderHttpError).status).toBe(503);
    expect((err as GraderHttpError).message).toContain('overloaded right now');
    expect(isFatalGraderError(err)).toBe(false);
    // openai-python 2.17.0: max_retries=2, so one call is at most three requests
    expect(server.requests).toHaveLength(3);
    expect(server.requests.map((r) => r.retryCount)).toEqual(['0', '1', '2']);
    expect(pauses).toHaveLength(2);
  });

  it('marks a wrong key as fatal', async () => {
    const grader = createOpenAiGrader({ baseUrl: server.baseUrl, apiKey: 'wrong', model: 'm' });
    const err = await grader
      .complete({ messages: [{ role: 'user', content: 'q' }] })
      .catch((e: unknown) => e);
    expect((err as GraderHttpError).status).toBe(401);
    expect(isFatalGraderError(err)).toBe(true);
  });

  it('fails clearly on null content and on a timeout', async () => {
    const grader = createOpenAiGrader({
      baseUrl: server.baseUrl,
      apiKey: server.apiKey,
      model: 'm',
      timeoutMs: 150,
      sleep: recordingSleep().sleep,
    });
    server.nullContentNext(1);
    await expect(grader.complete({ messages: [{ role: 'user', content: 'q' }] })).rejects.toThrow(
      /no message content \(finish_reason=stop\)/,
    );
    server.delayMs = 1000;
    await expect(grader.complete({ messages: [{ role: 'user', content: 'q' }] })).rejects.toThrow(
      /did not answer within 0.15 s/,
    );
  });

  it('names the URL when the endpoint cannot be reached', async () => {
    const url = server.baseUrl;
    await server.close();
    server = await startStandInGrader({ responder: () => '' });
    const grader = createOpenAiGrader({
      baseUrl: url,
      apiKey: 'k',
      model: 'm',
      sleep: recordingSleep().sleep,
    });
    await expect(grader.complete({ messages: [{ role: 'user', content: 'q' }] })).rejects.toThrow(
      `cannot reach grader at ${url}/chat/completions`,
    );
  });

  it('stops at once when the caller aborts', async () => {
    const grader = createOpenAiGrader({ baseUrl: server.baseUrl, apiKey: server.apiKey, model: 'm' });
    server.delayMs = 2000;
    const controller = new AbortController();
    const pending = grader.complete({ messages: [{ role: 'user', content: 'q' }] }, controller.signal);
    setTimeout(() => controller.abort(new Error('stopped by test')), 50);
    await expect(pending).rejects.toThrow('stopped by test');
  });
});

describe("the openai client's own retries inside one call (openai-python 2.17.0)", () => {
  const q = { messages: [{ role: 'user' as const, content: 'q' }] };

  it('retries 429, 5xx, 408 and 409 and answers from the retry', async () => {
    for (const status of [429, 500, 502, 503, 408, 409]) {
      server.requests.length = 0;
      const { sleep, pauses } = recordingSleep();
      const grader = createOpenAiGrader({
        baseUrl: server.baseUrl,
        apiKey: server.apiKey,
        model: 'm',
        sleep,
      });
      server.failNext(2, status);
      expect(await grader.complete(q)).toBe('echo:q');
      expect(server.requests.map((r) => r.outcome)).toEqual(['failed', 'failed', 'answered']);
      expect(pauses).toHaveLength(2);
    }
  });

  it('retries a reset connection', async () => {
    const { sleep } = recordingSleep();
    const grader = createOpenAiGrader({ baseUrl: server.baseUrl, apiKey: server.apiKey, model: 'm', sleep });
    server.resetNext(2);
    expect(await grader.complete(q)).toBe('echo:q');
    expect(server.requests.map((r) => r.outcome)).toEqual(['reset', 'reset', 'answered']);
  });

  it('does not retry other 4xx, nor when the server says x-should-retry: false', async () => {
    const { sleep } = recordingSleep();
    const grader = createOpenAiGrader({ baseUrl: server.baseUrl, apiKey: server.apiKey, model: 'm', sleep });
    server.failNext(1, 400);
    await expect(grader.complete(q)).rejects.toThrow(/HTTP 400/);
    server.failNext(1, 503, undefined, { 'x-should-retry': 'false' });
    await expect(grader.complete(q)).rejects.toThrow(/HTTP 503/);
    server.failNext(1, 400, undefined, { 'x-should-retry': 'true' });
    expect(await grader.complete(q)).toBe('echo:q');
    expect(server.requests).toHaveLength(4);
  });

  it('backs off 0.5 s then 1 s (jitter ×0.75–1), or as long as Retry-After says when 0 < it ≤ 60 s', async () => {
    expect(clientRetryDelayMs(0, undefined, () => 0)).toBe(500);
    expect(clientRetryDelayMs(1, undefined, () => 0)).toBe(1000);
    expect(clientRetryDelayMs(1, undefined, () => 1)).toBe(750);
    expect(clientRetryDelayMs(10, undefined, () => 0)).toBe(8000);
    expect(clientRetryDelayMs(0, new Headers({ 'retry-after': '7' }), () => 0)).toBe(7000);
    expect(clientRetryDelayMs(0, new Headers({ 'retry-after-ms': '250' }), () => 0)).toBe(250);
    expect(clientRetryDelayMs(0, new Headers({ 'retry-after': '120' }), () => 0)).toBe(500);
    expect(clientRetryDelayMs(0, new Headers({ 'retry-after': '0' }), () => 0)).toBe(500);
    const now = Date.parse('2026-01-01T00:00:00Z');
    const date = new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' });
    expect(clientRetryDelayMs(0, date, () => 0, now)).toBe(30_000);
    const { sleep, pauses } = recordingSleep();
    const grader = createOpenAiGrader({
      baseUrl: server.baseUrl,
      apiKey: server.apiKey,
      model: 'm',
      sleep,
      random: () => 0,
    });
    server.failNext(1, 429, undefined, { 'retry-after': '3' });
    server.failNext(1, 500);
    expect(await grader.complete(q)).toBe('echo:q');
    expect(pauses).toEqual([3000, 1000]);
  });

  it("inside each of the scripts' tries: an Arena judge call that keeps failing makes 3 × 3 requests", async () => {
    const { sleep } = recordingSleep();
    const grader = createOpenAiGrader({ baseUrl: server.baseUrl, apiKey: server.apiKey, model: 'm', sleep });
    server.failNext(9, 500);
    expect(await callJudge(grader, q.messages, { sleep })).toBeNull();
    expect(server.requests).toHaveLength(9);
  });
});

describe('graderFromOptions', () => {
  it('uses the defaults and OPENAI_API_KEY for the OpenAI endpoint', () => {
    const grader = graderFromOptions({}, { OPENAI_API_KEY: 'sk-openai' });
    expect(grader.model).toBe(DEFAULT_GRADER_MODEL);
    expect(grader.baseUrl).toBe(DEFAULT_GRADER_BASE_URL);
    expect(DEFAULT_GRADER_MODEL).toBe('gpt-5-mini');
    expect(DEFAULT_GRADER_BASE_URL).toBe('https://api.openai.com/v1');
  });

  it('takes flags over PTB_GRADER_* variables over defaults', async () => {
    const env = {
      PTB_GRADER_BASE_URL: 'http://127.0.0.1:9/v1',
      PTB_GRADER_MODEL: 'env-model',
      PTB_GRADER_API_KEY: 'e',
    };
    const fromEnv = graderFromOptions({}, env);
    expect([fromEnv.baseUrl, fromEnv.model]).toEqual(['http://127.0.0.1:9/v1', 'env-model']);
    const fromFlags = graderFromOptions(
      { baseUrl: server.baseUrl, model: 'flag-model', apiKey: server.apiKey },
      env,
    );
    expect([fromFlags.baseUrl, fromFlags.model]).toEqual([server.baseUrl, 'flag-model']);
    await fromFlags.complete({ messages: [{ role: 'user', content: 'q' }] });
    expect(server.requests[0]!.authorization).toBe(`Bearer ${server.apiKey}`);
    expect(server.requests[0]!.body.model).toBe('flag-model');
  });

  it('refuses to run without a key and names the variables', () => {
    expect(() => graderFromOptions({}, {})).toThrow(UserError);
    const err = thrownBy(() => graderFromOptions({}, { PTB_GRADER_API_KEY: '  ' }));
    expect(err).toBeInstanceOf(UserError);
    expect(err.hint).toContain('PTB_GRADER_API_KEY');
    expect(err.hint).toContain('OPENAI_API_KEY');
  });

  it('never sends OPENAI_API_KEY to another host', () => {
    const err = thrownBy(() =>
      graderFromOptions({ baseUrl: 'http://127.0.0.1:9/v1' }, { OPENAI_API_KEY: 'sk-openai' }),
    );
    expect(err).toBeInstanceOf(UserError);
    expect(err.hint).toContain('PTB_GRADER_API_KEY');
    expect(err.hint).not.toContain('OPENAI_API_KEY');
  });

  it('rejects a base URL that is not http(s)', () => {
    expect(() => graderFromOptions({ baseUrl: 'not a url', apiKey: 'k' }, {})).toThrow(/not a valid URL/);
    expect(() => graderFromOptions({ baseUrl: 'ftp://host/v1', apiKey: 'k' }, {})).toThrow(/http or https/);
  });
});

describe('realSleep', () => {
  it('waits, and rejects when aborted', async () => {
    const started = Date.now();
    await realSleep(30);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    const controller = new AbortController();
    const pending = realSleep(5000, controller.signal);
    controller.abort(new Error('abort sleep'));
    await expect(pending).rejects.toThrow('abort sleep');
  });
});
