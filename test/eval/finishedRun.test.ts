import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOLS } from '../../src/core/protocols.ts';
import { openaiEngineFor } from '../../src/engines/openai.ts';
import { processStartTicks } from '../../src/engines/processes.ts';
import { SERVER_SIDE_TEMPLATE } from '../../src/eval/chatTemplates.ts';
import { finishedRun, recordModel } from '../../src/eval/finishedRun.ts';
import { type EvalSettings, runEval } from '../../src/eval/runEval.ts';
import { RUN_OWNER_FILE } from '../../src/eval/runOwner.ts';
import { runFinalEval } from '../../src/eval/seededEval.ts';
import { openDb } from '../../src/store/db.ts';
import { EvalRepo } from '../../src/store/evalRepo.ts';
import { numbersBenchmark } from '../helpers/numbersBenchmark.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { type StandInEngine, startStandInEngine } from '../helpers/standInEngine.ts';

/** Issue 13: a finished `ptb eval` run again is reported, not redone; a dead owner's run reads as interrupted. */
let server: StandInEngine | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function setup(protocol: 'v1.0' | 'v1.1') {
  server = await startStandInEngine({});
  const { benchmark } = numbersBenchmark(5);
  const prepared = await benchmark.prepare({ asset: async () => ({}) as never });
  const dir = mkdtempSync(join(tmpdir(), 'ptb-finished-'));
  const repo = new EvalRepo(openDb(join(dir, 'ptb.db')));
  const settings: EvalSettings = {
    benchmark,
    prepared,
    provenance: [],
    model: server.modelName,
    engine: openaiEngineFor({ baseUrl: server.baseUrl, apiKey: server.apiKey }),
    template: SERVER_SIDE_TEMPLATE,
    limit: null,
    concurrency: 2,
    maxTokensLadder: benchmark.defaults.maxTokensLadder,
    protocol: PROTOCOLS[protocol],
    sampling: {},
    seed: 0,
    evalsDir: join(dir, 'evals'),
    resume: 'auto',
    requestBackoffMs: 1,
  };
  return { repo, settings, server, dir };
}

describe('a finished evaluation run again', () => {
  it('is reported without sending a request; --fresh evaluates again', async () => {
    const { repo, settings, server } = await setup('v1.0');
    const first = await runEval(repo, settings);
    const requests = server.stats.chatRequests;
    const again = await runEval(repo, settings);
    expect(again).toMatchObject({ runId: first.runId, reused: true, attempts: 0, metrics: first.metrics });
    expect(server.stats.chatRequests).toBe(requests);
    const fresh = await runEval(repo, { ...settings, resume: 'fresh' });
    expect(fresh.runId).not.toBe(first.runId);
    expect(fresh.reused).toBeUndefined();
    expect(server.stats.chatRequests).toBe(2 * requests);
  });

  it('is reported with its seeds under the seeded protocol (v1.1)', async () => {
    const { repo, settings, server } = await setup('v1.1');
    const first = await runFinalEval(repo, settings, { greedy: false });
    const requests = server.stats.chatRequests;
    const again = await runFinalEval(repo, settings, { greedy: false });
    expect(again).toMatchObject({ runId: first.runId, reused: true, metrics: first.metrics });
    expect(again.seeds.map((s) => [s.seed, s.status, s.metrics?.accuracy])).toEqual(
      first.seeds.map((s) => [s.seed, s.status, s.metrics?.accuracy]),
    );
    expect(server.stats.chatRequests).toBe(requests);
  });

  it('is evaluated again when the checkpoint files changed', async () => {
    const { repo, dir } = await setup('v1.0');
    const model = join(dir, 'final_model');
    mkdirSync(model);
    writeFileSync(join(model, 'config.json'), '{}');
    writeFileSync(join(model, 'model.safetensors'), 'v1');
    const outDir = join(dir, 'evals', 'run');
    mkdirSync(outDir, { recursive: true });
    repo.createRun({
      id: 'eval-x',
      benchmark: 'numbers',
      model,
      engine: 'hf',
      configKey: 'k',
      config: {},
      outDir,
    });
    repo.setStatus('eval-x', 'completed', { metrics: { accuracy: 0.5 }, rung: 0 });
    recordModel(outDir, model);
    expect(finishedRun(repo, 'k', model)?.id).toBe('eval-x');
    writeFileSync(join(model, 'model.safetensors'), 'retrained weights');
    expect(finishedRun(repo, 'k', model)).toBeUndefined();
  });
});

describe('ptb evals', () => {
  it('shows a run still marked running as interrupted once its ptb process is gone', async () => {
    const home = tempHome();
    const repo = new EvalRepo(openDb(join(home, 'ptb.db')));
    const dead = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']));
    const owners = {
      'eval-dead': { pid: dead, startTicks: 1, host: hostname() },
      'eval-alive': { pid: process.pid, startTicks: processStartTicks(process.pid), host: hostname() },
      'eval-elsewhere': { pid: dead, startTicks: 1, host: 'another-node' },
    };
    for (const [id, owner] of Object.entries(owners)) {
      const outDir = join(home, 'evals', id);
      mkdirSync(outDir, { recursive: true });
      writeFileSync(join(outDir, RUN_OWNER_FILE), JSON.stringify(owner));
      repo.createRun({ id, benchmark: 'gsm8k', model: 'm', engine: 'hf', configKey: id, config: {}, outDir });
    }
    const run = await runCli(['evals', '--json'], { PTB_HOME: home });
    const status = Object.fromEntries(
      (JSON.parse(run.stdout) as Array<{ id: string; status: string }>).map((r) => [r.id, r.status]),
    );
    expect(status).toEqual({
      'eval-dead': 'interrupted',
      'eval-alive': 'running',
      'eval-elsewhere': 'running',
    });
  });
});
