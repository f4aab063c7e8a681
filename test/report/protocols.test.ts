import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import { aggregate, type ReportTrial } from '../../src/report/aggregate.ts';
import { reportJson, reportNotes } from '../../src/report/formats.ts';
import { upstreamProtocol } from '../../src/report/importUpstream.ts';
import { oneProtocol } from '../../src/report/report.ts';
import { openDb } from '../../src/store/db.ts';
import { TrialRepo } from '../../src/store/trialRepo.ts';

function trial(id: string, experiment: string, protocol: 'v1.0' | 'v1.1', accuracy = 0.5): ReportTrial {
  return {
    id,
    experiment,
    source: 'ptb',
    agent: 'claude',
    agentConfig: 'opus',
    hours: 10,
    gpus: 1,
    seed: 0,
    baseModel: 'Qwen/Qwen3-1.7B-Base',
    benchmark: 'gsm8k',
    runNumber: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    status: 'completed',
    accuracy,
    protocol,
    verdict: 'clean',
    unverifiedPolicy: 'base-score',
    agentSeconds: null,
    inputTokens: null,
    outputTokens: null,
    costUsd: null,
  };
}

describe('a leaderboard never mixes protocols', () => {
  const mixed = [trial('a', 'paper_run', 'v1.0', 0.9), trial('b', 'current_run', 'v1.1', 0.4)];

  it('refuses a selection of several protocols, naming them and what to do', () => {
    expect(() => oneProtocol(mixed, undefined)).toThrow(UserError);
    try {
      oneProtocol(mixed, undefined);
    } catch (err) {
      expect((err as UserError).message).toMatch(/v1\.0 \(paper_run\) and v1\.1 \(current_run\)/);
      expect((err as UserError).hint).toMatch(/ptb report --protocol v1\.0 \| ptb report --protocol v1\.1/);
    }
  });

  it('--protocol keeps the trials of that protocol, and the table says which it is', () => {
    const chosen = oneProtocol(mixed, 'v1.1');
    expect(chosen.map((t) => t.id)).toEqual(['b']);
    const board = aggregate(chosen, []);
    expect(board.protocol).toBe('v1.1');
    expect(reportNotes(board)[0]).toBe('Evaluation protocol v1.1 (every score in this table).');
    expect(reportJson(board).protocol).toBe('v1.1');
    expect(() => oneProtocol([mixed[0]!], 'v1.1')).toThrow(
      /no selected trial was evaluated under protocol v1\.1/,
    );
    expect(() => oneProtocol(mixed, 'v9')).toThrow(/unknown protocol/);
  });

  it('the aggregation itself rejects a mixed input', () => {
    expect(() => aggregate(mixed, [])).toThrow(/several protocols/);
  });
});

describe('protocol of an imported upstream run', () => {
  const run = (files: Record<string, unknown>) => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ptb-up-')), 'gsm8k_Qwen_Qwen3-1.7B-Base_10');
    mkdirSync(dir, { recursive: true });
    for (const [name, value] of Object.entries(files)) writeFileSync(join(dir, name), JSON.stringify(value));
    return dir;
  };
  it('is v1.1 when the run has per-seed metrics, else v1.0', () => {
    expect(upstreamProtocol(run({ 'metrics.json': { accuracy: 0.5, stderr: 0.01 } }))).toBe('v1.0');
    expect(upstreamProtocol(run({ 'metrics.json': { accuracy: 0.5, num_seeds: 5, per_seed: {} } }))).toBe(
      'v1.1',
    );
    expect(upstreamProtocol(run({ 'metrics_seed72332.json': { accuracy: 0.5 } }))).toBe('v1.1');
    expect(upstreamProtocol(run({}))).toBe('v1.0');
  });
});

describe('baselines carry their protocol', () => {
  it('a trial or leaderboard of one protocol substitutes only its own baselines (else ones of unknown protocol)', () => {
    const repo = new TrialRepo(openDb(join(mkdtempSync(join(tmpdir(), 'ptb-bl-')), 'ptb.db')));
    const add = (model: string, accuracy: number, protocol: string | null) =>
      repo.addBaseline({ model, benchmark: 'gsm8k', kind: 'base', accuracy, source: 'test', protocol });
    add('Qwen/Qwen3-1.7B-Base', 0.1, 'v1.0');
    add('Qwen/Qwen3-1.7B-Base', 0.2, 'v1.1');
    add('Qwen/Qwen3-1.7B-Base', 0.3, 'v1.0'); // newest overall, but of the other protocol
    add('google/gemma-3-4b-pt', 0.4, null);
    const of = (p?: string) => Object.fromEntries(repo.baselines(p).map((b) => [b.model, b.accuracy]));
    expect(of('v1.1')).toEqual({ 'Qwen/Qwen3-1.7B-Base': 0.2, 'google/gemma-3-4b-pt': 0.4 });
    expect(of('v1.0')).toEqual({ 'Qwen/Qwen3-1.7B-Base': 0.3, 'google/gemma-3-4b-pt': 0.4 });
    expect(of()).toEqual({ 'Qwen/Qwen3-1.7B-Base': 0.3, 'google/gemma-3-4b-pt': 0.4 });
    // a known-protocol baseline wins over one of unknown protocol
    add('google/gemma-3-4b-pt', 0.5, 'v1.1');
    add('google/gemma-3-4b-pt', 0.6, null);
    expect(of('v1.1')['google/gemma-3-4b-pt']).toBe(0.5);
  });
});
