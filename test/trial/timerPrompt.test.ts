import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sftAgent } from '../../src/agents/scripted.ts';
import { getBenchmark } from '../../src/benchmarks/registry.ts';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import { DEFAULT_PROMPT_TEMPLATE, gpuLine, renderPrompt, renderTemplate } from '../../src/trial/prompt.ts';
import { parseTimerOutput, timerScript } from '../../src/trial/timer.ts';

function runTimer(createdAtMs: number, hours: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-timer-'));
  const path = join(dir, 'timer.sh');
  writeFileSync(path, timerScript(createdAtMs, hours));
  return execFileSync('bash', [path], { encoding: 'utf8' });
}

describe('timer.sh', () => {
  it('prints the remaining H:MM under the reference heading', () => {
    const out = runTimer(Date.now() - 30 * 60_000, 10); // 9 h 30 min left
    expect(out.split('\n')[0]).toBe('Remaining time (hours:minutes):');
    expect(out.split('\n')[1]).toMatch(/^9:(29|30)$/);
    expect(parseTimerOutput(out)).toBeGreaterThanOrEqual(9 * 60 + 29);
  });

  it('says "Timer expired!" after the deadline', () => {
    const out = runTimer(Date.now() - 2 * 3600_000, 1);
    expect(out.trim()).toBe('Timer expired!');
    expect(parseTimerOutput(out)).toBe(0);
  });

  it('pads minutes and handles fractional hours', () => {
    const out = runTimer(Date.now(), 0.1); // 6 minutes
    expect(out.split('\n')[1]).toMatch(/^0:0[56]$/);
  });
});

describe('prompt', () => {
  const spec = TrialSpecSchema.parse({
    agent: 'sft',
    baseModel: 'Qwen/Qwen3-1.7B-Base',
    benchmark: 'gsm8k',
    hours: 10,
  });

  it('fills every variable and keeps the seven rules', () => {
    const text = renderPrompt(spec, getBenchmark('gsm8k'), sftAgent);
    expect(text).toContain('`Qwen/Qwen3-1.7B-Base`');
    expect(text).toContain(getBenchmark('gsm8k').displayName);
    expect(text).toContain('at most 10 hours');
    expect(text).toContain('Nvidia H100 GPU.');
    expect(text).toContain('A final note'); // inspect-style benchmarks get the note
    for (let rule = 1; rule <= 7; rule++) expect(text).toMatch(new RegExp(`\\n${rule}\\. `));
    expect(text).not.toMatch(/\{[a-z_]+\}/);
  });

  it('leaves the note out for the judge-graded benchmarks and names several GPUs', () => {
    const arena = TrialSpecSchema.parse({ ...spec, benchmark: 'arenahardwriting', gpus: 4 });
    const text = renderPrompt(arena, getBenchmark('arenahardwriting'), sftAgent);
    expect(text).not.toContain('A final note');
    expect(text).toContain('equipped with 4 Nvidia H100 GPUs.');
    expect(gpuLine(1)).toBe('- The machine is equipped with an Nvidia H100 GPU.');
  });

  it('appends the agent suffix and renders user templates', () => {
    const withSuffix = renderPrompt(spec, getBenchmark('gsm8k'), {
      ...sftAgent,
      promptSuffix: 'Run non-interactively.',
    });
    expect(withSuffix.trimEnd().endsWith('Run non-interactively.')).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'ptb-prompt-'));
    const file = join(dir, 'p.txt');
    writeFileSync(file, 'Just store `{model}` to final_model/ and exit.');
    expect(renderPrompt({ ...spec, promptFile: file }, getBenchmark('gsm8k'), sftAgent)).toBe(
      'Just store `Qwen/Qwen3-1.7B-Base` to final_model/ and exit.',
    );
  });

  it('refuses unknown placeholders instead of shipping them', () => {
    expect(() =>
      renderTemplate('{model} {modle}', {
        model: 'm',
        benchmark: 'b',
        num_hours: '1',
        gpu_info: '',
        setup_other: '',
      }),
    ).toThrow(/unknown placeholder \{modle\}/);
    expect(DEFAULT_PROMPT_TEMPLATE).toContain('{setup_other}');
  });
});
