import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real OpenAI-compatible chat-completions server on 127.0.0.1 that stands in for the LLM grader
 * in tests. Its answers are computed from each request by a responder (see arenaJudgeResponder,
 * healthBenchResponder); it can be told to fail, to answer garbage, or to refuse
 * `reasoning_effort`, and it records every request it receives.
 */

export interface ChatBody {
  model?: string;
  messages?: Array<{ role: string; content: string | null }>;
  reasoning_effort?: string;
  max_completion_tokens?: number;
  max_tokens?: number;
  temperature?: number;
  [key: string]: unknown;
}

export interface RecordedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  /** The openai client's `x-stainless-retry-count` header (the retry this request is). */
  retryCount: string | undefined;
  body: ChatBody;
  /** What the server did: 'answered', 'failed', 'reset', 'garbage', 'rejected-reasoning', 'unauthorized', 'null-content'. */
  outcome: string;
}

/** Computes the assistant's content from the request. */
export type Responder = (body: ChatBody) => string;

export interface StandInGrader {
  baseUrl: string;
  apiKey: string;
  model: string;
  readonly requests: RecordedRequest[];
  /** The next n requests get HTTP `status` with `body` (and these response headers). */
  failNext(n: number, status?: number, body?: string, headers?: Record<string, string>): void;
  /** The next n requests have their connection destroyed without an answer. */
  resetNext(n: number): void;
  /** The next n requests get a 200 whose content is prose with no verdict and no JSON. */
  garbageNext(n: number): void;
  /** The next n requests get a 200 whose message content is null. */
  nullContentNext(n: number): void;
  /** While true, a request carrying reasoning_effort gets OpenAI's 400 for unsupported parameters. */
  rejectReasoningEffort: boolean;
  /** Milliseconds to wait before answering. */
  delayMs: number;
  responder: Responder;
  close(): Promise<void>;
}

export const GARBAGE_CONTENT = 'I would rather not say which answer is better, or whether anything was met.';

const REASONING_400 = JSON.stringify({
  error: {
    message: "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
    type: 'invalid_request_error',
    param: 'reasoning_effort',
    code: 'unsupported_parameter',
  },
});

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
}

function completion(model: string, content: string | null): string {
  return JSON.stringify({
    id: 'chatcmpl-standin',
    object: 'chat.completion',
    created: 0,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  });
}

export async function startStandInGrader(
  options: { responder: Responder; apiKey?: string; model?: string } = { responder: () => '' },
): Promise<StandInGrader> {
  const failures: Array<{ status: number; body: string; headers: Record<string, string> }> = [];
  let resets = 0;
  let garbage = 0;
  let nullContent = 0;
  const requests: RecordedRequest[] = [];

  const state: StandInGrader = {
    baseUrl: '',
    apiKey: options.apiKey ?? 'sk-standin-key',
    model: options.model ?? 'gpt-5-mini',
    requests,
    failNext(
      n,
      status = 500,
      body = JSON.stringify({ error: { message: 'stand-in server error' } }),
      headers = {},
    ) {
      for (let i = 0; i < n; i++) failures.push({ status, body, headers });
    },
    resetNext(n) {
      resets += n;
    },
    garbageNext(n) {
      garbage += n;
    },
    nullContentNext(n) {
      nullContent += n;
    },
    rejectReasoningEffort: false,
    delayMs: 0,
    responder: options.responder,
    close: async () => {},
  };

  const server = createServer(async (req, res) => {
    const raw = await readBody(req);
    let body: ChatBody = {};
    try {
      body = JSON.parse(raw) as ChatBody;
    } catch {
      // recorded as an empty body; the answer below is a 400
    }
    const record: RecordedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      authorization: req.headers.authorization,
      retryCount: req.headers['x-stainless-retry-count'] as string | undefined,
      body,
      outcome: 'answered',
    };
    requests.push(record);
    if (state.delayMs > 0) await new Promise((r) => setTimeout(r, state.delayMs));
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      record.outcome = 'not-found';
      send(res, 404, JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
      return;
    }
    if (req.headers.authorization !== `Bearer ${state.apiKey}`) {
      record.outcome = 'unauthorized';
      send(res, 401, JSON.stringify({ error: { message: 'Incorrect API key provided.' } }));
      return;
    }
    if (resets > 0) {
      resets--;
      record.outcome = 'reset';
      req.socket.destroy();
      return;
    }
    const failure = failures.shift();
    if (failure) {
      record.outcome = 'failed';
      send(res, failure.status, failure.body, failure.headers);
      return;
    }
    if (state.rejectReasoningEffort && body.reasoning_effort !== undefined) {
      record.outcome = 'rejected-reasoning';
      send(res, 400, REASONING_400);
      return;
    }
    const model = body.model ?? state.model;
    if (garbage > 0) {
      garbage--;
      record.outcome = 'garbage';
      send(res, 200, completion(model, GARBAGE_CONTENT));
      return;
    }
    if (nullContent > 0) {
      nullContent--;
      record.outcome = 'null-content';
      send(res, 200, completion(model, null));
      return;
    }
    send(res, 200, completion(model, state.responder(body)));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  state.baseUrl = `http://127.0.0.1:${port}/v1`;
  state.close = () =>
    new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((err) => (err ? reject(err) : resolve()));
    });
  return state;
}

function lastMessage(body: ChatBody, role: string): string {
  const found = [...(body.messages ?? [])].reverse().find((m) => m.role === role);
  return found?.content ?? '';
}

function count(haystack: string, needle: string): number {
  return needle.length === 0 ? 0 : haystack.split(needle).length - 1;
}

/**
 * An Arena-Hard judge that prefers the answer mentioning `marker` more often: a difference of one
 * mention gives a slight preference (`A>B`), two or more a strong one (`A>>B`), none a tie. It
 * reads the answers out of the `<|The Start of Assistant X's Answer|>` sections of the user turn
 * and ends its judgment with the verdict label, after an earlier, superseded label.
 */
export function arenaJudgeResponder(marker: string): Responder {
  return (body) => {
    const user = lastMessage(body, 'user');
    const section = (who: 'A' | 'B') => {
      const m = new RegExp(
        `<\\|The Start of Assistant ${who}'s Answer\\|>\\n([\\s\\S]*?)\\n<\\|The End of Assistant ${who}'s Answer\\|>`,
      ).exec(user);
      if (!m) throw new Error(`stand-in judge: no answer ${who} in the prompt`);
      return m[1]!;
    };
    const diff = count(section('A'), marker) - count(section('B'), marker);
    const verdict =
      diff >= 2 ? 'A>>B' : diff === 1 ? 'A>B' : diff === 0 ? 'A=B' : diff === -1 ? 'B>A' : 'B>>A';
    return `At first glance it looks like [[A=B]]. Counting "${marker}" changes that.\n\nMy final verdict is: [[${verdict}]]`;
  };
}

/**
 * A HealthBench rubric grader: the criterion is met when the last assistant turn of the rendered
 * conversation contains the criterion's last word (case-insensitive). It expects the synthetic
 * template of SYNTHETIC_GRADER_PY and answers in a ```json fence.
 */
export function healthBenchResponder(): Responder {
  return (body) => {
    const prompt = lastMessage(body, 'user');
    const conversation = /<conversation>\n([\s\S]*?)\n<\/conversation>/.exec(prompt)?.[1];
    const item = /<rubric>\n\[(-?\d+(?:\.\d+)?)\] ([\s\S]*?)\n<\/rubric>/.exec(prompt);
    if (conversation === undefined || !item)
      throw new Error('stand-in grader: prompt is not the synthetic template');
    const response = conversation.slice(conversation.lastIndexOf('assistant: ') + 'assistant: '.length);
    const keyword = (item[2]!.match(/[A-Za-z]+/g) ?? []).pop()?.toLowerCase() ?? '';
    const met = keyword.length > 0 && response.toLowerCase().includes(keyword);
    const verdict = { explanation: `looked for "${keyword}"`, criteria_met: met };
    return '```json\n' + JSON.stringify(verdict, null, 2) + '\n```';
  };
}

/** A grader.py of the reference's shape whose GRADER_TEMPLATE is synthetic (written for tests). */
export const SYNTHETIC_GRADER_PY = `"""Synthetic stand-in for the HealthBench grader module."""

import re

# The template the benchmark must extract.
GRADER_TEMPLATE = """
Check the last assistant turn against the rubric item.

<conversation>
<<conversation>>
</conversation>

<rubric>
<<rubric_item>>
</rubric>

Reply with a JSON object holding "explanation" and a boolean "criteria_met".
""".strip()

OTHER_TEMPLATE = "not this one"
`;

/** A judge_utils.py of the reference's shape with a synthetic creative-writing system prompt. */
export const SYNTHETIC_JUDGE_UTILS_PY = `SHARED_PROMPT = "Shared synthetic judge prompt. Verdicts: [[A>>B]] [[A>B]] [[A=B]] [[B>A]] [[B>>A]]."

JUDGE_SETTINGS = {
    "hard_prompt": {
        "baseline": "some-other-model",
        "system_prompt": SHARED_PROMPT,
    },
    "creative_writing": {
        # "system_prompt": "a commented-out prompt that must be ignored",
        "baseline": "Qwen3-1.7B",
        "system_prompt": "Synthetic writing judge.\\n\\nCompare the two answers and say \\"which\\" is better.\\n\\nEnd with one of: [[A>>B]], [[A>B]], [[A=B]], [[B>A]], [[B>>A]].",
    },
}
`;

export const SYNTHETIC_JUDGE_PROMPT =
  'Synthetic writing judge.\n\nCompare the two answers and say "which" is better.\n\nEnd with one of: [[A>>B]], [[A>B]], [[A=B]], [[B>A]], [[B>>A]].';
