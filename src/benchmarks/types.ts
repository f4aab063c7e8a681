import { DEFAULT_PROTOCOL, PROTOCOLS, type ScoringRules } from '../core/protocols.ts';
import type { BenchmarkId, ChatRequest, Metrics, ModelReply, Sample, Score } from '../core/schemas.ts';
import type { AssetPin } from '../hub/assetPin.ts';
import type { Grader } from './shared/grader.ts';

/** Settings that the reference fixes per benchmark (spec §3.1, §1.11). */
export interface BenchmarkDefaults {
  /** max tokens per rung of the retry ladder: default, reduced, lowest. */
  maxTokensLadder: readonly [number, number, number];
  /** Agent-side default `--limit` of the reference's evaluate.py (null = all). */
  agentLimit: number | null;
  /** The reference's request concurrency (max_connections; 1 = sequential). */
  referenceConcurrency: number;
  /** ptb's default concurrency: enough to keep an engine saturated. */
  concurrency: number;
  /** vLLM `--gpu-memory-utilization` the reference passes (undefined: vLLM's default). */
  gpuMemoryUtilization?: number;
  /** Name of the max-tokens flag of the reference's evaluate.py. */
  maxTokensFlag: '--max-tokens' | '--max-new-tokens';
}

/** Where a loaded asset came from, recorded with every result. */
export interface AssetProvenance {
  part: string;
  source: 'pinned' | 'local';
  path: string;
  sha256: string;
  /** Pinned URL or the original path of an imported local copy. */
  origin: string;
  /** false when the pin carries no sha256 and the hash was recorded on first fetch. */
  verified: boolean;
}

export interface LoadedAsset {
  path: string;
  provenance: AssetProvenance;
}

export interface LoadContext {
  /** Resolve one of the benchmark's asset parts to a local file (cache, import, or override). */
  asset(part: string): Promise<LoadedAsset>;
  /**
   * Regrading recorded replies (`ptb score`): parts marked `promptOnly` are not available, and
   * `request()` may return a request without its prompt text (what scoring reads of it — GPQA's
   * choice order, BFCL's tools — must still be there).
   */
  scoringOnly?: boolean;
}

export interface SelectOptions {
  /** null or -1: every sample. */
  limit: number | null;
}

export interface RequestContext {
  /** Seed for per-evaluation randomness (GPQA choice shuffle); null = unseeded like the reference. */
  seed: number | null;
}

/** Result of running an untrusted Python program (HumanEval) in a sandbox. */
export interface CodeRunResult {
  /** The program ran to its last line and exited 0, proven by a marker the program cannot know. */
  completed: boolean;
  exitCode: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface CodeRunner {
  runPython(program: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<CodeRunResult>;
}

export interface ScoreContext {
  /** The protocol's scoring rules (default: the default protocol's). */
  scoring?: ScoringRules;
  /** Executes HumanEval programs; required by code benchmarks. */
  codeRunner?: CodeRunner;
  /** LLM grader for Arena-Hard and HealthBench; undefined for the others. */
  grader?: Grader;
  /** Request as sent (GPQA needs the shuffled choice order). */
  request: ChatRequest;
  signal?: AbortSignal;
}

/** A benchmark with its data loaded: samples plus the functions that need that data. */
export interface PreparedBenchmark {
  /** Every sample of the pinned split, in the reference's order. */
  samples: Sample[];
  /** Build the chat request for one sample (few-shot context, choice shuffle, tools). */
  request(sample: Sample, ctx: RequestContext): ChatRequest;
  /** Grade one reply. Pure for rule-based benchmarks; calls the grader for Arena/HealthBench. */
  score(sample: Sample, reply: ModelReply, ctx: ScoreContext): Promise<Score>;
}

export interface Benchmark {
  id: BenchmarkId;
  displayName: string;
  /** What a sample's id is (the `id` of `ptb score` replies and of per-sample records), with an example. */
  sampleId: string;
  /** Leaderboard weight (the reference's factors.json). */
  weight: number;
  defaults: BenchmarkDefaults;
  /** Data parts (test split, few-shot split, baseline answers, grader prompts, ...). */
  assets: readonly AssetPin[];
  /** Needs an LLM grader (Arena-Hard, HealthBench). */
  needsGrader: boolean;
  /** Sends tools and expects tool calls (BFCL): engines enable their tool-call parser. */
  usesTools: boolean;
  /** Load the assets and build the prepared benchmark. */
  prepare(ctx: LoadContext): Promise<PreparedBenchmark>;
  /** The reference's rule for `--limit`: first N, or a seeded shuffle then first N. */
  select(samples: Sample[], opts: SelectOptions): Sample[];
  /**
   * The sample's id in the reference's run, where it differs from `sample.id` (inspect numbers
   * samples without an id 1, 2, …): per-request seeds are derived from it. `position` is the
   * sample's index in the prepared list.
   */
  referenceSampleId?(sample: Sample, position: number): string;
  /** Combine per-sample scores into metrics.json (accuracy, stderr, extras). */
  aggregate(scored: ReadonlyArray<{ sample: Sample; score: Score }>): Metrics;
}

/** The scoring rules a score call runs under. */
export function scoringRules(ctx: Pick<ScoreContext, 'scoring'>): ScoringRules {
  return ctx.scoring ?? PROTOCOLS[DEFAULT_PROTOCOL].scoring;
}

/**
 * The reference's scorer raises on this reply, which fails the whole evaluation attempt (the
 * retry ladder then tries again): e.g. an Arena verdict outside the judge's vocabulary, or, in
 * protocol v1.0, a last number inspect cannot parse.
 */
export class ScorerFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScorerFailure';
  }
}
