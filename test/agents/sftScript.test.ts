/**
 * The sft agent's training script (python/agents/sft.py) run for real on the tiny model: it refuses to
 * submit anything when it has nothing to learn from or the loss stops being finite, drops only the
 * conversations that have no answer token inside --max-len, and trains data-parallel under torchrun
 * (gloo on CPU, two processes) when asked.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sftAgent, sftProcesses } from '../../src/agents/scripted.ts';
import type { AgentRunContext } from '../../src/agents/types.ts';
import { isUserError } from '../../src/core/errors.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { ensureTinyModel, testPython, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

const script = join(repoRoot, 'python', 'agents', 'sft.py');

interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runScript(python: string, args: string[], cwd: string): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { cwd, env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A conversation whose user turn is `words` words long and whose answer is short. */
function conversation(words: number, answer: string): string {
  const user = Array.from({ length: words }, (_, i) => `word${i % 50}`).join(' ');
  return JSON.stringify({
    messages: [
      { role: 'user', content: user },
      { role: 'assistant', content: answer },
    ],
  });
}

function summary(out: string): {
  steps: number;
  processes: number;
  conversations: number;
  final_loss: number;
} {
  const line = out
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{"sft"'));
  if (!line) throw new Error(`no summary line in:\n${out}`);
  return JSON.parse(line).sft;
}

describe('the sft agent command', () => {
  const ctx = (over: Partial<AgentRunContext>): AgentRunContext => ({
    prompt: 'p',
    agentConfig: '',
    benchmark: 'gsm8k',
    baseModel: 'b',
    hours: 1,
    gpus: 0,
    home: '/home/agent',
    taskDir: '/home/agent/task',
    relayUrls: {},
    relayTokens: {},
    credentialFiles: [],
    ...over,
  });

  it('runs the script directly on no GPU or one, under torchrun with one process per GPU beyond', () => {
    expect(sftAgent.command(ctx({ gpus: 1, agentConfig: '--steps 5' })).slice(0, 2)).toEqual([
      'python3',
      '/opt/ptb/python/agents/sft.py',
    ]);
    const multi = sftAgent.command(ctx({ gpus: 2, agentConfig: '--steps 5 --lr 1e-5' }));
    expect(multi).toEqual([
      'python3',
      '-m',
      'torch.distributed.run',
      '--standalone',
      '--nproc-per-node=2',
      '/opt/ptb/python/agents/sft.py',
      '--data',
      'train_data.jsonl',
      '--steps',
      '5',
      '--lr',
      '1e-5',
    ]);
  });

  it('takes --nproc-per-node from its config (either spelling) and refuses a bad count', () => {
    expect(sftProcesses({ gpus: 0, agentConfig: '--nproc-per-node 2 --device cpu' })).toEqual({
      processes: 2,
      torchrun: true,
      flags: ['--device', 'cpu'],
    });
    // Asked for explicitly, torchrun runs even one process (how the GPU script checks that path).
    expect(sftProcesses({ gpus: 4, agentConfig: '--steps 3 --nproc-per-node=1' })).toEqual({
      processes: 1,
      torchrun: true,
      flags: ['--steps', '3'],
    });
    expect(sftAgent.command(ctx({ gpus: 1, agentConfig: '--nproc-per-node 1' })).slice(0, 5)).toEqual([
      'python3',
      '-m',
      'torch.distributed.run',
      '--standalone',
      '--nproc-per-node=1',
    ]);
    expect(sftProcesses({ gpus: 1, agentConfig: '' })).toMatchObject({ processes: 1, torchrun: false });
    for (const bad of ['--nproc-per-node', '--nproc-per-node 0', '--nproc-per-node=two']) {
      let error: unknown;
      try {
        sftProcesses({ gpus: 0, agentConfig: bad });
      } catch (err) {
        error = err;
      }
      expect(isUserError(error), bad).toBe(true);
    }
  });
});

describe('python/agents/sft.py', () => {
  let python: string;
  let base: string;
  beforeAll(async () => {
    python = await testPython();
    base = await ensureTinyModel();
  }, tinyModelTimeoutMs);

  const work = () => mkdtempSync(join(tmpdir(), 'ptb-sft-'));
  const common = (data: string) => [
    script,
    '--base',
    base,
    '--data',
    data,
    '--threads',
    '1',
    '--max-minutes',
    '10',
    '--device',
    'cpu',
  ];

  it('fails with a message and writes no final_model when every prompt fills --max-len', async () => {
    const dir = work();
    const data = join(dir, 'long.jsonl');
    writeFileSync(data, `${[conversation(300, 'yes'), conversation(400, 'no')].join('\n')}\n`);
    const run = await runScript(python, [...common(data), '--steps', '3', '--max-len', '64'], dir);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(
      /nothing to train on: the prompt of every one of the 2 conversations fills --max-len 64/,
    );
    expect(run.stderr).toMatch(/Raise --max-len \(e\.g\. --max-len \d+\)/);
    expect(run.stderr).not.toMatch(/Traceback/);
    expect(existsSync(join(dir, 'final_model'))).toBe(false);
  }, 120_000);

  it('fails when the loss stops being a finite number, and writes no final_model', async () => {
    const dir = work();
    const data = join(dir, 'short.jsonl');
    writeFileSync(
      data,
      `${Array.from({ length: 8 }, (_, i) => conversation(5, `answer ${i}`)).join('\n')}\n`,
    );
    const run = await runScript(
      python,
      [...common(data), '--steps', '6', '--batch-size', '4', '--lr', '1e30'],
      dir,
    );
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/the loss is (nan|inf|-inf) at step \d+: training diverged/);
    expect(existsSync(join(dir, 'final_model'))).toBe(false);
  }, 120_000);

  it('drops only the conversations without an answer token inside --max-len, trains on the rest', async () => {
    const dir = work();
    const data = join(dir, 'mixed.jsonl');
    const rows = [
      conversation(400, 'too long'),
      ...Array.from({ length: 6 }, (_, i) => conversation(4, `ok ${i}`)),
    ];
    writeFileSync(data, `${rows.join('\n')}\n`);
    const run = await runScript(
      python,
      [...common(data), '--steps', '4', '--batch-size', '4', '--max-len', '64'],
      dir,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/dropped 1 of 7 conversations: their prompt fills --max-len 64 tokens/);
    expect(run.stdout).toMatch(
      /step 4\/4 loss \d+\.\d+ lr [\d.e+-]+ \| \d+ tokens\/s \| [\d.]+ s\/step \| ETA 0s/,
    );
    const done = summary(run.stdout);
    expect(done).toMatchObject({ steps: 4, processes: 1, conversations: 6 });
    expect(Number.isFinite(done.final_loss)).toBe(true);
    expect(existsSync(join(dir, 'final_model', 'model.safetensors'))).toBe(true);
  }, 120_000);

  it('trains data-parallel under torchrun: two gloo processes, one final_model written by rank 0', async () => {
    const dir = work();
    const data = join(dir, 'data.jsonl');
    writeFileSync(
      data,
      `${Array.from({ length: 8 }, (_, i) => conversation(6, `answer ${i}`)).join('\n')}\n`,
    );
    const run = await runScript(
      python,
      [
        '-m',
        'torch.distributed.run',
        '--standalone',
        '--nproc-per-node=2',
        ...common(data),
        '--steps',
        '3',
        '--batch-size',
        '4',
      ],
      dir,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/on 2 processes \(gloo\), rank 0 cpu/);
    // Rank 0 alone logs and saves: one summary line, one "saved" line.
    expect(run.stdout.match(/\{"sft"/g)?.length).toBe(1);
    expect(run.stdout.match(/\[sft\] saved final_model/g)?.length).toBe(1);
    expect(summary(run.stdout)).toMatchObject({ steps: 3, processes: 2 });
    expect(existsSync(join(dir, 'final_model', 'model.safetensors'))).toBe(true);
    const config = JSON.parse(readFileSync(join(dir, 'final_model', 'config.json'), 'utf8'));
    expect(config.model_type).toBe('qwen3');
  }, 180_000);

  it('refuses a global batch that does not split over the processes', async () => {
    const dir = work();
    const data = join(dir, 'data.jsonl');
    writeFileSync(data, `${conversation(4, 'x')}\n`);
    const run = await runScript(
      python,
      [
        '-m',
        'torch.distributed.run',
        '--standalone',
        '--nproc-per-node=2',
        ...common(data),
        '--batch-size',
        '3',
      ],
      dir,
    );
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/--batch-size 3 does not split over 2 processes/);
    expect(existsSync(join(dir, 'final_model'))).toBe(false);
  }, 180_000);
});
