import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { PROTOCOLS } from '../../src/core/protocols.ts';
import { openaiEngineFor } from '../../src/engines/openai.ts';
import { SERVER_SIDE_TEMPLATE } from '../../src/eval/chatTemplates.ts';
import { runEval } from '../../src/eval/runEval.ts';
import { openDb } from '../../src/store/db.ts';
import { EvalRepo } from '../../src/store/evalRepo.ts';
import { numbersBenchmark } from '../helpers/numbersBenchmark.ts';
import { rejection } from '../helpers/processes.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { type StandInEngine, startStandInEngine } from '../helpers/standInEngine.ts';

/** Issue 13's smaller items, each as a user meets it. */
const scratch = mkdtempSync(join(tmpdir(), 'ptb-firstday-'));
let server: StandInEngine | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('ptb trials', () => {
  it('shows experiment and model, the accuracy of scored imported runs, and says when a filter matches nothing', async () => {
    const home = tempHome();
    await runCli(['import', join(repoRoot, 'test/fixtures/upstream-results')], { PTB_HOME: home });
    const run = await runCli(['trials', '--experiment', 'codex_gpt-5.2_10h'], { PTB_HOME: home });
    expect(run.code).toBe(0);
    const [header, ...lines] = run.stdout.trim().split('\n');
    expect(header).toMatch(
      /^id\s+experiment\s+agent\s+model\s+benchmark\s+status\s+phase\s+time\s+score\s+restarts$/,
    );
    const scored = lines.find((l) => /Qwen3-4B-Base\s+humaneval\s+completed/.test(l));
    expect(scored).toMatch(
      /codex_gpt-5\.2_10h\s+codex\s+Qwen3-4B-Base\s+humaneval\s+completed\s+570\.0m\s+0\.400†/,
    );
    expect(run.stdout).toContain('† accuracy recorded by an imported run');
    const none = await runCli(['trials', '--experiment', 'nope', '--status', 'failed'], { PTB_HOME: home });
    expect(none.stdout).toMatch(
      /^no trials match --experiment nope --status failed \(36 trial\(s\) in experiments /,
    );
    const empty = await runCli(['trials'], { PTB_HOME: tempHome() });
    expect(empty.stdout).toMatch(/^no trials yet/);
    const bad = await runCli(['trials', '--status', 'done'], { PTB_HOME: home });
    expect(bad.stderr).toContain('unknown trial status "done"');
    expect(bad.stderr).toContain('Use one of: pending, running, interrupted, completed, failed.');
  });
});

describe('grid files', () => {
  it('name the key, the value and the valid ids of an unknown benchmark, and a misspelt key', async () => {
    const grid = join(scratch, 'grid.yaml');
    writeFileSync(
      grid,
      'experiment: x\nagents: [{id: noop, confg: a}]\nmodels: [Qwen/Qwen3-1.7B-Base]\nbenchmarks: [gsm8k, mmlu]\n',
    );
    const run = await runCli(['run', '--config', grid, '--dry-run'], { PTB_HOME: tempHome() });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      'benchmarks[1]: "mmlu" is not one of aime2025, arenahardwriting, bfcl, gpqamain, gsm8k, healthbench, humaneval',
    );
    expect(run.stderr).toContain('unknown key confg in agents[0]');
    expect(run.stderr).not.toContain('Invalid input');
  });
});

describe('a model folder that is not a checkpoint', () => {
  it('is named as such, with the checkpoints inside it', async () => {
    const folder = join(scratch, 'outputs');
    mkdirSync(join(folder, 'checkpoint-500'), { recursive: true });
    writeFileSync(join(folder, 'checkpoint-500', 'config.json'), '{}');
    const run = await runCli(['eval', '-m', folder, '-b', 'gsm8k', '--engine', 'hf', '--offline'], {
      PTB_HOME: tempHome(),
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`model ${folder} is not a checkpoint: it has no config.json`);
    expect(run.stderr).toContain(`Checkpoints inside it: ${join(folder, 'checkpoint-500')}`);
    expect(run.stderr).not.toMatch(/template/i);
  });
});

describe('context-length failures', () => {
  it('suggest --max-tokens when every rung of the ladder was refused for its length', async () => {
    server = await startStandInEngine({});
    const { benchmark } = numbersBenchmark(2);
    const prepared = await benchmark.prepare({ asset: async () => ({}) as never });
    const refusal = {
      kind: 'status' as const,
      status: 400,
      body: JSON.stringify({
        error: {
          message: 'The decoder prompt (length 5000) is longer than the maximum model length of 4096.',
        },
      }),
    };
    server.injectFaults(...Array(20).fill(refusal));
    const repo = new EvalRepo(openDb(join(scratch, 'ptb.db')));
    const err = await rejection(
      runEval(repo, {
        benchmark,
        prepared,
        provenance: [],
        model: server.modelName,
        engine: openaiEngineFor({ baseUrl: server.baseUrl, apiKey: server.apiKey }),
        template: SERVER_SIDE_TEMPLATE,
        limit: null,
        concurrency: 1,
        maxTokensLadder: benchmark.defaults.maxTokensLadder,
        protocol: PROTOCOLS['v1.0'],
        sampling: {},
        seed: 0,
        evalsDir: join(scratch, 'evals'),
        resume: 'auto',
        requestBackoffMs: 1,
      }),
    );
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).hint).toMatch(
      /context window: pass --max-tokens with less than the lowest rung/,
    );
  });
});
