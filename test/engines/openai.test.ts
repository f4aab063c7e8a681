import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import { normalizeBaseUrl, openaiEngine, openaiEngineFor } from '../../src/engines/openai.ts';
import { openAIChatClient } from '../../src/engines/openaiClient.ts';
import { freePort } from '../../src/engines/processes.ts';
import { type StandInEngine, startStandInEngine } from '../helpers/standInEngine.ts';

async function userError(promise: Promise<unknown>): Promise<UserError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return err as UserError;
  }
  throw new Error('expected a UserError');
}

const startOpts = { model: 'served-model', logFile: '/dev/null' };

let engine: StandInEngine;
beforeEach(async () => {
  engine = await startStandInEngine({ modelName: 'served-model' });
});
afterEach(async () => {
  await engine.close();
});

describe('normalizeBaseUrl', () => {
  it('keeps an API root, strips slashes, and gives a bare origin /v1', () => {
    expect(normalizeBaseUrl('http://127.0.0.1:8000/v1/')).toBe('http://127.0.0.1:8000/v1');
    expect(normalizeBaseUrl('http://127.0.0.1:8000')).toBe('http://127.0.0.1:8000/v1');
    expect(normalizeBaseUrl(' https://example.org/api/openai/v1 ')).toBe('https://example.org/api/openai/v1');
    expect(() => normalizeBaseUrl('localhost:8000')).toThrow(UserError);
    expect(() => normalizeBaseUrl('not a url')).toThrow(UserError);
  });
});

describe('openai engine', () => {
  it('connects with the key from PTB_OPENAI_API_KEY before OPENAI_API_KEY, and the client works', async () => {
    const openai = openaiEngineFor({
      env: {
        PTB_OPENAI_BASE_URL: `http://127.0.0.1:${engine.port}`,
        PTB_OPENAI_API_KEY: engine.apiKey,
        OPENAI_API_KEY: 'wrong-key',
      },
    });
    const handle = await openai.start(startOpts);
    expect(handle).toMatchObject({
      baseUrl: `http://127.0.0.1:${engine.port}/v1`,
      apiKey: engine.apiKey,
      modelName: 'served-model',
    });
    expect(engine.stats.requests).toBe(1); // the /v1/models check
    const reply = await openAIChatClient(handle).chat(
      { messages: [{ role: 'user', content: 'n = 5' }] },
      { maxTokens: 4 },
    );
    expect(reply.text).toBe('ANSWER: 5');
    await handle.stop();
    await openAIChatClient(handle).chat(
      { messages: [{ role: 'user', content: 'still 6' }] },
      { maxTokens: 4 },
    );
    expect(engine.stats.chatRequests).toBe(2); // stop() left the endpoint alone
  });

  it('falls back to OPENAI_API_KEY and lets explicit options win over the environment', async () => {
    const viaOpenAIKey = openaiEngineFor({
      env: { PTB_OPENAI_BASE_URL: engine.baseUrl, OPENAI_API_KEY: engine.apiKey },
    });
    expect((await viaOpenAIKey.start(startOpts)).apiKey).toBe(engine.apiKey);

    const explicit = openaiEngineFor({
      baseUrl: engine.baseUrl,
      apiKey: engine.apiKey,
      model: 'served-model',
      env: { PTB_OPENAI_BASE_URL: 'http://127.0.0.1:1/v1', PTB_OPENAI_API_KEY: 'wrong' },
    });
    const handle = await explicit.start({ model: 'ignored-because-explicit', logFile: '/dev/null' });
    expect(handle.modelName).toBe('served-model');
  });

  it('asks for a URL when none is configured', async () => {
    const err = await userError(openaiEngineFor({ env: {} }).start(startOpts));
    expect(err.hint).toContain('PTB_OPENAI_BASE_URL');
  });

  it('reads the process environment in the exported engine', async () => {
    const saved = { url: process.env.PTB_OPENAI_BASE_URL, key: process.env.PTB_OPENAI_API_KEY };
    process.env.PTB_OPENAI_BASE_URL = engine.baseUrl;
    process.env.PTB_OPENAI_API_KEY = engine.apiKey;
    try {
      const handle = await openaiEngine.start(startOpts);
      expect(handle.baseUrl).toBe(engine.baseUrl);
    } finally {
      for (const [name, value] of [
        ['PTB_OPENAI_BASE_URL', saved.url],
        ['PTB_OPENAI_API_KEY', saved.key],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('explains an unreachable endpoint', async () => {
    const port = await freePort();
    const err = await userError(
      openaiEngineFor({ baseUrl: `http://127.0.0.1:${port}/v1`, apiKey: 'k' }).start(startOpts),
    );
    expect(err.message).toContain('cannot reach');
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('explains a refused key', async () => {
    const err = await userError(
      openaiEngineFor({ baseUrl: engine.baseUrl, apiKey: 'wrong' }).start(startOpts),
    );
    expect(err.message).toContain('refused the API key (HTTP 401)');
    expect(err.hint).toContain('OPENAI_API_KEY');
  });

  it('explains a base URL that is not the API root', async () => {
    const err = await userError(
      openaiEngineFor({ baseUrl: `http://127.0.0.1:${engine.port}/api`, apiKey: engine.apiKey }).start(
        startOpts,
      ),
    );
    expect(err.message).toContain('HTTP 404');
  });

  it('refuses a model the endpoint does not serve, unless verification is off', async () => {
    const err = await userError(
      openaiEngineFor({ baseUrl: engine.baseUrl, apiKey: engine.apiKey }).start({
        ...startOpts,
        model: 'other',
      }),
    );
    expect(err.message).toContain('does not serve the model "other"');
    expect(err.message).toContain('served-model');

    const lenient = openaiEngineFor({ baseUrl: engine.baseUrl, apiKey: engine.apiKey, verifyModel: false });
    expect((await lenient.start({ ...startOpts, model: 'other' })).modelName).toBe('other');
  });
});
