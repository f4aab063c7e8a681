import type { ChatMessage } from '../../core/schemas.ts';

/** One request to the LLM grader (the reference uses gpt-5-mini). */
export interface GraderRequest {
  messages: ChatMessage[];
  /** Sent as `reasoning_effort` (Arena-Hard uses `medium`). */
  reasoningEffort?: 'minimal' | 'low' | 'medium' | 'high';
  /** Sent as `max_completion_tokens` (reasoning models). */
  maxCompletionTokens?: number;
  /** Sent as `max_tokens` with `temperature` for non-reasoning grader models. */
  maxTokens?: number;
  temperature?: number;
}

/**
 * An OpenAI-compatible chat endpoint used to grade replies. `complete` makes one call and throws
 * on failure; the benchmark applies the reference's own retry schedule around it.
 */
export interface Grader {
  model: string;
  baseUrl: string;
  complete(req: GraderRequest, signal?: AbortSignal): Promise<string>;
}
