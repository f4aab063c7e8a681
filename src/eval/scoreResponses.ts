import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { getBenchmark } from '../benchmarks/registry.ts';
import { ScorerFailure } from '../benchmarks/types.ts';
import { UserError } from '../core/errors.ts';
import { DEFAULT_PROTOCOL, getProtocol } from '../core/protocols.ts';
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
  /** PTB_HOME root (HumanEval's code-execution venv). */
  venvHome: string;
  /** Scoring rules of this protocol (default DEFAULT_PROTOCOL). */
  protocol?: string;
}

export interface ScoreReport {
  benchmark: string;
  n: number;
  accuracy: number;
  metrics: Metrics;
  samples: Array<{ id: string; score: number; answer: string | null; dropped?: boolean }>;
}

/** A reply longer than this is not a model's answer; also far below what one JS string can hold. */
export const MAX_RESPONSE_LINE_BYTES = 64 * 1024 * 1024;

/** Lines of a file read in 1 MiB pieces, refusing any line longer than maxBytes (by its number). */
function* fileLines(path: string, maxBytes: number): Generator<string> {
  let fd: number;
  try {
    if (statSync(path).isDirectory()) {
      throw new UserError(
        `${path} is a directory, not a responses file`,
        'Pass a JSONL file: one {"id": ..., "response": ...} per line.',
      );
    }
    fd = openSync(path, 'r');
  } catch (err) {
    if (err instanceof UserError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(
      code === 'ENOENT'
        ? `responses file ${path} does not exist`
        : `cannot read responses file ${path} (${code})`,
      'Pass a JSONL file: one {"id": ..., "response": ...} per line.',
    );
  }
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let pieces: Buffer[] = [];
    let length = 0;
    let lineNo = 1;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      let start = 0;
      for (let i = 0; i < n; i++) {
        if (buf[i] !== 0x0a) continue;
        pieces.push(Buffer.from(buf.subarray(start, i)));
        yield Buffer.concat(pieces).toString('utf8');
        pieces = [];
        length = 0;
        lineNo++;
        start = i + 1;
      }
      if (n > start) {
        length += n - start;
        if (length > maxBytes) {
          throw new UserError(
            `${path}:${lineNo}: line too large (over ${maxBytes / 1024 / 1024} MiB); a reply that long is not a model's answer`,
            'Check the file: each line is one {"id": ..., "response": ...} object.',
          );
        }
        pieces.push(Buffer.from(buf.subarray(start, n)));
      }
      if (n === 0) break;
    }
    if (pieces.length > 0) yield Buffer.concat(pieces).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Parse a responses file (`{"id", "response", "tool_calls"?}` per line), naming the bad line. */
export function readResponses(path: string): ResponseLine[] {
  const out: ResponseLine[] = [];
  const seen = new Set<string>();
  let i = 0;
  for (const raw of fileLines(path, MAX_RESPONSE_LINE_BYTES)) {
    i++;
    const line = raw.trim();
    if (!line) continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      throw new UserError(`${path}:${i}: not valid JSON`, 'Each line must be {"id": ..., "response": ...}.');
    }
    const parsed = ResponseLineSchema.safeParse(json);
    if (!parsed.success) {
      throw new UserError(
        `${path}:${i}: ${parsed.error.issues.map((x) => `${x.path.join('.') || 'line'}: ${x.message}`).join('; ')}`,
        'Each line must be {"id": <sample id>, "response": <text>} (plus "tool_calls" for bfcl).',
      );
    }
    if (seen.has(parsed.data.id))
      throw new UserError(`${path}:${i}: sample id ${parsed.data.id} appears twice`);
    seen.add(parsed.data.id);
    out.push(parsed.data);
  }
  if (out.length === 0) {
    throw new UserError(
      `${path} holds no responses`,
      'Pass a JSONL file: one {"id": ..., "response": ...} per line.',
    );
  }
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
  const { prepared } = await prepareBenchmark(benchmark, cache, {
    ...opts,
    overrides: opts.data,
    scoringOnly: true,
  });
  const byId = new Map(prepared.samples.map((s) => [s.id, s]));
  const unknown = responses.filter((r) => !byId.has(r.id)).map((r) => r.id);
  if (unknown.length > 0) {
    throw new UserError(
      `${unknown.length} response id(s) are not samples of ${benchmark.id}: ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', …' : ''}`,
      `A ${benchmark.id} sample id is ${benchmark.sampleId}.`,
    );
  }
  const { grader, codeRunner } = await scoringDeps(benchmark, opts);
  const scoring = getProtocol(opts.protocol ?? DEFAULT_PROTOCOL).scoring;
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
    const score = await prepared
      .score(sample, reply, { request, grader, codeRunner, signal, scoring })
      .catch((err: unknown) => {
        // In an evaluation this fails the attempt; regrading has no attempt to fail, so it is a 0.
        if (!(err instanceof ScorerFailure)) throw err;
        return {
          value: 0,
          answer: null,
          explanation: err.message,
          details: { referenceOutcome: 'attempt fails' },
        };
      });
    scores.set(r.id, score);
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
