/** How an engine should serve a model for one evaluation attempt. */
export interface EngineStartOptions {
  /** Local checkpoint directory or Hugging Face id. */
  model: string;
  /** Chat template file passed to the server (vLLM's `--chat-template`). */
  chatTemplatePath?: string;
  /** Enable auto tool choice with this parser (BFCL: `hermes`). */
  toolCallParser?: 'hermes' | 'llama3_json';
  /** vLLM `--gpu-memory-utilization`; undefined leaves the engine's default. */
  gpuMemoryUtilization?: number;
  /** Pass `--trust-remote-code` (the reference does for Arena-Hard and HealthBench). */
  trustRemoteCode?: boolean;
  /** Where the server's stdout/stderr go. */
  logFile: string;
  /** A sandboxed engine appends the record of its sandbox here (src/sandbox/modelSandbox.ts). */
  sandboxLedger?: string;
  /** Give up when the server is not healthy after this long. */
  healthTimeoutMs?: number;
  /** Largest batch the engine should form (hf engine). */
  maxBatchSize?: number;
  /**
   * Called with the server's process group leader as soon as it is spawned, before it is healthy: a
   * harness killed while the server loads (minutes for vLLM) must still be able to find and stop it.
   */
  onSpawn?: (pid: number) => void;
  signal?: AbortSignal;
}

/** A running server that speaks OpenAI chat completions. */
export interface EngineHandle {
  baseUrl: string;
  apiKey: string;
  /** Name to put in the request's `model` field. */
  modelName: string;
  /** Process group leader of the server, when ptb started one (recorded to clean up after a crash). */
  pid?: number;
  /**
   * A sandboxed server is reached through this Unix socket (host path) rather than over TCP; baseUrl
   * then only gives the path prefix. Connect with connectPinnedSocket (src/engines/sandboxSocket.ts).
   */
  socketPath?: string;
  /** Stops the server and only its own processes. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Where an engine that loads a checkpoint runs. `bwrap`/`podman`: inside the model sandbox
 * (src/sandbox/modelSandbox.ts) with these GPUs; `none`: on the host, for trusted models or machines
 * without a sandbox, as an explicit choice. `reason` says why, for the record.
 */
export type EngineIsolation =
  | { sandbox: 'none'; reason: string }
  | {
      sandbox: 'bwrap' | 'podman';
      /** nvidia-smi indices of the GPUs the engine gets ([]: CPU only). */
      gpuIndices: number[];
      /** podman: the image, and whether its own programs run (default) or the host's, bound in. */
      image?: string;
      programs?: 'image' | 'host';
      reason: string;
    };

/** An engine on the host because nobody asked for a sandbox (direct library use, tests). */
export const HOST_ENGINE: EngineIsolation = { sandbox: 'none', reason: 'no sandbox requested' };

export interface Engine {
  id: 'vllm' | 'hf' | 'openai';
  description: string;
  /** Where this engine's servers run (absent for engines ptb does not start, such as `openai`). */
  isolation?: EngineIsolation;
  start(opts: EngineStartOptions): Promise<EngineHandle>;
}
