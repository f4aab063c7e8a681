import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { testPython } from '../helpers/tinyModel.ts';

/**
 * The README's main command exactly as a user types it, with every default (the training steps,
 * learning rate and problem count a user gets): a real trial of the sft agent in bwrap, evaluated by
 * the hf engine, whose honest agent must come out clean and keep its own score.
 */
describe('ptb demo (the demo trial)', () => {
  it('with its defaults: every phase, the agent clean with its own score, its training shown as it runs', async () => {
    const home = tempHome();
    const python = await testPython();
    const run = await runCli(['demo', '--json'], {
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
    // While the agent trained, its own progress reached the terminal: steps, loss, rate, ETA.
    const progress = run.stderr.split('\n').filter((l) => l.startsWith('agent [sft] step '));
    expect(progress.length).toBeGreaterThanOrEqual(10);
    expect(progress.at(-1)).toMatch(
      /^agent \[sft\] step 120\/120 loss \d+\.\d+ lr \S+ \| \d+ tokens\/s \| [\d.]+ s\/step \| ETA 0s$/,
    );
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
    expect(solveOut.some((l) => /\[sft\] step 120\/120 loss/.test(l))).toBe(true);
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
    // The demo is kept out of results unless asked for.
    const report = await runCli(['report', '--format', 'json'], { PTB_HOME: home });
    expect(report.stdout).not.toContain('ptb-demo');
    const withDemo = await runCli(['report', '--format', 'json', '--include-demo'], { PTB_HOME: home });
    expect(withDemo.code, withDemo.stderr).toBe(0);
    expect(withDemo.stdout).toContain('ptb-demo');
  }, 1_800_000);
});
