/**
 * `ptb demo`'s trials and baselines are a walk-through, not results: reports, exports and the dashboard's
 * leaderboard leave them out unless asked (--include-demo), also in a store written by an older demo
 * (experiment `demo`, same tiny base model id, baseline source `ptb demo`).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEMO_BASE_MODEL,
  DEMO_EXPERIMENT,
  isDemoBaseline,
  isDemoTrial,
} from '../../src/core/demoNamespace.ts';
import { isUserError } from '../../src/core/errors.ts';
import { homeLayout } from '../../src/core/paths.ts';
import { type TrialSpecInput, TrialSpecSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { selectTrials, storedBaselines } from '../../src/report/collect.ts';
import { exportUpstream } from '../../src/report/exportUpstream.ts';
import { buildReport } from '../../src/report/report.ts';
import { type Db, openDb } from '../../src/store/db.ts';
import { EvalRepo } from '../../src/store/evalRepo.ts';
import { TrialRepo } from '../../src/store/trialRepo.ts';
import { computeLeaderboard } from '../../src/web/leaderboard.ts';
import { runCli } from '../helpers/runCli.ts';

const REAL_MODEL = 'Qwen/Qwen3-1.7B-Base';
let db: Db | undefined;

afterEach(() => db?.close());

/** A store with two real experiments, the current demo's trial and an older demo's (experiment `demo`). */
function store(): { repo: TrialRepo; home: string } {
  const home = mkdtempSync(join(tmpdir(), 'ptb-demo-ns-'));
  const layout = homeLayout(home);
  db = openDb(layout.db);
  const repo = new TrialRepo(db);
  const add = (id: string, over: Partial<TrialSpecInput>, accuracy: number) => {
    const spec = TrialSpecSchema.parse({
      agent: 'sft',
      baseModel: REAL_MODEL,
      benchmark: 'gsm8k',
      hours: 1,
      ...over,
    });
    const t = repo.create(spec, (x) => join(layout.trials, x), { id });
    mkdirSync(trialLayout(t.dir).root, { recursive: true });
    writeFileSync(trialLayout(t.dir).metrics, JSON.stringify({ accuracy }));
    repo.update(id, {
      status: 'completed',
      accuracy,
      final_score: accuracy,
      substituted: false,
      audit_verdict: 'clean',
      agent_seconds: 600,
      finished_at: new Date().toISOString(),
    });
  };
  add('trial-real-a', { experiment: 'real-a' }, 0.5);
  add('trial-real-b', { experiment: 'real-b' }, 0.4);
  add('trial-demo-new', { experiment: DEMO_EXPERIMENT, baseModel: DEMO_BASE_MODEL }, 0.1);
  add('trial-demo-old', { experiment: 'demo', baseModel: DEMO_BASE_MODEL }, 0.05);
  repo.addBaseline({
    model: REAL_MODEL,
    benchmark: 'gsm8k',
    kind: 'base',
    accuracy: 0.2,
    source: 'ptb baseline',
  });
  repo.addBaseline({
    model: DEMO_BASE_MODEL,
    benchmark: 'gsm8k',
    kind: 'base',
    accuracy: 0,
    source: 'ptb demo',
  });
  return { repo, home };
}

function userError(run: () => unknown): { message: string; hint?: string } {
  try {
    run();
  } catch (err) {
    if (isUserError(err)) return err as { message: string; hint?: string };
    throw err;
  }
  throw new Error('no error');
}

describe('the demo namespace', () => {
  it('recognises the demo by experiment or by its tiny model, old stores included', () => {
    expect(isDemoTrial({ experiment: DEMO_EXPERIMENT, base_model: REAL_MODEL })).toBe(true);
    expect(isDemoTrial({ experiment: 'demo', base_model: DEMO_BASE_MODEL })).toBe(true);
    expect(isDemoTrial({ experiment: 'demo', base_model: REAL_MODEL })).toBe(false);
    expect(isDemoBaseline({ model: DEMO_BASE_MODEL, source: 'x' })).toBe(true);
    expect(isDemoBaseline({ model: REAL_MODEL, source: 'ptb demo' })).toBe(true);
    expect(isDemoBaseline({ model: REAL_MODEL, source: 'ptb baseline' })).toBe(false);
  });

  it('report selection leaves the demo out unless asked, and says how to ask', () => {
    const { repo } = store();
    expect(selectTrials(repo).map((t) => t.id)).toEqual(['trial-real-a', 'trial-real-b']);
    expect(selectTrials(repo, [], { includeDemo: true }).map((t) => t.id)).toHaveLength(4);
    expect(storedBaselines(repo).map((b) => b.model)).toEqual([REAL_MODEL]);
    expect(storedBaselines(repo, { includeDemo: true })).toHaveLength(2);
    // `*` is not a request for the demo; naming it is, but needs the flag.
    expect(selectTrials(repo, ['*']).map((t) => t.id)).toEqual(['trial-real-a', 'trial-real-b']);
    const err = userError(() => selectTrials(repo, [DEMO_EXPERIMENT]));
    expect(err.message).toContain('matches only the demo');
    expect(err.hint).toContain('--include-demo');
    expect(selectTrials(repo, ['demo'], { includeDemo: true }).map((t) => t.id)).toEqual(['trial-demo-old']);
  });

  it('the leaderboard of `ptb report` and of the dashboard shows real rows complete, the demo only when asked', () => {
    const { repo } = store();
    const rows = buildReport(repo).leaderboard.rows;
    expect(rows.map((r) => r.name).sort()).toEqual(['real-a', 'real-b']);
    // Without the demo's tiny model in the grid, every real run is complete.
    expect(rows.every((r) => r.runs.every((run) => run.complete))).toBe(true);
    expect(buildReport(repo).leaderboard.models).toEqual(['Qwen3-1.7B-Base']);
    const withDemo = buildReport(repo, { includeDemo: true }).leaderboard;
    expect(withDemo.rows.map((r) => r.name).sort()).toEqual(['demo', 'ptb-demo', 'real-a', 'real-b']);
    const web = computeLeaderboard(repo);
    expect(web.ok && web.runs.map((r) => r.experiment).sort()).toEqual(['real-a', 'real-b']);
    const chosen = computeLeaderboard(repo, { experiments: ['real-b'] });
    expect(chosen.ok && chosen.runs.map((r) => r.experiment)).toEqual(['real-b']);
  });

  it('export writes neither the demo trials nor its tiny model baseline unless asked', () => {
    const { repo, home } = store();
    const out = join(home, 'export');
    const summary = exportUpstream(repo, out);
    expect(summary).toMatchObject({ runs: 2, baselines: 1, methods: ['real-a', 'real-b'] });
    expect(readdirSync(out).sort()).toEqual(['baseline_zeroshot', 'real-a', 'real-b']);
    expect(readdirSync(join(out, 'baseline_zeroshot'))).toEqual(['gsm8k_Qwen_Qwen3-1.7B-Base_1']);
    const all = join(home, 'export-all');
    expect(exportUpstream(repo, all, { includeDemo: true })).toMatchObject({ runs: 4, baselines: 2 });
    expect(existsSync(join(all, DEMO_EXPERIMENT))).toBe(true);
  });

  it("`ptb evals` lists real evaluations only, counts the demo's, and lists them with --include-demo", async () => {
    const { repo, home } = store();
    const evals = new EvalRepo(db!);
    const run = (id: string, model: string, outDir: string) =>
      evals.createRun({ id, benchmark: 'gsm8k', model, engine: 'hf', configKey: id, config: {}, outDir });
    run('eval-real', '/models/mine', join(home, 'evals', 'eval-real'));
    run('eval-demo-baseline', '/home/.ptb/demo/tiny-qwen3-base', join(home, 'evals', 'eval-demo-baseline'));
    run('eval-in-demo-trial', '/x/final_model', join(repo.get('trial-demo-new')!.dir, 'eval', 'run'));
    run('eval-in-real-trial', '/y/final_model', join(repo.get('trial-real-a')!.dir, 'eval', 'run'));
    repo.addBaseline({
      model: DEMO_BASE_MODEL,
      benchmark: 'gsm8k',
      kind: 'base',
      accuracy: 0,
      source: 'ptb demo',
      evalRunId: 'eval-demo-baseline',
    });
    db!.close();
    db = undefined;
    const listed = await runCli(['evals', '--json'], { PTB_HOME: home });
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((r) => r.id).sort()).toEqual([
      'eval-in-real-trial',
      'eval-real',
    ]);
    const text = await runCli(['evals'], { PTB_HOME: home });
    expect(text.stdout).toContain('2 evaluation(s) of `ptb demo` not shown: --include-demo lists them');
    const all = await runCli(['evals', '--json', '--include-demo'], { PTB_HOME: home });
    expect(JSON.parse(all.stdout)).toHaveLength(4);
  });
});
