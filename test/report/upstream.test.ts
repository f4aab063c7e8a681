import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TrialSpecInput } from '../../src/core/trial.ts';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { exportUpstream } from '../../src/report/exportUpstream.ts';
import { reportJson } from '../../src/report/formats.ts';
import { importUpstream } from '../../src/report/importUpstream.ts';
import { buildReport } from '../../src/report/report.ts';
import { type Db, openDb } from '../../src/store/db.ts';
import { TrialRepo } from '../../src/store/trialRepo.ts';
import { FIXTURE } from './fixture.ts';

const OPUS_RUN1 = 'claude_claude-opus-4-6_10h_run1_old_container';
const OPUS_RUN2 = 'claude_claude-opus-4-6_10h_run2';
const CODEX = 'codex_gpt-5.2_10h';

function freshStore(): { db: Db; repo: TrialRepo; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-report-'));
  const db = openDb(join(dir, 'ptb.db'));
  return { db, repo: new TrialRepo(db), dir };
}

function dump(db: Db): Record<string, unknown[]> {
  return Object.fromEntries(
    ['experiments', 'trials', 'audits', 'verdicts', 'baselines'].map((t) => [
      t,
      db.prepare(`SELECT * FROM ${t} ORDER BY rowid`).all(),
    ]),
  );
}

/** The report JSON without what differs between stores by construction (ids, experiment names). */
function comparable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(comparable);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => k !== 'trial_id' && k !== 'experiment')
        .map(([k, v]) => [k, comparable(v)]),
    );
  }
  return value;
}

// Hand-computed from the fixture README (reference weights rescaled over gsm8k, humaneval, gpqamain).
const W = { gsm8k: 0.0935882347031865, humaneval: 0.106148554819225, gpqamain: 0.22462215653948 };
const WSUM = W.gsm8k + W.humaneval + W.gpqamain;
const RUN1 = (W.gsm8k * 0.5 + W.humaneval * 0.3 + W.gpqamain * 0.2) / WSUM; // 0.29117594020802245
const RUN2 = (W.gsm8k * 0.45 + W.humaneval * 0.25 + W.gpqamain * 0.16) / WSUM; // 0.24646915150058513

describe('ptb import of a reference results tree', () => {
  it('creates one trial per run folder, audits from the judgement files, baselines from baseline_zeroshot', () => {
    const { repo } = freshStore();
    const summary = importUpstream(repo, FIXTURE);
    expect(summary.experiments).toEqual([OPUS_RUN1, OPUS_RUN2, CODEX]);
    expect(summary).toMatchObject({ created: 36, updated: 0, unchanged: 0, audits: 36, baselinesAdded: 24 });
    expect(summary.skipped).toEqual([
      { path: `${CODEX}/gsm8k_not_a_run`, reason: 'cluster id "run" is not a number' },
    ]);

    const newest = repo.findExternal(OPUS_RUN2, 'gsm8k_Qwen_Qwen3-1.7B-Base_10')!;
    expect(newest).toMatchObject({
      source: 'import',
      run_number: 10,
      agent: 'claude',
      agent_config: 'claude-opus-4-6',
      hours: 10,
      seed: 2,
      base_model: 'Qwen/Qwen3-1.7B-Base',
      accuracy: 0.6,
      agent_seconds: 7 * 3600,
      cost_usd: 1,
      status: 'completed',
      audit_verdict: 'clean',
      dir: resolve(FIXTURE, OPUS_RUN2, 'gsm8k_Qwen_Qwen3-1.7B-Base_10'),
    });

    const verdictOf = (method: string, folder: string) => {
      const t = repo.findExternal(method, folder)!;
      const audit = repo.latestAudit(t.id)!;
      expect(audit.verdicts).toHaveLength(1);
      expect(audit.verdicts[0]!.detector).toBe('upstream-judge');
      return {
        row: t.audit_verdict,
        combined: audit.combined,
        rule: audit.verdicts[0]!.rule,
        summary: audit.summary,
      };
    };
    expect(verdictOf(OPUS_RUN2, 'humaneval_Qwen_Qwen3-4B-Base_11')).toEqual({
      row: 'flagged',
      combined: 'flagged',
      rule: 'contamination',
      summary: 'reference judge cell "C"',
    });
    expect(verdictOf(OPUS_RUN2, 'gpqamain_HuggingFaceTB_SmolLM3-3B-Base_12')).toEqual({
      row: 'unverified',
      combined: 'unverified',
      rule: 'disallowed_model_judgement.txt garbled',
      summary: 'reference judge cell "M:IMPORTANT ERR"',
    });
    expect(verdictOf(OPUS_RUN2, 'gpqamain_google_gemma-3-4b-pt_13')).toMatchObject({
      row: 'unverified',
      rule: 'contamination_judgement.txt missing',
      summary: 'reference judge cell "C:ERR"',
    });
    const noMetrics = repo.findExternal(OPUS_RUN2, 'gsm8k_google_gemma-3-4b-pt_13')!;
    expect(noMetrics).toMatchObject({ status: 'failed', accuracy: null, audit_verdict: 'clean' });
    expect(noMetrics.error).toMatch(/^ERR: /);

    const baselines = repo.baselines();
    expect(baselines).toHaveLength(24);
    const gemma = baselines.find((b) => b.model === 'google/gemma-3-4b-pt' && b.benchmark === 'gsm8k')!;
    expect(gemma).toMatchObject({
      accuracy: 0.2,
      kind: 'base',
      source: 'import:baseline_zeroshot/gsm8k_google_gemma-3-4b-pt_10',
    });
    expect(baselines.find((b) => b.model === 'google/gemma-3-4b-it')!.kind).toBe('instruct');
    expect(baselines.filter((b) => b.kind === 'base')).toHaveLength(12);
  });

  it('is idempotent: importing twice leaves every row as it was', () => {
    const { db, repo } = freshStore();
    importUpstream(repo, FIXTURE);
    const before = dump(db);
    const again = importUpstream(repo, FIXTURE);
    expect(again).toMatchObject({
      created: 0,
      updated: 0,
      unchanged: 36,
      audits: 0,
      baselinesAdded: 0,
      baselinesUnchanged: 24,
    });
    expect(dump(db)).toEqual(before);
  });

  it('a judgement corrected by hand updates the trial and appends an audit', () => {
    const tree = mkdtempSync(join(tmpdir(), 'ptb-tree-'));
    cpSync(FIXTURE, tree, { recursive: true });
    const { repo } = freshStore();
    importUpstream(repo, tree);
    const folder = join(tree, OPUS_RUN2, 'humaneval_Qwen_Qwen3-4B-Base_11');
    writeFileSync(join(folder, 'contamination_judgement.txt'), 'no contamination detected\n');
    const summary = importUpstream(repo, tree);
    expect(summary).toMatchObject({ created: 0, updated: 1, unchanged: 35, audits: 1 });
    const t = repo.findExternal(OPUS_RUN2, 'humaneval_Qwen_Qwen3-4B-Base_11')!;
    expect(t.audit_verdict).toBe('clean');
    expect(repo.audits(t.id).map((a) => a.combined)).toEqual(['flagged', 'clean']);
  });

  it('gives the hand-computed leaderboard', () => {
    const { repo } = freshStore();
    importUpstream(repo, FIXTURE);
    const { leaderboard: lb } = buildReport(repo);
    expect(lb.models).toEqual(['Qwen3-1.7B-Base', 'Qwen3-4B-Base', 'SmolLM3-3B-Base', 'gemma-3-4b-pt']);
    expect(lb.benchmarks).toEqual(['gpqamain', 'gsm8k', 'humaneval']);
    expect(lb.rows.map((r) => r.name)).toEqual(['claude_claude-opus-4-6_10h', CODEX]);
    const opus = lb.rows[0]!;
    expect(opus.runs.map((r) => r.avg)).toEqual([expect.closeTo(RUN1, 12), expect.closeTo(RUN2, 12)]);
    expect(opus.avg).toBeCloseTo(0.26882254585430376, 12);
    expect(opus.std).toBeCloseTo(0.031612473460103103, 12);
    expect(opus.nRuns).toBe(2);
    expect(opus.perBenchmark.gsm8k!.mean).toBeCloseTo(0.475, 12);
    expect(opus.perBenchmark.gsm8k!.std).toBeCloseTo(0.03535533905932737, 12);
    expect(opus.perBenchmark.gpqamain!.mean).toBeCloseTo(0.18, 12);
    const run2 = opus.runs[1]!;
    expect(run2.substitutedCells).toBe(4);
    expect(
      run2.cells.filter((c) => c.substituted).map((c) => `${c.benchmark}/${c.model}/${c.reason}/${c.value}`),
    ).toEqual([
      'gpqamain/SmolLM3-3B-Base/unverified/0.06',
      'gpqamain/gemma-3-4b-pt/unverified/0.08',
      'gsm8k/gemma-3-4b-pt/no-metrics/0.2',
      'humaneval/Qwen3-4B-Base/flagged/0.2',
    ]);
    // time: 5 h and 7 h per trial; cost: (2.5+3.5)/2 × 12 trials and 1 × 12.
    expect(opus.time.mean).toBe(21600);
    expect(opus.time.std).toBeCloseTo(5091.168824543142, 6);
    expect(opus.cost.mean).toBeCloseTo(24, 12);
    expect(opus.cost.std).toBeCloseTo(16.97056274847714, 10);
    expect(opus.inputTokens.mean).toBeCloseTo(24000, 6); // run1 only: (1000+3000)/2 × 12
    const codex = lb.rows[1]!;
    expect(codex).toMatchObject({ avg: null, status: 'incomplete', nRuns: 0 });
    expect(codex.runs[0]!.problems).toEqual(['humaneval × gemma-3-4b-pt: no trial']);
    expect(lb.baselines.base.avg).toBeCloseTo(0.11146760398169928, 12);
    expect(lb.baselines.instruct.models).toEqual(['Qwen3-1.7B', 'Qwen3-4B', 'SmolLM3-3B', 'gemma-3-4b-it']);
    expect(lb.baselines.instruct.avg).toBeCloseTo(0.51105167284195, 12);

    const fromBaselines = buildReport(repo, { weights: 'from-baselines' }).leaderboard;
    expect(fromBaselines.weights.values).toEqual({
      gpqamain: expect.closeTo(0.5394360441356764, 12),
      gsm8k: expect.closeTo(0.2202697180220678, 12),
      humaneval: expect.closeTo(0.2402942378422558, 12),
    });
    expect(fromBaselines.rows[0]!.runs.map((r) => r.avg)).toEqual([
      expect.closeTo(0.29011033919084595, 12),
      expect.closeTo(0.24550469963220267, 12),
    ]);

    const only = buildReport(repo, { experiments: ['claude_*'] }).leaderboard;
    expect(only.rows.map((r) => r.name)).toEqual(['claude_claude-opus-4-6_10h']);
    expect(() => buildReport(repo, { experiments: ['nope'] })).toThrow(/no experiment matches "nope"/);
  });

  it('export → import gives the same leaderboard and the reference layout', () => {
    const first = freshStore();
    importUpstream(first.repo, FIXTURE);
    const out = join(first.dir, 'exported');
    const summary = exportUpstream(first.repo, out);
    expect(summary).toMatchObject({ runs: 36, baselines: 24, skippedUnfinished: 0 });
    expect(readdirSync(out).sort()).toEqual(['baseline_zeroshot', OPUS_RUN1, OPUS_RUN2, CODEX]);
    const garbled = join(out, OPUS_RUN2, 'gpqamain_HuggingFaceTB_SmolLM3-3B-Base_12');
    expect(readFileSync(join(garbled, 'disallowed_model_judgement.txt'), 'utf8')).toBe(
      'I could not decide\n',
    );
    expect(existsSync(join(out, OPUS_RUN2, 'gsm8k_Qwen_Qwen3-1.7B-Base_9', 'metrics.json'))).toBe(true);
    expect(existsSync(join(out, 'baseline_zeroshot', 'gsm8k_google_gemma-3-4b-pt_10', 'metrics.json'))).toBe(
      true,
    );

    const second = freshStore();
    importUpstream(second.repo, out);
    expect(comparable(reportJson(buildReport(second.repo).leaderboard))).toEqual(
      comparable(reportJson(buildReport(first.repo).leaderboard)),
    );
  });

  it('export → import of ptb trials keeps seeds, agents, verdicts, policies, cost and baselines', () => {
    const first = freshStore();
    const repo = first.repo;
    const model = join(first.dir, 'models', 'tiny_qwen');
    mkdirSync(model, { recursive: true });
    const spec = (over: Partial<TrialSpecInput>) =>
      TrialSpecSchema.parse({
        experiment: 'grid',
        agent: 'claude',
        agentConfig: 'claude-opus-4-6[1m]',
        baseModel: model,
        benchmark: 'gsm8k',
        hours: 2,
        sandbox: 'none',
        unsafeNoSandbox: true,
        ...over,
      });
    const make = (
      over: Partial<TrialSpecInput>,
      patch: Parameters<TrialRepo['update']>[1],
      files: Record<string, string> = {},
    ) => {
      const t = repo.create(spec(over), (id) => join(first.dir, 'trials', id));
      mkdirSync(t.dir, { recursive: true });
      for (const [name, text] of Object.entries(files)) writeFileSync(join(t.dir, name), text);
      repo.update(t.id, patch);
      return t;
    };
    make(
      { seed: 0 },
      {
        status: 'completed',
        accuracy: 0.5,
        audit_verdict: 'clean',
        agent_seconds: 3600,
        cost_usd: 1.5,
        input_tokens: 10,
        output_tokens: 5,
      },
      { 'metrics.json': '{"accuracy": 0.5}' },
    );
    make(
      { seed: 0, benchmark: 'humaneval' },
      { status: 'completed', accuracy: 0.9, audit_verdict: 'flagged' },
    );
    make({ seed: 1 }, { status: 'completed', accuracy: 0.3, audit_verdict: 'unverified' });
    make(
      { seed: 1, benchmark: 'humaneval', unverifiedPolicy: 'keep-score' },
      { status: 'completed', accuracy: 0.4, audit_verdict: 'unverified' },
    );
    make(
      { seed: 1, agent: 'codex', agentConfig: 'gpt-5.2' },
      { status: 'completed', accuracy: 0.7, audit_verdict: 'not_audited' },
    );
    make({ seed: 1, agent: 'codex', agentConfig: 'gpt-5.2' }, { status: 'running' });
    repo.addBaseline({ model, benchmark: 'gsm8k', kind: 'base', accuracy: 0.1, source: 'ptb baseline' });
    repo.addBaseline({ model, benchmark: 'humaneval', kind: 'base', accuracy: 0.05, source: 'ptb baseline' });

    const before = reportJson(buildReport(repo).leaderboard);
    expect(before.rows.map((r) => r.agent).sort()).toEqual([
      'grid_claude_claude-opus-4-6_1m__2h',
      'grid_codex_gpt-5.2_2h',
    ]);
    const out = join(first.dir, 'exported');
    const summary = exportUpstream(repo, out);
    expect(summary).toMatchObject({ runs: 5, baselines: 2, skippedUnfinished: 1 });
    const run = join(out, 'grid_claude_claude-opus-4-6_1m__2h_seed0', 'gsm8k_local_tiny-qwen_1');
    expect(readFileSync(join(run, 'time_taken.txt'), 'utf8')).toBe('01:00:00\n');
    expect(readFileSync(join(run, 'contamination_judgement.txt'), 'utf8')).toBe(
      'no contamination detected\n',
    );
    const flagged = join(out, 'grid_claude_claude-opus-4-6_1m__2h_seed0', 'humaneval_local_tiny-qwen_1');
    expect(readFileSync(join(flagged, 'contamination_judgement.txt'), 'utf8')).toBe(
      'contamination detected\n',
    );
    expect(
      existsSync(
        join(
          out,
          'grid_claude_claude-opus-4-6_1m__2h_seed1',
          'gsm8k_local_tiny-qwen_1',
          'contamination_judgement.txt',
        ),
      ),
    ).toBe(false);

    const second = freshStore();
    importUpstream(second.repo, out);
    expect(comparable(reportJson(buildReport(second.repo).leaderboard))).toEqual(comparable(before));
    // A second export of the same store writes the same tree again (stale folders are replaced).
    exportUpstream(repo, out);
    const third = freshStore();
    importUpstream(third.repo, out);
    expect(comparable(reportJson(buildReport(third.repo).leaderboard))).toEqual(comparable(before));
  });
});
