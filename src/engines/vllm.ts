import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { UserError } from '../core/errors.ts';
import type { BenchmarkId } from '../core/schemas.ts';
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
 * The `vllm` engine: `vllm serve` launched by ptb, as the reference's evaluations do (spec §3.0):
 * the repo's chat template passed explicitly, no sampling flags (vLLM's `--generation-config auto`
 * default lets the checkpoint's generation_config.json decide), the benchmark's
 * `--gpu-memory-utilization`, `--enable-auto-tool-choice --tool-call-parser hermes` for BFCL and
 * `--trust-remote-code` for Arena-Hard and HealthBench. Unlike the reference, which listens on
 * 0.0.0.0 and kills every GPU process between attempts, ptb listens on loopback with a random key
 * and stops only what it started; an untrusted checkpoint is served from the model sandbox
 * (src/engines/serverLaunch.ts), where that loopback is the sandbox's own.
 */

export interface VllmServeArgsOptions {
  model: string;
  port: number;
  apiKey: string;
  host?: string;
  chatTemplatePath?: string;
  gpuMemoryUtilization?: number;
  toolCallParser?: 'hermes' | 'llama3_json';
  trustRemoteCode?: boolean;
  servedModelName?: string;
}

/** The argument vector after the executable: `serve <model> --host … --port … --api-key …`. */
export function vllmServeArgs(opts: VllmServeArgsOptions): string[] {
  const args = ['serve', opts.model, '--host', opts.host ?? '127.0.0.1', '--port', String(opts.port)];
  args.push('--api-key', opts.apiKey);
  if (opts.chatTemplatePath !== undefined) args.push('--chat-template', opts.chatTemplatePath);
  if (opts.gpuMemoryUtilization !== undefined) {
    if (!(opts.gpuMemoryUtilization > 0 && opts.gpuMemoryUtilization <= 1)) {
      throw new UserError(
        `--gpu-memory-utilization must be in (0, 1], got ${opts.gpuMemoryUtilization}`,
        'pass a fraction such as 0.8',
      );
    }
    args.push('--gpu-memory-utilization', String(opts.gpuMemoryUtilization));
  }
  if (opts.toolCallParser !== undefined) {
    args.push('--enable-auto-tool-choice', '--tool-call-parser', opts.toolCallParser);
  }
  if (opts.trustRemoteCode) args.push('--trust-remote-code');
  if (opts.servedModelName !== undefined) args.push('--served-model-name', opts.servedModelName);
  return args;
}

/** Chat-template family as the reference picks it (spec §3.0). */
export type TemplateFamily = 'qwen' | 'llama' | 'gemma' | 'smollm';

/** What the eval runner knows about a benchmark that decides how vLLM is served for it. */
export interface ServedBenchmark {
  id: BenchmarkId;
  usesTools: boolean;
  defaults: { gpuMemoryUtilization?: number };
}

/**
 * The reference's per-benchmark serve flags (spec §3.1 table, §10): gpu-memory-utilization from
 * the benchmark (0.8 aime/bfcl/gpqa, 0.3 gsm8k/humaneval, vLLM's default for arena/healthbench),
 * the hermes tool parser for tool benchmarks (`llama3_json` for Llama models), and
 * --trust-remote-code for the two benchmarks whose scripts start vLLM themselves.
 */
export function referenceServeSettings(
  benchmark: ServedBenchmark,
  family?: TemplateFamily,
): Pick<EngineStartOptions, 'gpuMemoryUtilization' | 'toolCallParser' | 'trustRemoteCode'> {
  const settings: Pick<EngineStartOptions, 'gpuMemoryUtilization' | 'toolCallParser' | 'trustRemoteCode'> =
    {};
  if (benchmark.defaults.gpuMemoryUtilization !== undefined) {
    settings.gpuMemoryUtilization = benchmark.defaults.gpuMemoryUtilization;
  }
  if (benchmark.usesTools) settings.toolCallParser = family === 'llama' ? 'llama3_json' : 'hermes';
  if (benchmark.id === 'arenahardwriting' || benchmark.id === 'healthbench') settings.trustRemoteCode = true;
  return settings;
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The vLLM executable: PTB_VLLM_BIN when set (it must exist), else `vllm` on PATH. Throws a
 * UserError that says what to do when there is none.
 */
export function resolveVllmExecutable(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.PTB_VLLM_BIN?.trim();
  if (configured) {
    const path = isAbsolute(configured) ? configured : resolve(configured);
    if (!isExecutableFile(path)) {
      throw new UserError(
        `PTB_VLLM_BIN points at ${path}, which is not an executable file`,
        'fix PTB_VLLM_BIN or unset it to use `vllm` from PATH',
      );
    }
    return path;
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'vllm');
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new UserError(
    'vLLM is not installed: there is no `vllm` executable on PATH',
    'install vLLM (pip install vllm==0.11.0, as the reference uses) or use --engine hf; PTB_VLLM_BIN can point at a vllm executable',
  );
}

export interface VllmEngineOptions {
  /** Environment for resolving the executable and for the server; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** How long stop() waits after SIGTERM before SIGKILL. Default 30 s (vLLM shuts down gracefully). */
  stopGraceMs?: number;
  /** Health probe interval. Default 1 s. */
  healthIntervalMs?: number;
  /** Where the server runs (default: on the host, as a trusted-model choice). */
  isolation?: EngineIsolation;
}

const DEFAULT_HEALTH_TIMEOUT_MS = 600_000; // the reference waits 600 s for /health

/** A `vllm` engine; `vllmEngine` is this with the defaults. */
export function createVllmEngine(engineOpts: VllmEngineOptions = {}): Engine {
  const isolation = engineOpts.isolation ?? HOST_ENGINE;
  return {
    id: 'vllm',
    isolation,
    description: 'vLLM (`vllm serve`) launched by ptb on a free loopback port, as the reference evaluates',
    async start(opts: EngineStartOptions): Promise<EngineHandle> {
      const env = engineOpts.env ?? process.env;
      const executable = resolveVllmExecutable(env);
      if (opts.chatTemplatePath !== undefined && !existsSync(opts.chatTemplatePath)) {
        throw new UserError(
          `chat template not found: ${opts.chatTemplatePath}`,
          'check the templates folder',
        );
      }
      const apiKey = randomBytes(24).toString('hex');
      const flags = (port: number, paths: ServedPaths) =>
        vllmServeArgs({
          model: paths.model,
          port,
          apiKey,
          chatTemplatePath: paths.chatTemplate,
          gpuMemoryUtilization: opts.gpuMemoryUtilization,
          toolCallParser: opts.toolCallParser,
          trustRemoteCode: opts.trustRemoteCode,
        });
      const sandboxed = isolation.sandbox !== 'none';
      const recipe: ServerRecipe = {
        what: sandboxed ? `the vLLM server (in the ${isolation.sandbox} sandbox)` : 'the vLLM server',
        command: executable,
        args: flags,
        programs: sandboxed ? executablePrograms(executable) : [],
        imageArgv: (port, paths) => ['vllm', ...flags(port, paths)],
        env: {},
        apiKey,
        healthTimeoutMs: opts.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS,
        healthIntervalMs: engineOpts.healthIntervalMs ?? 1_000,
        stopGraceMs: engineOpts.stopGraceMs ?? 30_000,
      };
      return launchServer(recipe, opts, { isolation, hostEnv: env });
    },
  };
}

/**
 * What the vllm executable needs to run in a sandbox: its own directory and, for the usual
 * console script, the directories of the Python its `#!` line names.
 */
export function executablePrograms(executable: string): string[] {
  const real = realpathSync(executable);
  const programs = [dirname(executable), dirname(real)];
  const firstLine = readFileSync(real).subarray(0, 512).toString('utf8').split('\n')[0] ?? '';
  const interpreter = /^#!\s*(\S+)/.exec(firstLine)?.[1];
  if (interpreter && /python[\d.]*$/.test(interpreter)) programs.push(...interpreterBinds(interpreter));
  return [...new Set(programs)].filter((dir) => dir !== '/usr' && !dir.startsWith('/usr/'));
}

export const vllmEngine: Engine = createVllmEngine();
