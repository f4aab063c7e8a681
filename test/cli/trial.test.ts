import { describe, expect, it } from 'vitest';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { testPython } from '../helpers/tinyModel.ts';

const base = ['trial', 'run', '-m', 'Qwen/Qwen3-1.7B-Base', '-b', 'gsm8k', '--hours', '1', '--gpus', '0'];

/** A trial that cannot run as asked is refused before anything is created, with what to do. */
describe('ptb trial run refusals', () => {
  it('names the agents when the agent is unknown', async () => {
    const run = await runCli([...base, '-a', 'gpt-agent'], { PTB_HOME: tempHome() });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/unknown agent gpt-agent/);
    expect(run.stderr).toMatch(/sft/);
  });

  it('needs the explicit opt-out for sandbox none, and refuses sandboxes trials do not use yet', async () => {
    const home = tempHome();
    const none = await runCli([...base, '-a', 'noop', '--sandbox', 'none'], { PTB_HOME: home });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/--unsafe-no-sandbox/);
    const apptainer = await runCli([...base, '-a', 'noop', '--sandbox', 'apptainer'], { PTB_HOME: home });
    expect(apptainer.code).toBe(1);
    expect(apptainer.stderr).toMatch(/apptainer/);
    const listed = await runCli(['trials', '--json'], { PTB_HOME: home });
    expect(listed.stdout.trim()).toBe('');
  });

  it('refuses a command agent without a command and a base model path without config.json', async () => {
    const home = tempHome();
    const command = await runCli([...base, '-a', 'command'], { PTB_HOME: home });
    expect(command.code).toBe(1);
    expect(command.stderr).toMatch(/--agent-command/);
    const path = await runCli([...base, '-a', 'noop', '--base-model-path', home], { PTB_HOME: home });
    expect(path.code).toBe(1);
    expect(path.stderr).toMatch(/no config.json/);
  });

  it('marks a trial failed, not running, when it stops outside a phase (no Python)', async () => {
    const home = tempHome();
    const env = { PTB_HOME: home, PTB_PYTHON: '/nonexistent/python3' };
    const run = await runCli([...base, '-a', 'noop'], env);
    expect(run.code).toBe(1);
    const rows = (await runCli(['trials', '--json'], env)).stdout.trim().split('\n');
    expect(rows).toHaveLength(1);
    const trial = JSON.parse(rows[0]!) as { status: string; error: string };
    expect(trial.status).toBe('failed');
    expect(trial.error).toMatch(/nonexistent/);
  });

  it("stops a CLI agent's trial that has no credential for its provider, saying where to put one", async () => {
    const home = tempHome();
    const env = { PTB_HOME: home, PTB_PYTHON: await testPython(), ANTHROPIC_API_KEY: '', PTB_OFFLINE: '1' };
    const run = await runCli([...base, '-a', 'claude', '--agent-config', 'claude-sonnet-4-5'], env);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/needs a anthropic credential/);
    expect(run.stderr).toMatch(/ANTHROPIC_API_KEY/);
    const rows = (await runCli(['trials', '--json'], env)).stdout.trim().split('\n');
    expect(JSON.parse(rows[0]!).status).toBe('failed');
  });
});
