import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { MODEL_SANDBOX_PATHS, startSandboxedServer } from '../sandbox/modelSandbox.ts';
import { launchServerOnFreePort, waitForHealth } from './processes.ts';
import { pinnedSocketAgent } from './sandboxSocket.ts';
import type { EngineHandle, EngineIsolation, EngineStartOptions } from './types.ts';

/**
 * Starting an engine's server where its isolation says: on the host (the explicit opt-out), or in
 * the model sandbox with the checkpoint read-only, the trial's GPUs, no network and an allow-listed
 * environment, reached through a Unix socket. The engines (hf, vllm) only say how their server is
 * run (a ServerRecipe); this decides where.
 */

/** Paths the server is told to read: the host's own, or where the sandbox shows them. */
export interface ServedPaths {
  model: string;
  chatTemplate?: string;
}

export interface ServerRecipe {
  /** For messages: "the vLLM server". */
  what: string;
  /** Executable and arguments with the host's programs (host runs, and bwrap, which binds them). */
  command: string;
  args(port: number, paths: ServedPaths): string[];
  /** Host paths the command needs to run, bound read-only in a sandbox (interpreter prefixes, scripts). */
  programs: string[];
  /** Command line with the programs of the podman image (`python3 /opt/ptb/python/…`, `vllm`). */
  imageArgv(port: number, paths: ServedPaths): string[];
  /** The engine's own variables (its per-run API key, buffering), on top of the allow-listed ones. */
  env: Record<string, string>;
  apiKey: string;
  healthTimeoutMs: number;
  healthIntervalMs: number;
  stopGraceMs: number;
}

/** Host variables never handed to an engine started on the host: credentials of the harness. */
const HARNESS_SECRET = /KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL/i;
/** A Hugging Face id still needs the hub token on the host (gated base models). */
const HUB_TOKENS = new Set(['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']);

/**
 * The environment of an engine on the host (isolation `none`): the host's, less the harness's
 * credentials (grader and provider keys), so even a trusted model's server never holds them.
 */
export function hostEngineEnv(hostEnv: NodeJS.ProcessEnv, extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(hostEnv)) {
    if (HARNESS_SECRET.test(name) && !HUB_TOKENS.has(name)) continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

/** `final_eval_3.txt` -> `final_eval_3.sandbox/` beside it: the attempt's private directory. */
function workDirFor(logFile: string): string {
  return join(dirname(logFile), `${basename(logFile).replace(/\.[^.]*$/, '')}.sandbox`);
}

/**
 * Compile caches of one evaluation, beside its engine logs: every attempt and seed of the run serves
 * the same checkpoint, so they may share what its engine compiled (never another checkpoint's).
 */
export const ENGINE_CACHE_DIR = 'engine_cache';

export interface LaunchContext {
  isolation: EngineIsolation;
  hostEnv: NodeJS.ProcessEnv;
}

/** Start `recipe` for one attempt where `ctx.isolation` says, and wait until it is healthy. */
export async function launchServer(
  recipe: ServerRecipe,
  opts: EngineStartOptions,
  ctx: LaunchContext,
): Promise<EngineHandle> {
  const { isolation } = ctx;
  if (isolation.sandbox === 'none') {
    return launchServerOnFreePort({
      what: recipe.what,
      command: recipe.command,
      argsFor: (port) => recipe.args(port, { model: opts.model, chatTemplate: opts.chatTemplatePath }),
      env: hostEngineEnv(ctx.hostEnv, recipe.env),
      logFile: opts.logFile,
      apiKey: recipe.apiKey,
      modelName: opts.model,
      healthTimeoutMs: recipe.healthTimeoutMs,
      healthIntervalMs: recipe.healthIntervalMs,
      stopGraceMs: recipe.stopGraceMs,
      onSpawn: opts.onSpawn,
      signal: opts.signal,
    });
  }
  if (!existsSync(opts.model)) {
    throw new UserError(
      `the ${isolation.sandbox} engine sandbox needs a local checkpoint folder, not ${opts.model}`,
      'download the model to a folder and evaluate that, or pass --engine-sandbox none for a trusted hub model',
    );
  }
  const paths: ServedPaths = {
    model: MODEL_SANDBOX_PATHS.model,
    ...(opts.chatTemplatePath !== undefined
      ? { chatTemplate: `${MODEL_SANDBOX_PATHS.inputs}/chat_template.jinja` }
      : {}),
  };
  const imagePrograms = isolation.sandbox === 'podman' && (isolation.programs ?? 'image') === 'image';
  const server = await startSandboxedServer({
    kind: isolation.sandbox,
    model: opts.model,
    inputs: opts.chatTemplatePath !== undefined ? { 'chat_template.jinja': opts.chatTemplatePath } : {},
    programs: recipe.programs,
    argvFor: (port) =>
      imagePrograms ? recipe.imageArgv(port, paths) : [recipe.command, ...recipe.args(port, paths)],
    workDir: workDirFor(opts.logFile),
    cacheDir: join(dirname(opts.logFile), ENGINE_CACHE_DIR),
    gpuIndices: isolation.gpuIndices,
    hostEnv: ctx.hostEnv,
    env: recipe.env,
    logFile: opts.logFile,
    ledgerFile: opts.sandboxLedger,
    label: basename(opts.logFile),
    killGraceMs: recipe.stopGraceMs,
    ...(isolation.sandbox === 'podman'
      ? { podman: { image: isolation.image ?? '', programs: isolation.programs ?? 'image' } }
      : {}),
    signal: opts.signal,
  });
  const agent = pinnedSocketAgent(server.socketPath);
  try {
    await waitForHealth({
      url: 'http://localhost/health',
      what: recipe.what,
      timeoutMs: recipe.healthTimeoutMs,
      intervalMs: recipe.healthIntervalMs,
      proc: server,
      agent,
      signal: opts.signal,
    });
  } catch (err) {
    agent.destroy();
    await server.stop();
    throw err;
  }
  agent.destroy();
  let stopping: Promise<void> | null = null;
  return {
    baseUrl: 'http://localhost/v1',
    apiKey: recipe.apiKey,
    modelName: paths.model, // served under the path it was started with, as vLLM does
    socketPath: server.socketPath,
    stop: () => {
      stopping ??= server.stop().then(() => undefined);
      return stopping;
    },
  };
}
