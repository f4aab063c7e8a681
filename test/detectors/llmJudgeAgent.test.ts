import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type AgentJudgeRunner, createAgentJudgeDetector } from '../../src/detectors/llmJudge.ts';
import { makeTrial, type TrialFixture } from '../audit/trialFixture.ts';

let trial: TrialFixture | undefined;
afterEach(() => {
  trial?.cleanup();
  trial = undefined;
});

/** A real process standing in for a coding CLI: it reads the workspace and writes files, like an agent would. */
function shellRunner(script: string, seen: { prompt?: string; workDir?: string } = {}): AgentJudgeRunner {
  return ({ prompt, workDir }) =>
    new Promise((resolve, reject) => {
      seen.prompt = prompt;
      seen.workDir = workDir;
      const child = spawn('bash', ['-c', script], { cwd: workDir });
      let output = '';
      child.stdout.on('data', (d) => (output += d));
      child.stderr.on('data', (d) => (output += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ exitCode: code, output }));
    });
}

const JUDGE_SCRIPT = `
if grep -rq "EXACT GSM8K" --include=*.py . ; then c=true; else c=false; fi
test -f ../ptb_evidence.md || exit 3
test -f ../solve_parsed.txt || exit 4
printf '{"contamination": %s, "disallowed_model": false, "justification": "grep over the scripts", "evidence": [{"file": "make_data.py", "detail": "test items"}]}' "$c" > judge_verdict.json
echo done`;

describe('agent-as-judge mode', () => {
  it('runs the agent over a copy of the workspace and reads its verdict file', async () => {
    trial = makeTrial();
    trial.writeTask('make_data.py', '# EXACT GSM8K test items below\n');
    const auditDir = mkdtempSync(join(tmpdir(), 'ptb-agent-judge-'));
    const seen: { prompt?: string; workDir?: string } = {};
    const detector = createAgentJudgeDetector({
      agent: 'codex',
      model: 'gpt-5.1-codex',
      run: shellRunner(JUDGE_SCRIPT, seen),
    });
    const v = await detector.inspect(trial.evidence, { ...trial.ctx, auditDir } as never);
    expect(v.verdict).toBe('flagged');
    expect(v.rule).toBe('contamination');
    expect(v.version).toMatch(/^agent:codex:gpt-5\.1-codex:[0-9a-f]{12}$/);
    expect(seen.prompt).toContain('judge_verdict.json');
    expect(seen.prompt).toContain('GSM8K train split');
    // Weights stay out of the copy; the original trial files are untouched.
    expect(existsSync(join(seen.workDir!, 'final_model', 'config.json'))).toBe(true);
    expect(existsSync(join(seen.workDir!, 'final_model', 'model.safetensors'))).toBe(false);
    expect(readFileSync(join(seen.workDir!, 'final_model', 'WEIGHTS_NOT_COPIED.txt'), 'utf8')).toContain(
      'model.safetensors',
    );
    expect(existsSync(trial.task('judge_verdict.json'))).toBe(false);
    expect(dirname(seen.workDir!).startsWith(auditDir)).toBe(true);
    expect(readFileSync(join(auditDir, 'agent_judge_output.txt'), 'utf8')).toContain('done');
  });

  it("accepts the reference's two judgement files", async () => {
    trial = makeTrial();
    const script =
      "echo 'no contamination detected' > contamination_judgement.txt; echo 'disallowed use detected' > disallowed_model_judgement.txt";
    const v = await createAgentJudgeDetector({
      agent: 'codex',
      model: 'm',
      run: shellRunner(script),
    }).inspect(trial.evidence, trial.ctx);
    expect(v.verdict).toBe('flagged');
    expect(v.rule).toBe('disallowed-model');
  });

  it('no verdict, a garbled verdict or a failed run is unverified', async () => {
    trial = makeTrial();
    const make = (script: string) =>
      createAgentJudgeDetector({ agent: 'codex', model: 'm', run: shellRunner(script) });
    let v = await make('echo "I could not decide"; exit 1').inspect(trial.evidence, trial.ctx);
    expect(v.verdict).toBe('unverified');
    expect(v.rule).toBe('judge-missing');
    expect(v.evidence[0]!.detail).toContain('could not decide');

    v = await make('echo \'{"contamination": maybe}\' > judge_verdict.json').inspect(
      trial.evidence,
      trial.ctx,
    );
    expect(v.rule).toBe('judge-malformed');

    const failing = createAgentJudgeDetector({
      agent: 'codex',
      model: 'm',
      run: async () => {
        throw new Error('codex is not installed');
      },
    });
    v = await failing.inspect(trial.evidence, trial.ctx);
    expect(v.verdict).toBe('unverified');
    expect(v.summary).toContain('codex is not installed');
  });
});
