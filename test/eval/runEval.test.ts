import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOLS } from '../../src/core/protocols.ts';
import { openaiEngineFor } from '../../src/engines/openai.ts';
import { SERVER_SIDE_TEMPLATE } from '../../src/eval/chatTemplates.ts';
import { requestSeed } from '../../src/eval/requestSeed.ts';
import { type EvalEvent, type EvalSettings, runEval } from '../../src/eval/runEval.ts';
import { openDb } from '../../src/store/db.ts';
import { EvalRepo } from '../../src/store/evalRepo.ts';
import { numbersBenchmark } from '../helpers/numbersBenchmark.ts';
import { type StandInEngine, startStandInEngine } from '../helpers/standInEngine.ts';

let server: StandInEngine | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function setup(n: number, standIn: Parameters<typeof startStandInEngine>[0] = {}) {
  server = await startStandInEngine(standIn);
  const { benchmark } = numbersBenchmark(n);
  const prepared = await benchmark.prepare({ asset: async () => ({}) as never });
  const dir = mkdtempSync(join(tmpdir(), 'ptb-runeval-'));
  const repo = new EvalRepo(openDb(join(dir, 'ptb.db')));
  const settings: EvalSettings = {
    benchmark,
    prepared,
    provenance: [],
    model: server.modelName,
    engine: openaiEngineFor({ baseUrl: server.baseUrl, apiKey: server.apiKey }),
    template: SERVER_SIDE_TEMPLATE,
    limit: null,
    concurrency: 4,
    maxTokensLadder: benchmark.defaults.maxTokensLadder,
    protocol: PROTOCOLS['v1.0'],
    sampling: {},
    seed: 0,
    evalsDir: join(dir, 'evals'),
    resume: 'auto',
    requestBackoffMs: 1,
  };
  return { repo, settings, server };
}

describe('runEval', () => {
  it('scores every sample, writes metrics.json and samples.jsonl, and records per-sample rows', async () => {
    const { repo, settings, server } = await setup(12);
    const events: EvalEvent[] = [];
    const result = await runEval(repo, settings, (e) => events.push(e));
    expect(result.metrics.accuracy).toBeCloseTo(4 / 12);
    expect(result.attempts).toBe(1);
    expect(JSON.parse(readFileSync(join(result.outDir, 'metrics.json'), 'utf8')).accuracy).toBeCloseTo(
      4 / 12,
    );
    const lines = readFileSync(join(result.outDir, 'samples.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(12);
    expect(JSON.parse(lines[0]!)).toMatchObject({ id: '0', score: 1, answer: '0' });
    expect(server.stats.chatRequests).toBe(12);
    expect(server.stats.maxInFlight).toBeLessThanOrEqual(4);
    expect(server.received.every((r) => r.body.temperature === undefined && r.body.max_tokens === 400)).toBe(
      true,
    );
    expect(events.filter((e) => e.type === 'sample')).toHaveLength(12);
    expect(repo.getRun(result.runId)?.status).toBe('completed');
  });

  it('scores a "maximum context length" 400 as the model output and completes at that max tokens, like the fork', async () => {
    // Prompts are ~9 words; a 350-word window rejects max_tokens 400 with vLLM's 400. The fork's
    // vLLM provider turns that refusal into the sample's output, so the evaluation completes at
    // the first rung with those outputs scored (here: no ANSWER line, so 0).
    const { repo, settings, server } = await setup(6, { contextWindow: 350 });
    const result = await runEval(repo, settings);
    expect(result.maxTokens).toBe(400);
    expect(result.rung).toBe(0);
    expect(result.metrics.accuracy).toBe(0);
    expect(repo.attempts(result.runId).map((a) => [a.rung, a.status])).toEqual([[0, 'completed']]);
    const rows = repo.samples(result.runId, 400);
    expect(rows).toHaveLength(6);
    expect(rows[0]!.reply_text).toMatch(
      /^'max_tokens' or 'max_completion_tokens' is too large: 400\. This model's maximum context length is 350 tokens/,
    );
    expect(rows.every((r) => r.finish_reason === 'length')).toBe(true);
    expect(server.stats.chatRequests).toBe(6);
  });

  it('moves down the ladder on a context refusal the fork does not score (a deterministic failure)', async () => {
    const { repo, settings, server } = await setup(4);
    server.injectFaults({
      kind: 'status',
      status: 400,
      body: JSON.stringify({
        error: {
          message: 'The decoder prompt (length 5000) is longer than the maximum model length of 4096.',
          type: 'BadRequestError',
          param: null,
          code: 400,
        },
      }),
    });
    const result = await runEval(repo, { ...settings, concurrency: 1 });
    expect(result.rung).toBe(1);
    expect(repo.attempts(result.runId).map((a) => [a.rung, a.status])).toEqual([
      [0, 'failed'],
      [1, 'completed'],
    ]);
    expect(readFileSync(join(result.outDir, 'final_eval_1.txt'), 'utf8')).toMatch(/context-length/);
  });

  it('stops an attempt at the per-attempt cap and goes on with the ladder', async () => {
    const { repo, settings, server } = await setup(3);
    server.injectFaults({ kind: 'hang' });
    const result = await runEval(repo, { ...settings, concurrency: 1, attemptTimeoutMs: 400 });
    const attempts = repo.attempts(result.runId);
    expect(attempts.map((a) => a.status)).toEqual(['failed', 'completed']);
    expect(attempts[0]!.error).toMatch(/ran past its 400 ms cap/);
    expect(readFileSync(join(result.outDir, 'final_eval_1.txt'), 'utf8')).toMatch(/per-attempt timeout/);
    expect(result.metrics.accuracy).toBeCloseTo(1 / 3);
  });

  it('protocol v1.1 gives every request its own seed from the run seed and the sample', async () => {
    const { repo, settings, server } = await setup(3);
    await runEval(repo, { ...settings, protocol: PROTOCOLS['v1.1'], seed: 72332 });
    const seeds = server.received.map((r) => r.body.seed);
    expect(seeds).toEqual(['0', '1', '2'].map((id) => requestSeed(72332, id)));
    expect(new Set(seeds).size).toBe(3);
    // v1.0 sends no seed at all
    const again = await setup(2);
    await runEval(again.repo, again.settings);
    expect(again.server.received.every((r) => r.body.seed === undefined)).toBe(true);
  });

  it('retries a failed attempt at the same max tokens without redoing recorded samples', async () => {
    const { repo, settings, server } = await setup(8);
    // Four 500s in a row (one try + three retries) fail a request, and with it attempt 1.
    server.injectFaults(
      { kind: 'delay', ms: 0 },
      { kind: 'delay', ms: 0 },
      ...Array(4).fill({ kind: 'status', status: 500 }),
    );
    const result = await runEval(repo, { ...settings, concurrency: 1 });
    const attempts = repo.attempts(result.runId);
    expect(attempts[0]?.status).toBe('failed');
    expect(attempts.at(-1)?.status).toBe('completed');
    expect(attempts.every((a) => a.rung === 0)).toBe(true);
    expect(result.metrics.accuracy).toBeCloseTo(3 / 8);
    // The two samples answered before the failure were not asked again.
    expect(server.stats.chatRequests).toBe(8 + 4);
  });

  it('resumes an interrupted evaluation from the recorded samples', async () => {
    const { repo, settings, server } = await setup(10, { latencyMs: 30 });
    const controller = new AbortController();
    let seen = 0;
    await expect(
      runEval(
        repo,
        { ...settings, concurrency: 1 },
        (e) => {
          if (e.type === 'sample' && ++seen === 4) controller.abort();
        },
        controller.signal,
      ),
    ).rejects.toThrow(/interrupted/);
    const first = repo.listRuns()[0]!;
    expect(first.status).toBe('interrupted');
    const before = server.stats.chatRequests;
    const result = await runEval(repo, settings);
    expect(result.runId).toBe(first.id);
    expect(result.resumed).toBe(true);
    expect(server.stats.chatRequests - before).toBeLessThanOrEqual(6);
    expect(result.metrics.accuracy).toBeCloseTo(4 / 10);
  });

  it('fails with the last error after the whole ladder (4 + 3 + 2 attempts) is exhausted', async () => {
    const { repo, settings, server } = await setup(2);
    server.injectFaults(
      ...Array(200).fill({ kind: 'status', status: 400, body: '{"error":{"message":"bad things"}}' }),
    );
    await expect(runEval(repo, settings)).rejects.toThrow(/every attempt of the retry ladder failed/);
    const run = repo.listRuns()[0]!;
    expect(run.status).toBe('failed');
    expect(repo.attempts(run.id).map((a) => a.rung)).toEqual([0, 0, 0, 0, 1, 1, 1, 2, 2]);
  });
});

describe('limitGrader', () => {
  it('keeps at most the limit of grader calls in flight', async () => {
    const { limitGrader } = await import('../../src/eval/limitedGrader.ts');
    let active = 0;
    let peak = 0;
    const grader = limitGrader(
      {
        model: 'm',
        baseUrl: 'http://x',
        async complete() {
          active++;
          peak = Math.max(peak, active);
          await new Promise((r) => setTimeout(r, 5));
          active--;
          return 'ok';
        },
      },
      3,
    );
    const out = await Promise.all(Array.from({ length: 20 }, () => grader.complete({ messages: [] })));
    expect(out).toHaveLength(20);
    expect(peak).toBe(3);
  });
});

describe('resume key', () => {
  it('does not depend on the order in which data parts finished loading', async () => {
    const { repo, settings } = await setup(6, { latencyMs: 20 });
    const a = {
      part: 'test',
      source: 'local' as const,
      path: '/t',
      sha256: 'a',
      origin: '/t',
      verified: false,
    };
    const b = {
      part: 'train',
      source: 'local' as const,
      path: '/u',
      sha256: 'b',
      origin: '/u',
      verified: false,
    };
    const controller = new AbortController();
    await expect(
      runEval(
        repo,
        { ...settings, provenance: [a, b], concurrency: 1 },
        (e) => {
          if (e.type === 'sample') controller.abort();
        },
        controller.signal,
      ),
    ).rejects.toThrow(/interrupted/);
    const first = repo.listRuns()[0]!;
    const again = await runEval(repo, { ...settings, provenance: [b, a] });
    expect(again.resumed).toBe(true);
    expect(again.runId).toBe(first.id);
  });
});

describe('engine start failures', () => {
  it('fails at once, without burning the ladder, when the engine cannot be launched at all', async () => {
    const { repo, settings } = await setup(2);
    const { createVllmEngine } = await import('../../src/engines/vllm.ts');
    const engine = createVllmEngine({ env: { PTB_VLLM_BIN: '/nonexistent/vllm', PATH: '' } });
    await expect(runEval(repo, { ...settings, engine })).rejects.toThrow(/vllm/i);
    const run = repo.listRuns()[0]!;
    expect(run.status).toBe('failed');
    expect(repo.attempts(run.id)).toHaveLength(1);
  });

  it('counts a server that crashes during start-up as a failed attempt of the ladder, as the reference does', async () => {
    const { repo, settings } = await setup(2);
    const { createVllmEngine } = await import('../../src/engines/vllm.ts');
    const { chmodSync } = await import('node:fs');
    const fake = join(import.meta.dirname, '../fixtures/fake-vllm/vllm.mjs');
    chmodSync(fake, 0o755);
    const engine = createVllmEngine({
      env: { ...process.env, PTB_VLLM_BIN: fake, FAKE_VLLM_MODE: 'crash' },
      healthIntervalMs: 50,
    });
    await expect(runEval(repo, { ...settings, engine, model: '/models/qwen-x' })).rejects.toThrow(
      /every attempt of the retry ladder failed/,
    );
    const run = repo.listRuns()[0]!;
    expect(repo.attempts(run.id).map((a) => a.rung)).toEqual([0, 0, 0, 0, 1, 1, 1, 2, 2]);
  }, 120_000);
});
