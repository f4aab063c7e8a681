import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';

const FIXTURE = join(repoRoot, 'test/fixtures/upstream-results');
let home: string;

beforeAll(async () => {
  home = tempHome();
  const run = await runCli(['import', FIXTURE], { PTB_HOME: home });
  expect(run.code).toBe(0);
});

const report = (...args: string[]) => runCli(['report', ...args], { PTB_HOME: home });

describe('ptb report', () => {
  it('table (default): baselines, ranked rows, mean ± std, time, cost, and the notes', async () => {
    const run = await report();
    expect(run.code).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toMatch(/^#\s+Agent\s+Avg\s+GPQA\s+GSM8K\s+HumanEval\s+Runs\s+Agent time\s+Cost\/run$/);
    expect(run.stdout).toMatch(/–\s+Official instruct models\s+51\.1\s+32\.5\s+80\.0\s+65\.0\n/);
    expect(run.stdout).toMatch(/–\s+Base models \(zero-shot\)\s+11\.1\s+8\.0\s+20\.0\s+10\.0\n/);
    expect(run.stdout).toMatch(
      /1\s+claude_claude-opus-4-6_10h\s+26\.9 ± 3\.2\s+18\.0 ± 2\.8\s+47\.5 ± 3\.5\s+27\.5 ± 3\.5\s+2\s+6\.0 ± 1\.4 h \(60%\)\s+\$24\.00 ± 16\.97\n/,
    );
    expect(run.stdout).toMatch(
      /–\s+codex_gpt-5\.2_10h\s+incomplete\s+12\.5\s+32\.5\s+n\/a\s+0\/1\s+9\.5 h \(95%\)\s+n\/a\n/,
    );
    expect(run.stdout).toContain(
      'claude_claude-opus-4-6_10h_run2: 4 cell(s) scored as the base model (unverified 2, no-metrics 1, flagged 1).',
    );
    expect(run.stdout).toContain('incomplete run codex_gpt-5.2_10h');
    expect(run.stdout).toContain('humaneval × gemma-3-4b-pt: no trial');
  });

  it('json: per agent row avg, std, n_runs, per-benchmark {mean, std}, time and cost', async () => {
    const run = await report('--format', 'json');
    const doc = JSON.parse(run.stdout);
    const opus = doc.rows[0];
    expect(opus).toMatchObject({
      agent: 'claude_claude-opus-4-6_10h',
      scaffold: 'claude',
      n_runs: 2,
      avg: expect.closeTo(0.26882254585430376, 12),
      std: expect.closeTo(0.031612473460103103, 12),
      per_benchmark: {
        gsm8k: { mean: expect.closeTo(0.475, 12), std: expect.closeTo(0.0353553390593, 10), n: 2 },
      },
      time: { mean_s: 21600, budget_fraction: 0.6 },
      cost: { mean_usd: 24 },
    });
    expect(opus.runs[1].cells).toHaveLength(12);
    expect(doc.rows[1]).toMatchObject({ status: 'incomplete', avg: null, n_runs: 0 });
    expect(doc.weights).toMatchObject({ source: 'reference', subset: true });
  });

  it('markdown and csv', async () => {
    const md = await report('--format', 'markdown');
    expect(md.stdout.split('\n')[1]).toBe('|---|---|---:|---:|---:|---:|---:|---:|---:|');
    expect(md.stdout).toContain('| 1 | claude_claude-opus-4-6_10h | 26.9 ± 3.2 |');
    expect(md.stdout).toContain('| – | *Official instruct models* | 51.1 |');
    const csv = await report('--format', 'csv');
    const [header, ...rows] = csv.stdout.trim().split('\n');
    expect(header!.split(',').slice(0, 12)).toEqual([
      'kind',
      'agent',
      'scaffold',
      'agent_config',
      'hours',
      'status',
      'n_runs',
      'runs_total',
      'avg',
      'std',
      'gpqamain_mean',
      'gpqamain_std',
    ]);
    expect(rows).toHaveLength(4);
    expect(rows[3]).toBe(
      'agent,codex_gpt-5.2_10h,codex,gpt-5.2,10,incomplete,0,1,,,0.125,,0.325,,,,34200,,0.95,,,,',
    );
  });

  it('--out infers the format from the extension; --plots writes the SVG figures', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-report-out-'));
    const run = await report('--out', join(dir, 'board.html'), '--plots', join(dir, 'figs'));
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('board.html (html)');
    const html = readFileSync(join(dir, 'board.html'), 'utf8');
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html.match(/<svg /g)).toHaveLength(4);
    for (const f of ['leaderboard.svg', 'heatmap.svg', 'time.svg', 'score_over_time.svg']) {
      expect(readFileSync(join(dir, 'figs', f), 'utf8')).toMatch(/^<svg xmlns=/);
    }
    const md = await report('--out', join(dir, 'board.md'));
    expect(readFileSync(join(dir, 'board.md'), 'utf8')).toMatch(/^\| # \| Agent \|/);
    expect(md.code).toBe(0);
  });

  it('--weights from-baselines, --group, --models and --benchmarks shape the grid', async () => {
    const weights = JSON.parse((await report('--weights', 'from-baselines', '--format', 'json')).stdout);
    expect(weights.weights.values.gpqamain).toBeCloseTo(0.5394360441356764, 12);
    const grouped = JSON.parse(
      (await report('--group', 'all=claude_claude-opus-4-6_10h_run2,codex_gpt-5.2_10h', '--format', 'json'))
        .stdout,
    );
    expect(grouped.rows.map((r: { agent: string }) => r.agent).sort()).toEqual([
      'all',
      'claude_claude-opus-4-6_10h',
    ]);
    const sub = JSON.parse(
      (await report('--benchmarks', 'gsm8k', '--models', 'Qwen/Qwen3-4B-Base', '--format', 'json')).stdout,
    );
    expect(sub.models).toEqual(['Qwen3-4B-Base']);
    // One cell per run: run1 0.7, run2 0.6 → mean 0.65; codex 0.5.
    expect(sub.rows.map((r: { agent: string; avg: number }) => [r.agent, r.avg])).toEqual([
      ['claude_claude-opus-4-6_10h', expect.closeTo(0.65, 12)],
      ['codex_gpt-5.2_10h', expect.closeTo(0.5, 12)],
    ]);
  });

  it('user errors: unknown benchmark, weights without baselines, unknown format', async () => {
    const bad = await report('--benchmarks', 'mmlu');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown benchmark "mmlu"');
    const empty = tempHome();
    const noBaselines = await runCli(['report', '--weights', 'from-baselines', '--benchmarks', 'gsm8k'], {
      PTB_HOME: empty,
    });
    expect(noBaselines.code).toBe(1);
    expect(noBaselines.stderr).toContain('cannot derive weights from baselines: gsm8k: no instruct baseline');
    expect(noBaselines.stderr).toContain('ptb baseline --models');
    const format = await report('--format', 'pdf');
    expect(format.code).toBe(2);
    const nothing = await runCli(['report'], { PTB_HOME: empty });
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toContain('(no trials)');
  });
});
