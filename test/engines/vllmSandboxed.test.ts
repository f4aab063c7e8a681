import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAIChatClient } from '../../src/engines/openaiClient.ts';
import { createVllmEngine } from '../../src/engines/vllm.ts';
import type { ModelSandboxRecord } from '../../src/sandbox/modelSandbox.ts';
import { ensureTinyModel, testPython, tinyChatTemplate, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/**
 * The vllm engine in the bwrap model sandbox, with a stand-in `vllm` console script (Python standard
 * library, the protocol of `vllm serve`): the serve flags point at the sandbox's paths, the console
 * script's interpreter is bound in, the environment is allow-listed, and chat goes through the socket.
 */

const dir = mkdtempSync(join(tmpdir(), 'ptb-vllm-sandbox-'));
let model: string;
let executable: string;

beforeAll(async () => {
  model = await ensureTinyModel();
  const python = await testPython();
  executable = join(dir, 'bin', 'vllm');
  const standIn = readFileSync(join(import.meta.dirname, '../fixtures/fake-vllm/vllm_stand_in.py'), 'utf8');
  mkdirSync(join(dir, 'bin'));
  writeFileSync(executable, `#!${python}\n${standIn}`);
  chmodSync(executable, 0o755);
}, tinyModelTimeoutMs);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('vllm engine in the model sandbox', { timeout: 120_000 }, () => {
  it('serves the checkpoint from /opt/model with the reference flags and no host secrets', async () => {
    const template = join(dir, 'tiny.jinja');
    writeFileSync(template, tinyChatTemplate);
    const engine = createVllmEngine({
      env: { ...process.env, PTB_VLLM_BIN: executable, OPENAI_API_KEY: 'sk-harness-secret', PTB_HOME: dir },
      isolation: { sandbox: 'bwrap', gpuIndices: [], reason: 'test' },
      healthIntervalMs: 100,
    });
    const logFile = join(dir, 'final_eval_1.txt');
    const ledger = join(dir, 'engine_sandbox.jsonl');
    const handle = await engine.start({
      model,
      chatTemplatePath: template,
      trustRemoteCode: true,
      toolCallParser: 'hermes',
      gpuMemoryUtilization: 0.3,
      logFile,
      sandboxLedger: ledger,
      healthTimeoutMs: 60_000,
    });
    try {
      expect(handle.modelName).toBe('/opt/model');
      const reply = await openAIChatClient(handle).chat(
        { messages: [{ role: 'user', content: 'one two three' }] },
        { maxTokens: 8 },
      );
      expect(reply.text).toBe('three two one');
    } finally {
      await handle.stop();
    }
    const log = readFileSync(logFile, 'utf8');
    const argv = JSON.parse(/stand-in vllm argv (.*)/.exec(log)![1]!) as string[];
    expect(argv.slice(0, 2)).toEqual(['serve', '/opt/model']);
    expect(argv.join(' ')).toContain('--chat-template /opt/inputs/chat_template.jinja');
    expect(argv.join(' ')).toContain('--host 127.0.0.1 --port 8000');
    expect(argv).toContain('--trust-remote-code');
    expect(argv.join(' ')).toContain('--enable-auto-tool-choice --tool-call-parser hermes');
    const envNames = JSON.parse(/stand-in vllm env (.*)/.exec(log)![1]!) as string[];
    expect(envNames).not.toContain('OPENAI_API_KEY');
    expect(envNames).not.toContain('PTB_HOME');
    expect(envNames).not.toContain('PTB_VLLM_BIN');
    expect(JSON.parse(/stand-in vllm model files (.*)/.exec(log)![1]!)).toContain('config.json');
    expect(log).not.toContain('sk-harness-secret');
    const record = JSON.parse(readFileSync(ledger, 'utf8').trim()) as ModelSandboxRecord;
    expect(record.readOnly).toContainEqual({ host: join(dir, 'bin'), sandbox: join(dir, 'bin') });
    expect(record.readOnly).toContainEqual({ host: model, sandbox: '/opt/model' });
    expect(record.exit.stoppedByHarness).toBe(true);
  });
});
