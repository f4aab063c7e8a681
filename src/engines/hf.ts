import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { ptbHome, repoRoot } from '../core/paths.ts';
import { SANDBOX_PATHS } from '../core/trialLayout.ts';
import { ensurePythonEnv } from '../runtime/pythonEnv.ts';
import { interpreterBinds } from '../sandbox/pythonRunner.ts';
import { launchServer, type ServedPaths, type ServerRecipe } from './serverLaunch.ts';
import {
  type Engine,
  type EngineHandle,
  type EngineIsolation,
  type EngineStartOptions,
  HOST_ENGINE,
} from './types.ts';

/**
 * The `hf` engine: python/ptb_hf_server.py, an OpenAI-compatible server over transformers with
 * batched generation, for machines without vLLM (CPU boxes, CI, GPU boxes without vLLM). It takes
 * vLLM's flags, so the same chat template, tool parser and generation-config defaults apply.
 */

export const hfServerScript = join(repoRoot, 'python', 'ptb_hf_server.py');

export interface HfEngineOptions {
  /** PTB_HOME whose venv runs the server; default ptbHome(env). */
  home?: string;
  /** Environment for PTB_PYTHON / PTB_PIP_ARGS and for the server. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Interpreter to use as is (skips the managed venv). */
  python?: string;
  /** How long stop() waits after SIGTERM before SIGKILL. Default 10 s. */
  stopGraceMs?: number;
  /** Extra server flags (e.g. ['--device', 'cpu', '--batch-wait-ms', '20']). */
  extraArgs?: string[];
  /** Where the server runs (default: on the host, as a trusted-model choice). */
  isolation?: EngineIsolation;
}

/** The server script inside the ptb agent image. */
const IMAGE_HF_SERVER_SCRIPT = `${SANDBOX_PATHS.ptb}/python/ptb_hf_server.py`;

const DEFAULT_HEALTH_TIMEOUT_MS = 600_000; // as long as the reference waits for vLLM

/** `hf` engine with these options; `hfEngine` is the default one. */
export function createHfEngine(engineOpts: HfEngineOptions = {}): Engine {
  const isolation = engineOpts.isolation ?? HOST_ENGINE;
  return {
    id: 'hf',
    isolation,
    description:
      'transformers behind an OpenAI-compatible server (python/ptb_hf_server.py), batched, CPU or GPU',
    async start(opts: EngineStartOptions): Promise<EngineHandle> {
      const env = engineOpts.env ?? process.env;
      if (isLocalPath(opts.model)) checkModelDir(opts.model);
      if (opts.chatTemplatePath !== undefined && !existsSync(opts.chatTemplatePath)) {
        throw new UserError(
          `chat template not found: ${opts.chatTemplatePath}`,
          'check the templates folder',
        );
      }
      if (opts.toolCallParser !== undefined && opts.toolCallParser !== 'hermes') {
        throw new UserError(
          `the hf engine has no ${opts.toolCallParser} tool-call parser`,
          'use --engine vllm for Llama tool calling, or a hermes-style chat template',
        );
      }
      const python =
        engineOpts.python ??
        (await ensurePythonEnv({ home: engineOpts.home ?? ptbHome(env), env, signal: opts.signal }));
      const apiKey = randomBytes(24).toString('hex');
      const flags = (port: number, paths: ServedPaths) => {
        const a = [paths.model, '--host', '127.0.0.1', '--port', String(port)];
        if (paths.chatTemplate !== undefined) a.push('--chat-template', paths.chatTemplate);
        if (opts.toolCallParser)
          a.push('--enable-auto-tool-choice', '--tool-call-parser', opts.toolCallParser);
        if (opts.trustRemoteCode) a.push('--trust-remote-code');
        if (opts.maxBatchSize !== undefined) a.push('--max-batch-size', String(opts.maxBatchSize));
        if (opts.gpuMemoryUtilization !== undefined)
          a.push('--gpu-memory-utilization', String(opts.gpuMemoryUtilization));
        return [...a, ...(engineOpts.extraArgs ?? [])];
      };
      const sandboxed = isolation.sandbox !== 'none';
      const recipe: ServerRecipe = {
        what: sandboxed
          ? `the hf engine server (in the ${isolation.sandbox} sandbox)`
          : 'the hf engine server',
        command: python,
        args: (port, paths) => [hfServerScript, ...flags(port, paths)],
        programs: sandboxed ? [...interpreterBinds(python), dirname(hfServerScript)] : [],
        imageArgv: (port, paths) => ['python3', IMAGE_HF_SERVER_SCRIPT, ...flags(port, paths)],
        // The key goes through the environment (the server reads VLLM_API_KEY), not the visible argv.
        env: { VLLM_API_KEY: apiKey, PYTHONUNBUFFERED: '1', TOKENIZERS_PARALLELISM: 'false' },
        apiKey,
        healthTimeoutMs: opts.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS,
        healthIntervalMs: 250,
        stopGraceMs: engineOpts.stopGraceMs ?? 10_000,
      };
      return launchServer(recipe, opts, { isolation, hostEnv: env });
    },
  };
}

export const hfEngine: Engine = createHfEngine();

/** A Hugging Face id (`org/name`) that is not also a local folder goes to the server as is. */
function isLocalPath(model: string): boolean {
  return (
    existsSync(model) || model.startsWith('.') || model.startsWith('/') || !/^[\w.-]+\/[\w.-]+$/.test(model)
  );
}

/**
 * Fail early, with a message that says what is wrong, for a folder that transformers would reject
 * only after a long import: missing folder, missing or broken config.json, no tokenizer, no weights,
 * safetensors files whose header is unreadable or that are shorter than the header says.
 */
export function checkModelDir(dir: string): void {
  const hint =
    'point the model at a checkpoint folder with config.json, tokenizer files and *.safetensors weights';
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UserError(`model folder not found: ${dir}`, hint);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath))
    throw new UserError(`${dir} is not a model checkpoint: config.json is missing`, hint);
  try {
    JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (err) {
    throw new UserError(
      `${configPath} is not valid JSON: ${(err as Error).message}`,
      'the checkpoint is damaged; save it again',
    );
  }
  const files = readdirSync(dir);
  const tokenizerFiles = ['tokenizer.json', 'tokenizer_config.json', 'tokenizer.model', 'vocab.json'];
  if (!files.some((f) => tokenizerFiles.includes(f))) {
    throw new UserError(
      `${dir} has no tokenizer files (tokenizer.json, tokenizer_config.json, …)`,
      'save the tokenizer with the model (tokenizer.save_pretrained)',
    );
  }
  const indexFile = files.find((f) => f.endsWith('.safetensors.index.json'));
  if (indexFile) {
    const index = JSON.parse(readFileSync(join(dir, indexFile), 'utf8')) as {
      weight_map?: Record<string, string>;
    };
    for (const shard of new Set(Object.values(index.weight_map ?? {}))) {
      if (!files.includes(shard))
        throw new UserError(`${dir}: shard ${shard} listed in ${indexFile} is missing`, hint);
    }
  }
  const shards = files.filter((f) => f.endsWith('.safetensors'));
  if (shards.length === 0 && !files.some((f) => /^pytorch_model.*\.bin$/.test(f))) {
    throw new UserError(`${dir} has no weights (*.safetensors or pytorch_model*.bin)`, hint);
  }
  for (const shard of shards) checkSafetensors(join(dir, shard));
}

/** A safetensors file: 8-byte little-endian header length, a JSON header, then the tensor bytes it describes. */
function checkSafetensors(path: string): void {
  const bad = (why: string) =>
    new UserError(
      `${path} is not a readable safetensors file: ${why}`,
      'the checkpoint is damaged or was not fully written; save it again',
    );
  const size = statSync(path).size;
  if (size < 8) throw bad('shorter than its 8-byte header length');
  const fd = openSync(path, 'r');
  try {
    const lengthBytes = Buffer.alloc(8);
    readSync(fd, lengthBytes, 0, 8, 0);
    const headerLength = Number(lengthBytes.readBigUInt64LE());
    if (headerLength > size - 8 || headerLength > 100 * 1024 * 1024)
      throw bad(`header length ${headerLength} does not fit the file`);
    const header = Buffer.alloc(headerLength);
    readSync(fd, header, 0, headerLength, 8);
    let parsed: Record<string, { data_offsets?: [number, number] }>;
    try {
      parsed = JSON.parse(header.toString('utf8'));
    } catch {
      throw bad('the header is not JSON');
    }
    let end = 0;
    for (const [name, tensor] of Object.entries(parsed)) {
      if (name !== '__metadata__' && Array.isArray(tensor?.data_offsets))
        end = Math.max(end, tensor.data_offsets[1]);
    }
    if (8 + headerLength + end > size)
      throw bad(`truncated: tensors need ${8 + headerLength + end} bytes, the file has ${size}`);
  } finally {
    closeSync(fd);
  }
}
