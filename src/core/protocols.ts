import { z } from 'zod';
import { UserError } from './errors.ts';
import type { BenchmarkId } from './schemas.ts';
import { DEFAULT_PROTOCOL, PROTOCOL_IDS } from './vocabulary.ts';

/**
 * Evaluation protocols: the behaviours that differ between versions of the reference, as data.
 * `v1.0` is the paper's final evaluation (upstream @ 9082063 plus the inspect fork its eval image
 * installs); `v1.1` is the reference's current final evaluation (several fixed seeds, exact numeric
 * comparison, hardened scorers). Every evaluation and trial records the protocol it ran under, and
 * reports never put scores of different protocols in one table.
 *
 * Other modules attach their own versioned data by ProtocolId (e.g. judge sets, which verdicts
 * substitute the base score): keep one module per concern and key it by `ProtocolId`, so adding a
 * protocol is adding one entry here plus one per concern.
 */

export { DEFAULT_PROTOCOL, PROTOCOL_IDS };
export const ProtocolIdSchema = z.enum(PROTOCOL_IDS);
export type ProtocolId = z.infer<typeof ProtocolIdSchema>;

/*
 * DEFAULT_PROTOCOL (core/vocabulary.ts) is v1.1, the reference's current final evaluation. Its
 * scores fix known scoring bugs of v1.0 (a number that merely ends with the target counted as
 * correct; HumanEval code that exits early counted as passing) and average over seeds, so a
 * leaderboard built with it ranks agents on what they achieved. `v1.0` stays available to
 * reproduce the paper's numbers (README, "Protocols").
 */

/** Where a behaviour was read upstream: facts carry over, code does not. */
export interface UpstreamPin {
  repo: string;
  path: string;
  commit: string;
}

const PTB = 'aisa-group/PostTrainBench';
const FORK = 'rank-and-file/inspect_ai_vllm_stdout';
/** The fork's head: upstream inspect_ai @ ccb0576 plus one logging commit (spec §9.2). */
export const INSPECT_FORK_COMMIT = 'b2a076297bfa406c6fb08ea6e306b53be6db7ae7';

export type SeedSet = 'all' | 'first';

/** How the final evaluation runs and scores; every field is a behaviour of one reference version. */
export interface FinalEvalRules {
  /**
   * Fixed run seeds, evaluated one after another, each through the retry ladder. Empty: one
   * unseeded run (the paper).
   */
  seeds: readonly number[];
  /** Benchmarks that use only the first seed (graded by paid API calls). */
  firstSeedOnly: readonly BenchmarkId[];
  /**
   * A model whose default temperature is 0 (vLLM decodes it greedily) uses only the first seed,
   * except on these benchmarks, where the seed also changes the prompts (GPQA's choice order).
   */
  greedyFirstSeedOnly: boolean;
  seedChangesPrompts: readonly BenchmarkId[];
  /**
   * `none`: requests carry no seed. `per-sample`: each request carries
   * sha256(`${runSeed}:${sampleId}:${epoch}:${call}`) (first 4 bytes little-endian & 0x7FFFFFFF).
   */
  requestSeed: 'none' | 'per-sample';
  /** Later seeds start at the rung where the first seed succeeded. */
  laterSeedsStartAtFirstSeedRung: boolean;
  /** Wall-clock cap of one evaluation attempt (the reference's `timeout … 28800s`). */
  attemptTimeoutMs: number;
}

/** How replies are scored where reference versions differ. */
export interface ScoringRules {
  /**
   * GSM8K/AIME: `endswith` = inspect's `match(numeric=True)` (the normalized last number must end
   * with the target, and signed or comma-grouped targets compare as text); `exact` = that
   * extraction compared by value (upstream issue #44).
   */
  numericComparison: 'endswith' | 'exact';
  /**
   * A last "number" inspect cannot parse (`.10.00.50`, `10⁹⁹⁹`): `fail-attempt` = inspect's scorer
   * raises and the whole evaluation attempt fails; `incorrect` = a wrong answer.
   */
  unparsableNumber: 'fail-attempt' | 'incorrect';
  /**
   * HumanEval: `exit-zero` = inspect_evals' verify() (exit code 0 passes, even before check()
   * ran); `check-completed` = the final-eval scorer (check() must have returned).
   */
  humanevalPass: 'exit-zero' | 'check-completed';
}

export interface Protocol {
  id: ProtocolId;
  title: string;
  summary: string;
  finalEval: FinalEvalRules;
  scoring: ScoringRules;
  /**
   * The protocol of the agent-facing evaluate.py inside the trial: the reference gives the agent
   * only its plain evaluate.py (one unseeded run, inspect's scorers), never the final-eval scripts
   * with their seeds and hardened scorers.
   */
  agentEvaluation: ProtocolId;
  /** Where each behaviour was read (behaviour name → upstream file at a commit). */
  sources: Readonly<Record<string, UpstreamPin>>;
}

const EIGHT_HOURS_MS = 8 * 3600 * 1000;

const SHARED_SOURCES: Readonly<Record<string, UpstreamPin>> = {
  numericPunctuation: { repo: FORK, path: 'src/inspect_ai/_util/text.py', commit: INSPECT_FORK_COMMIT },
  numericMatch: { repo: FORK, path: 'src/inspect_ai/scorer/_common.py', commit: INSPECT_FORK_COMMIT },
  contextLengthReply: {
    repo: FORK,
    path: 'src/inspect_ai/model/_providers/vllm.py',
    commit: INSPECT_FORK_COMMIT,
  },
};

export const PROTOCOLS: Readonly<Record<ProtocolId, Protocol>> = {
  'v1.0': {
    id: 'v1.0',
    title: 'PostTrainBench v1.0 (the paper)',
    summary:
      "one unseeded evaluation per model through the 4/3/2 retry ladder; inspect's match(numeric=True) with endswith; HumanEval passes on exit code 0",
    finalEval: {
      seeds: [],
      firstSeedOnly: [],
      greedyFirstSeedOnly: false,
      seedChangesPrompts: [],
      requestSeed: 'none',
      laterSeedsStartAtFirstSeedRung: false,
      attemptTimeoutMs: EIGHT_HOURS_MS,
    },
    scoring: { numericComparison: 'endswith', unparsableNumber: 'fail-attempt', humanevalPass: 'exit-zero' },
    agentEvaluation: 'v1.0',
    sources: {
      ...SHARED_SOURCES,
      retryLadder: { repo: PTB, path: 'src/run_task.sh', commit: '9082063a62e10e040f1acacdec2ccfc1467e0c00' },
      humanevalScorer: {
        repo: 'UKGovernmentBEIS/inspect_evals',
        path: 'src/inspect_evals/humaneval/humaneval.py',
        commit: '06001a83e6d7c709c2ede0570dce7f1031a0bad8',
      },
    },
  },
  'v1.1': {
    id: 'v1.1',
    title: 'PostTrainBench v1.1 (the current final evaluation)',
    summary:
      'five fixed seeds (one for the API-graded benchmarks and for greedy models), per-request seeds, mean over the seeds that succeeded; exact numeric comparison; hardened HumanEval scorer',
    finalEval: {
      seeds: [72332, 87681, 38992, 92201, 13818],
      firstSeedOnly: ['arenahardwriting', 'healthbench'],
      greedyFirstSeedOnly: true,
      seedChangesPrompts: ['gpqamain'],
      requestSeed: 'per-sample',
      laterSeedsStartAtFirstSeedRung: true,
      attemptTimeoutMs: EIGHT_HOURS_MS,
    },
    scoring: { numericComparison: 'exact', unparsableNumber: 'incorrect', humanevalPass: 'check-completed' },
    agentEvaluation: 'v1.0',
    sources: {
      ...SHARED_SOURCES,
      seedsAndLadder: {
        repo: PTB,
        path: 'src/eval/run_final_eval.sh',
        commit: '214ccb4405a92ec098a84eb3237e35eee22beec8',
      },
      seedAggregation: {
        repo: PTB,
        path: 'src/utils/aggregate_seed_metrics.py',
        commit: '8e0fa4c840a0fadce8a66417ea51df1514dbc6f3',
      },
      greedyProbe: {
        repo: PTB,
        path: 'src/utils/default_temperature.py',
        commit: '6f4fbbfdbf4c1a23ca3a8265d93c9bd0929dc110',
      },
      requestSeed: {
        repo: PTB,
        path: 'src/eval/per_sample_seed.py',
        commit: '1b6c1a92167214208d70bc2070dc4971ce71640b',
      },
      exactNumeric: {
        repo: PTB,
        path: 'src/eval/exact_numeric_match.py',
        commit: '1b6c1a92167214208d70bc2070dc4971ce71640b',
      },
      gsm8kFinalEval: {
        repo: PTB,
        path: 'src/eval/tasks/gsm8k/evaluate_final_eval.py',
        commit: '5b1df0c6ed4974abedfc1928eed412cd98e43b89',
      },
      humanevalScorer: {
        repo: PTB,
        path: 'src/eval/tasks/humaneval/evaluate_final_eval.py',
        commit: '06b716ebcea458abd6f9b389cb84890d16255d0c',
      },
      gpqaSeededShuffle: {
        repo: PTB,
        path: 'src/eval/tasks/gpqamain/evaluate_final_eval.py',
        commit: '8e0fa4c840a0fadce8a66417ea51df1514dbc6f3',
      },
      arenaRequestSeed: {
        repo: PTB,
        path: 'src/eval/tasks/arenahardwriting/evaluate_final_eval.py',
        commit: '1b6c1a92167214208d70bc2070dc4971ce71640b',
      },
    },
  },
};

export function getProtocol(id: string): Protocol {
  const parsed = ProtocolIdSchema.safeParse(id);
  if (!parsed.success) {
    throw new UserError(
      `unknown protocol "${id}"`,
      `Choose from: ${PROTOCOL_IDS.map((p) => `${p} (${PROTOCOLS[p].title})`).join(', ')}.`,
    );
  }
  return PROTOCOLS[parsed.data];
}

/** The run seeds a benchmark is evaluated with under a protocol ([] = one unseeded run). */
export function seedsFor(protocol: Protocol, benchmark: BenchmarkId, greedy: boolean): number[] {
  const { seeds, firstSeedOnly, greedyFirstSeedOnly, seedChangesPrompts } = protocol.finalEval;
  if (seeds.length === 0) return [];
  if (firstSeedOnly.includes(benchmark)) return [seeds[0]!];
  if (greedy && greedyFirstSeedOnly && !seedChangesPrompts.includes(benchmark)) return [seeds[0]!];
  return [...seeds];
}
