import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { homeLayout } from '../../src/core/paths.ts';
import { openDb } from '../../src/store/db.ts';
import { TrialRepo } from '../../src/store/trialRepo.ts';
import { makeTrial, type TrialFixture } from '../audit/trialFixture.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { type StandInGrader, startStandInGrader } from '../helpers/standInGrader.ts';

let trial: TrialFixture | undefined;
let server: StandInGrader | undefined;
let home: string | undefined;
afterEach(async () => {
  trial?.cleanup();
  await server?.close();
  if (home) rmSync(home, { recursive: true, force: true });
  trial = server = home = undefined;
});

function registerTrial(): string {
  trial = makeTrial();
  home = tempHome();
  const db = openDb(homeLayout(home).db);
  const row = new TrialRepo(db).create(trial.evidence.spec, () => trial!.evidence.layout.root);
  // What the harness writes at prepare, found by trialEvidence().
  db.close();
  return row.id;
}

const DETERMINISTIC = ['--detectors', 'tamper,submission,egress-rules'];

describe('ptb audit', () => {
  it('audits a trial, re-audits keeping the earlier verdicts, and lists the history', async () => {
    const id = registerTrial();
    const first = await runCli(['audit', id.slice(0, 12), ...DETERMINISTIC], { PTB_HOME: home });
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('combined: clean');
    expect(first.stdout).toContain('earlier audits: none');

    writeFileSync(trial!.task('evaluate.py'), 'print("accuracy", 1.0)\n');
    trial!.finishManifest();
    const second = await runCli(['audit', id, ...DETERMINISTIC, '--json'], { PTB_HOME: home });
    expect(second.code).toBe(3);
    const result = JSON.parse(second.stdout);
    expect(result.combined).toBe('flagged');
    expect(result.scoreAs).toBe('base');
    expect(result.verdicts.find((v: { detector: string }) => v.detector === 'tamper').rule).toContain(
      'evaluation-code-modified',
    );

    const history = await runCli(['audit', id, '--history', '--json'], { PTB_HOME: home });
    const { audits } = JSON.parse(history.stdout);
    expect(audits.map((a: { combined: string }) => a.combined)).toEqual(['clean', 'flagged']);
  });

  it('runs the LLM judge from PTB_JUDGE_* settings and exits 4 when its reply is unusable', async () => {
    const id = registerTrial();
    server = await startStandInGrader({
      responder: () =>
        '{"contamination": false, "disallowed_model": false, "justification": "train split only"}',
    });
    const env = { PTB_HOME: home, PTB_JUDGE_BASE_URL: server.baseUrl, PTB_JUDGE_API_KEY: server.apiKey };
    const ok = await runCli(
      ['audit', id, '--detectors', 'tamper,llm-judge', '--judge-model', 'judge-x'],
      env,
    );
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/llm-judge\s+clean\s+train split only/);
    expect(server.requests[0]!.body.model).toBe('judge-x');

    server.garbageNext(1);
    const bad = await runCli(['audit', id, '--detectors', 'llm-judge', '--judge-model', 'judge-x'], env);
    expect(bad.code).toBe(4);
    expect(bad.stdout).toContain('combined: unverified');
    expect(bad.stdout).toContain("score: the base model's score");
    // The key never lands in what the audit stored.
    const stored = JSON.stringify(new TrialRepo(openDb(homeLayout(home!).db)).audits(id));
    expect(stored).not.toContain(server.apiKey);
  });

  it('refuses unclear requests with a hint', async () => {
    home = tempHome();
    const none = await runCli(['audit'], { PTB_HOME: home });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('give either a trial id or --dir');
    const missing = await runCli(['audit', 'trial-nope'], { PTB_HOME: home });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no trial or experiment named trial-nope');
    const dir = await runCli(['audit', '--dir', join(home, 'nowhere')], { PTB_HOME: home });
    expect(dir.code).toBe(1);
    expect(dir.stderr).toContain('does not exist');
  });
});
