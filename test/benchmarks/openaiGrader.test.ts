import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createOpenAiGrader,
  DEFAULT_GRADER_BASE_URL,
  DEFAULT_GRADER_MODEL,
  GraderHttpError,
  graderFromOptions,
  isFatalGraderError,
  realSleep,
} from '../../src/benchmarks/shared/openaiGrader.ts';
import { UserError } from '../../src/core/errors.ts';
import { type StandInGrader, startStandInGrader } from '../helpers/standInGrader.ts';

let server: StandInGrader;

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

  it('throws a GraderHttpError with status and API message on a non-2xx answer, and retries nothing', async () => {
    const grader = createOpenAiGrader({ baseUrl: server.baseUrl, apiKey: server.apiKey, model: 'm' });
    server.failNext(1, 503, JSON.stringify({ error: { message: 'overloaded right now' } }));
    const err = await grader
      .complete({ messages: [{ role: 'user', content: 'q' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraderHttpError);
    expect((err as GraderHttpError).status).toBe(503);
    expect((err as GraderHttpError).message).toContain('overloaded right now');
    expect(isFatalGraderError(err)).toBe(false);
    expect(server.requests).toHaveLength(1);
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
    const grader = createOpenAiGrader({ baseUrl: url, apiKey: 'k', model: 'm' });
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
