import { readFileSync } from 'node:fs';
import { getBenchmark } from '../benchmarks/registry.ts';
import { UserError } from '../core/errors.ts';
import {
  type Metrics,
  type ModelReply,
  type ResponseLine,
  ResponseLineSchema,
  type Score,
} from '../core/schemas.ts';
import type { AssetCache, AssetCacheOptions } from '../hub/assetCache.ts';
import { runPool } from './pool.ts';
import { prepareBenchmark } from './prepareBenchmark.ts';
import { scoringDeps } from './scoringDeps.ts';

export interface ScoreOptions extends AssetCacheOptions {
  benchmark: string;
  responsesFile: string;
  seed: number | null;
  data?: Record<string, string>;
  grader?: { baseUrl?: string; model?: string };
  concurrency?: number;
  unsafeNoSandbox?: boolean;
  env: NodeJS.ProcessEnv;
}

export interface ScoreReport {
  benchmark: string;
  n: number;
  accuracy: number;
  metrics: Metrics;
  samples: Array<{ id: string; score: number; answer: string | null; dropped?: boolean }>;
}

/** Parse a responses file (`{"id", "response", "tool_calls"?}` per line), naming the bad line. */
export function readResponses(path: string): ResponseLine[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UserError(
      `cannot read responses file ${path}`,
      'Pass a JSONL file: one {"id": ..., "response": ...} per line.',
    );
  }
  const out: ResponseLine[] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new UserError(
        `${path}:${i + 1}: not valid JSON`,
        'Each line must be {"id": ..., "response": ...}.',
      );
    }
    const parsed = ResponseLineSchema.safeParse(json);
    if (!parsed.success) {
      throw new UserError(
        `${path}:${i + 1}: ${parsed.error.issues.map((x) => `${x.path.join('.') || 'line'}: ${x.message}`).join('; ')}`,
        'Each line must be {"id": <sample id>, "response": <text>} (plus "tool_calls" for bfcl).',
      );
    }
    if (seen.has(parsed.data.id))
      throw new UserError(`${path}:${i + 1}: sample id ${parsed.data.id} appears twice`);
    seen.add(parsed.data.id);
    out.push(parsed.data);
  });
  if (out.length === 0) throw new UserError(`${path} holds no responses`);
  return out;
}

/** `ptb score`: regrade recorded replies with the benchmark's scorer, no engine involved. */
export async function scoreResponses(cache: AssetCache, opts: ScoreOptions): Promise<ScoreReport> {
  const benchmark = getBenchmark(opts.benchmark);
  if (benchmark.id === 'gpqamain' && opts.seed === null) {
    // The letter a reply names only means something under the choice order it was shown.
    throw new UserError(
      'GPQA replies generated with unseeded choice shuffles cannot be regraded: their choice order is unknown',
      'Regrade with the --seed the replies were generated with (ptb eval records it in eval.json), or use the per-sample scores ptb eval stored.',
    );
  }
  const responses = readResponses(opts.responsesFile);
  const { prepared } = await prepareBenchmark(benchmark, cache, { ...opts, overrides: opts.data });
  const byId = new Map(prepared.samples.map((s) => [s.id, s]));
  const unknown = responses.filter((r) => !byId.has(r.id)).map((r) => r.id);
  if (unknown.length > 0) {
    throw new UserError(
      `${unknown.length} response id(s) are not samples of ${benchmark.id}: ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', …' : ''}`,
      `Sample ids are the dataset's own ids (${benchmark.id === 'gsm8k' ? 'the 0-based row index for gsm8k' : 'see `ptb benchmarks`'}).`,
    );
  }
  const { grader, codeRunner } = scoringDeps(benchmark, opts);
  const scores = new Map<string, Score>();
  await runPool(responses, opts.concurrency ?? 16, async (r, signal) => {
    const sample = byId.get(r.id)!;
    const request = prepared.request(sample, { seed: opts.seed });
    const reply: ModelReply = {
      text: r.response ?? '',
      toolCalls: r.tool_calls ?? [],
      finishReason: null,
      promptTokens: null,
      completionTokens: null,
      latencyMs: 0,
    };
    scores.set(r.id, await prepared.score(sample, reply, { request, grader, codeRunner, signal }));
  });
  const scored = responses.map((r) => ({ sample: byId.get(r.id)!, score: scores.get(r.id)! }));
  const metrics = benchmark.aggregate(scored);
  return {
    benchmark: benchmark.id,
    n: responses.length,
    accuracy: metrics.accuracy,
    metrics,
    samples: scored.map(({ sample, score }) => ({
      id: sample.id,
      score: score.value,
      answer: score.answer ?? null,
      ...(score.dropped ? { dropped: true } : {}),
    })),
  };
}
