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
  /** Stops the server and only its own processes. Idempotent. */
  stop(): Promise<void>;
}

export interface Engine {
  id: 'vllm' | 'hf' | 'openai';
  description: string;
  start(opts: EngineStartOptions): Promise<EngineHandle>;
}
