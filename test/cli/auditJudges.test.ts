import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { homeLayout } from '../../src/core/paths.ts';
import { openDb } from '../../src/store/db.ts';
import { TrialRepo } from '../../src/store/trialRepo.ts';
import { makeTrial, type TrialFixture } from '../audit/trialFixture.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { type StandInProvider, startStandInProvider } from '../helpers/standInProviders.ts';

const KEY = 'judge-cli-key';
const trials: TrialFixture[] = [];
let provider: StandInProvider | undefined;
let home: string | undefined;
afterEach(async () => {
  for (const t of trials.splice(0)) t.cleanup();
  await provider?.close();
  if (home) rmSync(home, { recursive: true, force: true });
  provider = home = undefined;
});

function registerTrials(n: number, experiment: string): string[] {
  home = tempHome();
  const db = openDb(homeLayout(home).db);
  const repo = new TrialRepo(db);
  const ids = Array.from({ length: n }, () => {
    const t = makeTrial({ experiment });
    trials.push(t);
    return repo.create(t.evidence.spec, () => t.evidence.layout.root).id;
  });
  db.close();
  return ids;
}

describe('ptb audit EXPERIMENT --judges', () => {
  it("re-judges every trial of an experiment, keeps the detectors' verdicts, stores each run, skips what is judged", async () => {
    const ids = registerTrials(3, 'exp-judged');
    for (const id of ids) {
      const r = await runCli(['audit', id, '--detectors', 'tamper,egress-rules'], { PTB_HOME: home });
      expect(r.code).toBe(0);
    }
    const answer = JSON.stringify({
      contamination: false,
      disallowed_model: false,
      justification: 'trained on train_data.jsonl only',
    });
    provider = await startStandInProvider('openai', {
      expectedKey: KEY,
      script: { commands: ['ls task', 'findings'], finalMessage: answer },
      toolNames: ['evidence'],
      models: ['local-judge'],
    });
    const env = {
      PTB_HOME: home,
      PTB_JUDGE_BASE_URL: provider.url,
      PTB_JUDGE_API_KEY: KEY,
      PTB_JUDGE_MODEL: 'local-judge',
    };
    const run = await runCli(
      [
        'audit',
        'exp-judged',
        '--judges',
        'contamination-model',
        '--judge-protocol',
        'v1.0',
        '--concurrency',
        '2',
        '--json',
      ],
      env,
    );
    expect(run.stderr).not.toMatch(/unexpected error/);
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as {
      trials: Array<{ trialId: string; status: string; combined: string }>;
    };
    expect(out.trials.map((t) => t.status)).toEqual(['audited', 'audited', 'audited']);
    expect(provider.problems).toEqual([]);
    // Each trial: one agent judge conversation of three turns (two tool calls, then the answer).
    expect(provider.requests.filter((r) => r.role === 'main')).toHaveLength(9);

    const db = openDb(homeLayout(home!).db);
    const repo = new TrialRepo(db);
    for (const id of ids) {
      const latest = repo.latestAudit(id)!;
      expect(latest.verdicts.map((v) => v.detector).sort()).toEqual([
        'egress-rules',
        'judge:contamination-model',
        'tamper',
      ]);
      expect(latest.combined).toBe('clean');
      expect(repo.audits(id)).toHaveLength(2);
      const dir = join(
        trials[ids.indexOf(id)]!.evidence.layout.audits,
        latest.id,
        'judges',
        'contamination-model',
      );
      expect(JSON.parse(readFileSync(join(dir, 'run-1.json'), 'utf8')).tools).toHaveLength(2);
    }
    db.close();
    // The stored records never hold the key.
    expect(JSON.stringify(out)).not.toContain(KEY);

    const again = await runCli(
      [
        'audit',
        'exp-judged',
        '--judges',
        'contamination-model',
        '--judge-protocol',
        'v1.0',
        '--skip-existing',
      ],
      env,
    );
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/exp-judged: 0 audited, 3 skipped, 0 failed/);
    expect(provider.requests.filter((r) => r.role === 'main')).toHaveLength(9);

    const bad = await runCli(
      ['audit', 'exp-judged', '--judges', 'contamination-model', '--concurrency', '0'],
      env,
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--concurrency must be a positive integer/);
    const unknown = await runCli(['audit', 'exp-judged', '--judges', 'no-such-judge'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown judge "no-such-judge"/);
  }, 120_000);
});
