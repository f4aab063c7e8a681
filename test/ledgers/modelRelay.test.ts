import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { PriceTable } from '../../src/agents/prices.ts';
import { type ModelCallEvent, ModelCallEventSchema } from '../../src/core/trial.ts';
import { type ModelRelay, type ModelRelayOptions, startModelRelay } from '../../src/ledgers/modelRelay.ts';
import { type StandInApi, type StandInProvider, startStandInProvider } from '../helpers/standInProviders.ts';

const REAL_KEY = 'sk-real-secret-0123456789';
const RELAY_TOKEN = 'ptb-relay-token-abc';
const DECOY = 'sk-decoy-planted-key';
const SCRIPT = { commands: ['echo hi > note.txt'], finalMessage: 'Done.' };
// Stand-in model names are priced here so that costs and budgets can be checked exactly.
const PRICES: PriceTable = {
  'stand-in-model': { inputPerMTok: 1_000_000, outputPerMTok: 2_000_000, cacheReadPerMTok: 500_000 },
};

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function setup(api: StandInApi, provider: string, extra: Partial<ModelRelayOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-relay-'));
  const standIn = await startStandInProvider(api, { expectedKey: REAL_KEY, script: SCRIPT });
  const ledgerPath = join(dir, 'ledgers', 'model_calls.jsonl');
  const relay = await startModelRelay({
    listen: { port: 0 },
    upstreams: { [provider]: standIn.url },
    realKeys: { [provider]: REAL_KEY },
    relayToken: RELAY_TOKEN,
    decoyKeys: [DECOY],
    ledgerPath,
    prices: PRICES,
    ...extra,
  });
  cleanups.push(
    () => standIn.close(),
    () => relay.close(),
  );
  const ledger = (): ModelCallEvent[] => {
    try {
      return readFileSync(ledgerPath, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => ModelCallEventSchema.parse(JSON.parse(line)));
    } catch {
      return [];
    }
  };
  return { dir, standIn, relay, ledgerPath, ledger };
}

function anthropicBody(stream: boolean) {
  return {
    model: 'stand-in-model',
    max_tokens: 100,
    stream,
    messages: [{ role: 'user', content: 'hello' }],
    tools: [{ name: 'Bash', input_schema: { type: 'object', properties: { command: { type: 'string' } } } }],
  };
}

async function post(url: string, body: unknown, headers: Record<string, string>) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, text: await res.text(), contentType: res.headers.get('content-type') ?? '' };
}

function expectUsageMatches(event: ModelCallEvent, standIn: StandInProvider) {
  const reported = standIn.reportedUsage();
  expect(event.inputTokens).toBe(reported.inputTokens);
  expect(event.outputTokens).toBe(reported.outputTokens);
  expect(event.cacheReadTokens).toBe(reported.cachedTokens);
}

describe('model relay: credentials', () => {
  it('swaps the relay token in x-api-key for the real key and records the call', async () => {
    const { relay, standIn, ledger, ledgerPath } = await setup('anthropic', 'anthropic');
    const res = await post(`${relay.url}/anthropic/v1/messages`, anthropicBody(false), {
      'x-api-key': RELAY_TOKEN,
      'anthropic-version': '2023-06-01',
    });
    expect(res.status).toBe(200);
    const reply = JSON.parse(res.text);
    expect(reply.content.some((block: { type: string }) => block.type === 'tool_use')).toBe(true);
    expect(standIn.problems).toEqual([]);
    expect(standIn.requests[0]!.credential).toBe(REAL_KEY);
    const [event] = ledger();
    expect(event).toMatchObject({
      provider: 'anthropic',
      model: 'stand-in-model',
      method: 'POST',
      path: '/v1/messages',
      status: 200,
      stream: false,
      credential: 'relay-token',
    });
    expectUsageMatches(event!, standIn);
    // 1 $/token in, 2 $/token out (cache reads are 0 on the first turn)
    expect(event!.costUsd).toBeCloseTo(event!.inputTokens + 2 * event!.outputTokens, 6);
    expect(readFileSync(ledgerPath, 'utf8')).not.toContain(REAL_KEY);
    expect(readFileSync(ledgerPath, 'utf8')).not.toContain(RELAY_TOKEN);
  });

  it('swaps Authorization: Bearer (OpenAI) and ?key= / x-goog-api-key (Gemini)', async () => {
    const openai = await setup('openai', 'openai');
    const chat = await post(
      `${openai.relay.url}/openai/v1/chat/completions`,
      { model: 'stand-in-model', messages: [{ role: 'user', content: 'hi' }] },
      { authorization: `Bearer ${RELAY_TOKEN}` },
    );
    expect(chat.status).toBe(200);
    expect(openai.standIn.requests[0]!.credential).toBe(REAL_KEY);
    expect(openai.ledger()[0]!.credential).toBe('relay-token');

    const gemini = await setup('gemini', 'gemini');
    const body = { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] };
    const byQuery = await post(
      `${gemini.relay.url}/gemini/v1beta/models/stand-in-model:generateContent?key=${RELAY_TOKEN}`,
      body,
      {},
    );
    expect(byQuery.status).toBe(200);
    const byHeader = await post(
      `${gemini.relay.url}/gemini/v1beta/models/stand-in-model:generateContent`,
      body,
      {
        'x-goog-api-key': RELAY_TOKEN,
      },
    );
    expect(byHeader.status).toBe(200);
    expect(gemini.standIn.problems).toEqual([]);
    expect(gemini.standIn.requests.map((r) => r.credential)).toEqual([REAL_KEY, REAL_KEY]);
    const events = gemini.ledger();
    expect(events.map((e) => e.model)).toEqual(['stand-in-model', 'stand-in-model']);
    // the query string (which held the key) is not part of the recorded path
    expect(events[0]!.path).toBe('/v1beta/models/stand-in-model:generateContent');
  });

  it('refuses decoy keys, missing keys and foreign keys without contacting the provider', async () => {
    const { relay, standIn, ledger, ledgerPath } = await setup('anthropic', 'anthropic');
    const headers = { 'anthropic-version': '2023-06-01' };
    const decoy = await post(`${relay.url}/anthropic/v1/messages`, anthropicBody(false), {
      ...headers,
      'x-api-key': DECOY,
    });
    const none = await post(`${relay.url}/anthropic/v1/messages`, anthropicBody(false), headers);
    const other = await post(`${relay.url}/anthropic/v1/messages`, anthropicBody(false), {
      ...headers,
      authorization: 'Bearer sk-ant-someone-elses-key',
    });
    // the token plus a second, foreign credential is not the token alone
    const mixed = await post(`${relay.url}/anthropic/v1/messages`, anthropicBody(false), {
      ...headers,
      'x-api-key': RELAY_TOKEN,
      authorization: 'Bearer sk-ant-someone-elses-key',
    });
    expect([decoy.status, none.status, other.status, mixed.status]).toEqual([401, 401, 401, 401]);
    expect(JSON.parse(decoy.text).error.message).toMatch(/relay token/);
    expect(standIn.requests).toHaveLength(0);
    expect(ledger().map((e) => [e.credential, e.refused])).toEqual([
      ['decoy', 'decoy-credential'],
      ['none', 'none-credential'],
      ['other', 'other-credential'],
      ['other', 'other-credential'],
    ]);
    const text = readFileSync(ledgerPath, 'utf8');
    for (const secret of [DECOY, 'sk-ant-someone-elses-key', REAL_KEY]) expect(text).not.toContain(secret);
  });

  it('answers unknown providers with 404 and says which routes exist', async () => {
    const { relay, ledger } = await setup('anthropic', 'anthropic');
    const res = await post(`${relay.url}/mistral/v1/chat`, {}, { authorization: `Bearer ${RELAY_TOKEN}` });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.text).error.message).toContain('/anthropic');
    expect(ledger()[0]).toMatchObject({ provider: 'mistral', refused: 'unknown-provider', status: 404 });
  });

  it('never puts the real key into an error the caller sees when the provider is unreachable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-relay-'));
    // a port nothing listens on
    const probe = http.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const deadPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const relay = await startModelRelay({
      listen: { port: 0 },
      upstreams: { gemini: `http://127.0.0.1:${deadPort}` },
      realKeys: { gemini: REAL_KEY },
      relayToken: RELAY_TOKEN,
      ledgerPath: join(dir, 'calls.jsonl'),
    });
    cleanups.push(() => relay.close());
    const res = await post(`${relay.url}/gemini/v1beta/models/m:generateContent?key=${RELAY_TOKEN}`, {}, {});
    expect(res.status).toBe(502);
    expect(res.text).not.toContain(REAL_KEY);
    expect(readFileSync(join(dir, 'calls.jsonl'), 'utf8')).not.toContain(REAL_KEY);
  });
});

describe('model relay: usage from streamed answers', () => {
  it('Anthropic SSE: message_start input and cache tokens, message_delta output tokens', async () => {
    const { relay, standIn, ledger } = await setup('anthropic', 'anthropic');
    const res = await post(`${relay.url}/anthropic/v1/messages`, anthropicBody(true), {
      'x-api-key': RELAY_TOKEN,
      'anthropic-version': '2023-06-01',
    });
    expect(res.contentType).toContain('text/event-stream');
    expect(res.text).toContain('event: message_delta');
    const [event] = ledger();
    expect(event!.stream).toBe(true);
    expect(event!.outputTokens).toBeGreaterThan(1); // the delta's count, not message_start's placeholder
    expectUsageMatches(event!, standIn);
  });

  it('OpenAI Responses SSE (Codex): usage of response.completed, cached tokens split out', async () => {
    const { relay, standIn, ledger } = await setup('openai', 'openai');
    const body = {
      model: 'stand-in-model',
      stream: true,
      input: [
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go' }] },
        { type: 'function_call_output', call_id: 'call_x', output: 'x' },
      ],
      tools: [
        {
          type: 'function',
          name: 'shell',
          parameters: { type: 'object', properties: { command: { type: 'array' } } },
        },
      ],
    };
    // the stand-in refuses results for calls it never made: prime it with a real first turn
    const first = await post(
      `${relay.url}/openai/v1/responses`,
      { ...body, input: body.input.slice(0, 1) },
      {
        authorization: `Bearer ${RELAY_TOKEN}`,
      },
    );
    expect(first.text).toContain('response.completed');
    const callId = /"call_id":"(call_\d+)"/.exec(first.text)![1]!;
    body.input[1] = { type: 'function_call_output', call_id: callId, output: 'x' };
    await post(`${relay.url}/openai/v1/responses`, body, { authorization: `Bearer ${RELAY_TOKEN}` });
    expect(standIn.problems).toEqual([]);
    const events = ledger();
    expect(events).toHaveLength(2);
    const reported = standIn.reportedUsage();
    expect(events.reduce((n, e) => n + e.inputTokens, 0)).toBe(reported.inputTokens);
    expect(events.reduce((n, e) => n + e.outputTokens, 0)).toBe(reported.outputTokens);
    expect(events[1]!.cacheReadTokens).toBe(7);
    // price: input 1e6 $/Mtok = 1 $/token, cache 0.5 $/token, output 2 $/token
    const second = events[1]!;
    expect(second.costUsd).toBeCloseTo(second.inputTokens + 0.5 * 7 + 2 * second.outputTokens, 6);
  });

  it('Chat Completions SSE: the final usage chunk', async () => {
    const { relay, standIn, ledger } = await setup('openai', 'opencode');
    const res = await post(
      `${relay.url}/opencode/v1/chat/completions`,
      { model: 'stand-in-model', stream: true, messages: [{ role: 'user', content: 'hi' }] },
      { authorization: `Bearer ${RELAY_TOKEN}` },
    );
    expect(res.text).toContain('[DONE]');
    const [event] = ledger();
    expect(event).toMatchObject({ provider: 'opencode', stream: true });
    expectUsageMatches(event!, standIn);
  });

  it('Gemini streamGenerateContent (alt=sse, CRLF framing): usageMetadata and modelVersion', async () => {
    const { relay, standIn, ledger } = await setup('gemini', 'gemini');
    const res = await post(
      `${relay.url}/gemini/v1beta/models/stand-in-model:streamGenerateContent?alt=sse`,
      { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] },
      { 'x-goog-api-key': RELAY_TOKEN },
    );
    expect(res.text).toContain('\r\n\r\n');
    const [event] = ledger();
    expect(event).toMatchObject({ provider: 'gemini', model: 'stand-in-model', stream: true });
    expectUsageMatches(event!, standIn);
  });

  it('passes a stream through as it arrives (nothing is held back until the end)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-relay-'));
    let releaseRest!: () => void;
    const rest = new Promise<void>((resolve) => {
      releaseRest = resolve;
    });
    const upstream = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        'event: message_start\ndata: {"type":"message_start","message":{"model":"stand-in-model","usage":{"input_tokens":5,"output_tokens":1}}}\n\n',
      );
      // the rest is sent only after the client has seen the first event
      rest.then(() => {
        res.end('event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}\n\n');
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const relay = await startModelRelay({
      listen: { port: 0 },
      upstreams: { anthropic: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` },
      realKeys: { anthropic: REAL_KEY },
      relayToken: RELAY_TOKEN,
      ledgerPath: join(dir, 'calls.jsonl'),
      prices: PRICES,
    });
    cleanups.push(
      () => relay.close(),
      () => new Promise<void>((resolve) => upstream.close(() => resolve())),
    );
    const res = await fetch(`${relay.url}/anthropic/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': RELAY_TOKEN, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stand-in-model', stream: true }),
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const first = await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('first event held back')), 5000)),
    ]);
    expect(decoder.decode(first.value)).toContain('message_start');
    releaseRest();
    let text = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      text += decoder.decode(chunk.value);
    expect(text).toContain('message_delta');
    const event = ModelCallEventSchema.parse(JSON.parse(readFileSync(join(dir, 'calls.jsonl'), 'utf8')));
    expect([event.inputTokens, event.outputTokens]).toEqual([5, 9]);
  });

  it('reads usage from a gzip-encoded JSON answer and forwards the bytes unchanged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-relay-'));
    const payload = gzipSync(
      JSON.stringify({ model: 'stand-in-model', usage: { prompt_tokens: 12, completion_tokens: 3 } }),
    );
    const upstream = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(payload);
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const relay = await startModelRelay({
      listen: { port: 0 },
      upstreams: { openai: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` },
      realKeys: { openai: REAL_KEY },
      relayToken: RELAY_TOKEN,
      ledgerPath: join(dir, 'calls.jsonl'),
    });
    cleanups.push(
      () => relay.close(),
      () => new Promise<void>((resolve) => upstream.close(() => resolve())),
    );
    const res = await post(
      `${relay.url}/openai/v1/chat/completions`,
      { model: 'gpt-5-mini' },
      {
        authorization: `Bearer ${RELAY_TOKEN}`,
      },
    );
    expect(JSON.parse(res.text).usage.prompt_tokens).toBe(12); // fetch undid the gzip: bytes were intact
    const event = ModelCallEventSchema.parse(JSON.parse(readFileSync(join(dir, 'calls.jsonl'), 'utf8')));
    expect([event.model, event.inputTokens, event.outputTokens]).toEqual(['gpt-5-mini', 12, 3]);
    // gpt-5-mini from the built-in table: $0.25 in, $2 out per Mtok
    expect(event.costUsd).toBeCloseTo((12 * 0.25 + 3 * 2) / 1e6, 12);
  });
});

describe('model relay: budget and transport', () => {
  it('stops at the dollar budget: signals the harness and refuses further calls with 402', async () => {
    const { relay, standIn, ledger } = await setup('anthropic', 'anthropic', { budgetUsd: 5 });
    let signalled: { spentUsd: number; budgetUsd: number } | null = null;
    void relay.budgetExceeded.then((info) => {
      signalled = info;
    });
    const headers = { 'x-api-key': RELAY_TOKEN, 'anthropic-version': '2023-06-01' };
    const first = await post(`${relay.url}/anthropic/v1/messages`, anthropicBody(true), headers);
    expect(first.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(relay.isBudgetExceeded()).toBe(true);
    expect(signalled).toMatchObject({ budgetUsd: 5 });
    expect(signalled!.spentUsd).toBeGreaterThanOrEqual(5);
    const second = await post(`${relay.url}/anthropic/v1/messages`, anthropicBody(true), headers);
    expect(second.status).toBe(402);
    expect(JSON.parse(second.text).error.type).toBe('ptb_budget_exceeded');
    expect(standIn.requests).toHaveLength(1);
    expect(ledger().map((e) => e.refused ?? null)).toEqual([null, 'budget']);
    expect(relay.totals()).toMatchObject({ calls: 2, refusedCalls: 1 });
  });

  it('does not count calls of unpriced models against the budget, but reports them', async () => {
    const { relay, ledger } = await setup('anthropic', 'anthropic', { budgetUsd: 0.000001, prices: {} });
    const headers = { 'x-api-key': RELAY_TOKEN, 'anthropic-version': '2023-06-01' };
    await post(`${relay.url}/anthropic/v1/messages`, anthropicBody(false), headers);
    await post(`${relay.url}/anthropic/v1/messages`, anthropicBody(false), headers);
    expect(ledger().map((e) => e.costUsd)).toEqual([null, null]);
    expect(relay.isBudgetExceeded()).toBe(false);
    expect(relay.totals().unpricedCalls).toBe(2);
  });

  it('listens on a Unix socket (what the sandbox bridge connects to)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-relay-'));
    const standIn = await startStandInProvider('anthropic', { expectedKey: REAL_KEY, script: SCRIPT });
    const socketPath = join(dir, 'relay.sock');
    const relay: ModelRelay = await startModelRelay({
      listen: { socketPath },
      upstreams: { anthropic: standIn.url },
      realKeys: { anthropic: REAL_KEY },
      relayToken: RELAY_TOKEN,
      ledgerPath: join(dir, 'calls.jsonl'),
    });
    cleanups.push(
      () => standIn.close(),
      () => relay.close(),
    );
    expect(relay.url).toBeNull();
    const body = JSON.stringify(anthropicBody(false));
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          socketPath,
          path: '/anthropic/v1/messages',
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-api-key': RELAY_TOKEN,
            'anthropic-version': '2023-06-01',
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(status).toBe(200);
    expect(standIn.problems).toEqual([]);
  });
});
