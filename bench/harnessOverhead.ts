/**
 * Harness overhead of `ptb eval`: the evaluation flow (pool, scoring, SQLite records, progress
 * events) against a stand-in engine, versus a bare client sending the same requests at the same
 * concurrency, in one run. Target: ratio ≤ 1.05.
 *
 *   npx tsx bench/harnessOverhead.ts [requests=2000] [concurrency=64] [latencyMs=25]
 */

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PROTOCOLS } from '../src/core/protocols.ts';
import { openaiEngineFor } from '../src/engines/openai.ts';
import { SERVER_SIDE_TEMPLATE } from '../src/eval/chatTemplates.ts';
import { runPool } from '../src/eval/pool.ts';
import { runEval } from '../src/eval/runEval.ts';
import { openDb } from '../src/store/db.ts';
import { EvalRepo } from '../src/store/evalRepo.ts';
import { numbersBenchmark } from '../test/helpers/numbersBenchmark.ts';

const [requests = 2000, concurrency = 64, latencyMs = 25] = process.argv.slice(2).map(Number);

/** The leanest client: node:http with keep-alive (faster here than fetch), parse the JSON, nothing else. */
async function bareClient(
  baseUrl: string,
  apiKey: string,
  model: string,
  prompts: string[],
): Promise<number> {
  const agent = new http.Agent({ keepAlive: true });
  const url = new URL(`${baseUrl}/chat/completions`);
  const post = (content: string) =>
    new Promise<void>((resolve, reject) => {
      const body = JSON.stringify({ model, messages: [{ role: 'user', content }], max_tokens: 400 });
      const req = http.request(
        url,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            JSON.parse(Buffer.concat(chunks).toString('utf8'));
            resolve();
          });
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const t0 = performance.now();
  await runPool(prompts, concurrency, (content) => post(content));
  const ms = performance.now() - t0;
  agent.destroy();
  return ms;
}

async function harness(baseUrl: string, apiKey: string, model: string): Promise<number> {
  const { benchmark } = numbersBenchmark(requests);
  const prepared = await benchmark.prepare({ asset: async () => ({}) as never });
  const dir = mkdtempSync(join(tmpdir(), 'ptb-bench-'));
  const repo = new EvalRepo(openDb(join(dir, 'ptb.db')));
  const t0 = performance.now();
  await runEval(repo, {
    benchmark,
    prepared,
    provenance: [],
    model,
    engine: openaiEngineFor({ baseUrl, apiKey }),
    template: SERVER_SIDE_TEMPLATE,
    limit: null,
    concurrency,
    maxTokensLadder: [400, 300, 200],
    protocol: PROTOCOLS['v1.0'],
    sampling: {},
    seed: 0,
    evalsDir: join(dir, 'evals'),
    resume: 'fresh',
  });
  return performance.now() - t0;
}

// The engine runs in its own process, as a real one would: ptb's CPU time must not slow the server.
const child = spawn(
  process.execPath,
  ['--import', 'tsx', join(import.meta.dirname, 'standInServer.ts'), String(latencyMs)],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
const [firstLine] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
const server = JSON.parse(firstLine) as { baseUrl: string; apiKey: string; modelName: string };
const { benchmark } = numbersBenchmark(requests);
const prompts = (await benchmark.prepare({ asset: async () => ({}) as never })).samples.map((s) =>
  String(s.record.question),
);
// Warm up both paths once, then alternate to cancel drift.
await bareClient(server.baseUrl, server.apiKey, server.modelName, prompts.slice(0, 200));
const bare: number[] = [];
const ptb: number[] = [];
for (let i = 0; i < 3; i++) {
  bare.push(await bareClient(server.baseUrl, server.apiKey, server.modelName, prompts));
  ptb.push(await harness(server.baseUrl, server.apiKey, server.modelName));
}
child.kill('SIGTERM');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const b = median(bare);
const p = median(ptb);
console.log(`requests=${requests} concurrency=${concurrency} stand-in latency=${latencyMs} ms`);
console.log(
  `bare client: ${(b / 1000).toFixed(2)} s (median of 3)   ptb eval: ${(p / 1000).toFixed(2)} s   ratio ${(p / b).toFixed(3)}`,
);
