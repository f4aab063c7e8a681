import type { ModelReply } from '../core/schemas.ts';
import { EngineRequestError, errorBodyMessage } from '../engines/openaiClient.ts';

/**
 * The reference's vLLM provider (inspect fork @ b2a0762, `model/_providers/vllm.py`
 * `handle_bad_request`) does not fail a request that vLLM refuses with HTTP 400 because it does not
 * fit the context: when the error's message contains "maximum context length" or "max_tokens must
 * be at least 1", the message itself becomes the model's output (stop reason `model_length`) and is
 * scored like any other answer, so the evaluation completes at that max-tokens setting. Other
 * refusals still fail the sample (and with it the attempt).
 *
 * The message is the error body's `message` (the OpenAI client hands the provider the body's
 * `error` object), else the whole error text.
 */
const SCORED_REFUSALS = ['maximum context length', 'max_tokens must be at least 1'];

export function contextLengthReply(err: unknown, latencyMs: number): ModelReply | null {
  if (!(err instanceof EngineRequestError) || err.status !== 400) return null;
  const message = err.body ? errorBodyMessage(err.body) : err.message;
  if (!SCORED_REFUSALS.some((phrase) => message.includes(phrase))) return null;
  return {
    text: message,
    toolCalls: [],
    finishReason: 'length',
    promptTokens: err.promptTokens,
    completionTokens: 0,
    latencyMs,
  };
}
