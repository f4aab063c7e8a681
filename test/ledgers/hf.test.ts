/**
 * The Hugging Face pass-through against a stand-in Hub on loopback: URL classification, the download
 * ledger, CDN redirects followed with their bytes counted, Xet routes hidden, the harness token used
 * but never shown, and the real huggingface_hub client downloading through it.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DownloadEvent, DownloadEventSchema } from '../../src/core/trial.ts';
import { classifyHubPath, type HfPassThrough, startHfPassThrough } from '../../src/ledgers/hfPassThrough.ts';
import { type StandInHfHub, startStandInHfHub } from '../helpers/standInHfHub.ts';
import { testPython } from '../helpers/tinyModel.ts';

describe('classifyHubPath', () => {
  it('names the repo, revision and file of the Hub routes', () => {
    expect(classifyHubPath('/api/models/Qwen/Qwen3-1.7B-Base/revision/main')).toEqual({
      kind: 'model',
      repo: 'Qwen/Qwen3-1.7B-Base',
      revision: 'main',
      file: null,
    });
    expect(classifyHubPath('/api/datasets/openai/gsm8k/paths-info/refs%2Fconvert%2Fparquet')).toEqual({
      kind: 'dataset',
      repo: 'openai/gsm8k',
      revision: 'refs/convert/parquet',
      file: null,
    });
    expect(classifyHubPath('/api/datasets/openai/gsm8k/tree/main/data')).toMatchObject({
      revision: 'main',
      file: 'data',
    });
    expect(classifyHubPath('/api/models/gpt2')).toEqual({
      kind: 'model',
      repo: 'gpt2',
      revision: null,
      file: null,
    });
    expect(classifyHubPath('/Qwen/Qwen3-1.7B/resolve/abc123/model-00001-of-00002.safetensors')).toEqual({
      kind: 'model',
      repo: 'Qwen/Qwen3-1.7B',
      revision: 'abc123',
      file: 'model-00001-of-00002.safetensors',
    });
    expect(classifyHubPath('/datasets/Idavidrein/gpqa/resolve/refs%2Fpr%2F1/gpqa_main.csv')).toEqual({
      kind: 'dataset',
      repo: 'Idavidrein/gpqa',
      revision: 'refs/pr/1',
      file: 'gpqa_main.csv',
    });
    expect(classifyHubPath('/gpt2/resolve/main/sub%20dir/vocab.json')).toMatchObject({
      repo: 'gpt2',
      file: 'sub dir/vocab.json',
    });
    expect(classifyHubPath('/spaces/a/b/resolve/main/app.py').kind).toBe('space');
    expect(classifyHubPath('/api/whoami-v2')).toEqual({
      kind: 'other',
      repo: null,
      revision: null,
      file: null,
    });
  });
});

const MODEL = 'ptb-test/tiny-model';
const DATASET = 'ptb-test/tiny-dataset';
const HARNESS_TOKEN = `hf_${'HarnessOnlyToken'}0123456789abcdefXYZ`;
const weights = randomBytes(300_000);
const config = Buffer.from('{"model_type": "qwen3", "hidden_size": 8}\n');
const rows = Buffer.from('{"question": "1+1?", "answer": "2"}\n');
const parquet = randomBytes(50_000);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function fetchRaw(url: string, method: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>(
    (resolve, reject) => {
      const req = request(url, { method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      });
      req.on('error', reject);
      req.end();
    },
  );
}

function runPython(python: string, script: string, env: NodeJS.ProcessEnv) {
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(python, ['-c', script], { env, timeout: 120_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('Hugging Face pass-through', () => {
  let hub: StandInHfHub;
  let passThrough: HfPassThrough;
  let dir: string;
  let ledger: string;
  const events: DownloadEvent[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ptb-hf-'));
    hub = await startStandInHfHub([
      {
        kind: 'model',
        id: MODEL,
        files: [
          { path: 'config.json', content: config },
          { path: 'model.safetensors', content: weights, large: true },
        ],
      },
      {
        kind: 'dataset',
        id: DATASET,
        token: HARNESS_TOKEN,
        files: [
          { path: 'data/train.jsonl', content: rows },
          { path: 'data/test.parquet', content: parquet, large: true },
        ],
      },
    ]);
    ledger = join(dir, 'ledgers', 'downloads.jsonl');
    passThrough = await startHfPassThrough({
      listen: { port: 0 },
      upstream: hub.url,
      ledgerPath: ledger,
      token: HARNESS_TOKEN,
      onEvent: (event) => events.push(event),
    });
  });

  afterAll(async () => {
    await passThrough.close();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const ledgerEvents = () =>
    readFileSync(ledger, 'utf8')
      .trim()
      .split('\n')
      .map((line) => DownloadEventSchema.parse(JSON.parse(line)));

  it('answers HEAD of a large file with its metadata and no Xet route', async () => {
    const head = await fetchRaw(`${passThrough.url}/${MODEL}/resolve/main/model.safetensors`, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['x-repo-commit']).toBe(hub.commitOf(MODEL));
    expect(head.headers.etag).toBe(`"${sha256(weights)}"`);
    expect(head.headers['content-length']).toBe(String(weights.length));
    expect(head.headers.location).toBeUndefined();
    expect(head.headers['x-xet-hash']).toBeUndefined();
    expect(String(head.headers.link ?? '')).not.toContain('xet');
  });

  it('streams a large file from the CDN through itself, ranges included, and logs each request', async () => {
    const before = events.length;
    const full = await fetchRaw(`${passThrough.url}/${MODEL}/resolve/main/model.safetensors`, 'GET');
    expect(full.status).toBe(200);
    expect(sha256(full.body)).toBe(sha256(weights));
    const part = await fetchRaw(`${passThrough.url}/${MODEL}/resolve/main/model.safetensors`, 'GET', {
      range: 'bytes=10-19',
    });
    expect(part.status).toBe(206);
    expect(part.body.equals(weights.subarray(10, 20))).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(events.slice(before)).toEqual([
      expect.objectContaining({
        kind: 'model',
        repo: MODEL,
        revision: 'main',
        file: 'model.safetensors',
        method: 'GET',
        status: 200,
        bytes: weights.length,
      }),
      expect.objectContaining({ status: 206, bytes: 10 }),
    ]);
  });

  it('uses the harness token on the Hub only and never shows it', async () => {
    const gated = await fetchRaw(
      `${passThrough.url}/datasets/${DATASET}/resolve/main/data/test.parquet`,
      'GET',
      {
        authorization: 'Bearer hf_agentGuessedToken',
      },
    );
    expect(gated.status).toBe(200);
    expect(sha256(gated.body)).toBe(sha256(parquet));
    const hubCalls = hub.requests.filter((seen) => seen.server === 'hub');
    const cdnCalls = hub.requests.filter((seen) => seen.server === 'cdn');
    expect(hubCalls.length).toBeGreaterThan(0);
    expect(hubCalls.every((seen) => seen.authorization === `Bearer ${HARNESS_TOKEN}`)).toBe(true);
    expect(cdnCalls.length).toBeGreaterThan(0);
    expect(cdnCalls.every((seen) => seen.authorization === null)).toBe(true);
    expect(JSON.stringify(gated.headers)).not.toContain(HARNESS_TOKEN);
    expect(readFileSync(ledger, 'utf8')).not.toContain(HARNESS_TOKEN);
  });

  it('passes Hub errors through with their error code and logs them', async () => {
    const missing = await fetchRaw(`${passThrough.url}/api/models/ptb-test/absent/revision/main`, 'GET');
    expect(missing.status).toBe(404);
    expect(missing.headers['x-error-code']).toBe('RepositoryNotFound');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(events.at(-1)).toMatchObject({
      kind: 'model',
      repo: 'ptb-test/absent',
      revision: 'main',
      status: 404,
    });
  });

  it('serves the real huggingface_hub client: files, a snapshot and a gated dataset', async () => {
    const python = await testPython();
    const cache = join(dir, 'hf-cache');
    const before = ledgerEvents().length;
    const script = [
      'import json, sys',
      'from huggingface_hub import hf_hub_download, snapshot_download',
      `cfg = hf_hub_download("${MODEL}", "config.json")`,
      `w = hf_hub_download("${MODEL}", "model.safetensors", revision="main")`,
      `ds = snapshot_download("${DATASET}", repo_type="dataset")`,
      'print(json.dumps({"config": cfg, "weights": w, "dataset": ds}))',
    ].join('\n');
    // Asynchronous on purpose: the Hub and the pass-through live in this very process.
    const run = await runPython(python, script, {
      PATH: process.env.PATH,
      HOME: dir,
      HF_ENDPOINT: passThrough.url!,
      HF_HUB_CACHE: cache,
      HF_HUB_DISABLE_TELEMETRY: '1',
      HF_HUB_DISABLE_PROGRESS_BARS: '1',
      NO_PROXY: '127.0.0.1,localhost',
    });
    expect(run.stderr).not.toMatch(/Traceback/);
    expect(run.status).toBe(0);
    const paths = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, string>;
    expect(readFileSync(paths.config!).equals(config)).toBe(true);
    expect(sha256(readFileSync(paths.weights!))).toBe(sha256(weights));
    expect(readFileSync(join(paths.dataset!, 'data/train.jsonl')).equals(rows)).toBe(true);
    expect(sha256(readFileSync(join(paths.dataset!, 'data/test.parquet')))).toBe(sha256(parquet));
    expect(statSync(paths.weights!).size).toBe(weights.length);

    const logged = ledgerEvents().slice(before);
    const gets = logged.filter((event) => event.method === 'GET' && event.file);
    expect(gets.map((event) => `${event.kind}:${event.repo}:${event.file}:${event.bytes}`).sort()).toEqual(
      [
        `dataset:${DATASET}:data/test.parquet:${parquet.length}`,
        `dataset:${DATASET}:data/train.jsonl:${rows.length}`,
        `model:${MODEL}:config.json:${config.length}`,
        `model:${MODEL}:model.safetensors:${weights.length}`,
      ].sort(),
    );
    expect(
      logged.some((event) => event.kind === 'dataset' && event.file === null && event.status === 200),
    ).toBe(true);
    // Nothing went around the pass-through to the CDN, and the token is nowhere on disk.
    expect(
      hub.requests.filter((seen) => seen.server === 'cdn').every((seen) => seen.authorization === null),
    ).toBe(true);
    const files = readdirSync(cache, { recursive: true, withFileTypes: true }).filter((entry) =>
      entry.isFile(),
    );
    for (const entry of files)
      expect(readFileSync(join(entry.parentPath, entry.name), 'latin1')).not.toContain(HARNESS_TOKEN);
  }, 180_000);
});
