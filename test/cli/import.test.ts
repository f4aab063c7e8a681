import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';

const FIXTURE = join(repoRoot, 'test/fixtures/upstream-results');

describe('ptb import', () => {
  it('imports a reference tree, says what it skipped, and changes nothing the second time', async () => {
    const home = tempHome();
    const first = await runCli(['import', FIXTURE], { PTB_HOME: home });
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(
      'imported 3 experiment(s): 36 new trial(s), 0 updated, 0 unchanged, 36 audit(s) recorded; 24 baseline(s) added, 0 unchanged\n',
    );
    expect(first.stderr).toContain(
      'skipped codex_gpt-5.2_10h/gsm8k_not_a_run: cluster id "run" is not a number',
    );
    const second = await runCli(['import', FIXTURE, '--json'], { PTB_HOME: home });
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({
      created: 0,
      updated: 0,
      unchanged: 36,
      audits: 0,
      baselinesAdded: 0,
    });
  });

  it('imports only the chosen method folders', async () => {
    const run = await runCli(['import', FIXTURE, '--experiments', 'codex_*', '--json'], {
      PTB_HOME: tempHome(),
    });
    expect(JSON.parse(run.stdout)).toMatchObject({
      experiments: ['codex_gpt-5.2_10h'],
      created: 11,
      baselinesAdded: 24,
    });
  });

  it('refuses a directory that is not a results tree, saying what it expects', async () => {
    const run = await runCli(['import', join(FIXTURE, 'codex_gpt-5.2_10h', 'gsm8k_Qwen_Qwen3-4B-Base_202')], {
      PTB_HOME: tempHome(),
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /found no method folders or baseline_zeroshot\/ in .*\n {2}→ A reference results tree holds/,
    );
    const missing = await runCli(['import', '/nonexistent/results'], { PTB_HOME: tempHome() });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('/nonexistent/results is not a directory');
  });
});
