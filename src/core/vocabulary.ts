/**
 * The closed sets of names the CLI offers as choices. Plain constants without zod, so that
 * `ptb --help` can list them without loading the schema library; `schemas.ts` and `trial.ts`
 * build their enums from these.
 */

/** The seven PostTrainBench benchmarks. */
export const BENCHMARK_IDS = [
  'aime2025',
  'arenahardwriting',
  'bfcl',
  'gpqamain',
  'gsm8k',
  'healthbench',
  'humaneval',
] as const;

/** Where an agent can run. */
export const SANDBOX_KINDS = ['bwrap', 'podman', 'apptainer', 'none'] as const;

/** What `ptb report` renders. */
export const REPORT_FORMATS = ['table', 'markdown', 'csv', 'json', 'html'] as const;

/** Evaluation protocols (core/protocols.ts): the reference version an evaluation follows. */
export const PROTOCOL_IDS = ['v1.0', 'v1.1'] as const;

/** The protocol of new evaluations and trials (why: core/protocols.ts, README "Protocols"). */
export const DEFAULT_PROTOCOL: (typeof PROTOCOL_IDS)[number] = 'v1.1';

/** Where `ptb run` runs a grid: here, or through a batch scheduler (src/schedulers/registry.ts). */
export const SCHEDULER_KINDS = ['local', 'slurm'] as const;
