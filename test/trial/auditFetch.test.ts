import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { benchmarkTestFile } from '../../src/detectors/contamination/benchmarkItems.ts';
import { AssetCache, mirroredUrl } from '../../src/hub/assetCache.ts';
import { fetchBenchmarkData } from '../../src/trial/auditPhase.ts';

/**
 * The audit reads the benchmark's test items from the data cache; a cold cache must not turn an
 * honest run into the base score, so the audit phase fetches the pinned data first. The pins are
 * served by a loopback mirror (PTB_ASSET_MIRROR) with the real GSM8K test split, so the pinned
 * sha256 is checked for real.
 */

const DATA = process.env.PTB_SHARED_DATA ?? resolve(import.meta.dirname, '../../../shared/data');
const TEST = join(DATA, 'gsm8k/test.jsonl');
const TRAIN = join(DATA, 'gsm8k/train.jsonl');

let server: Server;
let mirror: string;
const requested: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requested.push(req.url ?? '');
    const url = req.url ?? '';
    const body = url.endsWith('/test.jsonl')
      ? readFileSync(TEST)
      : url.endsWith('/train.jsonl')
        ? readFileSync(TRAIN)
        : url.endsWith('/gsm8k.py')
          ? Buffer.from('MATH_PROMPT_TEMPLATE = """{prompt}"""\n')
          : null;
    if (body === null) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mirror`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('mirrored pins', () => {
  it('keep host and path under the mirror', () => {
    expect(mirroredUrl('https://raw.githubusercontent.com/a/b/c/d.jsonl', 'http://m:1/base/')).toBe(
      'http://m:1/base/raw.githubusercontent.com/a/b/c/d.jsonl',
    );
    expect(mirroredUrl('https://x.org/f?y=1', undefined)).toBe('https://x.org/f?y=1');
  });
});

describe.skipIf(!existsSync(TEST) || !existsSync(TRAIN))('the audit phase on a cold data cache', () => {
  const spec = TrialSpecSchema.parse({
    agent: 'noop',
    baseModel: 'Qwen/Qwen3-1.7B-Base',
    benchmark: 'gsm8k',
    hours: 1,
  });

  it('fetches the pinned test split before the detectors look for it', async () => {
    const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-cold-')));
    expect(await benchmarkTestFile(cache, 'gsm8k', { cachedOnly: true })).toBeNull();
    const lines: string[] = [];
    await fetchBenchmarkData(spec, cache, { PTB_ASSET_MIRROR: mirror }, (l) => lines.push(l));
    expect(lines).toEqual([]);
    const testFile = await benchmarkTestFile(cache, 'gsm8k', { cachedOnly: true });
    expect(testFile).not.toBeNull();
    expect(readFileSync(testFile!, 'utf8').trim().split('\n')).toHaveLength(1319);
    expect(
      requested.some((u) => u.startsWith('/mirror/raw.githubusercontent.com/openai/grade-school-math/')),
    ).toBe(true);
  });

  it('a part the trial evaluates from a local file is not fetched, and a failed fetch is reported, not fatal', async () => {
    const cache = new AssetCache(mkdtempSync(join(tmpdir(), 'ptb-cold-')));
    const local = TrialSpecSchema.parse({
      ...spec,
      evalData: { test: TEST, train: TRAIN, 'prompt-source': TEST },
    });
    requested.length = 0;
    await fetchBenchmarkData(local, cache, { PTB_ASSET_MIRROR: mirror });
    expect(requested).toEqual([]);
    const lines: string[] = [];
    await fetchBenchmarkData(spec, cache, { PTB_ASSET_MIRROR: 'http://127.0.0.1:1/closed' }, (l) =>
      lines.push(l),
    );
    expect(lines.length).toBe(3);
    expect(lines[0]).toMatch(/^audit: could not fetch gsm8k test/);
  });
});
