import { z } from 'zod';
import { BENCHMARK_IDS } from './vocabulary.ts';

export { BENCHMARK_IDS };
export const BenchmarkIdSchema = z.enum(BENCHMARK_IDS);
export type BenchmarkId = z.infer<typeof BenchmarkIdSchema>;

// ---- OpenAI chat-completions shapes (the one protocol every engine speaks) ----

export const ToolCallSchema = z.object({
  id: z.string().optional(),
  type: z.literal('function').default('function'),
  function: z.object({ name: z.string(), arguments: z.string() }),
});
export type ToolCall = z.infer<typeof ToolCallSchema>;

export const ChatMessageSchema = z.object({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string().nullable(),
  tool_calls: z.array(ToolCallSchema).optional(),
  tool_call_id: z.string().optional(),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

/** OpenAI function tool: `{type: "function", function: {name, description, parameters}}`. */
export const ToolSpecSchema = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string(),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()),
  }),
});
export type ToolSpec = z.infer<typeof ToolSpecSchema>;

/** Explicit sampling overrides. Empty by default: the checkpoint's generation config applies. */
export const SamplingSchema = z
  .object({
    temperature: z.number().min(0).optional(),
    top_p: z.number().gt(0).max(1).optional(),
    top_k: z.number().int().optional(),
    seed: z.number().int().optional(),
  })
  .strict();
export type Sampling = z.infer<typeof SamplingSchema>;

export interface ChatRequest {
  messages: ChatMessage[];
  tools?: ToolSpec[];
  /** BFCL asks for one turn and executes nothing; `auto` lets the parser extract calls. */
  toolChoice?: 'auto' | 'none';
  /** Benchmark-private facts about how the request was built (GPQA's choice order), stored with the sample. */
  meta?: Record<string, unknown>;
}

/** What the engine answered for one request. */
export interface ModelReply {
  /** Raw assistant text (for BFCL: the text the tool-call parser left as content). */
  text: string;
  toolCalls: ToolCall[];
  finishReason: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
  latencyMs: number;
}

// ---- benchmark items and scores ----

/** One benchmark item in ptb's uniform shape. `id` is the dataset's own id or the 0-based row. */
export interface Sample {
  id: string;
  /** The original record, in the upstream schema (kept for scoring and for audits). */
  record: Record<string, unknown>;
  /** Expected answer where the benchmark has one (a number, a letter, a call). */
  target?: unknown;
}

export interface Score {
  /** Main value of this sample, in [0,1] for most benchmarks (HealthBench may be negative). */
  value: number;
  /** What the scorer extracted from the reply (the number, the letter, the call). */
  answer?: string | null;
  /** Sample contributes these values to the mean instead of `value` (Arena-Hard's exploded games). */
  values?: number[];
  /** Sample is left out of the metric (Arena-Hard: a game the judge's verdict could not be parsed). */
  dropped?: boolean;
  explanation?: string;
  details?: Record<string, unknown>;
}

/** metrics.json in the upstream layout: `accuracy` is what aggregation reads. */
export const MetricsSchema = z
  .object({
    accuracy: z.number(),
    stderr: z.number().optional(),
  })
  .passthrough();
export type Metrics = z.infer<typeof MetricsSchema>;

/** One graded reply as `ptb score` reads it from a responses file. */
export const ResponseLineSchema = z.object({
  id: z.union([z.string(), z.number()]).transform(String),
  response: z.string().nullable().default(''),
  tool_calls: z.array(ToolCallSchema).optional(),
});
export type ResponseLine = z.infer<typeof ResponseLineSchema>;
