import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.ts';
import type { BenchmarkId } from '../../src/core/schemas.ts';
import { type EngineRequestError, openAIChatClient } from '../../src/engines/openaiClient.ts';
import { ServerStartError, spawnInGroup } from '../../src/engines/processes.ts';
import type { EngineHandle } from '../../src/engines/types.ts';
import {
  createVllmEngine,
  referenceServeSettings,
  resolveVllmExecutable,
  type ServedBenchmark,
  vllmEngine,
  vllmServeArgs,
} from '../../src/engines/vllm.ts';
import { pidIsRunning, rejection } from '../helpers/processes.ts';

const FAKE_VLLM = resolve(import.meta.dirname, '../fixtures/fake-vllm/vllm.mjs');

interface RecordedArgs {
  argv: string[];
  parsed: { model: string; flags: Record<string, string | true> };
  pid: number;
}

// The reference's values (spec §3.1): what each benchmark module declares.
const benchmarks: Record<BenchmarkId, ServedBenchmark> = {
  aime2025: { id: 'aime2025', usesTools: false, defaults: { gpuMemoryUtilization: 0.8 } },
  arenahardwriting: { id: 'arenahardwriting', usesTools: false, defaults: {} },
  bfcl: { id: 'bfcl', usesTools: true, defaults: { gpuMemoryUtilization: 0.8 } },
  gpqamain: { id: 'gpqamain', usesTools: false, defaults: { gpuMemoryUtilization: 0.8 } },
  gsm8k: { id: 'gsm8k', usesTools: false, defaults: { gpuMemoryUtilization: 0.3 } },
  healthbench: { id: 'healthbench', usesTools: false, defaults: {} },
  humaneval: { id: 'humaneval', usesTools: false, defaults: { gpuMemoryUtilization: 0.3 } },
};

describe('vllmServeArgs', () => {
  const base = { model: '/runs/gsm8k_Qwen_Qwen3-1.7B-Base_1/final_model', port: 41234, apiKey: 'k3y' };

  it('starts with serve, the model, loopback host, port and key', () => {
    expect(vllmServeArgs(base)).toEqual([
      'serve',
      base.model,
      '--host',
      '127.0.0.1',
      '--port',
      '41234',
      '--api-key',
      'k3y',
    ]);
  });

  it('adds the reference flags per benchmark', () => {
    const tpl = '/repo/templates/qwen3.jinja';
    const argsFor = (id: BenchmarkId, family?: 'llama') =>
      vllmServeArgs({
        ...base,
        chatTemplatePath: tpl,
        ...referenceServeSettings(benchmarks[id], family),
      }).slice(8);

    expect(argsFor('aime2025')).toEqual(['--chat-template', tpl, '--gpu-memory-utilization', '0.8']);
    expect(argsFor('gpqamain')).toEqual(['--chat-template', tpl, '--gpu-memory-utilization', '0.8']);
    expect(argsFor('gsm8k')).toEqual(['--chat-template', tpl, '--gpu-memory-utilization', '0.3']);
    expect(argsFor('humaneval')).toEqual(['--chat-template', tpl, '--gpu-memory-utilization', '0.3']);
    expect(argsFor('bfcl')).toEqual([
      '--chat-template',
      tpl,
      '--gpu-memory-utilization',
      '0.8',
      '--enable-auto-tool-choice',
      '--tool-call-parser',
      'hermes',
    ]);
    expect(argsFor('bfcl', 'llama')).toContain('llama3_json');
    // Arena-Hard and HealthBench start vLLM themselves: vLLM's default memory fraction, remote code on.
    expect(argsFor('arenahardwriting')).toEqual(['--chat-template', tpl, '--trust-remote-code']);
    expect(argsFor('healthbench')).toEqual(['--chat-template', tpl, '--trust-remote-code']);
  });

  it('never passes sampling flags and rejects a nonsense memory fraction', () => {
    const all = vllmServeArgs({
      ...base,
      gpuMemoryUtilization: 0.5,
      toolCallParser: 'hermes',
      trustRemoteCode: true,
      servedModelName: 'm',
    });
    expect(all.join(' ')).not.toMatch(/temperature|top-p|top_p|generation-config|seed/);
    expect(all.slice(-2)).toEqual(['--served-model-name', 'm']);
    expect(() => vllmServeArgs({ ...base, gpuMemoryUtilization: 1.5 })).toThrow(UserError);
  });
});

describe('resolveVllmExecutable', () => {
  it('tells the user to install vLLM or use the hf engine when there is none', () => {
    let err: unknown;
    try {
      resolveVllmExecutable({ PATH: '/nonexistent-a:/nonexistent-b' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toContain('vLLM is not installed');
    expect((err as UserError).hint).toMatch(/install vLLM.* or use --engine hf/);
  });

  it('prefers PTB_VLLM_BIN, finds vllm on PATH, and rejects a PTB_VLLM_BIN that is not there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ptb-vllm-bin-'));
    const onPath = join(dir, 'vllm');
    writeFileSync(onPath, '#!/bin/sh\n');
    chmodSync(onPath, 0o755);
    expect(resolveVllmExecutable({ PATH: `/nonexistent:${dir}` })).toBe(onPath);
    expect(resolveVllmExecutable({ PATH: dir, PTB_VLLM_BIN: FAKE_VLLM })).toBe(FAKE_VLLM);
    expect(() => resolveVllmExecutable({ PATH: dir, PTB_VLLM_BIN: join(dir, 'missing') })).toThrow(
      /PTB_VLLM_BIN/,
    );
  });
});

describe('vllm engine against a fake vllm executable', () => {
  let dir: string;
  let template: string;
  const handles: EngineHandle[] = [];
  const env = (extra: Record<string, string>) => ({ ...process.env, PTB_VLLM_BIN: FAKE_VLLM, ...extra });

  beforeAll(() => {
    chmodSync(FAKE_VLLM, 0o755); // in case a checkout lost the executable bit
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ptb-vllm-'));
    template = join(dir, 'qwen3.jinja');
    writeFileSync(template, '{{ messages }}');
  });
  afterEach(async () => {
    await Promise.all(handles.splice(0).map((h) => h.stop()));
  });

  it('launches, waits for health, serves chat with its own key, and stop() kills its whole group only', async () => {
    const argsFile = join(dir, 'args.json');
    const workerPidFile = join(dir, 'worker.pid');
    const logFile = join(dir, 'logs', 'vllm.log');
    const bystander = await spawnInGroup(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
      logFile: join(dir, 'bystander.log'),
    });
    const engine = createVllmEngine({
      env: env({ FAKE_VLLM_ARGS_FILE: argsFile, FAKE_VLLM_GRANDCHILD_PID_FILE: workerPidFile }),
      healthIntervalMs: 100,
      stopGraceMs: 5_000,
    });
    const model = join(dir, 'bfcl_Qwen_Qwen3-1.7B-Base_7', 'final_model');
    const handle = await engine.start({
      model,
      chatTemplatePath: template,
      logFile,
      ...referenceServeSettings(benchmarks.bfcl),
    });
    handles.push(handle);

    const recorded = JSON.parse(readFileSync(argsFile, 'utf8')) as RecordedArgs;
    const port = Number(new URL(handle.baseUrl).port);
    expect(handle.baseUrl).toBe(`http://127.0.0.1:${port}/v1`);
    expect(handle.modelName).toBe(model);
    expect(handle.apiKey).toMatch(/^[0-9a-f]{48}$/);
    expect(recorded.argv).toEqual(
      vllmServeArgs({
        model,
        port,
        apiKey: handle.apiKey,
        chatTemplatePath: template,
        gpuMemoryUtilization: 0.8,
        toolCallParser: 'hermes',
      }),
    );
    expect(recorded.parsed.flags['--enable-auto-tool-choice']).toBe(true);

    const client = openAIChatClient(handle);
    const reply = await client.chat(
      { messages: [{ role: 'user', content: 'What is 6 times 7? 42' }] },
      { maxTokens: 16 },
    );
    expect(reply.text).toBe('ANSWER: 42');
    const wrongKey = (await rejection(
      openAIChatClient({ ...handle, apiKey: 'guess' }).chat({ messages: [] }, { maxTokens: 1 }),
    )) as EngineRequestError;
    expect(wrongKey.status).toBe(401);
    expect(readFileSync(logFile, 'utf8')).toContain('Uvicorn running on');

    const workerPid = Number(readFileSync(workerPidFile, 'utf8'));
    expect(pidIsRunning(recorded.pid)).toBe(true);
    expect(pidIsRunning(workerPid)).toBe(true);
    await handle.stop();
    expect(pidIsRunning(recorded.pid)).toBe(false);
    expect(pidIsRunning(workerPid)).toBe(false);
    expect(pidIsRunning(bystander.pid)).toBe(true);
    expect(readFileSync(logFile, 'utf8')).toContain('Shutting down');
    await handle.stop(); // idempotent
    process.kill(-bystander.pid, 'SIGKILL');
  });

  it('uses PTB_VLLM_BIN from the environment for the exported engine', async () => {
    const previous = process.env.PTB_VLLM_BIN;
    process.env.PTB_VLLM_BIN = FAKE_VLLM;
    try {
      const handle = await vllmEngine.start({ model: 'Qwen/Qwen3-1.7B', logFile: join(dir, 'v.log') });
      handles.push(handle);
      const reply = await openAIChatClient(handle).chat(
        { messages: [{ role: 'user', content: 'count to 3' }] },
        { maxTokens: 8 },
      );
      expect(reply.text).toBe('ANSWER: 3');
    } finally {
      if (previous === undefined) delete process.env.PTB_VLLM_BIN;
      else process.env.PTB_VLLM_BIN = previous;
    }
  });

  it('passes the context error of the server through as context_length', async () => {
    const engine = createVllmEngine({ env: env({ FAKE_VLLM_CONTEXT_WINDOW: '64' }), healthIntervalMs: 100 });
    const handle = await engine.start({ model: 'm', logFile: join(dir, 'ctx.log') });
    handles.push(handle);
    const err = (await rejection(
      openAIChatClient(handle).chat({ messages: [{ role: 'user', content: 'hi 1' }] }, { maxTokens: 16000 }),
    )) as EngineRequestError;
    expect(err.kind).toBe('context_length');
    expect(err.contextWindow).toBe(64);
  });

  it('fails fast with the log tail when vLLM dies during start-up', async () => {
    const workerPidFile = join(dir, 'worker.pid');
    const engine = createVllmEngine({
      env: env({ FAKE_VLLM_MODE: 'crash', FAKE_VLLM_GRANDCHILD_PID_FILE: workerPidFile }),
      healthIntervalMs: 100,
    });
    const before = Date.now();
    const err = await rejection(
      engine.start({ model: 'm', logFile: join(dir, 'crash.log'), healthTimeoutMs: 60_000 }),
    );
    expect(Date.now() - before).toBeLessThan(20_000);
    expect(err).toBeInstanceOf(ServerStartError);
    expect((err as Error).message).toContain('the vLLM server exited with code 1 before it became healthy');
    expect((err as Error).message).toContain('CUDA out of memory');
    // The worker it left behind was in its group and is gone too.
    expect(pidIsRunning(Number(readFileSync(workerPidFile, 'utf8')))).toBe(false);
  });

  it('gives up after the health timeout and kills what it started', async () => {
    const argsFile = join(dir, 'args.json');
    const workerPidFile = join(dir, 'worker.pid');
    const engine = createVllmEngine({
      env: env({
        FAKE_VLLM_MODE: 'stall',
        FAKE_VLLM_ARGS_FILE: argsFile,
        FAKE_VLLM_GRANDCHILD_PID_FILE: workerPidFile,
      }),
      healthIntervalMs: 100,
    });
    const err = (await rejection(
      engine.start({ model: 'm', logFile: join(dir, 'stall.log'), healthTimeoutMs: 1_500 }),
    )) as ServerStartError;
    expect(err.message).toContain('not healthy after 2 s');
    expect(err.logTail).toContain('Loading model weights');
    const recorded = JSON.parse(readFileSync(argsFile, 'utf8')) as RecordedArgs;
    expect(pidIsRunning(recorded.pid)).toBe(false);
    expect(pidIsRunning(Number(readFileSync(workerPidFile, 'utf8')))).toBe(false);
  });

  it('escalates to SIGKILL when vLLM ignores SIGTERM', async () => {
    const argsFile = join(dir, 'args.json');
    const engine = createVllmEngine({
      env: env({ FAKE_VLLM_MODE: 'ignore-term', FAKE_VLLM_ARGS_FILE: argsFile }),
      healthIntervalMs: 100,
      stopGraceMs: 300,
    });
    const handle = await engine.start({ model: 'm', logFile: join(dir, 'stubborn.log') });
    await handle.stop();
    const recorded = JSON.parse(readFileSync(argsFile, 'utf8')) as RecordedArgs;
    expect(pidIsRunning(recorded.pid)).toBe(false);
    expect(readFileSync(join(dir, 'stubborn.log'), 'utf8')).toContain('ignoring SIGTERM');
  });

  it('tries a fresh port once when the first one was taken', async () => {
    const marker = join(dir, 'clashed');
    const engine = createVllmEngine({
      env: env({ FAKE_VLLM_CLASH_ONCE_FILE: marker }),
      healthIntervalMs: 100,
    });
    const handle = await engine.start({ model: 'm', logFile: join(dir, 'clash.log') });
    handles.push(handle);
    expect(existsSync(marker)).toBe(true);
    const log = readFileSync(join(dir, 'clash.log'), 'utf8');
    expect(log).toContain('address already in use');
    expect(log).toContain('Uvicorn running on');
  });

  it('rejects a missing chat template before launching anything', async () => {
    const argsFile = join(dir, 'args.json');
    const engine = createVllmEngine({ env: env({ FAKE_VLLM_ARGS_FILE: argsFile }) });
    const err = await rejection(
      engine.start({ model: 'm', chatTemplatePath: join(dir, 'nope.jinja'), logFile: join(dir, 'x.log') }),
    );
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toContain('chat template not found');
    expect(existsSync(argsFile)).toBe(false);
  });

  it('stops the launch when aborted', async () => {
    const argsFile = join(dir, 'args.json');
    const engine = createVllmEngine({ env: env({ FAKE_VLLM_MODE: 'stall', FAKE_VLLM_ARGS_FILE: argsFile }) });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 1_000);
    const err = await rejection(
      engine.start({ model: 'm', logFile: join(dir, 'a.log'), signal: controller.signal }),
    );
    expect((err as Error).name).toBe('AbortError');
    const recorded = JSON.parse(readFileSync(argsFile, 'utf8')) as RecordedArgs;
    expect(pidIsRunning(recorded.pid)).toBe(false);
  });
});
