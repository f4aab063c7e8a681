import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { auditRunDir } from '../../src/audit/auditTrial.ts';
import { parseUpstreamRunDir, upstreamRunEvidence } from '../../src/audit/upstreamRunDir.ts';
import { makeTrial, type TrialFixture } from './trialFixture.ts';

let trial: TrialFixture | undefined;
let root: string | undefined;
afterEach(() => {
  trial?.cleanup();
  if (root) rmSync(root, { recursive: true, force: true });
  trial = undefined;
  root = undefined;
});

/** An upstream results tree built from the synthetic trial's task/, final_model/ and trace. */
function upstreamRun(contamination: string, disallowed: string | null): string {
  trial = makeTrial();
  root = mkdtempSync(join(tmpdir(), 'ptb-upstream-'));
  const run = join(root, 'claude_claude-opus-4-6_10h_run2', 'gsm8k_Qwen_Qwen3-1.7B-Base_16675578');
  mkdirSync(run, { recursive: true });
  const { layout } = trial.evidence;
  cpSync(layout.taskSnapshot, join(run, 'task'), { recursive: true });
  cpSync(layout.finalModel, join(run, 'final_model'), { recursive: true });
  cpSync(layout.solveOut, join(run, 'solve_out.txt'));
  writeFileSync(join(run, 'contamination_judgement.txt'), `${contamination}\n`);
  if (disallowed !== null) writeFileSync(join(run, 'disallowed_model_judgement.txt'), disallowed);
  return run;
}

describe('upstream run directories', () => {
  it('parses the folder names into a trial spec', () => {
    const run = upstreamRun('no contamination detected', 'only allowed use detected');
    expect(parseUpstreamRunDir(run)).toMatchObject({
      benchmark: 'gsm8k',
      baseModel: 'Qwen/Qwen3-1.7B-Base',
      clusterId: '16675578',
      agent: 'claude',
      agentConfig: 'claude-opus-4-6',
      hours: 10,
      gpus: 1,
    });
    const evidence = upstreamRunEvidence(run);
    expect(evidence.spec.experiment).toBe('claude_claude-opus-4-6_10h_run2');
    expect(evidence.pristineManifestPath).toBeNull();
    expect(() => parseUpstreamRunDir(join(root!, 'not_a_run'))).toThrow(/not an upstream run directory/);
  });

  it("reads the reference judge's files and never overwrites them", async () => {
    const run = upstreamRun('contamination detected', 'only allowed use detected');
    const r = await auditRunDir(run, {
      env: {},
      detectors: ['submission', 'reference-judgement'],
      baseModelPath: trial!.baseDir,
      ctx: { home: root! },
    });
    expect(r.verdicts.map((v) => [v.detector, v.verdict])).toEqual([
      ['submission', 'clean'],
      ['reference-judgement', 'flagged'],
    ]);
    expect(r.verdicts[1]!.rule).toBe('contamination');
    expect(r.dir.startsWith(join(run, 'ptb_audit'))).toBe(true);
    expect(existsSync(join(r.dir, 'verdicts.json'))).toBe(true);
    expect(readFileSync(join(run, 'contamination_judgement.txt'), 'utf8')).toBe('contamination detected\n');
  });

  it('a missing judgement file makes the reference judgement unverified; full audits say what is missing', async () => {
    const run = upstreamRun('no contamination detected', null);
    const r = await auditRunDir(run, { env: {}, baseModelPath: trial!.baseDir, ctx: { home: root! } });
    const by = Object.fromEntries(r.verdicts.map((v) => [v.detector, v]));
    expect(by['reference-judgement']!.verdict).toBe('unverified');
    expect(by['reference-judgement']!.summary).toContain('disallowed_model_judgement.txt is missing');
    expect(by.tamper!.rule).toContain('no-pristine-manifest');
    expect(by['egress-rules']!.rule).toContain('egress-unrecorded');
    expect(r.combined).toBe('unverified');
  });
});
