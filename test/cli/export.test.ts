import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';

const FIXTURE = join(repoRoot, 'test/fixtures/upstream-results');

describe('ptb export', () => {
  it('writes the reference layout that ptb import reads back to the same report', async () => {
    const home = tempHome();
    await runCli(['import', FIXTURE], { PTB_HOME: home });
    const out = join(mkdtempSync(join(tmpdir(), 'ptb-export-')), 'results');
    const exported = await runCli(['export', out, '--experiments', 'claude_*'], { PTB_HOME: home });
    expect(exported.code).toBe(0);
    expect(exported.stdout).toBe(`exported 25 run(s) in 2 method folder(s) and 24 baseline(s) to ${out}\n`);
    expect(readdirSync(out).sort()).toEqual([
      'baseline_zeroshot',
      'claude_claude-opus-4-6_10h_run1_old_container',
      'claude_claude-opus-4-6_10h_run2',
    ]);
    expect(
      existsSync(
        join(out, 'claude_claude-opus-4-6_10h_run2', 'gsm8k_Qwen_Qwen3-1.7B-Base_10', 'ptb_trial.json'),
      ),
    ).toBe(true);

    const other = tempHome();
    const reimported = await runCli(['import', out, '--json'], { PTB_HOME: other });
    expect(JSON.parse(reimported.stdout)).toMatchObject({ created: 25, skipped: [] });
    const a = await runCli(['report', '--experiments', 'claude_*', '--format', 'csv'], { PTB_HOME: home });
    const b = await runCli(['report', '--format', 'csv'], { PTB_HOME: other });
    expect(b.stdout).toBe(a.stdout);
    expect(b.stdout).toContain(
      'agent,claude_claude-opus-4-6_10h,claude,claude-opus-4-6,10,complete,2,2,0.2688225458543',
    );
  });

  it('refuses an unknown experiment with the known ones as the hint', async () => {
    const home = tempHome();
    await runCli(['import', FIXTURE], { PTB_HOME: home });
    const run = await runCli(['export', join(tmpdir(), 'never'), '--experiments', 'gemini_*'], {
      PTB_HOME: home,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('no experiment matches "gemini_*"');
    expect(run.stderr).toContain('Known experiments: claude_claude-opus-4-6_10h_run1_old_container');
  });
});
