import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AssetCache } from '../../src/hub/assetCache.ts';
import type { AssetPin } from '../../src/hub/assetPin.ts';
import { sha256Text } from '../../src/hub/sha256.ts';

const BODY = '{"question": "1+1?", "answer": "#### 2"}\n';
let server: Server;
let base: string;
const seenAuth: Array<string | undefined> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seenAuth.push(req.headers.authorization);
    if (req.url === '/gated') {
      res.writeHead(401).end('no');
      return;
    }
    if (req.url === '/missing') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': Buffer.byteLength(BODY) }).end(BODY);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function pin(over: Partial<AssetPin> = {}): AssetPin {
  return {
    part: 'test',
    description: 'test split',
    url: `${base}/data.jsonl`,
    sha256: sha256Text(BODY),
    format: 'jsonl',
    fileName: 'test.jsonl',
    ...over,
  };
}

describe('AssetCache', () => {
  it('downloads, verifies the pinned sha256 and serves later loads from the cache', async () => {
    const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-cache-')));
    let progressCalls = 0;
    const got = await cache.resolve('gsm8k', pin(), { onProgress: () => progressCalls++ });
    expect(readFileSync(got.path, 'utf8')).toBe(BODY);
    expect(got.entry).toMatchObject({ source: 'pinned', verified: true, sha256: sha256Text(BODY) });
    expect(progressCalls).toBeGreaterThan(0);
    const again = await cache.resolve('gsm8k', pin(), { offline: true });
    expect(again.path).toBe(got.path);
  });

  it('refuses a download whose sha256 differs from the pin, and stores nothing', async () => {
    const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-cache-')));
    await expect(cache.resolve('gsm8k', pin({ sha256: 'a'.repeat(64) }))).rejects.toThrow(/sha256/);
    expect(cache.entry('gsm8k', 'test')).toBeUndefined();
  });

  it('keeps the cached copy when a forced re-download does not match the pin', async () => {
    const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-cache-')));
    const good = await cache.pull('gsm8k', pin());
    await expect(cache.pull('gsm8k', pin({ sha256: 'b'.repeat(64) }))).rejects.toThrow(/sha256/);
    expect(readFileSync(good.path, 'utf8')).toBe(BODY);
    expect(cache.entry('gsm8k', 'test')).toMatchObject({ verified: true, sha256: sha256Text(BODY) });
    expect(readdirSync(join(cache.root, 'gsm8k', 'test')).sort()).toEqual(['source.json', 'test.jsonl']);
  });

  it('keeps a local copy that a download replaces', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-cache-'));
    const cache = new AssetCache(join(dir, 'cache'));
    const file = join(dir, 'mine.jsonl');
    writeFileSync(file, 'my own rows\n');
    await cache.import('gsm8k', pin({ sha256: null }), file);
    await cache.pull('gsm8k', pin());
    const previous = readdirSync(join(cache.root, 'gsm8k', 'test', 'previous'));
    expect(previous).toHaveLength(1);
    expect(
      readFileSync(join(cache.root, 'gsm8k', 'test', 'previous', previous[0]!, 'local-mine.jsonl'), 'utf8'),
    ).toBe('my own rows\n');
  });

  it('records the hash on first fetch for pins without one, and marks it unverified', async () => {
    const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-cache-')));
    const got = await cache.resolve('gsm8k', pin({ sha256: null }));
    expect(got.entry).toMatchObject({ verified: false, sha256: sha256Text(BODY) });
  });

  it('detects a cached file that was edited after it was stored', async () => {
    const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-cache-')));
    const got = await cache.resolve('gsm8k', pin());
    writeFileSync(got.path, `${BODY}{"question": "planted"}\n`);
    await expect(cache.resolve('gsm8k', pin())).rejects.toThrow(/has changed since it was stored/);
  });

  it('offline with an empty cache names the file and the commands that fetch or import it', async () => {
    const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-cache-')));
    const err = await cache.resolve('gsm8k', pin(), { offline: true }).catch((e) => e);
    expect(err.message).toMatch(/test split/);
    expect(err.hint).toMatch(/ptb data pull gsm8k/);
    expect(err.hint).toMatch(/ptb data import gsm8k --part test/);
  });

  it('gated pins need HF_TOKEN before any request is made', async () => {
    const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-cache-')));
    const before = seenAuth.length;
    await expect(cache.resolve('gpqamain', pin({ gated: true }))).rejects.toThrow(/HF_TOKEN/);
    expect(seenAuth.length).toBe(before);
  });

  it('reports refused and missing downloads clearly', async () => {
    const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-cache-')));
    await expect(cache.resolve('x', pin({ url: `${base}/gated` }))).rejects.toThrow(/refused \(HTTP 401\)/);
    await expect(cache.resolve('x', pin({ url: `${base}/missing` }))).rejects.toThrow(/HTTP 404/);
  });

  it('imports a local copy and records it as local with its sha256', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-cache-'));
    const cache = new AssetCache(join(dir, 'cache'));
    const file = join(dir, 'mine.jsonl');
    writeFileSync(file, BODY);
    const got = await cache.import('gsm8k', pin(), file);
    expect(got.entry).toMatchObject({
      source: 'local',
      origin: file,
      sha256: sha256Text(BODY),
      verified: true,
    });
    const again = await cache.resolve('gsm8k', pin(), { offline: true });
    expect(readFileSync(again.path, 'utf8')).toBe(BODY);
  });
});
