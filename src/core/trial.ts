import { z } from 'zod';
import { DEFAULT_PROTOCOL, ProtocolIdSchema } from './protocols.ts';
import { BenchmarkIdSchema } from './schemas.ts';
import { SANDBOX_KINDS } from './vocabulary.ts';

/** Phases of a trial, in order. Each is persisted before the next starts. */
export const PHASES = ['prepare', 'agent', 'collect', 'audit', 'evaluate', 'finalize'] as const;
export const PhaseSchema = z.enum(PHASES);
export type Phase = z.infer<typeof PhaseSchema>;

export { SANDBOX_KINDS };
export const SandboxKindSchema = z.enum(SANDBOX_KINDS);
export type SandboxKind = z.infer<typeof SandboxKindSchema>;

/** Everything that defines one trial: agent × base model × benchmark × budget × seed. */
export const TrialSpecSchema = z.object({
  experiment: z.string().min(1).default('default'),
  /** Agent id from the agent registry (`claude`, `codex`, `sft`, `command`, ...). */
  agent: z.string().min(1),
  /** The agent's model / configuration string (`claude-opus-4-6`, `gpt-5.3-codex`); '' for scripted agents. */
  agentConfig: z.string().default(''),
  /** For the `command` agent: the executable and its arguments. */
  agentCommand: z.array(z.string()).optional(),
  /** Base model: a Hugging Face id (`Qwen/Qwen3-1.7B-Base`) as shown to the agent. */
  baseModel: z.string().min(1),
  /** Local directory holding the base model's weights (resolved by prepare when absent). */
  baseModelPath: z.string().optional(),
  benchmark: BenchmarkIdSchema,
  hours: z.number().positive(),
  gpus: z.number().int().min(0).default(1),
  seed: z.number().int().min(0).default(0),
  sandbox: SandboxKindSchema.default('bwrap'),
  /** podman image (or apptainer .sif) of the agent environment; default: the one `ptb image build` makes. */
  image: z.string().optional(),
  /** Evaluation protocol of the final evaluation (core/protocols.ts): the reference version it follows. */
  protocol: ProtocolIdSchema.default(DEFAULT_PROTOCOL),
  /** Engine for the final evaluation. */
  engine: z.enum(['vllm', 'hf', 'openai']).default('vllm'),
  /** Evaluation sample limit (-1 = all, the reference's final run). */
  evalLimit: z.number().int().default(-1),
  /** Local data files for benchmark parts (`test`, `prompt-source`, ...), as `ptb eval --data`. */
  evalData: z.record(z.string(), z.string()).default({}),
  /** Chat template file for the evaluations instead of the reference rule (tiny models). */
  evalTemplate: z.string().optional(),
  /** First rung of the max-tokens ladder for the final evaluation. */
  evalMaxTokens: z.number().int().positive().optional(),
  /** Extra files copied into the agent's task directory (name → host path), e.g. allowed training data. */
  taskFiles: z.record(z.string(), z.string()).default({}),
  /** Local weights of disallowed models (the instruct twin, ...) the provenance audit compares final_model with. */
  referenceModels: z.array(z.string()).default([]),
  /**
   * Disallowed derivatives of the base beyond ptb's list (Hugging Face ids, `repo@commit`): the
   * audit fetches them outside the sandbox (or uses their stored signatures) and compares.
   */
  forbiddenModels: z.array(z.string()).default([]),
  /** A user prompt template (the rendered text is stored as prompt.txt). */
  promptFile: z.string().optional(),
  /** Stop the agent once its model calls cost this many dollars. */
  budgetUsd: z.number().positive().optional(),
  /** Egress policy name (`open` = like the reference, provider hosts only through the relay). */
  network: z.enum(['open', 'none', 'allowlist']).default('open'),
  allowHosts: z.array(z.string()).default([]),
  /** Limits on the agent's process tree. */
  memoryBytes: z.number().int().positive().optional(),
  pids: z.number().int().positive().optional(),
  cpus: z.number().positive().optional(),
  /** Explicit opt-out of sandboxing (required with sandbox `none`). */
  unsafeNoSandbox: z.boolean().default(false),
  /** Audit policy for unverified verdicts: score as the base model (reference) or keep the score. */
  unverifiedPolicy: z.enum(['base-score', 'keep-score']).default('base-score'),
});
export type TrialSpec = z.infer<typeof TrialSpecSchema>;
export type TrialSpecInput = z.input<typeof TrialSpecSchema>;

export const TrialStatusSchema = z.enum(['pending', 'running', 'interrupted', 'completed', 'failed']);
export type TrialStatus = z.infer<typeof TrialStatusSchema>;

/** How the agent phase ended. `gpu_unavailable` is a harness outcome, not a model failure. */
export const AgentOutcomeSchema = z.enum([
  'finished',
  'failed',
  'timeout',
  'interrupted',
  'budget_exceeded',
  'gpu_unavailable',
  'sandbox_refused',
]);
export type AgentOutcome = z.infer<typeof AgentOutcomeSchema>;

// ---- verdicts ----

export const VerdictValueSchema = z.enum(['clean', 'flagged', 'unverified']);
export type VerdictValue = z.infer<typeof VerdictValueSchema>;

/** One piece of evidence: what was found where. Detectors add their own fields. */
export const EvidenceSchema = z
  .object({
    /** What the evidence is about (a file path, a ledger line, a tensor name, a URL). */
    source: z.string(),
    detail: z.string(),
  })
  .catchall(z.unknown());
export type Evidence = z.infer<typeof EvidenceSchema>;

export const DetectorVerdictSchema = z.object({
  detector: z.string(),
  version: z.string(),
  verdict: VerdictValueSchema,
  /** The rule broken (when flagged) or why the detector could not decide (when unverified). */
  rule: z.string().optional(),
  summary: z.string(),
  evidence: z.array(EvidenceSchema).default([]),
});
export type DetectorVerdict = z.infer<typeof DetectorVerdictSchema>;

// ---- ledgers: one JSON object per line, appended while the agent runs ----

const ts = z.string(); // ISO-8601 UTC

export const EgressEventSchema = z.object({
  ts,
  host: z.string(),
  port: z.number().int(),
  /** CONNECT tunnel or plain-HTTP forward. */
  kind: z.enum(['connect', 'http']),
  allowed: z.boolean(),
  /** Policy rule that decided (`open`, `provider-host-denied`, `allowlist`, `relay`, ...). */
  rule: z.string(),
  bytesUp: z.number().int().default(0),
  bytesDown: z.number().int().default(0),
  durationMs: z.number().default(0),
  error: z.string().optional(),
});
export type EgressEvent = z.infer<typeof EgressEventSchema>;

export const ModelCallEventSchema = z.object({
  ts,
  provider: z.string(),
  /** Model named in the request. */
  model: z.string().nullable(),
  method: z.string(),
  path: z.string(),
  status: z.number().int(),
  inputTokens: z.number().int().default(0),
  outputTokens: z.number().int().default(0),
  cacheReadTokens: z.number().int().default(0),
  cacheWriteTokens: z.number().int().default(0),
  /** Null when the price of the model is unknown. */
  costUsd: z.number().nullable(),
  durationMs: z.number(),
  stream: z.boolean().default(false),
  /** The call was refused by the relay (budget reached, unknown provider). */
  refused: z.string().optional(),
  /** What the caller authenticated with: the trial's relay token, a planted decoy key, nothing, or another value. */
  credential: z.enum(['relay-token', 'decoy', 'none', 'other']).default('relay-token'),
});
export type ModelCallEvent = z.infer<typeof ModelCallEventSchema>;

export const DownloadEventSchema = z.object({
  ts,
  kind: z.enum(['model', 'dataset', 'space', 'other']),
  repo: z.string().nullable(),
  revision: z.string().nullable(),
  file: z.string().nullable(),
  method: z.string(),
  url: z.string(),
  status: z.number().int(),
  bytes: z.number().int().default(0),
});
export type DownloadEvent = z.infer<typeof DownloadEventSchema>;

export const InRunEvalEventSchema = z.object({
  ts,
  modelPath: z.string(),
  limit: z.number().int().nullable(),
  maxTokens: z.number().int().nullable(),
  /** `accuracy` from the metrics the call produced; null when it failed. */
  accuracy: z.number().nullable(),
  exitCode: z.number().int().nullable(),
  durationMs: z.number(),
});
export type InRunEvalEvent = z.infer<typeof InRunEvalEventSchema>;

export const MonitorSampleSchema = z.object({
  ts,
  cpuPercent: z.number().nullable(),
  memoryBytes: z.number().nullable(),
  diskBytes: z.number().nullable(),
  gpus: z
    .array(
      z.object({
        index: z.number().int(),
        utilPercent: z.number().nullable(),
        memoryUsedMiB: z.number().nullable(),
        memoryTotalMiB: z.number().nullable(),
        temperatureC: z.number().nullable(),
        powerW: z.number().nullable(),
      }),
    )
    .default([]),
});
export type MonitorSample = z.infer<typeof MonitorSampleSchema>;

export const ManifestEntrySchema = z.object({
  path: z.string(),
  size: z.number().int(),
  sha256: z.string(),
});
export type ManifestEntry = z.infer<typeof ManifestEntrySchema>;

// ---- trajectory: one format for every scaffold's trace ----

export const TrajectoryEventSchema = z.object({
  index: z.number().int(),
  /** ISO time from the line's timestamp prefix or the event itself. */
  ts: z.string().nullable(),
  kind: z.enum([
    'system',
    'message',
    'reasoning',
    'tool_call',
    'tool_result',
    'usage',
    'error',
    'result',
    'raw',
  ]),
  role: z.enum(['system', 'user', 'assistant', 'tool']).optional(),
  text: z.string().optional(),
  /** tool_call: the call; tool_result: `id` links back to it. */
  tool: z
    .object({
      id: z.string().optional(),
      name: z.string().optional(),
      input: z.unknown().optional(),
    })
    .optional(),
  isError: z.boolean().optional(),
  exitCode: z.number().int().nullable().optional(),
  usage: z
    .object({
      inputTokens: z.number().default(0),
      outputTokens: z.number().default(0),
      cacheReadTokens: z.number().default(0),
      reasoningTokens: z.number().default(0),
      costUsd: z.number().nullable().default(null),
    })
    .optional(),
  /** The source event, for anything the fields above do not carry. */
  raw: z.unknown().optional(),
});
export type TrajectoryEvent = z.infer<typeof TrajectoryEventSchema>;

export const TrajectorySchema = z.object({
  format: z.string(),
  sessionId: z.string().nullable(),
  model: z.string().nullable(),
  events: z.array(TrajectoryEventSchema),
  totals: z.object({
    inputTokens: z.number(),
    outputTokens: z.number(),
    cacheReadTokens: z.number(),
    reasoningTokens: z.number(),
    costUsd: z.number().nullable(),
    toolCalls: z.number(),
    messages: z.number(),
  }),
  /** Lines that were not valid JSON (truncated or foreign output); kept as `raw` events. */
  unparsedLines: z.number().int(),
});
export type Trajectory = z.infer<typeof TrajectorySchema>;
