import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { testPython } from '../helpers/tinyModel.ts';

/** The README's main command, end to end: a real trial of the sft agent in bwrap, evaluated by the hf engine. */
describe('ptb demo (the demo trial)', () => {
  it('runs every phase and leaves the reference files and the ledgers', async () => {
    const home = tempHome();
    const python = await testPython();
    const run = await runCli(['demo', '--items', '6', '--train-steps', '20', '--json'], {
      PTB_HOME: home,
      PTB_PYTHON: python,
    });
    expect(run.stderr).not.toMatch(/unexpected error/);
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
      baseline: { accuracy: number };
      trial: {
        id: string;
        status: string;
        agent_outcome: string;
        accuracy: number | null;
        final_score: number | null;
        dir: string;
        audit_verdict: string;
      };
    };
    expect(out.trial.status).toBe('completed');
    expect(out.trial.agent_outcome).toBe('finished');
    expect(typeof out.trial.accuracy).toBe('number');
    expect(typeof out.baseline.accuracy).toBe('number');
    // An honest fine-tune on allowed data: every detector clean, so the trial keeps its own score.
    expect(out.trial.audit_verdict).toBe('clean');
    expect(out.trial.final_score).toBe(out.trial.accuracy);
    const layout = trialLayout(out.trial.dir);
    expect(existsSync(join(layout.finalModel, 'config.json'))).toBe(true);
    expect(readdirSync(layout.finalModel).some((f) => f.endsWith('.safetensors'))).toBe(true);
    expect(JSON.parse(readFileSync(layout.metrics, 'utf8')).accuracy).toBe(out.trial.accuracy);
    const solveOut = readFileSync(layout.solveOut, 'utf8').trim().split('\n');
    expect(solveOut.every((l) => /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] /.test(l))).toBe(true);
    expect(solveOut.some((l) => /\[sft\] step 20\/20 loss/.test(l))).toBe(true);
    expect(readFileSync(layout.timeTaken, 'utf8')).toMatch(/^\d\d:\d\d:\d\d\n$/);
    expect(readFileSync(layout.prompt, 'utf8')).toContain('`ptb-demo/tiny-qwen3-base`');
    // The snapshot keeps the agent's files but not the weights.
    expect(existsSync(join(layout.taskSnapshot, 'train_data.jsonl'))).toBe(true);
    expect(existsSync(join(layout.taskSnapshot, 'final_model'))).toBe(false);
    const start = JSON.parse(readFileSync(layout.ledgers.manifestStart, 'utf8')) as { path: string }[];
    const end = JSON.parse(readFileSync(layout.ledgers.manifestEnd, 'utf8')) as { path: string }[];
    expect(start.map((e) => e.path)).toContain('evaluate.py');
    expect(end.some((e) => e.path.startsWith('final_model/'))).toBe(true);
    expect(JSON.parse(readFileSync(layout.trajectory, 'utf8')).events.length).toBeGreaterThan(0);
    const show = await runCli(['trial', 'show', out.trial.id, '--json'], { PTB_HOME: home });
    const phases = (JSON.parse(show.stdout) as { phases: { phase: string; status: string }[] }).phases;
    expect(phases.map((p) => `${p.phase}:${p.status}`)).toEqual([
      'prepare:completed',
      'agent:completed',
      'collect:completed',
      'audit:completed',
      'evaluate:completed',
      'finalize:completed',
    ]);
  }, 900_000);
});
