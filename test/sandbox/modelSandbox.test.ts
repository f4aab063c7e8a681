import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MODEL_SANDBOX_PATHS,
  type ModelSandboxRecord,
  modelSandboxEnv,
  runUntrustedModelCode,
} from '../../src/sandbox/modelSandbox.ts';
import { interpreterBinds } from '../../src/sandbox/pythonRunner.ts';
import { countingListener } from '../helpers/hostileCheckpoint.ts';
import { ensureTinyModel, testPython, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/**
 * The model sandbox as a library (what a likelihood probe or any other reader of an untrusted
 * checkpoint uses): the allow-listed environment, and a one-shot program over a checkpoint in real
 * bwrap that leaves its results in the scratch and a record in the ledger.
 */

describe('the environment of a model run', () => {
  it('keeps GPU and tuning variables and drops credentials, ptb paths and host paths', () => {
    const env = modelSandboxEnv(
      {
        OPENAI_API_KEY: 'sk-1',
        PTB_GRADER_API_KEY: 'k',
        HF_TOKEN: 'hf_1',
        PTB_HOME: '/root/.ptb',
        HOME: '/root',
        AWS_SECRET_ACCESS_KEY: 's',
        LD_LIBRARY_PATH: '/usr/local/cuda/lib64',
        CUDA_HOME: '/usr/local/cuda',
        CUDA_VISIBLE_DEVICES: '3',
        OMP_NUM_THREADS: '8',
        VLLM_ATTENTION_BACKEND: 'FLASH_ATTN',
        VLLM_API_KEY: 'host-key',
        VLLM_CACHE_ROOT: '/root/.cache/vllm',
        TRITON_CACHE_DIR: '/root/.triton',
        NCCL_P2P_DISABLE: '1',
      },
      { VLLM_API_KEY: 'per-run' },
    );
    expect(env).toMatchObject({
      LD_LIBRARY_PATH: '/usr/local/cuda/lib64',
      CUDA_HOME: '/usr/local/cuda',
      OMP_NUM_THREADS: '8',
      VLLM_ATTENTION_BACKEND: 'FLASH_ATTN',
      NCCL_P2P_DISABLE: '1',
      HOME: MODEL_SANDBOX_PATHS.scratch,
      HF_HUB_OFFLINE: '1',
      VLLM_API_KEY: 'per-run',
    });
    for (const gone of [
      'OPENAI_API_KEY',
      'PTB_GRADER_API_KEY',
      'HF_TOKEN',
      'PTB_HOME',
      'AWS_SECRET_ACCESS_KEY',
      'CUDA_VISIBLE_DEVICES',
      'VLLM_CACHE_ROOT',
      'TRITON_CACHE_DIR',
    ]) {
      expect(env, gone).not.toHaveProperty(gone);
    }
  });
});

describe('runUntrustedModelCode (real bwrap)', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-model-sandbox-'));
  let python: string;
  let model: string;

  beforeAll(async () => {
    [python, model] = await Promise.all([testPython(), ensureTinyModel()]);
  }, tinyModelTimeoutMs);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs a program over the checkpoint, offline, and leaves its results and a record', async () => {
    const listener = await countingListener();
    const secret = join(dir, 'harness-secret.txt');
    writeFileSync(secret, 'sk-not-for-the-model');
    const program = join(dir, 'probe.py');
    writeFileSync(
      program,
      [
        'import json, os, socket, sys',
        'out = {"config": json.load(open("/opt/model/config.json"))["model_type"]}',
        'out["env"] = sorted(os.environ)',
        `try:\n    open(${JSON.stringify(secret)}).read(); out["secret"] = "read"\nexcept OSError as e:\n    out["secret"] = type(e).__name__`,
        'try:\n    open("/opt/model/config.json", "a").write("x"); out["model_write"] = "ok"\nexcept OSError as e:\n    out["model_write"] = e.strerror',
        `try:\n    socket.create_connection(("127.0.0.1", ${listener.port}), timeout=2); out["tcp"] = "ok"\nexcept OSError as e:\n    out["tcp"] = type(e).__name__`,
        'open("/tmp/left-in-tmp.txt", "w").write("t")',
        'json.dump(out, open(os.path.join(os.environ["HOME"], "result.json"), "w"))',
        'print("probe done", file=sys.stderr)',
      ].join('\n'),
    );
    const ledgerFile = join(dir, 'ledger.jsonl');
    const logFile = join(dir, 'probe.log');
    try {
      const run = await runUntrustedModelCode({
        kind: 'bwrap',
        argv: [python, '/opt/inputs/probe.py'],
        model,
        inputs: { 'probe.py': program },
        programs: interpreterBinds(python),
        workDir: join(dir, 'probe-run'),
        hostEnv: { OPENAI_API_KEY: 'sk-host', LD_LIBRARY_PATH: '/opt/cuda/lib' },
        logFile,
        ledgerFile,
        label: 'probe',
      });
      expect(run.result.exitCode, readFileSync(logFile, 'utf8')).toBe(0);
      expect(readFileSync(logFile, 'utf8')).toContain('probe done');
      const out = JSON.parse(readFileSync(join(run.scratchDir, 'result.json'), 'utf8'));
      expect(out.config).toBe('qwen3');
      expect(out.secret).toBe('FileNotFoundError');
      expect(out.model_write).toMatch(/^(Read-only file system|Permission denied)$/);
      expect(out.tcp).toBe('ConnectionRefusedError');
      expect(out.env).not.toContain('OPENAI_API_KEY');
      expect(out.env).toContain('LD_LIBRARY_PATH');
      expect(listener.connections()).toBe(0);
      const record = JSON.parse(readFileSync(ledgerFile, 'utf8').trim()) as ModelSandboxRecord;
      expect(record).toMatchObject({
        label: 'probe',
        sandbox: 'bwrap',
        network: 'none',
        gpus: [],
        modelUnchanged: true,
        exit: { code: 0, stoppedByHarness: false },
      });
      // /tmp is the scratch's tmp/: what the program left there is in the record too.
      expect(record.scratch.sample.sort()).toEqual(['result.json', 'tmp/left-in-tmp.txt']);
      expect(record.envNames).not.toContain('OPENAI_API_KEY');
    } finally {
      await listener.close();
    }
  });
});
